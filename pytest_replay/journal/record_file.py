"""Files of journal records: what :func:`load_journal_records` reads.

The byte format (frames, magic ``b"PRJRECS1"``, the wire order of a record's fields)
is :mod:`pytest_replay.formats.journal_records`; here records are encoded to and
decoded from their frame bodies (payload tags:
:data:`~pytest_replay.journal.records.PAYLOAD_TYPES`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import msgpack

from pytest_replay._atomic import atomic_write_bytes
from pytest_replay._fs import NotRegularFile, open_regular
from pytest_replay._msgpack import unpack_bounded
from pytest_replay.formats.journal import (
    MAX_FRAME_BYTES,
    RECORDS_MAGIC,
    encode_end_frame,
    encode_file_header,
    encode_frame,
)
from pytest_replay.formats.journal_records import RECORD_WIRE_FIELDS
from pytest_replay.journal.errors import JournalDecodeError, JournalIoError, JournalUsageError
from pytest_replay.journal.frames import scan_frames
from pytest_replay.journal.plain import PlainError, from_row, to_row
from pytest_replay.journal.records import JournalRecord, JournalRecordKind

__all__ = [
    "decode_journal_records",
    "decode_record",
    "encode_journal_records",
    "encode_record",
    "load_journal_records",
    "write_journal_records",
]

#: msgpack.packb, typed.
_packb: Callable[..., bytes] = msgpack.packb

# Wire order (a fact of the format) differs from the dataclass order.
_WIRE_ORDER = RECORD_WIRE_FIELDS
_FIELD_ORDER = (
    "record_id",
    "journal_seq",
    "record_kind",
    "payload",
    "content_refs",
    "idempotency_key",
    "dedupe_key",
    "journal_schema_version",
)
_TO_WIRE = [_FIELD_ORDER.index(name) for name in _WIRE_ORDER]
_FROM_WIRE = [_WIRE_ORDER.index(name) for name in _FIELD_ORDER]


def encode_record(record: JournalRecord) -> bytes:
    """The msgpack bytes of one record."""
    if not isinstance(record, JournalRecord) or not isinstance(
        record.record_kind, JournalRecordKind
    ):
        raise JournalUsageError(
            f"cannot encode {record!r} as a journal record",
            "pass JournalRecord values with a JournalRecordKind",
        )
    try:
        row = to_row(record)
    except (TypeError, AttributeError) as exc:
        raise JournalUsageError(
            f"record {record.record_id!r} does not encode: {exc}",
            "use the payload classes of pytest_replay.journal.records",
        ) from exc
    return _packb([row[i] for i in _TO_WIRE], use_bin_type=True)


def decode_record(
    data: bytes | bytearray | memoryview,
    source: str = "<record>",
    record_index: int | None = None,
    offset: int | None = None,
) -> JournalRecord:
    """Decode :func:`encode_record` output; errors name the record index and byte offset."""
    try:
        wire: Any = unpack_bounded(data)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise JournalDecodeError(
            source, f"record is not msgpack ({exc})", record_index=record_index, offset=offset
        ) from exc
    if type(wire) is not list or len(wire) != len(_WIRE_ORDER):
        raise JournalDecodeError(
            source,
            f"a record must be an array of {len(_WIRE_ORDER)} fields",
            record_index=record_index,
            offset=offset,
        )
    try:
        return from_row(JournalRecord, [wire[i] for i in _FROM_WIRE], "record")
    except PlainError as exc:
        raise JournalDecodeError(
            source, f"bad record field {exc}", record_index=record_index, offset=offset
        ) from None


def encode_journal_records(records: Iterable[JournalRecord]) -> bytes:
    """A complete record file image, one frame per record, closed by the end frame."""
    parts = []
    for record in records:
        body = encode_record(record)
        if len(body) > MAX_FRAME_BYTES:
            raise JournalUsageError(
                f"record {record.record_id!r} encodes to {len(body)} bytes, over the "
                f"{MAX_FRAME_BYTES}-byte frame limit",
                "keep large content out of records (reference it by content ref)",
            )
        parts.append(encode_frame(body))
    frames = b"".join(parts)
    return (
        encode_file_header(RECORDS_MAGIC, end_frame=True)
        + frames
        + encode_end_frame(frames, len(parts))
    )


def decode_journal_records(
    data: bytes | bytearray | memoryview, source: str = "<records>"
) -> list[JournalRecord]:
    """The records of a record file image, in file order.

    Any damage raises: an incomplete last frame, a bad CRC, a file cut at a frame
    boundary (:class:`JournalTruncated`), a frame after the end frame. A file written
    before end frames is read with an :class:`UnclosedFormatWarning`.
    """
    scan = scan_frames(data, RECORDS_MAGIC, source, item="record", closed_format=True)
    return [
        decode_record(body, source, index, offset)
        for index, (offset, body) in enumerate(scan.frames)
    ]


def load_journal_records(path: str | os.PathLike[str]) -> list[JournalRecord]:
    """Read a record file; damage raises an error naming the record index and byte offset."""
    try:
        with open_regular(path) as fh:
            data = fh.read()
    except NotRegularFile as exc:
        raise JournalUsageError(
            f"'{os.fspath(path)}' is {exc.what}, not a journal record file",
            "pass the path of a file written by write_journal_records",
        ) from None
    except OSError as exc:
        raise JournalIoError("read", path, exc) from exc
    return decode_journal_records(data, os.fspath(path))


def write_journal_records(path: str | os.PathLike[str], records: Iterable[JournalRecord]) -> None:
    """Write a record file atomically (temp file, fsync, rename)."""
    atomic_write_bytes(path, encode_journal_records(records))
