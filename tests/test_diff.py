"""first_divergence over ring records."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_replay.diff import RECORD_FIELDS, Divergence, first_divergence
from pytest_replay.ringlog import (
    RING_RECORD_DTYPE,
    RecordedSlot,
    ReplayFailureClass,
    ReplayFailureEvidence,
    ReplayRecord,
    records_to_array,
)


def slot(i: int, epoch: int = 0, ts: int = 0) -> RecordedSlot:
    return RecordedSlot(ts, i, 1, 0x40 + i, (i, i + 1, i + 2, i + 3), epoch)


def test_equal_sequences_have_no_divergence() -> None:
    a = [slot(i, i) for i in range(10)]
    assert first_divergence(a, list(a)) is None
    assert first_divergence([], []) is None


def test_volatile_timestamp_is_ignored_by_default() -> None:
    a = [slot(i, i, ts=i) for i in range(5)]
    b = [slot(i, i, ts=1000 + i) for i in range(5)]
    assert first_divergence(a, b) is None
    assert first_divergence(a, b, ignore=()) == Divergence(0, "timestamp_ns", 0, 1000)


def test_names_index_field_and_values() -> None:
    a = [slot(i, i) for i in range(6)]
    b = list(a)
    b[4] = RecordedSlot(0, 4, 1, 0x44, (4, 5, 99, 7), 4)
    assert first_divergence(a, b) == Divergence(4, "args[2]", 6, 99)
    assert first_divergence(a, b, ignore=("args",)) is None


def test_failure_evidence_is_compared() -> None:
    failure = ReplayFailureEvidence(3, ReplayFailureClass.DEVICE_LOSS, 7, 0xABC)
    a = [ReplayRecord(slot(0)), ReplayRecord(slot(1), failure)]
    b = [ReplayRecord(slot(0)), ReplayRecord(slot(1), None)]
    assert first_divergence(a, b) == Divergence(1, "slot_status", 3, 0)


def test_length_mismatch() -> None:
    a = [slot(i) for i in range(5)]
    found = first_divergence(a, a[:3])
    assert found == Divergence(3, "length", 5, 3, "length")
    assert found is not None and "expected 5 records, got 3" in str(found)
    assert first_divergence(a[:2], a) == Divergence(2, "length", 2, 5, "length")


def test_value_difference_wins_over_length() -> None:
    a = [slot(i, i) for i in range(5)]
    b = [slot(i, i) for i in range(3)] + [slot(9, 9)]
    assert first_divergence(a, b) == Divergence(3, "slot_idx", 3, 9)


def test_unknown_ignore_field_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"unknown record field 'epoc'.*Fix:"):
        first_divergence([], [], ignore=("epoc",))


def test_large_arrays_across_blocks() -> None:
    n = 200_003
    a = np.zeros(n, RING_RECORD_DTYPE)
    a["magic"] = 0xDEADBEEF
    a["epoch"] = np.arange(n)
    b = a.copy()
    b["output_digest"][n - 2] = 2**63 + 5
    assert first_divergence(a, b) == Divergence(n - 2, "output_digest", 0, 2**63 + 5)


@given(
    st.lists(st.integers(0, 2**32 - 1), max_size=30),
    st.integers(0, 29),
    st.sampled_from(sorted(RECORD_FIELDS - {"magic", "args"})),
)
def test_matches_a_field_by_field_reference(epochs: list[int], at: int, field: str) -> None:
    left = records_to_array([slot(i, e) for i, e in enumerate(epochs)])
    right = left.copy()
    if epochs:
        at %= len(epochs)
        name, _, sub = field.partition("[")
        if sub:
            right[name][at, int(sub[0])] ^= 1
        else:
            right[name][at] ^= 1
    found = first_divergence(left, right, ignore=())
    if not epochs:
        assert found is None
    else:
        assert found is not None and (found.index, found.field) == (at, field)


def test_the_magic_word_is_not_compared() -> None:
    from pytest_replay.ringlog import RING_RECORD_DTYPE, records_to_array

    slots = [RecordedSlot(0, i, 1, 2, (i, 0, 0, 0), 0) for i in range(3)]
    by_hand = np.zeros(3, RING_RECORD_DTYPE)  # magic 0: only the fields were filled in
    for name in ("slot_idx", "tenant_id", "opcode", "args", "epoch"):
        by_hand[name] = records_to_array(slots)[name]
    assert first_divergence(slots, by_hand) is None
    assert first_divergence(by_hand, slots) is None
