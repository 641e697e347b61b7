"""The ``journal`` and ``reduce`` recording kinds of the pytest plugin.

* ``replay.journal(name, persistence_id=None)`` returns a :class:`JournalRecorder`:
  a :class:`~pytest_replay.journal.harness.ReplayHarness` in RECORD mode whose
  recorded entries are the recording. The stored file is a FileJournal image
  (``.jrnl``), entries as messages 1..n of one persistence id, with the
  volatile fields (``ts_micros`` by default) zeroed so that it is
  byte-identical run after run. When verifying, the n-th recorded entry is
  compared with the stored n-th entry as it is recorded.
* ``replay.reduce(name, records, mode=...)`` folds journal records with the
  :class:`~pytest_replay.journal.reducer.ReplayReducer` and records the
  :class:`~pytest_replay.journal.result.ReplayResult` (its msgpack form,
  ``.jreduce``); when verifying, the result is compared with the stored one at
  once.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from pytest_replay.divergence import CONTEXT_RECORDS, Divergence, context_window
from pytest_replay.journal.codec import decode_journal, encode_journal
from pytest_replay.journal.divergence import (
    ENTRY_FIELDS,
    VOLATILE_ENTRY_FIELDS,
    entry_difference,
    first_journal_divergence,
    first_result_divergence,
)
from pytest_replay.journal.entries import JournalEntry, ReplayMode
from pytest_replay.journal.errors import JournalUsageError
from pytest_replay.journal.file_journal import FileJournal
from pytest_replay.journal.harness import Clock, ReplayHarness
from pytest_replay.journal.record_file import load_journal_records
from pytest_replay.journal.records import JournalRecord, MissingContentPolicy
from pytest_replay.journal.reducer import reduce_journal
from pytest_replay.journal.result import (
    ReducerMode,
    ReplayResult,
    result_from_msgpack,
    result_to_msgpack,
)
from pytest_replay.recorder import CheckedStream, DiffResult, FinishedRecording
from pytest_replay.recorder import RecordingTarget as Target
from pytest_replay.recordingkind import RecordingKind

__all__ = [
    "JOURNAL_EXTENSION",
    "JOURNAL_KIND",
    "REDUCE_EXTENSION",
    "REDUCE_KIND",
    "JournalRecorder",
    "ReduceRecorder",
    "kinds",
]

JOURNAL_EXTENSION: Final = ".jrnl"
REDUCE_EXTENSION: Final = ".jreduce"
#: Write buffered entries to the working FileJournal every this many records.
_WORKING_WRITE_BATCH: Final = 256


def _check_volatile(volatile: Iterable[str]) -> tuple[str, ...]:
    if isinstance(volatile, str):
        raise JournalUsageError(
            f"volatile must be a sequence of field names, got the string {volatile!r}",
            f"pass volatile=({volatile!r},)",
        )
    names = tuple(volatile)
    allowed = ENTRY_FIELDS - {"type"}
    unknown = sorted(set(names) - allowed)
    if unknown:
        raise JournalUsageError(
            f"unknown journal entry field(s) {', '.join(map(repr, unknown))} in volatile",
            f"use names from {', '.join(sorted(allowed))}",
        )
    return tuple(dict.fromkeys(names))


def _mask(entry: JournalEntry, volatile: Sequence[str]) -> JournalEntry:
    """``entry`` with its volatile fields set to the zero value of their type."""
    changes: dict[str, Any] = {}
    for name in volatile:
        if name in entry.__slots__:
            changes[name] = type(getattr(entry, name))()
    return dataclasses.replace(entry, **changes) if changes else entry


def _render_entry(index: int, entry: JournalEntry) -> str:
    return f"#{index} {entry!r}"


def _entry_detail(divergence: Divergence, expected: Any, actual: Any) -> str:
    """The detail line of a failure at a recorded entry."""
    if divergence.kind != "length":
        return ""
    if divergence.actual > divergence.expected:
        return "an entry recorded beyond the end of the stored journal"
    return f"the test recorded {divergence.actual} of the {divergence.expected} stored entries"


# --------------------------------------------------------------------------- journal


class JournalRecorder(ReplayHarness):
    """A :class:`ReplayHarness` in RECORD mode whose recorded entries are the recording.

    Recorded entries are mirrored to a working FileJournal in the test's
    scratch folder under ``persistence_id`` (default: the recording name), so
    ``set_mode(ReplayMode.REPLAY)`` + :meth:`load_from_journal` +
    :meth:`replay_all` work as on any persistent harness. Entries loaded with
    :meth:`load_journal` are a replay source, not part of the recording.
    """

    def __init__(
        self,
        target: Target,
        persistence_id: str | None = None,
        *,
        volatile: Iterable[str] = VOLATILE_ENTRY_FIELDS,
        clock: Clock | None = None,
    ) -> None:
        self._target = target
        self._volatile = _check_volatile(volatile)
        pid = target.name if persistence_id is None else persistence_id
        stored = (
            None
            if target.expected is None
            else decode_journal(target.expected, str(target.stored_path))
        )
        volatile_fields = self._volatile
        self._stream: CheckedStream[JournalEntry] = CheckedStream(
            target,
            stored,
            lambda want, got: entry_difference(want, got, volatile_fields),
            _render_entry,
            ignored=self._volatile,
            detail=_entry_detail,
            unit="entry",
        )
        working = target.scratch / f"{target.stored_path.name}"
        working.parent.mkdir(parents=True, exist_ok=True)
        working.unlink(missing_ok=True)
        self._store = FileJournal(working, fsync=False)
        try:
            super().__init__(
                ReplayMode.RECORD,
                self._store,
                pid,
                clock,
                write_batch=_WORKING_WRITE_BATCH,
            )
        except BaseException:
            self._store.close()
            raise
        self._recorded: list[JournalEntry] = []

    @property
    def name(self) -> str:
        return self._target.name

    @property
    def recorded(self) -> list[JournalEntry]:
        """The entries recorded so far (stamped, volatile fields as they were)."""
        return list(self._recorded)

    @property
    def volatile(self) -> tuple[str, ...]:
        return self._volatile

    def __len__(self) -> int:
        return len(self._recorded)

    def record(self, entry: JournalEntry) -> JournalEntry | None:
        """Record ``entry`` (see :meth:`ReplayHarness.record`), checking it when verifying."""
        __tracebackhide__ = True
        stamped = super().record(entry)
        if stamped is None:
            return None
        self._recorded.append(stamped)
        self._stream.check(stamped)
        return stamped

    def check_complete(self) -> None:
        __tracebackhide__ = True
        self._stream.check_complete()

    def finish(self) -> FinishedRecording:
        assert self.persistence_id is not None
        masked = [_mask(entry, self._volatile) for entry in self._recorded]
        data = encode_journal(masked, self.persistence_id)
        meta = {"persistence_id": self.persistence_id, "volatile": list(self._volatile)}
        return FinishedRecording(data, len(masked), meta)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._store.close()


def _diff_journal(expected: bytes, actual: bytes, meta: Mapping[str, Any]) -> DiffResult | None:
    left = decode_journal(expected, "expected")
    right = decode_journal(actual, "actual")
    volatile = _check_volatile(meta.get("volatile", VOLATILE_ENTRY_FIELDS))
    found = first_journal_divergence(left, right, volatile)
    if found is None or found.index is None:
        return None
    return found, context_window(left, found.index, _render_entry)


JOURNAL_KIND: Final = RecordingKind(
    name="journal",
    extension=JOURNAL_EXTENSION,
    version=1,
    open=JournalRecorder,
    diff=_diff_journal,
    count=lambda data: len(decode_journal(data, "recording")),
    ignored=lambda meta: tuple(meta.get("volatile", VOLATILE_ENTRY_FIELDS)),
)


# --------------------------------------------------------------------------- reduce

_MODE_NAMES: Final = {
    **{mode.name.lower(): mode for mode in ReducerMode},
    **{mode.value: mode for mode in ReducerMode},
}


def _coerce_mode(mode: object) -> ReducerMode:
    if isinstance(mode, ReducerMode):
        return mode
    found = _MODE_NAMES.get(mode.lower()) if isinstance(mode, str) else None
    if found is None:
        raise JournalUsageError(
            f"unknown reducer mode {mode!r}",
            "pass ReducerMode.AUDIT / RESUME / REPAIR or 'audit' / 'resume' / 'repair'",
        )
    return found


def _summary(result: ReplayResult) -> list[str]:
    lines = [
        f"stored: mode={result.mode.value} status={result.status.value} "
        f"resume_allowed={result.resume_allowed} latest_journal_seq={result.latest_journal_seq}"
    ]
    for repair in result.repair_needed[:CONTEXT_RECORDS]:
        lines.append(
            f"stored repair: {repair.kind.value} record={repair.record_id!r} "
            f"journal_seq={repair.journal_seq}"
        )
    return lines


class ReduceRecorder:
    """Reduces ``records`` at once; the :class:`ReplayResult` is the recording.

    ``records`` is an iterable of :class:`JournalRecord` or the path of a
    record file (:func:`~pytest_replay.journal.record_file.load_journal_records`).
    A record the reducer rejects raises its
    :class:`~pytest_replay.journal.errors.ReplayReducerError` at the call.
    ``ignore`` names result fields (index-free paths such as
    ``latest_checkpoint.created_at_millis``) that never count as a divergence.
    """

    def __init__(
        self,
        target: Target,
        records: Iterable[JournalRecord] | str | os.PathLike[str],
        mode: ReducerMode | str = ReducerMode.AUDIT,
        *,
        available_content_refs: Iterable[str] | None = None,
        missing_content_policy: MissingContentPolicy = MissingContentPolicy.FAIL,
        ignore: Iterable[str] = (),
    ) -> None:
        __tracebackhide__ = True
        self._target = target
        self._ignore = tuple(ignore)
        if isinstance(records, (str, os.PathLike)):
            loaded = load_journal_records(records)
        else:
            loaded = list(records)
        self.records: tuple[JournalRecord, ...] = tuple(loaded)
        self.result: ReplayResult = reduce_journal(
            self.records,
            _coerce_mode(mode),
            available_content_refs=available_content_refs,
            missing_content_policy=missing_content_policy,
        )
        if target.expected is not None:
            stored = result_from_msgpack(target.expected, str(target.stored_path))
            found = first_result_divergence(stored, self.result, self._ignore)
            if found is not None:
                path, want, got = found
                target.fail(
                    Divergence(
                        None,
                        path,
                        want,
                        got,
                        context=tuple(_summary(stored)),
                        detail=f"the replay result of {len(self.records)} journal records differs",
                    ),
                    self._ignore,
                )

    @property
    def name(self) -> str:
        return self._target.name

    def finish(self) -> FinishedRecording:
        meta = {
            "mode": self.result.mode.value,
            "records": len(self.records),
            "status": self.result.status.value,
            "volatile": list(self._ignore),
        }
        return FinishedRecording(result_to_msgpack(self.result), 1, meta)

    def check_complete(self) -> None:
        """The result is computed and compared in one call, so it is always complete."""

    def close(self) -> None:
        """Holds no resources."""


def _diff_reduce(expected: bytes, actual: bytes, meta: Mapping[str, Any]) -> DiffResult | None:
    left = result_from_msgpack(expected, "expected")
    right = result_from_msgpack(actual, "actual")
    found = first_result_divergence(left, right, tuple(meta.get("volatile", ())))
    if found is None:
        return None
    path, want, got = found
    return Divergence(None, path, want, got), tuple(_summary(left))


def _count_reduce(data: bytes) -> int:
    result_from_msgpack(data, "recording")  # raises on damage: a count of garbage is no count
    return 1


REDUCE_KIND: Final = RecordingKind(
    name="reduce",
    extension=REDUCE_EXTENSION,
    version=1,
    open=ReduceRecorder,
    diff=_diff_reduce,
    count=_count_reduce,
    ignored=lambda meta: tuple(meta.get("volatile", ())),
)


def kinds() -> list[RecordingKind]:
    """The kinds this package adds to the plugin: ``journal`` and ``reduce``."""
    return [JOURNAL_KIND, REDUCE_KIND]
