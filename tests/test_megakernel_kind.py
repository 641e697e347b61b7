"""The ``megakernel`` recording kind, driven through hand-made RecordingTarget objects."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import blake3
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_replay.errors import ReplayError
from pytest_replay.kinds import FinishedRecording, KindRegistry, RecordingTarget, builtin_kinds
from pytest_replay.megakernel import NumpyBackend, Opcode, SlotStatus
from pytest_replay.megakernel.backend import BurstOutput, RingDevice, U32Array
from pytest_replay.megakernel.kind import (
    EXTENSION,
    MEGAKERNEL_KIND,
    MegakernelRecorder,
    diff_recordings,
    kinds,
)
from pytest_replay.megakernel.model import EpochMode, FaultCode
from pytest_replay.report import Mismatch, ReplayDivergence
from pytest_replay.ringlog import ReplayFailureClass, RingLog, output_digest, read_ring_image

Program = list[list[tuple[int, int, list[int]]]]

PROGRAM: Program = [
    [(1, Opcode.ADD, [1, 2]), (1, Opcode.FAULT_DEVICE_LOST, [7]), (2, Opcode.COPY, [5, 6])],
    [(2, Opcode.HASH, [3, 4]), (3, Opcode.MUL, [6, 7])],
    [(0, Opcode.XOR, [0xF0, 0x0F]), (0, 0x99, [1]), (1, Opcode.FAULT_QUEUE_TIMEOUT, [2])],
]

targets = itertools.count()


def target(
    tmp_path: Path,
    expected: FinishedRecording | None = None,
    seen: list[Mismatch] | None = None,
) -> RecordingTarget:
    scratch = tmp_path / f"scratch-{next(targets)}"
    scratch.mkdir()
    on_mismatch: Callable[[Mismatch], None] = (
        (lambda mismatch: None) if seen is None else seen.append
    )
    return RecordingTarget(
        nodeid="tests/test_gpu.py::test_ring",
        name="ring",
        kind="megakernel",
        stored_path=tmp_path / "store" / f"ring{EXTENSION}",
        scratch=scratch,
        expected=None if expected is None else expected.data,
        expected_meta={} if expected is None else dict(expected.meta),
        on_mismatch=on_mismatch,
    )


def run(recorder: MegakernelRecorder, program: Program) -> None:
    for burst in program:
        for tenant, opcode, args in burst:
            recorder.publish(tenant, opcode, args)
        recorder.pump()


def record(tmp_path: Path, program: Program = PROGRAM, **options: Any) -> FinishedRecording:
    recorder = MEGAKERNEL_KIND.open(target(tmp_path), **{"backend": "numpy", **options})
    assert isinstance(recorder, MegakernelRecorder)
    try:
        run(recorder, program)
        recorder.check_complete()
        return recorder.finish()
    finally:
        recorder.close()


def verify(
    tmp_path: Path,
    stored: FinishedRecording,
    program: Program = PROGRAM,
    seen: list[Mismatch] | None = None,
    **options: Any,
) -> MegakernelRecorder:
    recorder = MEGAKERNEL_KIND.open(
        target(tmp_path, stored, seen), **{"backend": "numpy", **options}
    )
    assert isinstance(recorder, MegakernelRecorder)
    try:
        run(recorder, program)
        recorder.check_complete()
    finally:
        recorder.close()
    return recorder


def with_change(program: Program, burst: int, row: int, args: list[int]) -> Program:
    changed = [list(b) for b in program]
    tenant, opcode, _ = changed[burst][row]
    changed[burst][row] = (tenant, opcode, args)
    return changed


# --------------------------------------------------------------------------- the kind


def test_kinds_exposes_the_megakernel_kind() -> None:
    (kind,) = kinds()
    assert kind is MEGAKERNEL_KIND
    assert (kind.name, kind.extension, kind.version) == ("megakernel", ".mkvrrl", 1)
    registry = KindRegistry([*builtin_kinds(), *kinds()])
    assert registry.get("megakernel") is kind
    assert registry.for_path(Path("a/ring.mkvrrl")) is kind
    ring = registry.for_path(Path("a/ring.vrrl"))
    assert ring is not None and ring.name == "ring"
    assert kind.ignored({}) == ("timestamp_ns",)


def test_recording_is_a_vrrl_image_with_volatile_fields_zeroed(tmp_path: Path) -> None:
    finished = record(tmp_path, slots=4)
    image = read_ring_image(finished.data, "stored")
    records = image.records
    assert finished.records == len(records) == 8 == image.capacity
    assert MEGAKERNEL_KIND.count(finished.data) == 8
    assert dict(finished.meta) == {
        "slots": 4,
        "mode": "ordered",
        "capacity": 1 << 16,
        "appended": 8,
        "volatile": ["timestamp_ns"],
        "appended_digest": blake3.blake3(records.tobytes()).hexdigest(),
        "overwritten_digest": blake3.blake3().hexdigest(),
    }
    assert records["timestamp_ns"].tolist() == [0] * 8
    assert records["epoch"].tolist() == list(range(8))
    assert records["slot_idx"].tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    assert records["tenant_id"].tolist() == [1, 1, 2, 2, 3, 0, 0, 1]
    assert records["args"][0].tolist() == [1, 2, 0, 0]
    fault = records[1]
    assert int(fault["slot_status"]) == SlotStatus.FAULT
    assert int(fault["failure_class"]) == ReplayFailureClass.DEVICE_LOSS
    assert int(fault["backend_code"]) == FaultCode.DEVICE_LOST
    partial = np.zeros(16, "<u4")
    partial[0] = 7
    assert int(fault["output_digest"]) == output_digest(partial.tobytes())
    invalid = records[6]
    assert int(invalid["backend_code"]) == FaultCode.INVALID_OPCODE
    assert int(records[0]["slot_status"]) == 0  # completed: no failure evidence


def test_recording_is_byte_identical_run_after_run_and_across_backends(tmp_path: Path) -> None:
    first = record(tmp_path)
    assert record(tmp_path).data == first.data
    # Another completion order cannot move an epoch in ordered mode.
    assert record(tmp_path, backend=NumpyBackend(race_seed=4)).data == first.data
    # "auto" is CuPy on a GPU machine and NumPy elsewhere: the bytes are the same.
    assert record(tmp_path, backend="auto").data == first.data


def test_verify_passes_for_the_same_program(tmp_path: Path) -> None:
    stored = record(tmp_path)
    seen: list[Mismatch] = []
    recorder = verify(tmp_path, stored, seen=seen)
    assert seen == []
    assert recorder.recorded == 8
    assert recorder.stored_replay is not None and recorder.stored_replay.matched
    assert recorder.finish().data == stored.data


def test_first_divergence_is_reported_with_index_and_field(tmp_path: Path) -> None:
    stored = record(tmp_path)
    seen: list[Mismatch] = []
    changed = with_change(PROGRAM, burst=1, row=0, args=[3, 5])
    with pytest.raises(ReplayDivergence) as info:
        verify(tmp_path, stored, changed, seen=seen)
    (mismatch,) = seen
    assert mismatch is info.value.mismatch
    found = mismatch.divergence
    assert found is not None
    assert (found.index, found.field, found.expected, found.actual) == (3, "args[1]", 4, 5)
    assert len(mismatch.context) == 2
    assert mismatch.context[0].startswith("#1 epoch 1 tenant 1 opcode 0xf1 args (7,0,0,0)")
    assert "DEVICE_LOSS code 0x101" in mismatch.context[0]
    assert mismatch.ignored == ("timestamp_ns",)
    text = str(info.value)
    assert "at record #3, field args[1]" in text
    assert "megakernel slot #3: expected epoch 3 tenant 2 opcode 0x4 args (3,4,0,0)" in text
    assert "got epoch 3 tenant 2 opcode 0x4 args (3,5,0,0)" in text
    assert "pytest tests/test_gpu.py::test_ring --replay-record" in text


def test_divergence_is_raised_at_the_pump_that_produced_it(tmp_path: Path) -> None:
    stored = record(tmp_path)
    recorder = MEGAKERNEL_KIND.open(target(tmp_path, stored), backend="numpy")
    assert isinstance(recorder, MegakernelRecorder)
    recorder.publish(1, Opcode.ADD, [1, 2])
    recorder.publish(1, Opcode.FAULT_DEVICE_LOST, [7])
    recorder.publish(2, Opcode.NOP, [5, 6])  # was COPY
    with pytest.raises(ReplayDivergence, match=r"record #2, field opcode"):
        recorder.pump()
    recorder.close()


class _WrongFaultOutput:
    """A backend whose faulting slots leave one more bit in their output region."""

    name = "numpy"

    def bind(self, slots: int, mode: EpochMode) -> RingDevice:
        inner = NumpyBackend().bind(slots, mode)

        class Ring:
            def run_burst(self, words: U32Array, first: int, base_epoch: int) -> BurstOutput:
                out = inner.run_burst(words, first, base_epoch)
                out.outputs[out.statuses == SlotStatus.FAULT, 1] |= 1
                return out

        return Ring()


def test_a_backend_with_other_fault_output_is_caught_by_the_stored_replay(
    tmp_path: Path,
) -> None:
    stored = record(tmp_path)
    with pytest.raises(ReplayDivergence) as info:
        verify(tmp_path, stored, backend=_WrongFaultOutput())
    found = info.value.mismatch.divergence
    assert found is not None and (found.index, found.field) == (1, "output_digest")
    assert "the stored log, replayed on numpy before the test ran" in str(info.value)
    # Without the stored replay, the live comparison catches it at the same record.
    with pytest.raises(ReplayDivergence) as live:
        verify(tmp_path, stored, backend=_WrongFaultOutput(), replay_stored=False)
    found = live.value.mismatch.divergence
    assert found is not None and (found.index, found.field) == (1, "output_digest")
    assert "megakernel slot #1" in str(live.value)


def atomic_program(bursts: int, size: int) -> Program:
    return [
        [(b, int(Opcode.HASH), [b, k]) for k in range(size)]
        + [(b, int(Opcode.FAULT_PROGRAM_TRAP), [b])]
        for b in range(bursts)
    ]


def test_atomic_race_is_caught_in_verify_mode(tmp_path: Path) -> None:
    program = atomic_program(3, 30)
    stored = record(tmp_path, program, slots=32, mode="atomic")
    verify(tmp_path, stored, program, slots=32, mode="atomic")
    raced = NumpyBackend(race_seed=3)
    with pytest.raises(ReplayDivergence, match="replayed on numpy before the test ran") as info:
        verify(tmp_path, stored, program, backend=raced, slots=32, mode="atomic")
    # The record number is the divergent record's place in the log (publish order), not
    # its rank in epoch order.
    epoch = int(re.search(r"diverges at epoch (\d+)", str(info.value)).group(1))  # type: ignore[union-attr]
    found = info.value.mismatch.divergence
    assert found is not None and found.index is not None
    assert int(read_ring_image(stored.data).records["epoch"][found.index]) == epoch
    with pytest.raises(ReplayDivergence) as info:
        verify(
            tmp_path, stored, program, backend=raced, slots=32, mode="atomic", replay_stored=False
        )
    found = info.value.mismatch.divergence
    assert found is not None and found.field == "epoch"
    assert found.index is not None and found.index < 31


def test_more_slots_than_recorded_is_a_length_divergence(tmp_path: Path) -> None:
    stored = record(tmp_path)
    longer: Program = [*PROGRAM, [(0, Opcode.NOP, [])]]
    with pytest.raises(ReplayDivergence) as info:
        verify(tmp_path, stored, longer)
    found = info.value.mismatch.divergence
    assert found is not None
    assert (found.kind, found.index, found.expected, found.actual) == ("length", 8, 8, 9)
    assert "beyond the end of the recording" in str(info.value)


def test_fewer_slots_than_recorded_fails_at_check_complete(tmp_path: Path) -> None:
    stored = record(tmp_path)
    with pytest.raises(ReplayDivergence) as info:
        verify(tmp_path, stored, PROGRAM[:2])
    found = info.value.mismatch.divergence
    assert found is not None
    assert (found.kind, found.index, found.expected, found.actual) == ("length", 5, 8, 5)
    assert "consumed 5 slots, the recording holds 8" in str(info.value)


def test_pending_slots_are_pumped_before_the_recording_is_taken(tmp_path: Path) -> None:
    recorder = MEGAKERNEL_KIND.open(target(tmp_path), backend="numpy", slots=4)
    assert isinstance(recorder, MegakernelRecorder)
    recorder.publish(0, Opcode.ADD, [2, 2])
    recorder.publish_many([0, 0], [Opcode.NOP, Opcode.COPY], [[1], [2]])
    assert recorder.megakernel.pending == 3
    finished = recorder.finish()
    assert finished.records == 3 and recorder.megakernel.pending == 0
    assert recorder.observe().entry(0).digest == output_digest(
        np.array([4] + [0] * 15, "<u4").tobytes()
    )
    assert recorder.info().slots == 4
    recorder.close()
    recorder.close()  # twice is harmless
    assert recorder.finish().data == finished.data  # still available after close
    assert "record" in repr(recorder)


@pytest.mark.parametrize(("key", "value"), [("slots", 8), ("mode", "atomic")])
def test_opening_with_another_geometry_fails_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, value: Any
) -> None:
    stored = record(tmp_path, slots=4)
    options = {"slots": 4, key: value}
    closed: list[RingLog] = []
    real_close = RingLog.close

    def close(log: RingLog) -> None:
        closed.append(log)
        real_close(log)

    monkeypatch.setattr(RingLog, "close", close)
    with pytest.raises(ReplayDivergence) as info:
        MEGAKERNEL_KIND.open(target(tmp_path, stored), backend="numpy", **options)
    assert len(closed) == 1 and closed[0].closed  # the working log does not leak
    found = info.value.mismatch.divergence
    assert found is not None and (found.index, found.field, found.actual) == (None, key, value)
    assert f"Fix: pass {key}=" in str(info.value)


def test_a_wrapped_working_log_keeps_the_newest_records(tmp_path: Path) -> None:
    program: Program = [[(0, Opcode.ADD, [b, k]) for k in range(4)] for b in range(5)]
    stored = record(tmp_path, program, slots=4, capacity=8)
    assert stored.records == 8 and stored.meta["appended"] == 20
    records = read_ring_image(stored.data).records
    assert records["epoch"].tolist() == list(range(12, 20))
    verify(tmp_path, stored, program, slots=4, capacity=8)
    # The ring overwrote slot #2: its digest, kept in the meta, still catches a change.
    with pytest.raises(ReplayDivergence) as info:
        verify(tmp_path, stored, with_change(program, 0, 2, [9, 9]), slots=4, capacity=8)
    assert "records 0..11 were overwritten in the ring; their digest differs" in str(info.value)
    found = info.value.mismatch.divergence
    assert found is not None and found.field == "overwritten records"
    with pytest.raises(ReplayDivergence) as info:
        verify(tmp_path, stored, with_change(program, 3, 2, [9, 9]), slots=4, capacity=8)
    found = info.value.mismatch.divergence
    assert found is not None and (found.index, found.field) == (14, "args[0]")
    assert info.value.mismatch.context[0].startswith("#12 epoch 12")


def test_a_wrapped_atomic_log_of_one_partial_burst_still_verifies_live(tmp_path: Path) -> None:
    program = atomic_program(1, 11)
    stored = record(tmp_path, program, slots=16, mode="atomic", capacity=4)
    recorder = verify(tmp_path, stored, program, slots=16, mode="atomic", capacity=4)
    assert stored.records == 4 and recorder.recorded == 12


def test_unreadable_stored_bytes_are_a_replay_error(tmp_path: Path) -> None:
    stored = record(tmp_path)
    broken = FinishedRecording(b"VRRL0002" + stored.data[8:], stored.records, stored.meta)
    with pytest.raises(ReplayError, match=r"ring\.mkvrrl.*Fix:"):
        MEGAKERNEL_KIND.open(target(tmp_path, broken), backend="numpy")
    short = FinishedRecording(stored.data[:100], stored.records, stored.meta)
    with pytest.raises(ReplayError, match="Fix:"):
        MEGAKERNEL_KIND.open(target(tmp_path, short), backend="numpy")


def test_diff_compares_two_stored_recordings(tmp_path: Path) -> None:
    stored = record(tmp_path)
    meta: Mapping[str, Any] = stored.meta
    assert MEGAKERNEL_KIND.diff(stored.data, stored.data, meta) is None
    changed = record(tmp_path, with_change(PROGRAM, 2, 0, [0xF0, 0x1F]))
    result = diff_recordings(stored.data, changed.data, meta)
    assert result is not None
    found, context = result
    assert (found.index, found.field, found.expected, found.actual) == (5, "args[1]", 0x0F, 0x1F)
    assert [line.split(" ")[0] for line in context] == ["#3", "#4"]
    shorter = record(tmp_path, PROGRAM[:1])
    result = diff_recordings(stored.data, shorter.data, meta)
    assert result is not None and result[0].kind == "length"


def test_importing_the_kind_does_not_import_cupy() -> None:
    code = (
        "import sys; import pytest_replay.megakernel.kind as k; k.kinds(); "
        "from pytest_replay.megakernel import Megakernel; Megakernel('numpy', 4); "
        "print('cupy' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"


program_step = st.tuples(
    st.integers(0, 3),
    st.sampled_from([*[int(op) for op in Opcode], 0x77]),
    st.lists(st.integers(0, 2**32 - 1), max_size=4),
)


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    program=st.lists(st.lists(program_step, min_size=1, max_size=10), min_size=1, max_size=8),
    mode=st.sampled_from(["ordered", "atomic"]),
    capacity=st.sampled_from([6, 64]),
)
def test_random_programs_record_identically_and_verify(
    tmp_path: Path, program: Program, mode: str, capacity: int
) -> None:
    options: dict[str, Any] = {"slots": 12, "mode": mode, "capacity": capacity}
    first = record(tmp_path, program, **options)
    assert record(tmp_path, program, **options).data == first.data
    recorder = verify(tmp_path, first, program, **options)
    assert recorder.finish().data == first.data
    assert recorder.recorded == sum(len(burst) for burst in program)
