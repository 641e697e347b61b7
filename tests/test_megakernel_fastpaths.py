"""The capture path's fast paths against the plain paths they replace.

* ``execute_slots`` classifies opcodes with one table lookup and copies COPY runs as
  bytes: checked against a scalar model over the whole u32 opcode range (values whose
  low byte is a real opcode included) and with non-contiguous words (the plain path);
* ``fnv1a_words`` multiplies once for each run of trailing all-zero words: equal to
  the byte-by-byte hash;
* ``ring_indices`` skips the remainder for a run that does not wrap: equal to
  ``arange % slots``;
* ``byte_run`` copies equal the ``(n, k)`` block assignments they stand for;
* ``publish_many`` skips the range scan for unsigned types no wider than u32 and writes
  argument blocks as byte runs: staged words equal one-by-one publishes for every
  argument dtype and width;
* ``burst_records`` writes every field of a reused buffer: equal to records built
  field by field on zeros, for contiguous and non-contiguous slot words; a capture's
  reused buffer keeps magic and evidence blank between bursts (re-blanking only the
  faulted rows): its log holds what fresh arrays held;
* a capture scans pending argument words at a pump only when something was published
  around it: the error (or the records) equal a model that scans every burst;
* ``open_capture``'s log takes large bursts with ``pwrite`` and write-behind advice: its
  file equals the image of the records a capture into a plain sink was given.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_replay.megakernel import (
    Megakernel,
    MegakernelCapture,
    Opcode,
    UncapturableArguments,
    open_capture,
)
from pytest_replay.megakernel.backend import byte_run, ring_indices
from pytest_replay.megakernel.burst import PumpResult
from pytest_replay.megakernel.capture import burst_records
from pytest_replay.megakernel.model import FaultCode, SlotStatus
from pytest_replay.megakernel.numpy_backend import execute_slots, fnv1a_words
from pytest_replay.ringlog import (
    RECORD_MAGIC,
    RING_RECORD_DTYPE,
    ReplayFailureEvidence,
    RingLog,
    encode_ring_image,
)

U32 = 0xFFFF_FFFF
u32 = st.integers(0, U32)
# Real opcodes, values that alias one in their low byte, and anything else.
opcode_values = st.one_of(
    st.sampled_from([int(op) for op in Opcode]),
    st.sampled_from([int(op) | 0x100 for op in Opcode] + [int(op) | 0xFFFF_FF00 for op in Opcode]),
    st.sampled_from([0x06, 0xF0, 0xF4, 0xFF, 0x100, 0x101, U32]),
    u32,
)
_FAULTS = {0xF1: FaultCode.DEVICE_LOST, 0xF2: FaultCode.QUEUE_TIMEOUT, 0xF3: FaultCode.PROGRAM_TRAP}


def fnv1a(words: list[int]) -> int:
    digest = 0x811C9DC5
    for byte in b"".join(w.to_bytes(4, "little") for w in words):
        digest = ((digest ^ byte) * 0x01000193) & U32
    return digest


def scalar_slot(opcode: int, a: list[int]) -> tuple[int, int, list[int]]:
    out = [0] * 16
    if opcode == Opcode.NOP:
        return SlotStatus.DONE, 0, out
    if opcode == Opcode.ADD:
        out[0] = (a[0] + a[1]) & U32
    elif opcode == Opcode.MUL:
        out[0] = (a[0] * a[1]) & U32
    elif opcode == Opcode.XOR:
        out[0] = a[0] ^ a[1]
    elif opcode == Opcode.HASH:
        out[0] = fnv1a(a)
    elif opcode == Opcode.COPY:
        out[:13] = a
    elif opcode in _FAULTS:
        out[0] = a[0]
        return SlotStatus.FAULT, _FAULTS[opcode], out
    else:
        return SlotStatus.FAULT, FaultCode.INVALID_OPCODE, out
    return SlotStatus.DONE, 0, out


programs = st.lists(
    st.tuples(opcode_values, st.lists(u32, min_size=13, max_size=13)), min_size=1, max_size=40
)


@given(programs)
def test_execute_slots_matches_the_scalar_model_over_all_u32_opcodes(
    program: list[tuple[int, list[int]]],
) -> None:
    words = np.zeros((len(program), 16), np.uint32)
    for row, (opcode, args) in enumerate(program):
        words[row, 0] = SlotStatus.PUBLISHED
        words[row, 2] = opcode
        words[row, 3:] = args
    statuses, codes, outputs = execute_slots(words)
    for row, (opcode, args) in enumerate(program):
        status, code, out = scalar_slot(opcode, args)
        assert (int(statuses[row]), int(codes[row])) == (status, code), hex(opcode)
        assert outputs[row].tolist() == out, hex(opcode)
    # Non-contiguous words take the plain (fancy-indexed) path: the same results.
    wide = np.zeros((len(program), 32), np.uint32)
    wide[:, ::2] = words
    plain = execute_slots(wide[:, ::2])
    for fast, slow in zip((statuses, codes, outputs), plain, strict=True):
        assert np.array_equal(fast, slow)


@given(
    rows=st.lists(st.lists(u32, min_size=13, max_size=13), min_size=1, max_size=12),
    zero_words=st.integers(0, 13),
    stray=st.one_of(st.none(), st.tuples(st.integers(0, 11), st.integers(0, 12), u32)),
)
def test_fnv1a_words_skipping_zero_trailing_words_matches_the_scalar_hash(
    rows: list[list[int]], zero_words: int, stray: tuple[int, int, int] | None
) -> None:
    """Trailing word columns that are zero in every row are one multiply each run, not
    four byte steps: the digests equal the byte-by-byte FNV-1a, a stray non-zero word
    in the tail (one row only) included."""
    words = np.array(rows, np.uint32)
    words[:, 13 - zero_words :] = 0
    if stray is not None:
        row, column, value = stray
        words[min(row, len(rows) - 1), column] = value
    digests = fnv1a_words(words).tolist()
    assert digests == [fnv1a(row) for row in words.tolist()]
    assert fnv1a_words(words[:, :7]).tolist() == [fnv1a(row) for row in words[:, :7].tolist()]


@given(
    st.integers(0, 20),
    st.integers(1, 16),
    st.data(),
)
def test_byte_run_copies_equal_block_assignment(n: int, width: int, data: st.DataObject) -> None:
    first = data.draw(st.integers(0, width - 1))
    k = data.draw(st.integers(0, width - first))
    rng = np.random.default_rng(n * 100 + width)
    source = rng.integers(0, 2**32, (n, k), dtype=np.uint64).astype(np.uint32)
    fast = rng.integers(0, 2**32, (n, width), dtype=np.uint64).astype(np.uint32)
    plain = fast.copy()
    plain[:, first : first + k] = source
    byte_run(fast, 4 * first, 4 * k)[...] = byte_run(source, 0, 4 * k)
    assert np.array_equal(fast, plain)


def test_byte_run_refuses_what_is_not_a_run() -> None:
    rows = np.zeros((4, 16), np.uint32)
    with pytest.raises(ValueError, match="do not fit"):
        byte_run(rows, 60, 8)
    with pytest.raises(ValueError, match="C-contiguous"):
        byte_run(rows[:, ::2], 0, 4)
    with pytest.raises(ValueError, match="C-contiguous"):
        byte_run(np.zeros((2, 2, 2), np.uint32), 0, 4)
    assert len(byte_run(rows[:0], 4, 8)) == 0


arg_dtypes = st.sampled_from([np.uint8, np.uint16, np.uint32, np.uint64, np.int64, np.bool_])


@given(
    st.lists(st.tuples(u32, opcode_values), min_size=1, max_size=20),
    st.integers(0, 13),
    arg_dtypes,
    st.data(),
)
def test_publish_many_stages_what_one_by_one_publishes_stage(
    slots: list[tuple[int, int]], k: int, dtype: type, data: st.DataObject
) -> None:
    top = 1 if dtype is np.bool_ else min(U32, int(np.iinfo(dtype).max))
    values = data.draw(
        st.lists(st.lists(st.integers(0, top), min_size=k, max_size=k), min_size=len(slots),
                 max_size=len(slots))
    )  # fmt: skip
    block = np.array(values, dtype=dtype).reshape(len(slots), k)
    many = Megakernel("numpy", slots=32)
    many.publish_many([t for t, _ in slots], [o for _, o in slots], block)
    one = Megakernel("numpy", slots=32)
    for (tenant, opcode), args in zip(slots, values, strict=True):
        one.publish(tenant, opcode, [int(v) for v in args])
    assert np.array_equal(many.pending_words(), one.pending_words())


def test_publish_many_still_refuses_values_outside_u32() -> None:
    mk = Megakernel("numpy", slots=8)
    for bad in (np.array([[-1]], np.int64), np.array([[2**32]], np.uint64)):
        with pytest.raises(ValueError, match="outside the u32 range"):
            mk.publish_many([0], [1], bad)
    assert mk.pending == 0


def plain_records(result: PumpResult) -> np.ndarray:
    """The records field by field on zeros: the path ``burst_records`` replaced."""
    records = np.zeros(len(result), RING_RECORD_DTYPE)
    records["magic"] = RECORD_MAGIC
    records["timestamp_ns"] = result.sequences
    records["slot_idx"] = result.slots
    records["tenant_id"] = result.words[:, 1]
    records["opcode"] = result.words[:, 2]
    records["args"] = result.words[:, 3:7]
    records["epoch"] = result.output.epochs
    first = int(result.sequences[0])
    for fault in result.faults:
        evidence = ReplayFailureEvidence.from_backend_error(
            int(SlotStatus.FAULT), fault.error, fault.output
        )
        row = records[fault.sequence - first]
        row["slot_status"] = evidence.slot_status
        row["failure_class"] = int(evidence.failure_class)
        row["backend_code"] = evidence.backend_error_code
        row["output_digest"] = evidence.output_digest
    return records


def slot_programs() -> st.SearchStrategy[list[tuple[int, int, list[int]]]]:
    small_opcodes = st.sampled_from([int(op) for op in Opcode] + [0x42])
    return st.lists(
        st.tuples(u32, small_opcodes, st.lists(u32, max_size=4)), min_size=1, max_size=30
    )


@given(st.lists(slot_programs(), min_size=1, max_size=4))
def test_burst_records_equal_records_built_on_zeros(
    bursts: list[list[tuple[int, int, list[int]]]],
) -> None:
    mk = Megakernel("numpy", slots=32)
    for burst in bursts:
        for tenant, opcode, args in burst:
            mk.publish(tenant, opcode, args)
        result = mk.pump()
        expected = plain_records(result)
        assert burst_records(result).tobytes() == expected.tobytes()
        # Slot words without contiguous rows take the field-by-field path.
        wide = np.zeros((len(result), 32), np.uint32)
        wide[:, ::2] = result.words
        strided = PumpResult(
            result.base_epoch, wide[:, ::2], result.slots, result.sequences, result.output,
            result.faults,
        )  # fmt: skip
        assert burst_records(strided).tobytes() == expected.tobytes()


class ListSink:
    """A sink that keeps every batch it is given, as a test double might."""

    def __init__(self) -> None:
        self.batches: list[np.ndarray] = []

    def append_many(self, slots: np.ndarray) -> None:
        self.batches.append(slots)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=30)
@given(st.lists(slot_programs(), min_size=1, max_size=5))
def test_reused_record_buffer_writes_what_fresh_arrays_hold(
    tmp_path: Path, bursts: list[list[tuple[int, int, list[int]]]]
) -> None:
    path = tmp_path / "reused.vrrl"
    sink = ListSink()
    kept = MegakernelCapture(Megakernel("numpy", slots=32), sink)
    with open_capture(path, backend="numpy", slots=32, capacity=256) as reused:
        for burst in bursts:
            for capture in (reused, kept):
                for tenant, opcode, args in burst:
                    capture.publish(tenant, opcode, args)
                capture.pump()
    expected = np.concatenate(sink.batches)[-256:]
    with RingLog.open(path, read_only=True) as log:
        assert log.records().tobytes() == expected.tobytes()
    # The kept batches were not overwritten by later bursts.
    assert [len(b) for b in sink.batches] == [len(b) for b in bursts]


# One step of a capture session: ("capture", args) publishes through the capture,
# ("many", rows) publishes a burst through it, ("direct", args) publishes on the
# megakernel behind its back, ("pump",) pumps.
steps = st.one_of(
    st.tuples(st.just("capture"), st.lists(st.sampled_from([0, 0, 7]), max_size=6)),
    st.tuples(
        st.just("many"),
        st.lists(
            st.lists(st.sampled_from([0, 0, 0, 9]), min_size=6, max_size=6), min_size=1, max_size=3
        ),
    ),
    st.tuples(st.just("direct"), st.lists(st.sampled_from([0, 0, 5]), max_size=6)),
    st.tuples(st.just("pump")),
)


@given(st.lists(steps, max_size=25))
def test_pump_refuses_exactly_what_a_scan_of_every_burst_refuses(steps_: list[tuple]) -> None:
    mk = Megakernel("numpy", slots=64)
    capture = MegakernelCapture(mk, ListSink())
    pending: list[list[int]] = []  # the model: args of each pending slot, in order
    first_pending = 0
    for step in steps_:
        kind = step[0]
        if mk.pending + (len(step[1]) if kind == "many" else 1) > mk.slots and kind != "pump":
            continue
        if kind == "capture":
            args = step[1]
            bad = next((w for w in range(4, len(args)) if args[w]), None)
            if bad is not None:
                with pytest.raises(UncapturableArguments) as caught:
                    capture.publish(1, Opcode.ADD, args)
                assert (caught.value.sequence, caught.value.word) == (mk.published, bad)
                continue
            capture.publish(1, Opcode.ADD, args)
            pending.append(args)
        elif kind == "many":
            block = np.array(step[1], np.uint32)
            hits = np.argwhere(block[:, 4:])
            if len(hits):
                with pytest.raises(UncapturableArguments) as caught:
                    capture.publish_many([1] * len(block), [Opcode.ADD] * len(block), block)
                row, column = (int(v) for v in hits[0])
                assert (caught.value.sequence, caught.value.word) == (mk.published + row,
                                                                      4 + column)  # fmt: skip
                continue
            capture.publish_many([1] * len(block), [Opcode.ADD] * len(block), block)
            pending.extend(block.tolist())
        elif kind == "direct":
            mk.publish(1, Opcode.ADD, step[1])
            pending.append(step[1])
        else:
            offending = next(
                ((first_pending + i, w, args[w]) for i, args in enumerate(pending)
                 for w in range(4, len(args)) if args[w]),
                None,
            )  # fmt: skip
            if offending is not None:
                with pytest.raises(UncapturableArguments) as caught:
                    capture.pump()
                error = caught.value
                assert (error.sequence, error.word, error.value) == offending
                return  # the slots stay pending; every later pump refuses them the same way
            before = capture.recorded
            capture.pump()
            assert capture.recorded == before + len(pending)
            first_pending += len(pending)
            pending = []


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=15)
@given(
    sizes=st.lists(st.integers(1, 3000), min_size=1, max_size=4),
    capacity=st.integers(1, 5000),
    seed=st.integers(0, 2**16),
)
def test_open_capture_file_holds_the_records_a_kept_capture_was_given(
    tmp_path: Path, sizes: list[int], capacity: int, seed: int
) -> None:
    """Bursts big enough for the log's write-through and write-behind paths (and small
    ones, wrapping the log): the file equals the image of every record the same bursts
    gave a capture into a plain sink."""
    rng = np.random.default_rng(seed)
    path = tmp_path / "big.vrrl"
    sink = ListSink()
    kept = MegakernelCapture(Megakernel("numpy", slots=3000), sink)
    with open_capture(path, backend="numpy", slots=3000, capacity=capacity) as written:
        for n in sizes:
            tenants = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
            opcodes = rng.choice([int(op) for op in Opcode] + [0x42], n).astype(np.uint32)
            args = rng.integers(0, 2**32, (n, 4), dtype=np.uint64).astype(np.uint32)
            for capture in (written, kept):
                capture.publish_many(tenants, opcodes, args)
                capture.pump()
    assert path.read_bytes() == encode_ring_image(capacity, np.concatenate(sink.batches))


@given(slots=st.integers(1, 70), first=st.integers(0, 200), n=st.integers(0, 150))
def test_ring_indices_equal_arange_modulo_slots(slots: int, first: int, n: int) -> None:
    indices = ring_indices(first, n, slots)
    assert indices.dtype == np.int64
    assert indices.tolist() == [(first + i) % slots for i in range(n)]
