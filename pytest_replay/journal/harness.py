"""The deterministic record/replay harness.

RECORD keeps every recorded entry in memory (stamping ``ts_micros`` of
device and kernel commands from an injectable clock) and mirrors it to an
optional journal store; OFF drops records; REPLAY ignores fresh records and
feeds a loaded journal, entry by entry, to a sink that must finish (or
acknowledge) each entry before the next one is delivered.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any

from pytest_replay._gc import paused_collector
from pytest_replay.journal.codec import ENTRY_MANIFEST, WRITER_UUID, decode_entry, encode_entry
from pytest_replay.journal.entries import (
    BatchSize,
    DeviceCmd,
    JournalEntry,
    KernelCmd,
    ReplayMode,
    RngSeed,
)
from pytest_replay.journal.errors import (
    HarnessModeError,
    JournalPersistError,
    JournalUsageError,
    NoJournalAttached,
    ReplayAckError,
    ReplaySinkError,
)
from pytest_replay.journal.persistent import (
    MAX_SEQUENCE_NR,
    Journal,
    PersistentRepr,
    check_persistence_id,
)

__all__ = ["Ack", "Clock", "ReplayHarness"]

#: A clock returns monotonic nanoseconds (like :func:`time.monotonic_ns`).
Clock = Callable[[], int]
#: The callback an ack-style sink calls once it has handled an entry.
Ack = Callable[[], None]

_ENTRY_TYPES = (DeviceCmd, KernelCmd, RngSeed, BatchSize)


def _check_entry(entry: object) -> JournalEntry:
    if not isinstance(entry, _ENTRY_TYPES):
        raise JournalUsageError(
            f"{type(entry).__name__} is not a journal entry",
            "record DeviceCmd, KernelCmd, RngSeed or BatchSize values",
        )
    return entry


class _OneShot:
    """An ack callback that may fire exactly once, from any thread."""

    __slots__ = ("_done", "_fired", "_index", "_lock", "_notify")

    def __init__(self, index: int, notify: Callable[[], None]) -> None:
        self._index = index
        self._notify = notify
        self._lock = threading.Lock()
        self._fired = False

    def __call__(self) -> None:
        with self._lock:
            if self._fired:
                raise ReplayAckError(self._index, "acknowledged twice")
            self._fired = True
        self._notify()


class ReplayHarness:
    """Record, snapshot and replay journal entries.

    ``journal`` (a :class:`~pytest_replay.journal.persistent.Journal` store)
    needs ``persistence_id``; the first write continues at
    ``journal.highest_sequence_nr(persistence_id) + 1``, read once, at that first
    write (as the reference does: creating a harness touches no store, and a writer
    that came in between is continued, not overwritten), and numbers stay contiguous.
    ``write_batch`` entries are buffered per store write (1: write-through).
    ``clock`` returns monotonic nanoseconds; the stamp is microseconds since the
    harness was created.

    A failed store write is never dropped: the entries stay in memory and in
    the pending buffer, no further writes are tried, and :meth:`flush` /
    :meth:`close` retry once and raise :class:`JournalPersistError` naming the
    sequence numbers that did not persist.
    """

    def __init__(
        self,
        mode: ReplayMode,
        journal: Journal | None = None,
        persistence_id: str | None = None,
        clock: Clock | None = None,
        *,
        write_batch: int = 1,
        writer_uuid: str = WRITER_UUID,
    ) -> None:
        if not isinstance(mode, ReplayMode):
            raise JournalUsageError(f"mode must be a ReplayMode, got {mode!r}", "pass ReplayMode.X")
        if type(write_batch) is not int or write_batch < 1:
            raise JournalUsageError(
                f"write_batch must be an int >= 1, got {write_batch!r}",
                "pass write_batch=1 or more",
            )
        self._mode = mode
        self._clock: Clock = time.monotonic_ns if clock is None else clock
        self._started_ns = self._clock()
        self._entries: list[JournalEntry] = []
        self._lock = threading.RLock()
        self._journal = journal
        self._write_batch = write_batch
        self._writer_uuid = writer_uuid
        self._pending: list[PersistentRepr] = []
        # Encoded entries waiting for their sequence numbers: the first is known only once
        # the store has answered highest_sequence_nr, read at the first write (as the
        # reference does), not at construction, so another writer may come in between.
        self._unnumbered: list[bytes] = []
        self._failure: BaseException | None = None
        self._seq_failure: BaseException | None = None
        self._closed = False
        if journal is None:
            if persistence_id is not None:
                raise JournalUsageError(
                    "persistence_id was given without a journal store",
                    "pass journal=InMemoryJournal() / SqliteJournal(path) / FileJournal(path)",
                )
            self._persistence_id: str | None = None
            self._next_seq: int | None = 1
        else:
            if persistence_id is None:
                raise JournalUsageError(
                    "a journal store needs a persistence_id", "pass persistence_id='my-stream'"
                )
            self._persistence_id = check_persistence_id(persistence_id)
            self._next_seq = None

    # ------------------------------------------------------------------ state

    @property
    def mode(self) -> ReplayMode:
        return self._mode

    @property
    def journal(self) -> Journal | None:
        return self._journal

    @property
    def persistence_id(self) -> str | None:
        return self._persistence_id

    @property
    def next_sequence_nr(self) -> int:
        """The sequence number the next recorded entry will be written under. Before the
        first write this asks the store for its highest one each time and fixes nothing:
        only a write fixes the numbering, so a writer that comes in between is still
        continued."""
        with self._lock:
            first = self._stored_highest() + 1 if self._next_seq is None else self._next_seq
            return first + len(self._unnumbered)

    @property
    def unpersisted_sequence_nrs(self) -> tuple[int, ...]:
        """Sequence numbers recorded but not (yet) written to the store."""
        with self._lock:
            return tuple(item.sequence_nr for item in self._pending)

    @property
    def persist_failure(self) -> BaseException | None:
        """The last store failure (a write, or reading the highest sequence nr) not yet
        resolved by a successful flush."""
        return self._failure or self._seq_failure

    def set_mode(self, mode: ReplayMode) -> None:
        if not isinstance(mode, ReplayMode):
            raise JournalUsageError(f"mode must be a ReplayMode, got {mode!r}", "pass ReplayMode.X")
        with self._lock:
            self._mode = mode

    def snapshot(self) -> list[JournalEntry]:
        """A copy of the in-memory journal."""
        with self._lock:
            return list(self._entries)

    def load_journal(self, entries: Iterable[JournalEntry]) -> None:
        """Replace the in-memory journal (the source of the next replay)."""
        loaded = [_check_entry(entry) for entry in entries]
        with self._lock:
            self._entries = loaded

    # ------------------------------------------------------------------ recording

    def _now_micros(self) -> int:
        now = self._clock()
        elapsed = now - self._started_ns
        if not isinstance(elapsed, int):
            # A float clock (time.monotonic) would stamp float ts_micros that no store can hold.
            raise JournalUsageError(
                f"the harness clock returned {now!r}, not integer nanoseconds",
                "inject a clock returning int nanoseconds, such as time.monotonic_ns",
            )
        if elapsed < 0:
            raise JournalUsageError(
                f"the harness clock went backwards by {-elapsed} ns",
                "inject a monotonic clock (time.monotonic_ns or a counter that never decreases)",
            )
        return elapsed // 1000

    def record(self, entry: JournalEntry) -> JournalEntry | None:
        """Record ``entry``; returns it as recorded (stamped), or ``None`` when dropped."""
        _check_entry(entry)
        with self._lock:
            if self._closed:
                raise JournalUsageError(
                    "record() on a closed ReplayHarness", "create a new ReplayHarness"
                )
            if self._mode is not ReplayMode.RECORD:
                return None
            if isinstance(entry, (DeviceCmd, KernelCmd)):
                entry = dataclasses.replace(entry, ts_micros=self._now_micros())
            if self._journal is None:
                self._entries.append(entry)
                return entry
            # Encode before keeping anything: an entry the store cannot hold is refused
            # whole, so memory and store never disagree on what was recorded.
            payload = encode_entry(entry)
            self._entries.append(entry)
            self._unnumbered.append(payload)
            self._number_pending()
            if self._failure is None and len(self._pending) >= self._write_batch:
                self._write_pending()
            return entry

    def _stored_highest(self) -> int:
        assert self._journal is not None and self._persistence_id is not None
        return self._journal.highest_sequence_nr(self._persistence_id, 0)

    def _number_pending(self) -> None:
        """Give the waiting entries their sequence numbers, reading the store's highest
        one first if this is the first write; a failed read is kept and retried by the
        next record or flush (the entries stay in memory meanwhile)."""
        if not self._unnumbered:
            return
        if self._next_seq is None:
            try:
                self._next_seq = self._stored_highest() + 1
            except Exception as exc:
                self._seq_failure = exc
                return
        self._seq_failure = None
        assert self._persistence_id is not None
        first = self._next_seq
        self._pending.extend(
            PersistentRepr(
                self._persistence_id, first + i, payload, ENTRY_MANIFEST, self._writer_uuid
            )
            for i, payload in enumerate(self._unnumbered)
        )
        self._next_seq = first + len(self._unnumbered)
        self._unnumbered = []

    def _write_pending(self) -> None:
        assert self._journal is not None
        try:
            self._journal.write_messages(self._pending)
        except Exception as exc:
            self._failure = exc
            return
        self._pending = []
        self._failure = None

    def flush(self) -> None:
        """Write buffered entries; raise :class:`JournalPersistError` if any did not persist."""
        with self._lock:
            if self._journal is None:
                return
            self._number_pending()
            if self._seq_failure is not None:
                assert self._persistence_id is not None
                raise JournalPersistError(
                    self._persistence_id, [], self._seq_failure, unnumbered=len(self._unnumbered)
                ) from self._seq_failure
            if not self._pending:
                return
            self._write_pending()
            if self._failure is not None:
                assert self._persistence_id is not None
                raise JournalPersistError(
                    self._persistence_id,
                    [item.sequence_nr for item in self._pending],
                    self._failure,
                ) from self._failure

    def close(self) -> None:
        """Flush, then refuse further records; the store itself stays open (the caller owns it).

        A failed flush still closes the harness; the unpersisted entries stay
        in :meth:`snapshot` and :meth:`flush` may be retried.
        """
        with self._lock:
            try:
                self.flush()
            finally:
                self._closed = True

    def __enter__(self) -> ReplayHarness:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ loading

    def load_from_journal(self, from_sequence_nr: int = 1, max: int | None = None) -> int:
        """Load stored entries (from ``from_sequence_nr``, at most ``max``) as the replay source.

        The in-memory journal is replaced only when every payload decodes;
        a bad payload raises :class:`JournalDecodeError` naming its sequence nr.
        """
        if self._journal is None or self._persistence_id is None:
            raise NoJournalAttached("load_from_journal")
        stored = self._journal.replay_messages(
            self._persistence_id, from_sequence_nr, MAX_SEQUENCE_NR, max
        )
        source = f"{type(self._journal).__name__}:{self._persistence_id}"
        with paused_collector():
            decoded = [
                decode_entry(item.payload, source=source, sequence_nr=item.sequence_nr)
                for item in stored
            ]
        with self._lock:
            self._entries = decoded
        return len(decoded)

    # ------------------------------------------------------------------ replaying

    def _replay_source(self, operation: str) -> list[JournalEntry]:
        with self._lock:
            if self._mode is not ReplayMode.REPLAY:
                raise HarnessModeError(operation, "REPLAY", self._mode.name)
            return list(self._entries)

    def replay_all(
        self,
        sink: Callable[..., Any],
        *,
        ack: bool = False,
        ack_timeout: float = 30.0,
    ) -> int:
        """Feed every loaded entry to ``sink`` in order; returns how many were replayed.

        Without ``ack`` the sink is ``sink(entry)`` and an entry counts as
        handled when the call returns. With ``ack=True`` the sink is
        ``sink(entry, ack)`` and the next entry waits until ``ack()`` was
        called (from any thread), at most ``ack_timeout`` seconds.
        """
        entries = self._replay_source("replay_all")
        for index, entry in enumerate(entries):
            if ack:
                done = threading.Event()
                callback = _OneShot(index, done.set)
                self._call_sink(sink, index, entry, callback)
                if not done.wait(ack_timeout):
                    raise ReplayAckError(index, f"not acknowledged within {ack_timeout} s")
            else:
                self._call_sink(sink, index, entry, None)
        return len(entries)

    @staticmethod
    def _call_sink(
        sink: Callable[..., Any], index: int, entry: JournalEntry, callback: Ack | None
    ) -> Any:
        try:
            return sink(entry) if callback is None else sink(entry, callback)
        except ReplayAckError:
            raise
        except Exception as exc:
            raise ReplaySinkError(index, entry, exc) from exc

    async def areplay_all(
        self,
        sink: Callable[..., Awaitable[Any] | Any],
        *,
        ack: bool = False,
        ack_timeout: float = 30.0,
    ) -> int:
        """:meth:`replay_all` for asyncio: awaitables a sink returns are awaited in order."""
        entries = self._replay_source("areplay_all")
        loop = asyncio.get_running_loop()
        for index, entry in enumerate(entries):
            future: asyncio.Future[None] | None = None
            callback: Ack | None = None
            if ack:
                future = loop.create_future()
                callback = _OneShot(index, _future_setter(loop, future))
            result = self._call_sink(sink, index, entry, callback)
            if inspect.isawaitable(result):
                try:
                    await result
                except Exception as exc:
                    raise ReplaySinkError(index, entry, exc) from exc
            if future is not None:
                try:
                    await asyncio.wait_for(future, ack_timeout)
                except asyncio.TimeoutError:
                    raise ReplayAckError(
                        index, f"not acknowledged within {ack_timeout} s"
                    ) from None
        return len(entries)


def _future_setter(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]
) -> Callable[[], None]:
    def resolve() -> None:
        if not future.done():
            future.set_result(None)

    def notify() -> None:
        loop.call_soon_threadsafe(resolve)

    return notify
