"""The record/replay harness: modes, stamping, sequence numbers, persistence failures,
loading from a journal, and replay through sync, ack and asyncio sinks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from pytest_replay.journal import (
    BatchSize,
    DeviceCmd,
    FileJournal,
    HarnessModeError,
    InMemoryJournal,
    JournalDecodeError,
    JournalEntry,
    JournalPersistError,
    JournalUsageError,
    KernelCmd,
    NoJournalAttached,
    PersistentRepr,
    ReplayAckError,
    ReplayHarness,
    ReplayMode,
    ReplaySinkError,
    RngSeed,
    SqliteJournal,
    UnknownEntryTag,
    decode_entry,
    encode_entry,
)
from pytest_replay.journal.codec import ENTRY_MANIFEST


class FakeClock:
    """Monotonic nanoseconds that advance by ``step`` per reading."""

    def __init__(self, start: int = 5_000_000, step: int = 1_500) -> None:
        self.now = start
        self.step = step

    def __call__(self) -> int:
        value = self.now
        self.now += self.step
        return value


def entries() -> list[JournalEntry]:
    return [
        RngSeed("a", 1),
        DeviceCmd(0, "memcpy", "64"),
        KernelCmd(0, "launch", "grid=1"),
        BatchSize("a", 32),
    ]


@pytest.fixture(params=["memory", "sqlite", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    if request.param == "memory":
        journal: InMemoryJournal | SqliteJournal | FileJournal = InMemoryJournal()
    elif request.param == "sqlite":
        journal = SqliteJournal(tmp_path / "j.db")
    else:
        journal = FileJournal(tmp_path / "j.jrnl")
    yield journal
    journal.close()


# --------------------------------------------------------------------------- reference tests


def test_record_then_snapshot() -> None:
    harness = ReplayHarness(ReplayMode.RECORD)
    harness.record(RngSeed("test/rng", 42))
    assert harness.snapshot() == [RngSeed("test/rng", 42)]


def test_off_mode_drops_records() -> None:
    harness = ReplayHarness(ReplayMode.OFF)
    assert harness.record(RngSeed("test", 1)) is None
    assert harness.snapshot() == []


def test_load_then_replay_via_sink() -> None:
    harness = ReplayHarness(ReplayMode.REPLAY)
    harness.load_journal([RngSeed("a", 1), RngSeed("b", 2)])
    snap = harness.snapshot()
    assert [e.seed for e in snap if isinstance(e, RngSeed)] == [1, 2]
    seen: list[JournalEntry] = []
    assert harness.replay_all(seen.append) == 2
    assert seen == snap


# --------------------------------------------------------------------------- modes and stamping


def test_replay_mode_ignores_fresh_records() -> None:
    harness = ReplayHarness(ReplayMode.REPLAY)
    harness.load_journal([RngSeed("a", 1)])
    assert harness.record(RngSeed("b", 2)) is None
    assert harness.snapshot() == [RngSeed("a", 1)]


def test_set_mode_switches_behaviour() -> None:
    harness = ReplayHarness(ReplayMode.OFF)
    harness.record(RngSeed("a", 1))
    harness.set_mode(ReplayMode.RECORD)
    harness.record(RngSeed("a", 2))
    harness.set_mode(ReplayMode.REPLAY)
    harness.record(RngSeed("a", 3))
    assert harness.mode is ReplayMode.REPLAY
    assert harness.snapshot() == [RngSeed("a", 2)]
    with pytest.raises(JournalUsageError, match="ReplayMode"):
        harness.set_mode("record")  # type: ignore[arg-type]


def test_device_and_kernel_commands_are_stamped_from_the_clock() -> None:
    clock = FakeClock(start=1_000_000, step=2_500)
    harness = ReplayHarness(ReplayMode.RECORD, clock=clock)  # reads 1_000_000 at start
    first = harness.record(DeviceCmd(999, "memcpy", "x"))
    seed = harness.record(RngSeed("a", 7))
    second = harness.record(KernelCmd(999, "launch", "y"))
    assert first == DeviceCmd(2, "memcpy", "x")  # 2_500 ns -> 2 us (floor)
    assert seed == RngSeed("a", 7)  # not stamped, clock not read
    assert second == KernelCmd(5, "launch", "y")  # 5_000 ns
    assert harness.snapshot() == [first, seed, second]


def test_a_clock_going_backwards_is_an_error() -> None:
    readings = iter([100_000, 50_000])
    harness = ReplayHarness(ReplayMode.RECORD, clock=lambda: next(readings))
    with pytest.raises(JournalUsageError, match="went backwards"):
        harness.record(DeviceCmd(0, "a", "b"))
    assert harness.snapshot() == []


def test_a_clock_returning_float_seconds_is_an_error() -> None:
    readings = iter([1.0, 1.5])
    harness = ReplayHarness(ReplayMode.RECORD, clock=lambda: next(readings))  # type: ignore[arg-type,return-value]
    with pytest.raises(JournalUsageError, match="not integer nanoseconds") as info:
        harness.record(DeviceCmd(0, "a", "b"))
    assert "time.monotonic_ns" in str(info.value)
    assert harness.snapshot() == []


def test_an_entry_the_store_cannot_hold_is_refused_whole(store: InMemoryJournal) -> None:
    harness = ReplayHarness(ReplayMode.RECORD, store, "p", clock=FakeClock())
    harness.record(RngSeed("a", 1))
    for bad in (RngSeed("a", -1), BatchSize("a", 2**64), DeviceCmd(0, "n", b"raw")):  # type: ignore[arg-type]
        with pytest.raises(JournalUsageError, match="cannot encode"):
            harness.record(bad)
    harness.record(RngSeed("a", 2))
    # Memory and store agree: the refused entries took no place and no sequence number.
    assert harness.snapshot() == [RngSeed("a", 1), RngSeed("a", 2)]
    assert harness.next_sequence_nr == 3
    assert [decode_entry(m.payload) for m in store.replay_messages("p")] == harness.snapshot()


def test_same_clock_gives_identical_recordings() -> None:
    def run() -> list[JournalEntry]:
        harness = ReplayHarness(ReplayMode.RECORD, clock=FakeClock())
        for entry in entries():
            harness.record(entry)
        return harness.snapshot()

    assert run() == run()


def test_snapshot_is_a_copy() -> None:
    harness = ReplayHarness(ReplayMode.RECORD)
    harness.record(RngSeed("a", 1))
    snap = harness.snapshot()
    snap.clear()
    assert len(harness.snapshot()) == 1


def test_non_entries_are_rejected() -> None:
    harness = ReplayHarness(ReplayMode.RECORD)
    with pytest.raises(JournalUsageError, match="not a journal entry"):
        harness.record({"seed": 1})  # type: ignore[arg-type]
    with pytest.raises(JournalUsageError):
        harness.load_journal([RngSeed("a", 1), "nope"])  # type: ignore[list-item]
    with pytest.raises(JournalUsageError):
        ReplayHarness("record")  # type: ignore[arg-type]
    with pytest.raises(JournalUsageError, match="write_batch"):
        ReplayHarness(ReplayMode.RECORD, write_batch=0)


def test_record_after_close_is_an_error() -> None:
    harness = ReplayHarness(ReplayMode.RECORD)
    with harness:
        harness.record(RngSeed("a", 1))
    with pytest.raises(JournalUsageError, match="closed"):
        harness.record(RngSeed("a", 2))


def test_store_and_persistence_id_come_together() -> None:
    with pytest.raises(JournalUsageError, match="needs a persistence_id"):
        ReplayHarness(ReplayMode.RECORD, InMemoryJournal())
    with pytest.raises(JournalUsageError, match="without a journal store"):
        ReplayHarness(ReplayMode.RECORD, persistence_id="p")
    with pytest.raises(JournalUsageError, match="non-empty"):
        ReplayHarness(ReplayMode.RECORD, InMemoryJournal(), "")


# --------------------------------------------------------------------------- persistence


def test_records_are_mirrored_to_the_store(store: InMemoryJournal) -> None:
    harness = ReplayHarness(ReplayMode.RECORD, store, "p", FakeClock())
    recorded = [harness.record(entry) for entry in entries()]
    stored = store.replay_messages("p")
    assert [m.sequence_nr for m in stored] == [1, 2, 3, 4]
    assert [decode_entry(m.payload) for m in stored] == recorded
    assert {m.manifest for m in stored} == {ENTRY_MANIFEST}
    assert harness.unpersisted_sequence_nrs == ()


def test_sequence_numbers_continue_after_the_highest_stored(store: InMemoryJournal) -> None:
    store.write_messages(
        [PersistentRepr("p", seq, encode_entry(RngSeed("old", seq))) for seq in (1, 2, 3)]
    )
    store.write_messages([PersistentRepr("other", 1, encode_entry(RngSeed("x", 0)))])
    harness = ReplayHarness(ReplayMode.RECORD, store, "p")
    assert harness.next_sequence_nr == 4
    harness.record(RngSeed("new", 1))
    harness.record(RngSeed("new", 2))
    assert [m.sequence_nr for m in store.replay_messages("p")] == [1, 2, 3, 4, 5]
    assert store.highest_sequence_nr("other") == 1


def test_second_harness_on_the_same_stream_continues(store: InMemoryJournal) -> None:
    with ReplayHarness(ReplayMode.RECORD, store, "p", write_batch=3) as first:
        for entry in entries():
            first.record(entry)
    second = ReplayHarness(ReplayMode.RECORD, store, "p")
    assert second.next_sequence_nr == 5


def test_write_batch_buffers_until_flush(store: InMemoryJournal) -> None:
    harness = ReplayHarness(ReplayMode.RECORD, store, "p", write_batch=3)
    for entry in entries():
        harness.record(entry)
    assert store.highest_sequence_nr("p") == 3
    assert harness.unpersisted_sequence_nrs == (4,)
    harness.flush()
    assert store.highest_sequence_nr("p") == 4


class FlakyJournal(InMemoryJournal):
    """Fails the next ``failures`` writes."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.calls = 0

    def write_messages(self, reprs: Iterable[PersistentRepr]) -> None:
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise OSError("disk on fire")
        super().write_messages(reprs)


def test_failed_write_is_never_lost_silently() -> None:
    store = FlakyJournal(failures=1)
    harness = ReplayHarness(ReplayMode.RECORD, store, "p")
    harness.record(RngSeed("a", 1))  # fails; kept
    harness.record(RngSeed("a", 2))  # buffered behind the failure, no write tried
    assert store.calls == 1
    assert harness.snapshot() == [RngSeed("a", 1), RngSeed("a", 2)]
    assert harness.unpersisted_sequence_nrs == (1, 2)
    assert isinstance(harness.persist_failure, OSError)
    harness.flush()  # the store recovered: the retry writes both
    assert [m.sequence_nr for m in store.replay_messages("p")] == [1, 2]
    assert harness.persist_failure is None
    assert harness.unpersisted_sequence_nrs == ()


def test_flush_and_close_raise_the_unpersisted_sequence_nrs() -> None:
    store = FlakyJournal(failures=100)
    harness = ReplayHarness(ReplayMode.RECORD, store, "p")
    for seed in range(5):
        harness.record(RngSeed("a", seed))
    with pytest.raises(JournalPersistError) as info:
        harness.flush()
    assert info.value.sequence_nrs == (1, 2, 3, 4, 5)
    assert "1-5" in str(info.value) and "disk on fire" in str(info.value)
    assert "Fix:" in str(info.value)
    with pytest.raises(JournalPersistError):
        harness.close()
    assert len(harness.snapshot()) == 5
    with pytest.raises(JournalUsageError, match="closed"):
        harness.record(RngSeed("a", 9))
    store.failures = 0
    harness.flush()
    assert store.highest_sequence_nr("p") == 5


def test_rejected_write_is_reported_with_its_sequence_nrs() -> None:
    store = InMemoryJournal()
    harness = ReplayHarness(ReplayMode.RECORD, store, "p", write_batch=2)
    harness.record(RngSeed("a", 1))  # numbered 1, buffered
    # Another writer takes seq 1 behind the harness's back.
    store.write_messages([PersistentRepr("p", 1, encode_entry(RngSeed("x", 0)))])
    with pytest.raises(JournalPersistError) as info:
        harness.close()
    assert info.value.sequence_nrs == (1,)
    assert "duplicate" in str(info.value)


def test_the_first_write_continues_after_a_writer_that_came_in_between() -> None:
    # As the reference: the highest sequence nr is read at the first write, not at creation.
    store = InMemoryJournal()
    harness = ReplayHarness(ReplayMode.RECORD, store, "p")
    store.write_messages([PersistentRepr("p", 1, encode_entry(RngSeed("x", 0)))])
    harness.record(RngSeed("a", 1))
    harness.close()
    assert [m.sequence_nr for m in store.replay_messages("p")] == [1, 2]


def test_asking_the_next_sequence_nr_does_not_fix_it_before_the_first_write() -> None:
    # Only the first write reads and fixes the numbering (the reference's lazy init), so
    # a peek followed by another writer must still continue after that writer.
    store = InMemoryJournal()
    harness = ReplayHarness(ReplayMode.RECORD, store, "p")
    assert harness.next_sequence_nr == 1
    store.write_messages([PersistentRepr("p", 1, encode_entry(RngSeed("x", 0)))])
    assert harness.next_sequence_nr == 2
    harness.record(RngSeed("a", 1))
    harness.close()
    assert [m.sequence_nr for m in store.replay_messages("p")] == [1, 2]
    assert harness.unpersisted_sequence_nrs == ()


class FlakyHighest(InMemoryJournal):
    """A store whose highest_sequence_nr fails the first ``failures`` times."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def highest_sequence_nr(self, persistence_id: str, from_seq: int = 0) -> int:
        if self.failures:
            self.failures -= 1
            raise OSError("store unreachable")
        return super().highest_sequence_nr(persistence_id, from_seq)


def test_a_failed_highest_sequence_nr_read_is_retried_and_never_loses_entries() -> None:
    store = FlakyHighest(failures=2)
    harness = ReplayHarness(ReplayMode.RECORD, store, "p")  # creation reads nothing
    harness.record(RngSeed("a", 1))  # the read fails: kept in memory, no number yet
    assert isinstance(harness.persist_failure, OSError)
    with pytest.raises(JournalPersistError, match="1 entry was recorded but not persisted"):
        harness.flush()  # the second read fails too
    harness.record(RngSeed("a", 2))  # the third read succeeds: both are numbered and written
    assert harness.persist_failure is None
    harness.close()
    assert [(m.sequence_nr, decode_entry(m.payload)) for m in store.replay_messages("p")] == [
        (1, RngSeed("a", 1)),
        (2, RngSeed("a", 2)),
    ]


# --------------------------------------------------------------------------- loading


def test_load_from_journal_round_trip(store: InMemoryJournal) -> None:
    recorder = ReplayHarness(ReplayMode.RECORD, store, "p", FakeClock())
    recorded = [recorder.record(entry) for entry in entries()]
    recorder.close()
    replayer = ReplayHarness(ReplayMode.REPLAY, store, "p")
    assert replayer.load_from_journal() == 4
    assert replayer.snapshot() == recorded
    assert replayer.load_from_journal(from_sequence_nr=2, max=2) == 2
    assert replayer.snapshot() == recorded[1:3]
    store.delete_messages_to("p", 3)
    assert replayer.load_from_journal() == 1
    assert replayer.snapshot() == recorded[3:]


def test_load_from_journal_needs_a_store() -> None:
    with pytest.raises(NoJournalAttached, match="Fix:"):
        ReplayHarness(ReplayMode.REPLAY).load_from_journal()


def test_decode_error_names_the_sequence_nr_and_loads_nothing() -> None:
    store = InMemoryJournal()
    good = [PersistentRepr("p", seq, encode_entry(RngSeed("a", seq))) for seq in (1, 2)]
    store.write_messages([*good, PersistentRepr("p", 3, b"\x92\x63\x01")])
    harness = ReplayHarness(ReplayMode.REPLAY, store, "p")
    harness.load_journal([BatchSize("keep", 1)])
    with pytest.raises(UnknownEntryTag) as info:
        harness.load_from_journal()
    assert info.value.sequence_nr == 3
    assert "sequence nr 3" in str(info.value)
    assert harness.snapshot() == [BatchSize("keep", 1)]  # nothing half-loaded
    store2 = InMemoryJournal()
    store2.write_messages([PersistentRepr("p", 1, b"not msgpack \xc1")])
    harness2 = ReplayHarness(ReplayMode.REPLAY, store2, "p")
    with pytest.raises(JournalDecodeError, match="sequence nr 1"):
        harness2.load_from_journal()
    assert harness2.snapshot() == []


# --------------------------------------------------------------------------- replaying


def loaded(items: list[JournalEntry] | None = None) -> ReplayHarness:
    harness = ReplayHarness(ReplayMode.REPLAY)
    harness.load_journal(entries() if items is None else items)
    return harness


def test_replay_needs_replay_mode() -> None:
    harness = ReplayHarness(ReplayMode.RECORD)
    with pytest.raises(HarnessModeError, match=r"set_mode\(ReplayMode.REPLAY\)"):
        harness.replay_all(lambda entry: None)
    with pytest.raises(HarnessModeError):
        asyncio.run(harness.areplay_all(lambda entry: None))


def test_sync_sink_sees_every_entry_in_order() -> None:
    seen: list[JournalEntry] = []
    assert loaded().replay_all(seen.append) == 4
    assert seen == entries()


def test_empty_journal_replays_nothing() -> None:
    calls: list[object] = []
    assert loaded([]).replay_all(calls.append) == 0
    assert calls == []


def test_sink_failure_stops_the_replay_and_names_the_entry() -> None:
    seen: list[JournalEntry] = []

    def sink(entry: JournalEntry) -> None:
        if len(seen) == 2:
            raise RuntimeError("boom")
        seen.append(entry)

    with pytest.raises(ReplaySinkError) as info:
        loaded().replay_all(sink)
    assert info.value.index == 2 and "boom" in str(info.value)
    assert len(seen) == 2


def test_ack_sink_paces_the_replay() -> None:
    """Entry n+1 is delivered only after entry n was acknowledged (from another thread)."""
    log: list[str] = []
    workers: list[threading.Thread] = []

    def sink(entry: JournalEntry, ack: object) -> None:
        index = len([line for line in log if line.startswith("got")])
        log.append(f"got {index}")

        def later() -> None:
            log.append(f"ack {index}")
            ack()  # type: ignore[operator]

        worker = threading.Timer(0.005, later)
        workers.append(worker)
        worker.start()

    assert loaded().replay_all(sink, ack=True) == 4
    for worker in workers:
        worker.join()
    assert log == [f"{what} {i}" for i in range(4) for what in ("got", "ack")]


def test_ack_timeout_and_double_ack() -> None:
    with pytest.raises(ReplayAckError, match="not acknowledged"):
        loaded().replay_all(lambda entry, ack: None, ack=True, ack_timeout=0.01)

    def twice(entry: JournalEntry, ack: object) -> None:
        ack()  # type: ignore[operator]
        ack()  # type: ignore[operator]

    with pytest.raises(ReplayAckError, match="acknowledged twice") as info:
        loaded().replay_all(twice, ack=True)
    assert info.value.index == 0


def test_async_sink_awaits_each_entry_in_order() -> None:
    log: list[str] = []

    async def sink(entry: JournalEntry) -> None:
        log.append(f"start {type(entry).__name__}")
        await asyncio.sleep(0)
        log.append(f"end {type(entry).__name__}")

    count = asyncio.run(loaded().areplay_all(sink))
    assert count == 4
    names = [type(e).__name__ for e in entries()]
    assert log == [f"{what} {name}" for name in names for what in ("start", "end")]


def test_async_sink_with_ack_callback() -> None:
    log: list[int] = []

    def sink(entry: JournalEntry, ack: object) -> None:
        log.append(len(log))
        asyncio.get_running_loop().call_later(0.001, ack)  # type: ignore[arg-type]

    assert asyncio.run(loaded().areplay_all(sink, ack=True)) == 4
    assert log == [0, 1, 2, 3]


def test_async_sink_failure_and_timeout() -> None:
    async def failing(entry: JournalEntry) -> None:
        raise ValueError("bad entry")

    with pytest.raises(ReplaySinkError, match="bad entry") as info:
        asyncio.run(loaded().areplay_all(failing))
    assert info.value.index == 0

    with pytest.raises(ReplayAckError, match="not acknowledged"):
        asyncio.run(loaded().areplay_all(lambda e, ack: None, ack=True, ack_timeout=0.01))


def test_sync_sink_works_with_areplay_all() -> None:
    seen: list[JournalEntry] = []
    assert asyncio.run(loaded().areplay_all(seen.append)) == 4
    assert seen == entries()


def test_record_persist_then_replay_end_to_end(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    with (
        SqliteJournal(path) as journal,
        ReplayHarness(ReplayMode.RECORD, journal, "gpu-0", FakeClock()) as harness,
    ):
        for entry in entries():
            harness.record(entry)
        recorded = harness.snapshot()
    with SqliteJournal(path) as journal:
        harness = ReplayHarness(ReplayMode.REPLAY, journal, "gpu-0")
        harness.load_from_journal()
        seen: list[JournalEntry] = []
        harness.replay_all(seen.append)
    assert seen == recorded
