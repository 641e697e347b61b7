"""Errors of the journal package.

Every message names what it is about (file, byte offset, record index,
persistence id or sequence number) and ends with a ``Fix:`` hint.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from pytest_replay.errors import ReplayError
from pytest_replay.formats.journal import FrameCorrupted, FrameTruncated

__all__ = [
    "DuplicateSequenceNr",
    "FrameTooLarge",
    "HarnessModeError",
    "JournalCorrupted",
    "JournalDecodeError",
    "JournalError",
    "JournalIoError",
    "JournalPersistError",
    "JournalStoreClosed",
    "JournalTruncated",
    "JournalUsageError",
    "NoJournalAttached",
    "NonContiguousSequenceNr",
    "PointInTimeRecoveryWarning",
    "ReplayAckError",
    "ReplayReducerError",
    "ReplaySinkError",
    "SequenceNrConflict",
    "TornTailWarning",
    "UnknownEntryTag",
]


class JournalError(ReplayError):
    """Base of every journal error; messages end with a ``Fix:`` hint."""


class JournalUsageError(JournalError, ValueError):
    """An argument is out of range or of the wrong type."""

    def __init__(self, detail: str, fix: str) -> None:
        self.detail = detail
        super().__init__(detail, fix=fix)


# --------------------------------------------------------------------------- decoding


class JournalDecodeError(JournalError):
    """Stored bytes do not decode to a journal entry or record.

    ``source`` names the file or recording; ``sequence_nr``, ``record_index``
    and ``offset`` locate the bad item where they are known.
    """

    def __init__(
        self,
        source: str,
        detail: str,
        *,
        sequence_nr: int | None = None,
        record_index: int | None = None,
        offset: int | None = None,
        fix: str = "re-record the journal; it was written by another format version or is damaged",
    ) -> None:
        self.source = source
        self.detail = detail
        self.sequence_nr = sequence_nr
        self.record_index = record_index
        self.offset = offset
        where = []
        if sequence_nr is not None:
            where.append(f"sequence nr {sequence_nr}")
        if record_index is not None:
            where.append(f"record #{record_index}")
        if offset is not None:
            where.append(f"byte offset {offset}")
        located = f" ({', '.join(where)})" if where else ""
        super().__init__(detail, where=f"journal '{source}'{located}", fix=fix)


class UnknownEntryTag(JournalDecodeError):
    """An entry carries a tag this version does not know."""

    def __init__(
        self, source: str, tag: object, *, sequence_nr: int | None = None, offset: int | None = None
    ) -> None:
        self.tag = tag
        super().__init__(
            source,
            f"unknown entry tag {tag!r}",
            sequence_nr=sequence_nr,
            offset=offset,
            fix="upgrade pytest_replay to the version that wrote this journal, or re-record it",
        )


class JournalCorrupted(JournalError, FrameCorrupted):
    """A journal file is damaged before its tail (never skipped silently); the message and
    attributes (``path``, ``offset``, ``detail``, ``index``) are those of the container
    format's :class:`~pytest_replay.formats.journal.FrameCorrupted`."""


class FrameTooLarge(JournalError):
    """One write batch encodes to more bytes than a frame may hold."""

    def __init__(self, path: str | os.PathLike[str], size: int, limit: int) -> None:
        self.path = os.fspath(path)
        self.size = size
        self.limit = limit
        super().__init__(
            f"a batch encodes to {size} bytes, over the {limit}-byte frame limit",
            where=f"journal file '{self.path}'",
            fix="split the batch into smaller write_messages calls.",
        )


class JournalTruncated(JournalCorrupted, FrameTruncated):
    """A file that promises an end frame ends on a frame boundary without it: cut short."""


class TornTailWarning(UserWarning):
    """A crash left a partly written final frame; it was truncated away on open."""


class PointInTimeRecoveryWarning(UserWarning):
    """``point_in_time`` recovery stopped at a damaged frame and dropped it and what follows."""


# --------------------------------------------------------------------------- stores


class JournalIoError(JournalError):
    """An operating-system or SQLite call on a journal store failed."""

    def __init__(self, op: str, path: str | os.PathLike[str], cause: BaseException) -> None:
        self.op = op
        self.path = os.fspath(path)
        self.cause = cause
        super().__init__(
            f"journal {op} on '{self.path}' failed: {cause}",
            fix="check disk space, permissions, and that no other process holds the file.",
        )


class JournalStoreClosed(JournalError):
    """The store was used after close()."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"journal store '{path}' is closed", fix="open a new store for the same path."
        )


class SequenceNrConflict(JournalError):
    """A write would break the per-persistence-id sequence (nothing was written)."""

    def __init__(self, persistence_id: str, expected: int, got: int, detail: str) -> None:
        self.persistence_id = persistence_id
        self.expected = expected
        self.got = got
        super().__init__(
            f"{detail}: expected sequence nr {expected}, got {got}; the whole batch was rejected",
            where=f"persistence id {persistence_id!r}",
            fix="continue at highest_sequence_nr(persistence_id) + 1 with contiguous numbers.",
        )


class DuplicateSequenceNr(SequenceNrConflict):
    """The sequence number is already stored; stores never overwrite."""

    def __init__(self, persistence_id: str, expected: int, got: int) -> None:
        super().__init__(persistence_id, expected, got, "duplicate sequence nr")


class NonContiguousSequenceNr(SequenceNrConflict):
    """The sequence number would leave a gap."""

    def __init__(self, persistence_id: str, expected: int, got: int) -> None:
        super().__init__(persistence_id, expected, got, "non-contiguous sequence nr")


# --------------------------------------------------------------------------- harness


class HarnessModeError(JournalError):
    """An operation needs another ReplayMode."""

    def __init__(self, operation: str, needed: str, actual: str) -> None:
        self.operation = operation
        super().__init__(
            f"ReplayHarness.{operation} needs mode {needed}, the harness is in {actual}",
            fix=f"call set_mode(ReplayMode.{needed}) first.",
        )


class NoJournalAttached(JournalError):
    """A persistence operation was asked of a harness without a journal store."""

    def __init__(self, operation: str) -> None:
        super().__init__(
            f"ReplayHarness.{operation} needs a journal store, none is attached",
            fix="construct ReplayHarness(mode, journal=..., persistence_id=...).",
        )


class JournalPersistError(JournalError):
    """Entries recorded in memory did not reach the journal store."""

    def __init__(
        self,
        persistence_id: str,
        sequence_nrs: Sequence[int],
        cause: BaseException,
        *,
        unnumbered: int = 0,
    ) -> None:
        self.persistence_id = persistence_id
        self.sequence_nrs = tuple(sequence_nrs)
        self.unnumbered = unnumbered
        self.cause = cause
        if unnumbered:
            count = "1 entry was" if unnumbered == 1 else f"{unnumbered} entries were"
            what = (
                f"{count} recorded but not persisted (the store's highest sequence nr "
                "could not be read, so they have no number yet)"
            )
        else:
            what = f"sequence nrs {_ranges(self.sequence_nrs)} were recorded but not persisted"
        super().__init__(
            f"{what}: {cause}",
            where=f"persistence id {persistence_id!r}",
            fix="repair the journal store and call flush() again; the entries are still in "
            "snapshot().",
        )


class ReplaySinkError(JournalError):
    """A replay sink raised while handling an entry."""

    def __init__(self, index: int, entry: object, cause: BaseException) -> None:
        self.index = index
        self.entry = entry
        self.cause = cause
        super().__init__(
            f"replay sink failed on entry #{index} ({entry!r}): {cause!r}",
            fix="make the sink handle this entry; replay stopped before the next one.",
        )


class ReplayAckError(JournalError):
    """A sink did not acknowledge an entry in time, or acknowledged it twice."""

    def __init__(self, index: int, detail: str) -> None:
        self.index = index
        super().__init__(
            detail,
            where=f"replay entry #{index}",
            fix="call the ack callback exactly once per entry, or use a sink without ack.",
        )


# --------------------------------------------------------------------------- reducer


class ReplayReducerError(JournalError):
    """The replay reducer rejected a record.

    ``kind`` and ``retry_classification`` are the reducer's enums
    (:class:`~pytest_replay.journal.reducer.ReducerErrorKind`,
    :class:`~pytest_replay.journal.records.RetryClassification`); ``message`` is
    the bare rule text.
    """

    def __init__(
        self,
        kind: object,
        retry_classification: object,
        message: str,
        *,
        record_id: str | None = None,
        journal_seq: int | None = None,
        fix: str = (
            "repair the journal (reduce it with ReducerMode.REPAIR, or pytest-replay reduce "
            "--mode repair) before resuming"
        ),
    ) -> None:
        self.kind = kind
        self.retry_classification = retry_classification
        self.message = message
        self.record_id = record_id
        self.journal_seq = journal_seq
        where = ""
        if record_id is not None:
            where = f" (record {record_id!r}, journal_seq {journal_seq})"
        kind_name = getattr(kind, "value", kind)
        retry_name = getattr(retry_classification, "value", retry_classification)
        super().__init__(f"{kind_name} [{retry_name}]: {message}{where}", fix=fix)


def _ranges(numbers: Sequence[int]) -> str:
    # "3-7, 9" reads better than forty numbers in an error message.
    parts: list[str] = []
    start = prev = None
    for n in numbers:
        if start is None:
            start = prev = n
        elif prev is not None and n == prev + 1:
            prev = n
        else:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = prev = n
    if start is not None:
        parts.append(str(start) if start == prev else f"{start}-{prev}")
    return ", ".join(parts) if parts else "(none)"
