"""The megakernel model on the NumPy backend: opcodes, faults, publishing, the ring."""

from __future__ import annotations

import struct
import sys
import types

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_replay.errors import ReplayError
from pytest_replay.megakernel import (
    CupyBackend,
    FaultCode,
    GpuUnavailable,
    InvalidPublish,
    Megakernel,
    MegakernelError,
    NumpyBackend,
    Opcode,
    RingFull,
    SlotStatus,
    UnknownBackend,
    fault_error,
    gpu_available,
    resolve_backend,
)
from pytest_replay.megakernel.numpy_backend import execute_slots
from pytest_replay.ringlog import ReplayFailureClass, classify_backend_error, output_digest

U32 = 0xFFFF_FFFF


def fnv1a_reference(words: list[int]) -> int:
    digest = 0x811C9DC5
    for byte in struct.pack("<13I", *words):
        digest = ((digest ^ byte) * 0x01000193) & U32
    return digest


def run_one(opcode: int, args: list[int]) -> tuple[SlotStatus, bytes, Megakernel]:
    mk = Megakernel("numpy", slots=4)
    slot = mk.publish(7, opcode, args)
    mk.pump()
    return mk.status(slot), mk.output(slot), mk


def words_of(data: bytes) -> tuple[int, ...]:
    return struct.unpack("<16I", data)


@pytest.mark.parametrize(
    ("opcode", "args", "first_word"),
    [
        (Opcode.ADD, [5, 7], 12),
        (Opcode.ADD, [U32, 2], 1),
        (Opcode.MUL, [6, 7], 42),
        (Opcode.MUL, [0x10000, 0x10001], 0x10000),
        (Opcode.XOR, [0b1100, 0b1010], 0b0110),
    ],
)
def test_arithmetic_opcodes_wrap_as_u32(opcode: Opcode, args: list[int], first_word: int) -> None:
    status, data, _ = run_one(opcode, args)
    assert status is SlotStatus.DONE
    assert words_of(data) == (first_word,) + (0,) * 15


def test_nop_writes_nothing() -> None:
    status, data, _ = run_one(Opcode.NOP, [1, 2, 3])
    assert status is SlotStatus.DONE
    assert data == bytes(64)


def test_hash_is_fnv1a_over_all_argument_bytes() -> None:
    args = [1, 2, 3, 4, 0xDEADBEEF, 0, 0, 0, 0, 0, 0, 0, U32]
    status, data, _ = run_one(Opcode.HASH, args)
    assert status is SlotStatus.DONE
    assert words_of(data)[0] == fnv1a_reference(args)
    assert words_of(run_one(Opcode.HASH, [])[1])[0] == fnv1a_reference([0] * 13)


def test_copy_fills_the_output_region() -> None:
    args = list(range(100, 113))
    status, data, _ = run_one(Opcode.COPY, args)
    assert status is SlotStatus.DONE
    assert words_of(data) == (*args, 0, 0, 0)


@pytest.mark.parametrize(
    ("opcode", "code", "failure_class", "partial"),
    [
        (Opcode.FAULT_DEVICE_LOST, FaultCode.DEVICE_LOST, ReplayFailureClass.DEVICE_LOSS, 9),
        (
            Opcode.FAULT_QUEUE_TIMEOUT,
            FaultCode.QUEUE_TIMEOUT,
            ReplayFailureClass.TRANSIENT_QUEUE,
            9,
        ),
        (Opcode.FAULT_PROGRAM_TRAP, FaultCode.PROGRAM_TRAP, ReplayFailureClass.PROGRAM_BUG, 9),
        (0x77, FaultCode.INVALID_OPCODE, ReplayFailureClass.PROGRAM_BUG, 0),
        (U32, FaultCode.INVALID_OPCODE, ReplayFailureClass.PROGRAM_BUG, 0),
    ],
)
def test_fault_paths_report_class_code_and_partial_output(
    opcode: int, code: FaultCode, failure_class: ReplayFailureClass, partial: int
) -> None:
    mk = Megakernel("numpy", slots=4)
    mk.publish(1, Opcode.ADD, [1, 1])
    slot = mk.publish(3, opcode, [9, 8])
    result = mk.pump()
    assert mk.status(slot) is SlotStatus.FAULT
    assert mk.status(0) is SlotStatus.DONE
    (fault,) = result.faults
    assert (fault.slot, fault.epoch, fault.sequence) == (slot, 1, 1)
    assert fault.error.code == code
    assert fault.error.failure_class == failure_class
    # The message alone classifies the same way, so logs written by older code agree.
    assert classify_backend_error(Exception(str(fault.error))) == failure_class
    assert words_of(fault.output) == (partial,) + (0,) * 15
    entry = mk.observe().entry(1)
    assert entry.status is SlotStatus.FAULT
    assert entry.backend_code == code and entry.failure_class == failure_class
    assert entry.digest == output_digest(fault.output)


def test_unknown_fault_code_is_unclassified() -> None:
    error = fault_error(0x9999, 1, 2, 3)
    assert error.failure_class == ReplayFailureClass.UNCLASSIFIED
    assert "0x9999" in str(error)


def test_ordered_epochs_follow_publish_order_across_pumps() -> None:
    mk = Megakernel("numpy", slots=4)
    assert mk.epoch == 0
    for _ in range(3):
        mk.publish(0, Opcode.NOP)
    first = mk.pump()
    assert first.output.epochs.tolist() == [0, 1, 2]
    mk.publish(0, Opcode.NOP)
    mk.publish(0, Opcode.NOP)
    second = mk.pump()
    assert second.slots.tolist() == [3, 0]
    assert second.output.epochs.tolist() == [3, 4]
    assert mk.epoch == 5
    stream = mk.observe()
    assert stream.epochs.tolist() == [0, 1, 2, 3, 4]
    assert stream.slots.tolist() == [0, 1, 2, 3, 0]


def test_atomic_epochs_follow_completion_order() -> None:
    mk = Megakernel("numpy", slots=4, mode="atomic", first_slot=2, first_epoch=10)
    slots = mk.publish_many(0, [Opcode.NOP] * 4).tolist()
    assert slots == [2, 3, 0, 1]
    result = mk.pump()
    # Without a race seed, threads retire in slot index order.
    assert result.output.epochs.tolist() == [12, 13, 10, 11]
    stream = mk.observe()
    assert stream.epochs.tolist() == [10, 11, 12, 13]
    assert stream.slots.tolist() == [0, 1, 2, 3]


def test_race_seed_reorders_atomic_completions_reproducibly() -> None:
    def epochs(seed: int) -> list[int]:
        mk = Megakernel(NumpyBackend(race_seed=seed), slots=64, mode="atomic")
        mk.publish_many(0, [Opcode.NOP] * 64)
        result: list[int] = mk.pump().output.epochs.tolist()
        return result

    assert epochs(1) == epochs(1)
    assert epochs(1) != epochs(2)
    assert sorted(epochs(1)) == list(range(64))


def test_epoch_wraps_modulo_2_32() -> None:
    mk = Megakernel("numpy", slots=4, first_epoch=U32 - 1)
    mk.publish_many(0, [Opcode.NOP] * 3)
    assert mk.pump().output.epochs.tolist() == [U32 - 1, U32, 0]
    assert mk.epoch == 1
    assert mk.observe().epochs.tolist() == [U32 - 1, U32, 0]


def test_ring_full_is_back_pressure_with_a_fix_hint() -> None:
    mk = Megakernel("numpy", slots=3)
    mk.publish_many([1, 2], [Opcode.NOP, Opcode.NOP])
    mk.publish(0, Opcode.NOP)
    with pytest.raises(RingFull, match=r"3 of 3 slots .* Fix: call pump\(\)") as info:
        mk.publish(0, Opcode.NOP)
    assert isinstance(info.value, MegakernelError) and isinstance(info.value, ReplayError)
    assert mk.pending == 3
    mk.pump()
    assert mk.publish(0, Opcode.NOP) == 0


def test_publish_many_that_overflows_publishes_nothing() -> None:
    mk = Megakernel("numpy", slots=4)
    mk.publish(0, Opcode.NOP)
    with pytest.raises(RingFull, match="cannot publish 4 more"):
        mk.publish_many(0, [Opcode.NOP] * 4)
    assert mk.pending == 1
    assert mk.status(1) is SlotStatus.EMPTY


def test_ring_wraps_around_many_times() -> None:
    mk = Megakernel("numpy", slots=5)
    seen = []
    for round_ in range(7):
        for k in range(3):
            seen.append(mk.publish(round_, Opcode.ADD, [round_, k]))
        mk.pump()
    assert seen == [i % 5 for i in range(21)]
    stream = mk.observe()
    assert stream.epochs.tolist() == list(range(21))
    assert stream.slots.tolist() == seen
    assert mk.head == 21 % 5
    assert np.all(stream.statuses == SlotStatus.DONE)


def test_status_goes_empty_published_done() -> None:
    mk = Megakernel("numpy", slots=2)
    assert mk.status(0) is SlotStatus.EMPTY
    mk.publish(0, Opcode.NOP)
    assert mk.status(0) is SlotStatus.PUBLISHED
    mk.pump()
    assert mk.status(0) is SlotStatus.DONE
    with pytest.raises(IndexError, match=r"slot 2 is outside the ring of 2 slots.*Fix:"):
        mk.status(2)


def test_pump_with_nothing_published_is_a_no_op() -> None:
    mk = Megakernel("numpy", slots=2)
    result = mk.pump()
    assert len(result) == 0 and result.faults == ()
    assert mk.epoch == 0 and len(mk.observe()) == 0


@pytest.mark.parametrize(
    ("tenant", "opcode", "args", "match"),
    [
        (-1, 0, (), "tenant value -1"),
        (0, 1 << 32, (), "opcode value 4294967296"),
        (0, 0, (1,) * 14, "14 argument words"),
        (0, 0, (1, -5), r"args\[1\] value -5"),
        (0, 0, (1.5,), r"args\[0\] is 1.5"),
        (True, 0, (), "tenant is True"),
    ],
)
def test_publish_rejects_values_outside_the_slot_layout(
    tenant: object, opcode: int, args: tuple[object, ...], match: str
) -> None:
    mk = Megakernel("numpy", slots=2)
    with pytest.raises(InvalidPublish, match=rf"publish #0\): {match}.*Fix:"):
        mk.publish(tenant, opcode, args)  # type: ignore[arg-type]
    assert mk.pending == 0


def test_publish_many_validates_shapes_and_ranges() -> None:
    mk = Megakernel("numpy", slots=8)
    with pytest.raises(InvalidPublish, match=r"args has shape \(2, 14\)"):
        mk.publish_many(0, [0, 0], np.zeros((2, 14), np.int64))
    with pytest.raises(InvalidPublish, match="tenants has shape"):
        mk.publish_many([0, 1, 2], [0, 0])
    with pytest.raises(InvalidPublish, match="outside the u32 range"):
        mk.publish_many(0, [0, 0], [[1], [1 << 32]])
    with pytest.raises(InvalidPublish, match="not an integer type"):
        mk.publish_many(0, [0.5, 1.0])
    with pytest.raises(InvalidPublish, match=r"opcodes has shape"):
        mk.publish_many(0, [[0]])
    assert mk.pending == 0
    assert mk.publish_many(0, []).tolist() == []


@pytest.mark.parametrize(
    "kwargs",
    [{"slots": 0}, {"slots": 1 << 25}, {"slots": True}, {"mode": "racy"}, {"first_slot": 4}],
)
def test_megakernel_rejects_bad_geometry(kwargs: dict[str, object]) -> None:
    arguments: dict[str, object] = {"slots": 4, **kwargs}
    with pytest.raises(ValueError, match="Fix:"):
        Megakernel("numpy", **arguments)  # type: ignore[arg-type]


opcodes = st.sampled_from([int(op) for op in Opcode] + [0x42])
u32 = st.integers(0, U32)


@given(st.lists(st.tuples(u32, opcodes, st.lists(u32, max_size=13)), min_size=1, max_size=40))
def test_publish_many_equals_one_by_one(program: list[tuple[int, int, list[int]]]) -> None:
    one = Megakernel("numpy", slots=64)
    for tenant, opcode, args in program:
        one.publish(tenant, opcode, args)
    one.pump()
    many = Megakernel("numpy", slots=64)
    block = np.zeros((len(program), 13), np.uint64)
    for row, (_, _, args) in enumerate(program):
        block[row, : len(args)] = args
    many.publish_many([p[0] for p in program], [p[1] for p in program], block)
    many.pump()
    a, b = one.observe(), many.observe()
    assert np.array_equal(a.outputs, b.outputs)
    assert np.array_equal(a.statuses, b.statuses)
    assert np.array_equal(a.tenants, b.tenants)


@given(st.lists(st.tuples(opcodes, st.lists(u32, min_size=13, max_size=13)), max_size=30))
def test_vectorised_execution_equals_a_scalar_model(program: list[tuple[int, list[int]]]) -> None:
    words = np.zeros((len(program), 16), np.uint32)
    for row, (opcode, args) in enumerate(program):
        words[row, 0] = SlotStatus.PUBLISHED
        words[row, 2] = opcode
        words[row, 3:] = args
    statuses, codes, outputs = execute_slots(words)
    for row, (opcode, a) in enumerate(program):
        expected = [0] * 16
        status, code = SlotStatus.DONE, 0
        if opcode == Opcode.ADD:
            expected[0] = (a[0] + a[1]) & U32
        elif opcode == Opcode.MUL:
            expected[0] = (a[0] * a[1]) & U32
        elif opcode == Opcode.XOR:
            expected[0] = a[0] ^ a[1]
        elif opcode == Opcode.HASH:
            expected[0] = fnv1a_reference(a)
        elif opcode == Opcode.COPY:
            expected[:13] = a
        elif opcode in (0xF1, 0xF2, 0xF3):
            expected[0] = a[0]
            status = SlotStatus.FAULT
            code = {0xF1: 0x101, 0xF2: 0x201, 0xF3: 0x301}[opcode]
        elif opcode != Opcode.NOP:
            status, code = SlotStatus.FAULT, FaultCode.INVALID_OPCODE
        assert outputs[row].tolist() == expected
        assert (int(statuses[row]), int(codes[row])) == (status, code)


def test_resolve_backend_by_name() -> None:
    assert resolve_backend("numpy").name == "numpy"
    backend = NumpyBackend()
    assert resolve_backend(backend) is backend
    assert resolve_backend("auto").name in ("numpy", "cupy")
    with pytest.raises(UnknownBackend, match=r"'opencl'.*Fix: use 'auto'"):
        resolve_backend("opencl")


def test_missing_cupy_names_the_gpu_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(GpuUnavailable, match=r"CuPy is not installed.*pip install '\.\[gpu\]'"):
        CupyBackend()
    with pytest.raises(GpuUnavailable, match=r"pip install '\.\[gpu\]'"):
        Megakernel("cupy", slots=4)
    available, reason = gpu_available()
    assert not available and "not installed" in reason
    assert resolve_backend("auto").name == "numpy"


def test_cupy_backend_rejects_a_non_warp_block_size() -> None:
    with pytest.raises(ValueError, match=r"block_size 100 .*Fix:"):
        CupyBackend(block_size=100)


def fake_cupy(count: object) -> types.ModuleType:
    """A stand-in ``cupy`` whose runtime reports ``count`` devices (or raises it)."""

    def get_device_count() -> object:
        if isinstance(count, BaseException):
            raise count
        return count

    module = types.ModuleType("cupy")
    runtime = types.SimpleNamespace(getDeviceCount=get_device_count)
    module.cuda = types.SimpleNamespace(runtime=runtime)  # type: ignore[attr-defined]
    return module


@pytest.mark.parametrize(
    ("count", "reason"),
    [
        (0, "CuPy is installed but no CUDA GPU is visible"),
        (RuntimeError("cudaErrorInsufficientDriver"), "no usable CUDA driver"),
    ],
)
def test_gpu_available_explains_a_missing_gpu(
    monkeypatch: pytest.MonkeyPatch, count: object, reason: str
) -> None:
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(count))
    available, why = gpu_available()
    assert not available and reason in why
    with pytest.raises(GpuUnavailable, match=r"pip install '\.\[gpu\]'"):
        CupyBackend()
    assert resolve_backend("auto").name == "numpy"


def test_gpu_available_when_cupy_sees_a_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(1))
    assert gpu_available() == (True, "CuPy and a CUDA GPU are available")


def test_a_broken_cupy_import_is_a_reason_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def failing_import(name: str, *args: object, **kwargs: object) -> object:
        if name == "cupy":
            raise OSError("libcudart.so.12: cannot open shared object file")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.delitem(sys.modules, "cupy", raising=False)
    monkeypatch.setattr(builtins, "__import__", failing_import)
    available, why = gpu_available()
    assert not available
    assert "CuPy failed to import (OSError: libcudart.so.12" in why
