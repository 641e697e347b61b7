"""The VRRL ring log: the reference's behaviour, golden bytes, and our additions."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from pytest_replay.ringlog import (
    HEADER_BYTES,
    LOG_MAGIC,
    LOG_VERSION,
    MAX_REPLAY_RECORDS,
    RECORD_BYTES,
    RECORD_MAGIC,
    RING_RECORD_DTYPE,
    BackendError,
    CapacityOverflow,
    HeaderMismatch,
    ReadOnlyLog,
    RecordedSlot,
    RecordValueError,
    ReplayFailureClass,
    ReplayFailureEvidence,
    ReplayLogError,
    ReplayLogIoError,
    ReplayRecord,
    RingLog,
    TruncatedLog,
    ZeroCapacity,
    classify_backend_error,
    encode_ring_image,
    output_digest,
    read_ring_image,
)


def rec(slot_idx: int, epoch: int) -> RecordedSlot:
    return RecordedSlot(
        timestamp_ns=1_000_000 + slot_idx,
        slot_idx=slot_idx,
        tenant_id=0,
        opcode=0x4000_0000 + slot_idx,
        args=(slot_idx, slot_idx * 2, slot_idx * 3, slot_idx * 4),
        epoch=epoch,
    )


def write_header(path: Path, capacity: int, cursor: int, magic: bytes = LOG_MAGIC) -> None:
    path.write_bytes(struct.pack("<8sIIQQ", magic, LOG_VERSION, 0, capacity, cursor))


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "log.vrrl"


# ----------------------------------------------------------------- the reference's tests


def test_open_rejects_zero_capacity(log_path: Path) -> None:
    with pytest.raises(ZeroCapacity):
        RingLog.open(log_path, 0)
    assert not log_path.exists()


def test_append_and_replay_round_trip(log_path: Path) -> None:
    with RingLog.open(log_path, 4) as log:
        log.append(rec(1, 10))
        log.append(rec(2, 11))
        log.sync()
        replay = log.replay_all()
    assert [(s.slot_idx, s.epoch) for s in replay] == [(1, 10), (2, 11)]
    assert replay[0] == rec(1, 10)


def test_append_with_failure_round_trips_reproduction_evidence(log_path: Path) -> None:
    error = BackendError("DeviceLost after queue submit", code=17)
    failure = ReplayFailureEvidence.from_backend_error(3, error, b"partial-output")
    assert failure.failure_class is ReplayFailureClass.DEVICE_LOSS
    assert failure.backend_error_code == 17
    assert failure.output_digest != 0
    with RingLog.open(log_path, 4) as log:
        log.append_with_failure(rec(7, 44), failure)
        log.sync()
        replay = log.replay_records()
    assert len(replay) == 1
    assert replay[0].slot.slot_idx == 7 and replay[0].slot.epoch == 44
    assert replay[0].failure == failure


def test_append_without_failure_has_no_failure_evidence(log_path: Path) -> None:
    with RingLog.open(log_path, 2) as log:
        log.append(rec(1, 10))
        replay = log.replay_records()
    assert len(replay) == 1
    assert replay[0].slot.slot_idx == 1
    assert replay[0].failure is None


def test_log_rollover_preserves_most_recent(log_path: Path) -> None:
    with RingLog.open(log_path, 3) as log:
        for i in range(5):
            log.append(rec(i, 100 + i))
        replay = log.replay_all()
        assert log.cursor == 2
    assert [s.slot_idx for s in replay] == [2, 3, 4]


def test_reopen_restores_cursor(log_path: Path) -> None:
    with RingLog.open(log_path, 4) as log:
        log.append(rec(1, 10))
        log.append(rec(2, 11))
        log.sync()
    with RingLog.open(log_path, 4) as reopened:
        assert reopened.cursor == 2
        assert len(reopened.replay_all()) == 2


def test_corrupted_magic_rejected(log_path: Path) -> None:
    write_header(log_path, 4, 0, magic=b"XXXX0001")
    with open(log_path, "r+b") as fh:
        fh.truncate(HEADER_BYTES + 4 * RECORD_BYTES)
    with pytest.raises(HeaderMismatch) as info:
        RingLog.open(log_path, 4)
    assert str(log_path) in str(info.value)
    assert "Fix:" in str(info.value)


def test_existing_log_zero_capacity_rejected_before_cursor_modulo(log_path: Path) -> None:
    write_header(log_path, 0, 0)
    with pytest.raises(ZeroCapacity) as info:
        RingLog.open(log_path, 4)
    assert str(log_path) in str(info.value)


def test_existing_log_huge_capacity_rejected_before_replay_allocation(log_path: Path) -> None:
    # The header is all there is: a reader that allocated or mapped by the
    # stored capacity before bounding it would fail differently (or OOM).
    write_header(log_path, MAX_REPLAY_RECORDS + 1, 0)
    with pytest.raises(CapacityOverflow) as info:
        RingLog.open(log_path, 4)
    assert info.value.count == MAX_REPLAY_RECORDS + 1
    assert info.value.max == MAX_REPLAY_RECORDS


def test_capacity_overflow_rejected(log_path: Path) -> None:
    with pytest.raises(CapacityOverflow) as info:
        RingLog.open(log_path, MAX_REPLAY_RECORDS + 1)
    assert (info.value.count, info.value.max) == (MAX_REPLAY_RECORDS + 1, MAX_REPLAY_RECORDS)
    assert not log_path.exists()


# ----------------------------------------------------------------- golden bytes


def test_golden_bytes_field_by_field(log_path: Path) -> None:
    failure = ReplayFailureEvidence(3, ReplayFailureClass.PROGRAM_BUG, 0x1234, 0x0102030405060708)
    with RingLog.open(log_path, 2) as log:
        log.append(RecordedSlot(0x1122334455667788, 5, 6, 0x40000001, (9, 10, 11, 12), 77))
        log.append_with_failure(RecordedSlot(1, 2, 3, 4, (5, 6, 7, 8), 9), failure)
        log.append(RecordedSlot(2, 7, 0, 1, (0, 0, 0, 0xFFFFFFFF), 10))
        log.sync()
    data = log_path.read_bytes()
    assert len(data) == 32 + 2 * 64
    # header
    assert data[0:8] == b"VRRL0001"
    assert data[8:12] == b"\x01\x00\x00\x00"  # version
    assert data[12:16] == b"\x00\x00\x00\x00"  # flags
    assert data[16:24] == b"\x02" + b"\x00" * 7  # capacity
    assert data[24:32] == b"\x01" + b"\x00" * 7  # cursor after 3 appends into 2 slots
    # record 0 was overwritten by the third append
    r0 = data[32:96]
    assert r0[0:4] == b"\xef\xbe\xad\xde"
    assert r0[4:12] == (2).to_bytes(8, "little")
    assert r0[12:16] == (7).to_bytes(4, "little")
    assert r0[16:20] == b"\x00" * 4
    assert r0[20:24] == (1).to_bytes(4, "little")
    assert r0[24:40] == b"\x00" * 12 + b"\xff\xff\xff\xff"
    assert r0[40:44] == (10).to_bytes(4, "little")
    assert r0[44:64] == b"\x00" * 20  # overwrite cleared the failure tail
    # record 1 carries failure evidence
    r1 = data[96:160]
    assert r1[0:4] == b"\xef\xbe\xad\xde"
    assert r1[4:12] == (1).to_bytes(8, "little")
    assert r1[12:24] == b"\x02\x00\x00\x00\x03\x00\x00\x00\x04\x00\x00\x00"
    assert r1[24:40] == bytes([5, 0, 0, 0, 6, 0, 0, 0, 7, 0, 0, 0, 8, 0, 0, 0])
    assert r1[40:44] == (9).to_bytes(4, "little")
    assert r1[44:48] == (3).to_bytes(4, "little")  # slot_status
    assert r1[48:52] == (3).to_bytes(4, "little")  # PROGRAM_BUG
    assert r1[52:56] == (0x1234).to_bytes(4, "little")
    assert r1[56:64] == bytes([8, 7, 6, 5, 4, 3, 2, 1])


def test_fresh_log_is_zeroed_and_preallocated(log_path: Path) -> None:
    with RingLog.open(log_path, 8):
        pass
    data = log_path.read_bytes()
    assert len(data) == HEADER_BYTES + 8 * RECORD_BYTES
    assert data[HEADER_BYTES:] == bytes(8 * RECORD_BYTES)
    assert list(log_path.parent.iterdir()) == [log_path]  # no temp file left behind


def test_encode_ring_image_matches_the_file(log_path: Path) -> None:
    slots = [rec(i, i + 1) for i in range(7)]
    with RingLog.open(log_path, 5) as log:
        for slot in slots:
            log.append(slot)
    assert encode_ring_image(5, slots) == log_path.read_bytes()
    image = read_ring_image(log_path.read_bytes())
    assert (image.capacity, image.cursor) == (5, 2)
    assert [int(x) for x in image.records["slot_idx"]] == [2, 3, 4, 5, 6]


def test_record_dtype_matches_the_layout() -> None:
    assert RING_RECORD_DTYPE.itemsize == RECORD_BYTES
    offsets = {name: RING_RECORD_DTYPE.fields[name][1] for name in RING_RECORD_DTYPE.names}
    assert offsets == {
        "magic": 0,
        "timestamp_ns": 4,
        "slot_idx": 12,
        "tenant_id": 16,
        "opcode": 20,
        "args": 24,
        "epoch": 40,
        "slot_status": 44,
        "failure_class": 48,
        "backend_code": 52,
        "output_digest": 56,
    }


# ----------------------------------------------------------------- failure evidence


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("DeviceLost after queue submit", ReplayFailureClass.DEVICE_LOSS),
        ("queue full, try again", ReplayFailureClass.TRANSIENT_QUEUE),
        ("dispatch timed out", ReplayFailureClass.TRANSIENT_QUEUE),
        ("kernel source failed to compile", ReplayFailureClass.PROGRAM_BUG),
        ("something else", ReplayFailureClass.UNCLASSIFIED),
    ],
)
def test_classify_backend_error(message: str, expected: ReplayFailureClass) -> None:
    assert classify_backend_error(BackendError(message)) is expected
    assert classify_backend_error(RuntimeError(message)) is expected


def test_explicit_failure_class_wins() -> None:
    error = BackendError("DeviceLost", code=3, failure_class=ReplayFailureClass.PROGRAM_BUG)
    assert classify_backend_error(error) is ReplayFailureClass.PROGRAM_BUG


def test_unknown_failure_class_decodes_as_unclassified() -> None:
    assert ReplayFailureClass.decode(99) is ReplayFailureClass.UNCLASSIFIED
    evidence = ReplayFailureEvidence.from_words(1, 99, 0, 0)
    assert evidence is not None and evidence.failure_class is ReplayFailureClass.UNCLASSIFIED
    assert ReplayFailureEvidence.from_words(0, 0, 0, 0) is None


def test_output_digest_is_blake3_prefix() -> None:
    import blake3

    assert output_digest(b"abc") == int.from_bytes(blake3.blake3(b"abc").digest()[:8], "little")
    assert output_digest(b"") != output_digest(b"\x00")


# ----------------------------------------------------------------- batches and arrays


@pytest.mark.parametrize(
    ("capacity", "start", "batch"), [(8, 0, 3), (8, 6, 5), (4, 1, 11), (5, 0, 5)]
)
def test_append_many_equals_repeated_append(
    tmp_path: Path, capacity: int, start: int, batch: int
) -> None:
    first = [rec(100 + i, i) for i in range(start)]
    slots = [rec(i, 1000 + i) for i in range(batch)]
    with RingLog.open(tmp_path / "one.vrrl", capacity) as one:
        for slot in first + slots:
            one.append(slot)
    with RingLog.open(tmp_path / "many.vrrl", capacity) as many:
        many.append_many(first)
        many.append_many(slots)
    assert (tmp_path / "one.vrrl").read_bytes() == (tmp_path / "many.vrrl").read_bytes()


def test_append_many_accepts_a_structured_array(log_path: Path) -> None:
    array = np.zeros(3, dtype=[("slot_idx", "<u4"), ("epoch", "<u4"), ("args", "<u4", (4,))])
    array["slot_idx"] = [1, 2, 3]
    array["epoch"] = [7, 8, 9]
    array["args"][:, 2] = 5
    with RingLog.open(log_path, 4) as log:
        log.append_many(array)
        assert log.cursor == 3
        slots = log.replay_all()
    assert [(s.slot_idx, s.epoch, s.args) for s in slots] == [
        (1, 7, (0, 0, 5, 0)),
        (2, 8, (0, 0, 5, 0)),
        (3, 9, (0, 0, 5, 0)),
    ]


def test_append_many_of_records_keeps_failures(log_path: Path) -> None:
    failure = ReplayFailureEvidence(2, ReplayFailureClass.TRANSIENT_QUEUE, 5, 99)
    records = [ReplayRecord(rec(1, 1)), ReplayRecord(rec(2, 2), failure)]
    with RingLog.open(log_path, 4) as log:
        log.append_many(records)
        assert log.replay_records() == records


def test_records_returns_publish_order_copy(log_path: Path) -> None:
    with RingLog.open(log_path, 3) as log:
        for i in range(4):
            log.append(rec(i, i))
        array = log.records()
        assert array.dtype == RING_RECORD_DTYPE
        assert array["slot_idx"].tolist() == [1, 2, 3]
        array["epoch"] = 0  # a copy: the log is untouched
        assert [s.epoch for s in log.replay_all()] == [1, 2, 3]
        assert len(log) == 3


def test_read_only_open_and_no_capacity(log_path: Path) -> None:
    with RingLog.open(log_path, 4) as log:
        log.append(rec(1, 1))
    before = log_path.read_bytes()
    with RingLog.open(log_path, read_only=True) as log:
        assert log.capacity == 4
        assert log.replay_all() == [rec(1, 1)]
        with pytest.raises(ReadOnlyLog, match=r"opened read_only.*Fix:"):
            log.append(rec(2, 2))
        evidence = ReplayFailureEvidence(1, ReplayFailureClass.DEVICE_LOSS, 2, 3)
        with pytest.raises(ReadOnlyLog):
            log.append_with_failure(rec(2, 2), evidence)
        with pytest.raises(ReadOnlyLog):
            log.append_many([rec(2, 2)])
    assert log_path.read_bytes() == before


def slot_with(**fields: object) -> RecordedSlot:
    values: dict[str, object] = {
        "timestamp_ns": 0, "slot_idx": 0, "tenant_id": 0, "opcode": 0, "args": (0, 0, 0, 0),
        "epoch": 0,
    }  # fmt: skip
    values.update(fields)
    return RecordedSlot(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"timestamp_ns": -1}, "timestamp_ns=-1"),
        ({"tenant_id": 2**32}, "tenant_id=4294967296"),
        ({"args": (1, 2, 3)}, r"args=\(1, 2, 3\) is not four u32"),
        ({"args": (1, 2, -3, 4)}, r"args\[2\]=-3"),
        ({"epoch": 2**32}, "epoch=4294967296"),
    ],
)
def test_appending_a_field_that_does_not_fit_names_it(
    log_path: Path, fields: dict[str, object], named: str
) -> None:
    bad = slot_with(**fields)
    with RingLog.open(log_path, 4) as log:
        log.append(rec(1, 1))
        with pytest.raises(RecordValueError, match=rf"{named}.*Fix:"):
            log.append(bad)
        evidence = ReplayFailureEvidence(1, ReplayFailureClass.DEVICE_LOSS, 2, 3)
        with pytest.raises(RecordValueError, match=named):
            log.append_with_failure(bad, evidence)
        with pytest.raises(RecordValueError, match=rf"record #1: {named}"):
            log.append_many([rec(2, 2), bad])
        assert log.replay_all() == [rec(1, 1)] and log.cursor == 1
    with RingLog.open(log_path, 4) as log:
        with pytest.raises(RecordValueError, match="backend_code=-1"):
            log.append_with_failure(rec(2, 2), ReplayFailureEvidence(1, 1, -1, 0))  # type: ignore[arg-type]
        with pytest.raises(RecordValueError, match=r"epoch=1\.5"):
            log.append(slot_with(epoch=1.5))
        assert log.replay_all() == [rec(1, 1)]


def test_refused_append_in_a_full_ring_loses_nothing(log_path: Path) -> None:
    failure = ReplayFailureEvidence(1, ReplayFailureClass.PROGRAM_BUG, 2, 3)
    with RingLog.open(log_path, 2) as log:
        log.append(rec(1, 1))
        log.append(rec(2, 2))
        # A field that fits no word, args of the wrong length, failure evidence that does
        # not fit: each is refused before a byte reaches the log, so the oldest record stays.
        with pytest.raises(RecordValueError):
            log.append(slot_with(epoch=-1))
        with pytest.raises(RecordValueError, match="args"):
            log.append(slot_with(args=(1, 2)))
        with pytest.raises(RecordValueError):
            log.append_with_failure(slot_with(args=(0, 0, 0, 2**32)), failure)
        assert log.replay_all() == [rec(1, 1), rec(2, 2)] and log.cursor == 0
        log.append(rec(3, 3))
        assert log.replay_all() == [rec(2, 2), rec(3, 3)]


def test_append_many_range_checks_foreign_arrays(log_path: Path) -> None:
    array = np.zeros(3, [("timestamp_ns", "<i8"), ("epoch", "<i8"), ("args", "<i8", (4,))])
    array["epoch"][2] = -5
    with RingLog.open(log_path, 4) as log:
        with pytest.raises(RecordValueError, match=r"record #2: epoch=-5"):
            log.append_many(array)
        array["epoch"][2] = 0
        array["args"][1, 3] = 2**40
        with pytest.raises(RecordValueError, match=r"record #1: args\[3\]=1099511627776"):
            log.append_many(array)
        array["args"][1, 3] = 7
        log.append_many(array)
        assert [s.args[3] for s in log.replay_all()] == [0, 7, 0]


def test_missing_file_without_capacity_is_an_io_error(log_path: Path) -> None:
    with pytest.raises(ReplayLogIoError) as info:
        RingLog.open(log_path)
    assert info.value.op == "open" and str(log_path) in str(info.value)
    assert "Fix:" in str(info.value)


def test_closed_log_refuses_use(log_path: Path) -> None:
    log = RingLog.open(log_path, 2)
    log.close()
    log.close()
    assert log.closed
    with pytest.raises(ReplayLogError, match=r"closed.*Fix:"):
        log.append(rec(1, 1))


# ----------------------------------------------------------------- beyond the reference


@pytest.mark.parametrize("keep", [0, 5, 31, 32 + 64, 32 + 64 * 3 + 10])
def test_truncated_file_names_expected_and_actual_sizes(log_path: Path, keep: int) -> None:
    with RingLog.open(log_path, 4) as log:
        log.append(rec(1, 1))
    log_path.write_bytes(log_path.read_bytes()[:keep])
    with pytest.raises(TruncatedLog) as info:
        RingLog.open(log_path, 4)
    expected = HEADER_BYTES if keep < HEADER_BYTES else HEADER_BYTES + 4 * RECORD_BYTES
    assert (info.value.expected, info.value.actual) == (expected, keep)
    message = str(info.value)
    assert str(log_path) in message and str(expected) in message and "Fix:" in message


def test_wrong_version_rejected(log_path: Path) -> None:
    log_path.write_bytes(struct.pack("<8sIIQQ", LOG_MAGIC, 2, 0, 1, 0) + bytes(64))
    with pytest.raises(HeaderMismatch, match="version 2"):
        RingLog.open(log_path, 1)


def test_corrupted_record_magic_names_the_record(log_path: Path) -> None:
    with RingLog.open(log_path, 4) as log:
        log.append(rec(1, 1))
        log.append(rec(2, 2))
    data = bytearray(log_path.read_bytes())
    data[HEADER_BYTES + RECORD_BYTES : HEADER_BYTES + RECORD_BYTES + 4] = b"\x01\x02\x03\x04"
    log_path.write_bytes(bytes(data))
    with RingLog.open(log_path, 4) as log, pytest.raises(HeaderMismatch) as info:
        log.replay_all()
    assert "record 1 at byte offset 96" in str(info.value)


def test_stored_cursor_is_taken_modulo_capacity(log_path: Path) -> None:
    with RingLog.open(log_path, 4) as log:
        for i in range(3):
            log.append(rec(i, i))
    data = bytearray(log_path.read_bytes())
    data[24:32] = (4 * 1000 + 1).to_bytes(8, "little")
    log_path.write_bytes(bytes(data))
    with RingLog.open(log_path, 4) as log:
        assert log.cursor == 1
        assert [s.slot_idx for s in log.replay_all()] == [1, 2, 0]


def test_record_magic_constant() -> None:
    assert RECORD_MAGIC == 0xDEADBEEF


@pytest.mark.parametrize(
    ("capacity", "error"),
    [(0, ZeroCapacity), (-1, ZeroCapacity), (MAX_REPLAY_RECORDS + 1, CapacityOverflow)],
)
def test_a_requested_capacity_error_names_the_path(
    log_path: Path, capacity: int, error: type[Exception]
) -> None:
    with pytest.raises(error, match=rf"{capacity}.*requested for '{log_path}'.*Fix:"):
        RingLog.open(log_path, capacity)
    assert not log_path.exists()
