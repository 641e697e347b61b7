"""The journal's view of its frame container (:mod:`pytest_replay.formats.journal`).

The layout, the encoders and the checking scanner belong to the format; here the
scanner raises the journal's own errors (:class:`JournalCorrupted`,
:class:`JournalTruncated`), so journal callers catch one family.
"""

from __future__ import annotations

import functools
from typing import Final

from pytest_replay.formats import journal as _container
from pytest_replay.formats.journal import (
    END_FRAME_BYTES,
    FILE_HEADER_BYTES,
    FILE_VERSION,
    FLAG_END_FRAME,
    FRAME_HEADER_BYTES,
    JOURNAL_MAGIC,
    MAX_FRAME_BYTES,
    RECORDS_MAGIC,
    RECOVERY_MODES,
    FrameScan,
    RecoveryMode,
    encode_end_frame,
    encode_file_header,
    encode_frame,
)
from pytest_replay.journal.errors import JournalCorrupted, JournalTruncated

__all__ = [
    "END_FRAME_BYTES",
    "FILE_HEADER_BYTES",
    "FILE_VERSION",
    "FLAG_END_FRAME",
    "FRAME_HEADER_BYTES",
    "JOURNAL_MAGIC",
    "MAX_FRAME_BYTES",
    "RECORDS_MAGIC",
    "RECOVERY_MODES",
    "FrameScan",
    "RecoveryMode",
    "encode_end_frame",
    "encode_file_header",
    "encode_frame",
    "scan_frames",
]


#: :func:`pytest_replay.formats.journal.scan_frames` raising :class:`JournalCorrupted` (a
#: file cut at a frame boundary: :class:`JournalTruncated`); a partial adds no stack frame,
#: so the format's warning still names the caller's caller.
scan_frames: Final = functools.partial(
    _container.scan_frames, corrupted=JournalCorrupted, truncated=JournalTruncated
)
