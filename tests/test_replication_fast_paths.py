"""The simulator's and the log's fast paths against the plain code they replace.

Each speed-up keeps a plain reference here: a chunk found by bisecting the log's
running byte ends against a walk over the payloads, events appended as received
against payloads appended one batch at a time, and the jitter drawn from
``getrandbits`` against ``random.Random.randint``.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_replay.replication.catchup import (
    apply_sync_response,
    estimate_response_bytes,
    estimate_served_bytes,
    handle_sync_request,
)
from pytest_replay.replication.errors import (
    AppendFailedError,
    ApplyError,
    GapBeforeChunkError,
    LogFullError,
    LogSequenceError,
    NonContiguousChunkError,
    StaleChunkError,
)
from pytest_replay.replication.log import SequencedLog
from pytest_replay.replication.messages import SyncEvent, SyncRequest, SyncResponse
from pytest_replay.replication.sim import randint_from_bits


def walked_chunk(log: SequencedLog, since_seq: int, max_bytes: int) -> list[tuple[int, bytes]]:
    """The chunk a leader serves, found the plain way: payload by payload."""
    chunk: list[tuple[int, bytes]] = []
    used = 0
    for seq, payload in log.entries():
        if seq < since_seq:
            continue
        if chunk and used + len(payload) > max_bytes:
            break
        used += len(payload)
        chunk.append((seq, payload))
    return chunk


ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.lists(st.binary(max_size=40), max_size=12)),
        st.tuples(st.just("trim"), st.integers(0, 30)),
        st.tuples(st.just("skip"), st.integers(0, 5)),
        st.tuples(st.just("sweep"), st.just(0)),
    ),
    max_size=40,
)


@given(ops, st.integers(0, 120), st.integers(0, 8), st.integers(1, 12))
def test_chunks_read_by_bisection_match_a_walk_over_the_payloads(
    steps: list[tuple[str, object]], max_bytes: int, since_back: int, retention: int
) -> None:
    log = SequencedLog("prop", retention_max_events=retention * 8)
    for op, arg in steps:
        if op == "append":
            log.append_batch(log.next_seq, arg)  # type: ignore[arg-type]
        elif op == "trim":
            log.trim_to(log.first_retained_seq + arg)  # type: ignore[operator]
        elif op == "skip":
            log.skip_to(log.next_seq + arg)  # type: ignore[operator]
        else:
            log.sweep_retention()
        first, tail = log.first_retained_seq, log.next_seq
        assert log.bytes_used == sum(len(p) for _, p in log.entries())
        for since in {first, max(first, tail - since_back), tail, tail + 1}:
            got = log.read(since, max_bytes)
            assert [(e.seq, e.payload) for e in got] == walked_chunk(log, since, max_bytes)
            assert all(type(e) is SyncEvent for e in got)
            served = handle_sync_request(log, SyncRequest(b"c", since, max_bytes, 7), b"c")
            if isinstance(served, SyncResponse):
                assert estimate_served_bytes(log, served) == estimate_response_bytes(served)


@given(st.lists(st.lists(st.binary(max_size=20), min_size=1, max_size=8), max_size=10))
def test_appending_received_events_equals_appending_their_payloads(
    batches: list[list[bytes]],
) -> None:
    plain, received = SequencedLog("plain"), SequencedLog("received")
    for payloads in batches:
        events = tuple(SyncEvent(plain.next_seq + i, p) for i, p in enumerate(payloads))
        assert received.append_events(events) == plain.append_batch(plain.next_seq, payloads)
        assert received.digest() == plain.digest() and received.bytes_used == plain.bytes_used
    for since in range(plain.next_seq + 1):
        assert received.read(since, 30) == plain.read(since, 30)


def test_received_events_are_checked_like_a_batch() -> None:
    log = SequencedLog("r", capacity_bytes=4)
    log.append(b"a")
    with pytest.raises(LogSequenceError, match="next seq is 1"):
        log.append_events((SyncEvent(2, b"b"),))
    with pytest.raises(LogSequenceError, match="not consecutive"):
        log.append_events((SyncEvent(1, b"b"), SyncEvent(3, b"c")))
    with pytest.raises(LogFullError, match="capacity"):
        log.append_events((SyncEvent(1, b"bcde"),))
    with pytest.raises(LogFullError, match="capacity"):
        log.append_batch(1, [b"b", b"cdef"])
    # Nothing of a refused batch stays behind.
    assert log.bytes_used == 1 and log.read(0, 99) == (SyncEvent(0, b"a"),)
    assert log.payload_bytes(0, 9) == 1
    assert log.append_events(()) == 1 and log.payloads(0, 9) == [b"a"]
    # A payload that is not plain bytes is copied, and the log keeps events of its own.
    mutable = bytearray(b"x")
    assert log.append_events((SyncEvent(1, mutable),)) == 2  # type: ignore[arg-type]
    mutable[0] = ord("y")
    assert log.entry(1) == b"x" and log.read(1, 9) == (SyncEvent(1, b"x"),)


@pytest.mark.parametrize("seed", range(5))
def test_randint_from_bits_draws_what_randint_draws(seed: int) -> None:
    plain, fast = random.Random(seed), random.Random(seed)
    spans = [(0, 0), (0, 1), (0, 3), (1, 50), (0, 7), (1, 8), (5, 1_000), (0, 2**40)]
    for i in range(2_000):
        lo, hi = spans[i % len(spans)]
        assert randint_from_bits(fast.getrandbits, lo, hi) == plain.randint(lo, hi)
    assert fast.random() == plain.random()


def plain_apply(log: SequencedLog, response: SyncResponse) -> int:
    """``apply_sync_response`` as it was: the whole chunk's numbering, then the gap and
    stale checks, then the fresh payloads appended as a batch."""
    local_next = log.next_seq
    events, first = response.events, response.first_seq
    if not events:
        return local_next
    for offset, event in enumerate(events):
        if event.seq != first + offset:
            raise NonContiguousChunkError(f"event #{offset}")
    if first > local_next:
        raise GapBeforeChunkError(first, local_next, divergence_suspected=False)
    if first + len(events) <= local_next:
        raise StaleChunkError("stale")
    fresh = events[local_next - first :]
    try:
        return log.append_batch(local_next, [event.payload for event in fresh])
    except LogFullError as exc:
        raise AppendFailedError(str(exc)) from exc


@given(
    st.integers(0, 6),
    st.integers(0, 9),
    st.lists(st.binary(max_size=6), max_size=8),
    st.lists(st.integers(0, 7), max_size=2),
    st.sampled_from([None, 10, 40]),
)
def test_applying_a_chunk_matches_the_plain_apply(
    held: int, first: int, payloads: list[bytes], misnumbered: list[int], capacity: int | None
) -> None:
    logs = [SequencedLog(name, capacity_bytes=capacity) for name in ("fast", "plain")]
    for log in logs:
        log.append_batch(0, [b"h"] * held)
    seqs = list(range(first, first + len(payloads)))
    for index in misnumbered:
        if index < len(seqs):
            seqs[index] += 1
    chunk = SyncResponse(b"c", first, 0, tuple(map(SyncEvent, seqs, payloads)), 9)
    outcomes: list[object] = []
    for log in logs:
        try:
            if log.name == "fast":
                outcomes.append(apply_sync_response(log, chunk, b"c"))
            else:
                outcomes.append(plain_apply(log, chunk))
        except ApplyError as exc:
            outcomes.append(type(exc))
    assert outcomes[0] == outcomes[1]
    assert logs[0].digest() == logs[1].digest() and logs[0].bytes_used == logs[1].bytes_used
