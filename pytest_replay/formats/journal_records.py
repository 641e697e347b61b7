"""The journal record file format (``PRJRECS1``): what ``load_journal_records`` reads.

The container is the frame format of :mod:`pytest_replay.formats.journal` with magic
``b"PRJRECS1"``, one record per frame, closed by an end frame (files written before
end frames are read with an ``UnclosedFormatWarning``). A frame body is the msgpack
array of :data:`RECORD_WIRE_FIELDS`::

    [journal_schema_version, journal_seq, record_id, record_kind,
     [payload_tag, [payload fields...]], [content_refs...], idempotency_key, dedupe_key]
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, Final

from pytest_replay.formats.journal import (
    RECORDS_MAGIC,
    ContainerFormat,
    Frame,
    container_framing,
    hashable_key,
    shown_body,
)

__all__ = ["JOURNAL_RECORDS", "RECORD_WIRE_FIELDS", "JournalRecordsFormat"]

#: The fields of a record frame's body, in wire order: version and seq lead, so a
#: reader can reject a foreign schema before touching the payload.
RECORD_WIRE_FIELDS: Final = (
    "journal_schema_version",
    "journal_seq",
    "record_id",
    "record_kind",
    "payload",
    "content_refs",
    "idempotency_key",
    "dedupe_key",
)
_SEQ: Final = RECORD_WIRE_FIELDS.index("journal_seq")
_ID: Final = RECORD_WIRE_FIELDS.index("record_id")


def _row(record: Frame) -> list[Any] | None:
    body = record.body
    return body if isinstance(body, list) and len(body) == len(RECORD_WIRE_FIELDS) else None


class JournalRecordsFormat(ContainerFormat):
    """A journal record file: written whole and atomically, so every cut is detectable."""

    name = "journal-records"
    label = "journal record file"
    extensions = (".jrec", ".jrecs")
    magic = RECORDS_MAGIC
    framing = container_framing(RECORDS_MAGIC, end_frame=True)
    frame_item = "record"
    closed_format = True

    def diff_key(self, index: int, record: Any) -> Hashable:
        """A record is keyed by its (journal seq, record id): records align across an
        inserted or dropped record."""
        row = _row(record)
        return index if row is None else hashable_key(index, row[_SEQ], row[_ID])

    def render(self, index: int, record: Any) -> str:
        row = _row(record)
        if row is None:
            return f"#{index} offset={record.offset} {shown_body(record)}"
        fields = " ".join(
            f"{name}={value!r}" for name, value in zip(RECORD_WIRE_FIELDS, row, strict=True)
        )
        return f"#{index} {fields}"


JOURNAL_RECORDS: Final = JournalRecordsFormat()
