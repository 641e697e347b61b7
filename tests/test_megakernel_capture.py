"""Capture into VRRL and replay: round trips, failure evidence, divergence, wrap-around."""

from __future__ import annotations

import itertools
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_replay.diff import first_divergence
from pytest_replay.megakernel import (
    CaptureInfo,
    MalformedCapture,
    Megakernel,
    MegakernelCapture,
    NumpyBackend,
    Opcode,
    SlotStatus,
    UncapturableArguments,
    differential_replay,
    open_capture,
    replay_capture,
    replay_stream,
)
from pytest_replay.megakernel.model import FaultCode
from pytest_replay.ringlog import (
    RING_RECORD_DTYPE,
    ReplayFailureClass,
    ReplayLogIoError,
    RingLog,
    ZeroCapacity,
    output_digest,
    records_to_array,
)

MIXED = [Opcode.NOP, Opcode.ADD, Opcode.MUL, Opcode.XOR, Opcode.HASH, Opcode.COPY]


def run_program(capture: MegakernelCapture, bursts: list[list[tuple[int, int, list[int]]]]) -> None:
    for burst in bursts:
        for tenant, opcode, args in burst:
            capture.publish(tenant, opcode, args)
        capture.pump()


def mixed_bursts(seed: int, count: int, largest: int) -> list[list[tuple[int, int, list[int]]]]:
    rng = np.random.default_rng(seed)
    choices = [*MIXED, Opcode.FAULT_DEVICE_LOST, Opcode.FAULT_QUEUE_TIMEOUT, 0x55]
    bursts = []
    for _ in range(count):
        size = int(rng.integers(1, largest + 1))
        bursts.append(
            [
                (
                    int(rng.integers(0, 4)),
                    int(rng.choice(choices)),
                    [int(v) for v in rng.integers(0, 2**32, 4)],
                )
                for _ in range(size)
            ]
        )
    return bursts


def test_capture_writes_one_record_per_slot_in_publish_order(tmp_path: Path) -> None:
    path = tmp_path / "mk.vrrl"
    with open_capture(path, backend="numpy", slots=4, capacity=16) as capture:
        capture.publish(3, Opcode.ADD, [1, 2, 3, 4])
        capture.publish(4, Opcode.FAULT_DEVICE_LOST, [77])
        capture.pump()
        capture.publish(5, Opcode.COPY, [9])
        assert capture.recorded == 2
    assert capture.recorded == 3  # close() pumped the pending slot
    with RingLog.open(path, read_only=True) as log:
        records = log.replay_records()
    assert [r.slot.slot_idx for r in records] == [0, 1, 2]
    assert [r.slot.tenant_id for r in records] == [3, 4, 5]
    assert [r.slot.epoch for r in records] == [0, 1, 2]
    assert [r.slot.timestamp_ns for r in records] == [0, 1, 2]
    assert records[0].slot.args == (1, 2, 3, 4)
    assert records[0].failure is None and records[2].failure is None
    failure = records[1].failure
    assert failure is not None
    assert failure.slot_status == SlotStatus.FAULT
    assert failure.failure_class == ReplayFailureClass.DEVICE_LOSS
    assert failure.backend_error_code == FaultCode.DEVICE_LOST
    assert failure.output_digest == output_digest(struct.pack("<16I", 77, *[0] * 15))


@pytest.mark.parametrize(
    ("opcode", "failure_class", "code"),
    [
        (Opcode.FAULT_DEVICE_LOST, ReplayFailureClass.DEVICE_LOSS, FaultCode.DEVICE_LOST),
        (Opcode.FAULT_QUEUE_TIMEOUT, ReplayFailureClass.TRANSIENT_QUEUE, FaultCode.QUEUE_TIMEOUT),
        (Opcode.FAULT_PROGRAM_TRAP, ReplayFailureClass.PROGRAM_BUG, FaultCode.PROGRAM_TRAP),
        (0xABC, ReplayFailureClass.PROGRAM_BUG, FaultCode.INVALID_OPCODE),
    ],
)
def test_failure_evidence_classes_and_digests_match_the_stream(
    tmp_path: Path, opcode: int, failure_class: ReplayFailureClass, code: int
) -> None:
    with open_capture(tmp_path / "f.vrrl", backend="numpy", slots=2, capacity=4) as capture:
        capture.publish(1, opcode, [5, 6])
        capture.pump()
        entry = capture.observe().entry(0)
        log = capture.log
        assert isinstance(log, RingLog)
        (record,) = log.replay_records()
    assert record.failure is not None
    assert record.failure.failure_class == failure_class == entry.failure_class
    assert record.failure.backend_error_code == code == entry.backend_code
    assert record.failure.output_digest == entry.digest


def test_round_trip_replays_identically(tmp_path: Path) -> None:
    path = tmp_path / "rt.vrrl"
    with open_capture(path, backend="numpy", slots=8, capacity=512) as capture:
        run_program(capture, mixed_bursts(seed=3, count=30, largest=8))
        info = capture.info()
    report = replay_capture(path, "numpy", slots=info.slots, mode=info.mode)
    assert report.matched, report.describe()
    assert report.records == capture.recorded and report.skipped == 0
    assert "identical" in report.describe()
    # Defaults inferred from the records give the same answer.
    assert replay_capture(path, NumpyBackend()).matched


def test_replay_catches_swapped_epochs_and_names_the_epoch(tmp_path: Path) -> None:
    path = tmp_path / "bad.vrrl"
    with open_capture(path, backend="numpy", slots=4, capacity=64) as capture:
        run_program(capture, mixed_bursts(seed=4, count=6, largest=4))
    assert replay_capture(path, "numpy").matched
    with RingLog.open(path, read_only=True) as log:
        records = log.records()
    records["epoch"][[5, 6]] = records["epoch"][[6, 5]]
    report = replay_capture(records, "numpy", mode="ordered")
    divergence = report.divergence
    assert divergence is not None
    assert divergence.expected is not None and divergence.actual is not None
    assert (divergence.index, divergence.expected.epoch, divergence.field) == (5, 5, "slot_idx")
    assert divergence.expected.slot == int(records["slot_idx"][6])
    assert divergence.actual.slot == int(records["slot_idx"][5])
    assert "epoch 5 (record #5 in epoch order) differs in slot_idx" in report.describe()


def test_replay_catches_a_changed_fault_digest(tmp_path: Path) -> None:
    path = tmp_path / "digest.vrrl"
    with open_capture(path, backend="numpy", slots=4, capacity=64) as capture:
        run_program(capture, mixed_bursts(seed=4, count=6, largest=4))
    with RingLog.open(path, read_only=True) as log:
        records = log.records()
    faulted = np.flatnonzero(records["slot_status"] == SlotStatus.FAULT)
    assert faulted.size
    records["output_digest"][faulted[0]] ^= 0xFF
    report = replay_capture(records, "numpy", mode="ordered")
    divergence = report.divergence
    assert divergence is not None
    assert (divergence.index, divergence.field) == (int(faulted[0]), "output_digest")
    assert divergence.expected is not None and divergence.actual is not None
    assert divergence.expected.digest is not None and divergence.actual.digest is not None
    assert divergence.expected.digest ^ divergence.actual.digest == 0xFF
    assert "differs in output_digest" in report.describe()


def test_replay_reports_the_first_divergent_epoch_with_both_sides() -> None:
    mk = Megakernel("numpy", slots=4)
    sink: list[np.ndarray] = []

    class Sink:
        def append_many(self, slots: np.ndarray) -> None:
            sink.append(slots)

    capture = MegakernelCapture(mk, Sink())
    capture.publish(0, Opcode.ADD, [1, 1])
    capture.publish(0, Opcode.NOP)
    capture.publish(0, Opcode.FAULT_PROGRAM_TRAP, [3])
    capture.pump()
    records = np.concatenate(sink)
    assert replay_capture(records, "numpy").matched
    # A log claiming slot #1 faulted: replay sees it complete.
    forged = records.copy()
    forged["slot_status"][1] = SlotStatus.FAULT
    forged["failure_class"][1] = ReplayFailureClass.TRANSIENT_QUEUE
    report = replay_capture(forged, "numpy", mode="ordered")
    divergence = report.divergence
    assert divergence is not None
    assert divergence.expected is not None and divergence.actual is not None
    assert (divergence.index, divergence.expected.epoch, divergence.field) == (1, 1, "slot_status")
    assert divergence.expected.status is SlotStatus.FAULT
    assert divergence.expected.failure_class is ReplayFailureClass.TRANSIENT_QUEUE
    assert divergence.actual.status is SlotStatus.DONE
    assert divergence.actual.digest is None
    assert divergence.describe().startswith("epoch 1 (record #1 in epoch order) differs in")


def test_atomic_race_is_caught_by_replay_and_by_differential_replay(tmp_path: Path) -> None:
    path = tmp_path / "atomic.vrrl"
    with open_capture(path, backend="numpy", slots=32, mode="atomic", capacity=1024) as capture:
        run_program(capture, mixed_bursts(seed=5, count=12, largest=32))
        assert capture.info().mode == "atomic"
    assert replay_capture(path, "numpy", mode="atomic").matched
    raced = replay_capture(path, NumpyBackend(race_seed=11), mode="atomic")
    assert not raced.matched
    assert raced.divergence is not None and raced.divergence.field in ("slot_idx", "epoch")
    differential = differential_replay(path, "numpy", NumpyBackend(race_seed=11), mode="atomic")
    assert not differential.matched
    assert differential.divergence is not None
    assert "differs in" in differential.describe()
    # In ordered mode no completion order can move an epoch.
    assert replay_capture(path, NumpyBackend(race_seed=11), mode="ordered").records > 0


def test_ordered_capture_is_independent_of_the_race(tmp_path: Path) -> None:
    path = tmp_path / "ordered.vrrl"
    with open_capture(path, backend=NumpyBackend(race_seed=1), slots=16, capacity=256) as cap:
        run_program(cap, mixed_bursts(seed=6, count=10, largest=16))
    assert replay_capture(path, NumpyBackend(race_seed=99)).matched
    assert differential_replay(path, "numpy", NumpyBackend(race_seed=7)).matched


def test_differential_replay_catches_a_wrong_output() -> None:
    mk = Megakernel("numpy", slots=4)
    sink: list[np.ndarray] = []

    class Sink:
        def append_many(self, slots: np.ndarray) -> None:
            sink.append(slots)

    capture = MegakernelCapture(mk, Sink())
    capture.publish_many(
        [0, 0, 0], [Opcode.ADD, Opcode.HASH, Opcode.COPY], [[1, 2], [3, 4], [5, 6]]
    )
    capture.pump()
    records = np.concatenate(sink)

    class OffByOne(NumpyBackend):
        def bind(self, slots: int, mode: str):  # type: ignore[no-untyped-def, override]
            ring = super().bind(slots, mode)  # type: ignore[arg-type]

            class Wrong:
                def run_burst(self, words, first, base_epoch):  # type: ignore[no-untyped-def]
                    out = ring.run_burst(words, first, base_epoch)
                    out.outputs[1, 0] += 1
                    return out

            return Wrong()

    report = differential_replay(records, "numpy", OffByOne())
    assert report.divergence is not None
    assert (report.divergence.index, report.divergence.field) == (1, "outputs")
    assert report.divergence.expected is not None and report.divergence.actual is not None
    assert report.divergence.expected.digest != report.divergence.actual.digest
    # Records of completed slots carry no digest, so the record replay cannot see it.
    assert replay_capture(records, OffByOne()).matched


def test_log_wrap_around_keeps_the_newest_bursts_replayable(tmp_path: Path) -> None:
    path = tmp_path / "wrap.vrrl"
    with open_capture(path, backend="numpy", slots=8, capacity=20) as capture:
        run_program(capture, mixed_bursts(seed=8, count=15, largest=7))
        total = capture.recorded
    assert total > 20
    report = replay_capture(path, "numpy", slots=8)
    assert report.matched and report.records == 20


def test_atomic_log_wrap_skips_the_partial_burst(tmp_path: Path) -> None:
    path = tmp_path / "awrap.vrrl"
    with open_capture(path, backend="numpy", slots=8, mode="atomic", capacity=20) as capture:
        for round_ in range(6):
            # Slots wrap inside bursts, so each burst's epochs are a rotation.
            capture.publish_many(round_, [Opcode.HASH] * 7, [[round_, k] for k in range(7)])
            capture.pump()
    report = replay_capture(path, "numpy", slots=8, mode="atomic")
    assert report.matched, report.describe()
    # The oldest burst lost one record to the wrap: its other six are skipped.
    assert (report.skipped, report.records) == (6, 14)


def test_stream_of_a_replay_matches_the_original(tmp_path: Path) -> None:
    path = tmp_path / "s.vrrl"
    with open_capture(path, backend="numpy", slots=8, capacity=128) as capture:
        run_program(capture, mixed_bursts(seed=9, count=8, largest=8))
        original = capture.observe()
    report, stream = replay_stream(path, "numpy")
    assert report.matched
    assert np.array_equal(stream.outputs, original.outputs)
    assert stream.digests().tolist() == original.digests().tolist()
    assert [e.digest for e in stream.entries()] == original.digests().tolist()


def test_uncapturable_arguments_are_refused_before_running(tmp_path: Path) -> None:
    with open_capture(tmp_path / "u.vrrl", backend="numpy", slots=4, capacity=8) as capture:
        with pytest.raises(UncapturableArguments, match=r"publish #0 sets argument word 5.*Fix:"):
            capture.publish(0, Opcode.COPY, [1, 2, 3, 4, 0, 9])
        with pytest.raises(UncapturableArguments, match="publish #1 sets argument word 4"):
            capture.publish_many(0, [0, 0], [[0] * 6, [0, 0, 0, 0, 3, 0]])
        capture.megakernel.publish(0, Opcode.COPY, [0] * 12 + [1])
        with pytest.raises(UncapturableArguments, match="argument word 12"):
            capture.pump()
        assert capture.recorded == 0
        # Zero words past the fourth are fine.
        capture.megakernel.pump()
        capture.publish(0, Opcode.COPY, [1, 2, 3, 4, 0, 0])
    assert capture.recorded == 1


def test_injected_clock_stamps_records(tmp_path: Path) -> None:
    ticks = itertools.count(1_000, 10)
    path = tmp_path / "clock.vrrl"
    with open_capture(path, backend="numpy", slots=4, capacity=8, clock=lambda: next(ticks)) as cap:
        cap.publish_many(0, [0, 0])
        cap.pump()
        cap.publish(0, 0)
        cap.pump()
    with RingLog.open(path, read_only=True) as log:
        assert [s.timestamp_ns for s in log.replay_all()] == [1_000, 1_000, 1_010]
    assert replay_capture(path, "numpy").matched  # timestamps are volatile


def test_capture_info_round_trips_and_is_validated() -> None:
    info = CaptureInfo(64, "atomic", "cupy")
    assert CaptureInfo.from_dict(info.as_dict()) == info
    for broken in (
        {**info.as_dict(), "kind": "journal"},
        {**info.as_dict(), "slots": 0},
        {**info.as_dict(), "slots": True},
        {**info.as_dict(), "mode": "both"},
        {**info.as_dict(), "backend": 3},
    ):
        with pytest.raises(MalformedCapture, match=r"manifest.json.*Fix:"):
            CaptureInfo.from_dict(broken, "manifest.json")


def test_open_capture_replaces_an_old_file(tmp_path: Path) -> None:
    path = tmp_path / "again.vrrl"
    for _ in range(2):
        with open_capture(path, backend="numpy", slots=4, capacity=8) as capture:
            capture.publish(0, Opcode.NOP)
    with RingLog.open(path, read_only=True) as log:
        assert len(log) == 1


def test_failed_open_capture_leaves_the_old_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "keep.vrrl"
    with open_capture(path, backend="numpy", slots=4, capacity=8) as capture:
        capture.publish(0, Opcode.NOP)
    before = path.read_bytes()
    with pytest.raises(ZeroCapacity, match="Fix:"):
        open_capture(path, backend="numpy", slots=4, capacity=0)
    with pytest.raises(ValueError):
        open_capture(path, backend="numpy", slots=4, mode="bogus")  # type: ignore[arg-type]
    assert path.read_bytes() == before
    folder = tmp_path / "folder.vrrl"
    folder.mkdir()
    with pytest.raises(ReplayLogIoError, match=r"folder\.vrrl.*Fix:"):
        open_capture(folder, backend="numpy", slots=4, capacity=8)
    assert folder.is_dir() and sorted(p.name for p in tmp_path.iterdir()) == [
        "folder.vrrl",
        "keep.vrrl",
    ]


def test_empty_capture_replays_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.vrrl"
    with open_capture(path, backend="numpy", slots=4, capacity=8):
        pass
    report = replay_capture(path, "numpy")
    assert report.matched and report.records == 0


def test_malformed_captures_are_named(tmp_path: Path) -> None:
    with pytest.raises(MalformedCapture, match="not RING_RECORD_DTYPE"):
        replay_capture(np.zeros(3, np.uint32), "numpy")  # type: ignore[arg-type]
    records = records_to_array(np.zeros(3, RING_RECORD_DTYPE))
    records["epoch"] = [0, 5, 1]
    with pytest.raises(MalformedCapture, match=r"record #1: the epochs .*permutation.*Fix:"):
        replay_capture(records, "numpy", mode="atomic")
    burst = records_to_array(np.zeros(6, RING_RECORD_DTYPE))
    burst["slot_idx"] = [0, 1, 2, 3, 0, 1]
    burst["epoch"] = [5, 4, 3, 2, 1, 0]
    with pytest.raises(MalformedCapture, match="a burst of 6 records cannot have run on a ring"):
        replay_capture(burst, "numpy", mode="atomic")
    far = records_to_array(np.zeros(1, RING_RECORD_DTYPE))
    far["slot_idx"] = 9
    with pytest.raises(MalformedCapture, match="slot index 9 is outside a ring of 4 slots"):
        replay_capture(far, "numpy", slots=4)
    huge = records_to_array(np.zeros(1, RING_RECORD_DTYPE))
    huge["slot_idx"] = 2**31
    with pytest.raises(MalformedCapture, match="exceeds the largest ring"):
        replay_capture(huge, "numpy")


def test_full_atomic_log_of_one_partial_burst_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "one.vrrl"
    with open_capture(path, backend="numpy", slots=16, mode="atomic", capacity=4) as capture:
        capture.publish_many(0, [Opcode.NOP] * 8, None)
        capture.pump()
    with RingLog.open(path, read_only=True) as log:
        records = log.records()
    # Thread order retires slots 0..7 in order: the tail 4..7 replays as its own burst.
    assert records["epoch"].tolist() == [4, 5, 6, 7]
    assert replay_capture(path, "numpy", mode="atomic").matched
    # A burst that lost records to the wrap and shows holes at every possible start.
    holed = records.copy()
    holed["epoch"] = [4, 9, 6, 7]
    log_path = tmp_path / "holed.vrrl"
    with RingLog.open(log_path, 4) as log:
        log.append_many(holed)
    with pytest.raises(MalformedCapture, match="one burst whose start was overwritten"):
        replay_capture(log_path, "numpy", mode="atomic")


program_step = st.tuples(
    st.integers(0, 3),
    st.sampled_from([*[int(op) for op in Opcode], 0x1234]),
    st.lists(st.integers(0, 2**32 - 1), max_size=4),
)
names = itertools.count()


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    bursts=st.lists(st.lists(program_step, min_size=1, max_size=12), min_size=1, max_size=12),
    slots=st.integers(12, 20),
    mode=st.sampled_from(["ordered", "atomic"]),
    capacity=st.integers(4, 200),
)
def test_random_programs_replay_identically(
    tmp_path: Path,
    bursts: list[list[tuple[int, int, list[int]]]],
    slots: int,
    mode: str,
    capacity: int,
) -> None:
    path = tmp_path / f"prog-{next(names)}.vrrl"
    with open_capture(path, backend="numpy", slots=slots, mode=mode, capacity=capacity) as cap:  # type: ignore[arg-type]
        run_program(cap, bursts)
        original = cap.observe()
    with RingLog.open(path, read_only=True) as log:
        kept = log.records()
        full = len(log) == log.capacity
    try:
        report = replay_capture(path, "numpy", slots=slots, mode=mode)  # type: ignore[arg-type]
    except MalformedCapture:
        # Only a full atomic log made of one cut-off burst has nothing to replay.
        assert mode == "atomic" and full
        return
    assert report.matched, report.describe()
    assert report.records + report.skipped == len(kept)
    if report.skipped == 0 and len(kept) == len(original):
        _, stream = replay_stream(path, "numpy", slots=slots, mode=mode)  # type: ignore[arg-type]
        assert np.array_equal(stream.outputs, original.outputs)
        assert np.array_equal(stream.slots, original.slots)
    assert first_divergence(kept, kept) is None


def test_capture_without_history_writes_the_same_log(tmp_path: Path) -> None:
    bursts = mixed_bursts(11, 6, 8)
    images = []
    for keep in (True, False):
        path = tmp_path / f"keep-{keep}.vrrl"
        with open_capture(path, backend="numpy", slots=8, capacity=128, keep_history=keep) as c:
            run_program(c, bursts)
            observed = len(c.observe().epochs)
        assert observed == (sum(map(len, bursts)) if keep else 0)
        images.append(path.read_bytes())
    assert images[0] == images[1]
