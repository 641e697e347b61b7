"""Fast paths of the journals, the megakernel ring and the replication log against the
plain code they stand in for (the fleet's are in ``test_fleet_fastpaths.py``).

* ``group_batch``'s column check against the per-message check, on generated batches
  with and without a bad field: same groups, or the same error;
* ``check_continuity``'s list comparison against the per-message rule;
* ``put_at_ring`` (two slice copies) against a fancy-indexed scatter;
* ``sync_events`` and ``SequencedLog.read`` against ``SyncEvent(...)`` built one by one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_replay.journal.errors import JournalError, SequenceNrConflict
from pytest_replay.journal.persistent import (
    PersistentRepr,
    _group_checked,
    check_continuity,
    group_batch,
)
from pytest_replay.megakernel.backend import put_at_ring
from pytest_replay.replication.log import SequencedLog
from pytest_replay.replication.messages import SyncEvent, sync_events

# --------------------------------------------------------------------------- journals

_BAD_VALUES: dict[str, list[Any]] = {
    "persistence_id": ["", 7, b"p"],
    "sequence_nr": [0, -1, True, 2**63, 1.0],
    "payload": ["text", bytearray(b"x")],
    "manifest": [None, b"m"],
    "writer_uuid": [3],
    "deleted": [0, 1, None],
    "tags": [["a"], ("a", 1), "a"],
}


@st.composite
def batches(draw: st.DrawFn) -> list[PersistentRepr]:
    pids = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=0, max_size=12))
    seqs: dict[str, int] = {}
    batch = []
    for pid in pids:
        seqs[pid] = seqs.get(pid, 0) + 1
        tags = draw(st.sampled_from([(), ("t",), ("t", "u")]))
        batch.append(PersistentRepr(pid, seqs[pid], b"x", "m", "w", draw(st.booleans()), tags))
    if batch and draw(st.booleans()):
        # Spoil one field of one message, bypassing the dataclass __init__ (as a
        # caller's own object or a subclass could).
        index = draw(st.integers(0, len(batch) - 1))
        name = draw(st.sampled_from(sorted(_BAD_VALUES)))
        object.__setattr__(batch[index], name, draw(st.sampled_from(_BAD_VALUES[name])))
    return batch


def _outcome(run: Any) -> Any:
    try:
        return ("groups", {pid: [id(item) for item in items] for pid, items in run().items()})
    except JournalError as exc:
        return ("error", type(exc), str(exc))


@given(batches())
def test_group_batch_matches_the_per_message_check(batch: list[PersistentRepr]) -> None:
    assert _outcome(lambda: group_batch(batch)) == _outcome(lambda: _group_checked(batch))
    # Group order is first-seen order.
    if _outcome(lambda: group_batch(batch))[0] == "groups":
        seen = list(dict.fromkeys(item.persistence_id for item in batch))
        assert list(group_batch(batch)) == seen


def test_group_batch_returns_new_lists() -> None:
    batch = [PersistentRepr("p", 1, b"x"), PersistentRepr("p", 2, b"y")]
    groups = group_batch(batch)
    assert groups == {"p": batch} and groups["p"] is not batch


@given(st.integers(0, 5), st.lists(st.integers(1, 9), max_size=8))
def test_check_continuity_matches_the_rule(highest: int, seqs: list[int]) -> None:
    items = [PersistentRepr("p", seq, b"") for seq in seqs]
    expected = highest + 1
    first_bad = None
    for seq in seqs:
        if seq != expected:
            first_bad = seq
            break
        expected += 1
    if first_bad is None:
        check_continuity("p", highest, items)
    else:
        with pytest.raises(SequenceNrConflict, match=f"\\b{first_bad}\\b"):
            check_continuity("p", highest, items)


# --------------------------------------------------------------------------- megakernel


@given(st.integers(1, 9), st.integers(0, 30), st.data())
def test_put_at_ring_matches_a_fancy_indexed_scatter(
    slots: int, first: int, data: st.DataObject
) -> None:
    n = data.draw(st.integers(0, slots))
    values = np.arange(100, 100 + 2 * n, dtype=np.uint32).reshape(n, 2)
    ours = np.zeros((slots, 2), dtype=np.uint32)
    put_at_ring(ours, first, values)
    expected = np.zeros((slots, 2), dtype=np.uint32)
    expected[np.arange(first, first + n) % slots] = values
    np.testing.assert_array_equal(ours, expected)
    # A strided column view works the same (the ring's STATUS word).
    column = np.zeros((slots, 3), dtype=np.uint32)
    put_at_ring(column[:, 1], first, values[:, 0])
    np.testing.assert_array_equal(column[:, 1], expected[:, 0])


def test_put_at_ring_refuses_more_rows_than_slots() -> None:
    with pytest.raises(ValueError, match="do not fit"):
        put_at_ring(np.zeros(2), 0, np.zeros(3))


# --------------------------------------------------------------------------- replication


@given(st.integers(0, 10**6), st.lists(st.binary(max_size=4), max_size=6))
def test_sync_events_equal_events_built_one_by_one(first: int, payloads: list[bytes]) -> None:
    built = sync_events(first, payloads)
    assert built == tuple(SyncEvent(first + i, p) for i, p in enumerate(payloads))
    assert all(type(event) is SyncEvent for event in built)


@given(
    st.lists(st.binary(min_size=0, max_size=5), min_size=1, max_size=12),
    st.data(),
)
def test_log_read_takes_what_fits_and_at_least_one(
    payloads: list[bytes], data: st.DataObject
) -> None:
    log = SequencedLog("fast")
    log.append_batch(log.next_seq, payloads)
    first = log.first_retained_seq
    since = data.draw(st.integers(first, log.next_seq - 1))
    limit = data.draw(st.integers(0, 20))
    # The rule, one event at a time.
    expected: list[SyncEvent] = []
    used = 0
    for seq in range(since, log.next_seq):
        payload = payloads[seq - first]
        if expected and used + len(payload) > limit:
            break
        expected.append(SyncEvent(seq, payload))
        used += len(payload)
    assert log.read(since, limit) == tuple(expected)
