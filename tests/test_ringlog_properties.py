"""Properties of the ring log: a bounded-deque model (with corrupt-and-reopen steps), and
corruption that only ever raises the documented errors."""

from __future__ import annotations

import collections
import shutil
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from pytest_replay.diff import first_divergence
from pytest_replay.ringlog import (
    HEADER_BYTES,
    RECORD_BYTES,
    RecordedSlot,
    ReplayFailureClass,
    ReplayFailureEvidence,
    ReplayLogError,
    ReplayRecord,
    RingLog,
    encode_ring_image,
    read_ring_image,
    records_to_array,
)
from pytest_replay.strategies import corrupt_ring

u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
slots = st.builds(
    RecordedSlot,
    timestamp_ns=u64,
    slot_idx=u32,
    tenant_id=u32,
    opcode=u32,
    args=st.tuples(u32, u32, u32, u32),
    epoch=u32,
)
failures = st.builds(
    ReplayFailureEvidence,
    slot_status=st.integers(1, 2**32 - 1),  # non-zero: "all zero" means no evidence
    failure_class=st.sampled_from(ReplayFailureClass),
    backend_error_code=u32,
    output_digest=u64,
)


class RingLogModel(RuleBasedStateMachine):
    """The log behaves as a deque bounded by its capacity, across reopen."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="ringlog-model-"))
        self.path = self.folder / "model.vrrl"
        self.log: RingLog | None = None
        self.model: collections.deque[ReplayRecord] = collections.deque()
        self.capacity = 0

    @precondition(lambda self: self.log is None and self.capacity == 0)
    @rule(capacity=st.integers(1, 9))
    def create(self, capacity: int) -> None:
        self.capacity = capacity
        self.log = RingLog.open(self.path, capacity)
        self.model = collections.deque(maxlen=capacity)

    @precondition(lambda self: self.log is not None)
    @rule(slot=slots)
    def append(self, slot: RecordedSlot) -> None:
        assert self.log is not None
        self.log.append(slot)
        self.model.append(ReplayRecord(slot))

    @precondition(lambda self: self.log is not None)
    @rule(slot=slots, failure=failures)
    def append_with_failure(self, slot: RecordedSlot, failure: ReplayFailureEvidence) -> None:
        assert self.log is not None
        self.log.append_with_failure(slot, failure)
        self.model.append(ReplayRecord(slot, failure))

    @precondition(lambda self: self.log is not None)
    @rule(batch=st.lists(st.builds(ReplayRecord, slots, st.none() | failures), max_size=25))
    def append_many(self, batch: list[ReplayRecord]) -> None:
        assert self.log is not None
        self.log.append_many(batch)
        self.model.extend(batch)

    @precondition(lambda self: self.log is not None)
    @rule(requested=st.integers(1, 9))
    def close_and_reopen(self, requested: int) -> None:
        assert self.log is not None
        cursor = self.log.cursor
        self.log.close()
        self.log = RingLog.open(self.path, requested)  # the stored capacity wins
        assert self.log.capacity == self.capacity
        assert self.log.cursor == cursor

    @precondition(lambda self: self.log is not None)
    @rule()
    def replay(self) -> None:
        assert self.log is not None
        assert self.log.replay_records() == list(self.model)
        assert self.log.replay_all() == [record.slot for record in self.model]

    @precondition(lambda self: self.log is not None)
    @rule(data=st.data())
    def corrupt_and_reopen(self, data: st.DataObject) -> None:
        """Damage the closed file in one labelled way; reopening must raise exactly the
        documented error or replay something else. Then restore it and go on."""
        assert self.log is not None
        self.log.close()
        original = self.path.read_bytes()
        case = data.draw(corrupt_ring(original, list(self.model)), label="corruption")
        self.path.write_bytes(case.data)
        try:
            with RingLog.open(self.path, self.capacity, read_only=True) as damaged:
                replayed = damaged.records()
        except ReplayLogError as exc:
            assert type(exc) is case.expected_error, (case.corruption, exc)
            assert "Fix:" in str(exc)
        else:
            assert case.expected_error is None, case.corruption
            expected = records_to_array(list(self.model))
            assert first_divergence(expected, replayed, ignore=()) is not None, case.corruption
        self.path.write_bytes(original)
        self.log = RingLog.open(self.path, self.capacity)
        assert self.log.replay_records() == list(self.model)

    @invariant()
    def image_matches_model(self) -> None:
        if self.log is not None:
            image = read_ring_image(self.path.read_bytes())
            assert len(image.records) == len(self.model)
            assert image.cursor == self.log.cursor

    def teardown(self) -> None:
        if self.log is not None:
            self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)


TestRingLogModel = RingLogModel.TestCase
# Corrupt-and-reopen steps rewrite the file twice; shorter runs keep the ci profile fast
# (the stress profile still scales the number of runs).
TestRingLogModel.settings = settings(stateful_step_count=30)


@st.composite
def valid_images(draw: st.DrawFn) -> bytes:
    capacity = draw(st.integers(1, 6))
    records = draw(st.lists(st.builds(ReplayRecord, slots, st.none() | failures), max_size=14))
    return encode_ring_image(capacity, records)


def _decode(path: Path) -> None:
    with RingLog.open(path, 4) as log:
        log.replay_records()


@given(image=valid_images(), cut=st.integers(0, 1000))
def test_truncation_raises_only_documented_errors(tmp_path_factory, image: bytes, cut: int) -> None:
    path = tmp_path_factory.mktemp("trunc") / "log.vrrl"
    path.write_bytes(image[: min(cut, len(image) - 1)])
    try:
        _decode(path)
    except ReplayLogError as exc:
        assert "Fix:" in str(exc) and str(path) in str(exc)
    else:
        raise AssertionError("a truncated log must never replay")


@given(
    image=valid_images(),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), min_size=1, max_size=6),
)
def test_random_corruption_raises_only_documented_errors(
    tmp_path_factory, image: bytes, flips: list[tuple[int, int]]
) -> None:
    data = bytearray(image)
    for offset, mask in flips:
        data[offset % len(data)] ^= mask
    path = tmp_path_factory.mktemp("flip") / "log.vrrl"
    path.write_bytes(bytes(data))
    try:
        _decode(path)
    except ReplayLogError as exc:
        assert "Fix:" in str(exc)


@given(data=st.binary(max_size=HEADER_BYTES + 4 * RECORD_BYTES))
def test_garbage_raises_only_documented_errors(tmp_path_factory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("garbage") / "log.vrrl"
    path.write_bytes(data)
    try:
        _decode(path)
    except ReplayLogError as exc:
        assert "Fix:" in str(exc)
