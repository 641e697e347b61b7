"""The journal's frame scanner: the container format's
(:func:`pytest_replay.formats.journal.scan_frames`), raising the journal's own errors.

The layout, the encoders and the facts (magics, sizes) belong to the format,
:mod:`pytest_replay.formats.journal`; journal callers of the scanner catch one family,
:class:`JournalCorrupted` (a file cut at a frame boundary: :class:`JournalTruncated`).
"""

from __future__ import annotations

import functools
from typing import Final

from pytest_replay.formats import journal as _container
from pytest_replay.journal.errors import JournalCorrupted, JournalTruncated

__all__ = ["scan_frames"]

#: A partial adds no stack frame, so the format's warning still names the caller's caller.
scan_frames: Final = functools.partial(
    _container.scan_frames, corrupted=JournalCorrupted, truncated=JournalTruncated
)
