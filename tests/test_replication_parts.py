"""The pure pieces: log, catch-up, tokens, back-off, budget, roles, coordinator, tracker,
election, tick, inbox and schedule validation."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_replay.replication.backoff import (
    CATCHUP_BACKOFF_CAP_MS,
    CATCHUP_BACKOFF_THRESHOLD,
    CatchupBackoff,
)
from pytest_replay.replication.budget import BandwidthBudget
from pytest_replay.replication.catchup import (
    SyncRequestNack,
    apply_sync_response,
    estimate_response_bytes,
    handle_sync_request,
)
from pytest_replay.replication.config import ReplicationConfig
from pytest_replay.replication.coordinator import ChannelIdentity, ReplicationCoordinator
from pytest_replay.replication.election import election_outcome, election_winner
from pytest_replay.replication.errors import (
    AppendFailedError,
    ChannelMismatchError,
    GapBeforeChunkError,
    InvalidTransitionError,
    LogFullError,
    LogSequenceError,
    NonContiguousChunkError,
    ReplicationError,
    ScheduleError,
    SkipRejectedError,
    StaleChunkError,
    TagSinkError,
)
from pytest_replay.replication.heartbeat import HeartbeatTracker
from pytest_replay.replication.inbox import (
    InboundHeartbeat,
    InboundSyncResponse,
    Shutdown,
    TwoLaneInbox,
    is_priority_event,
)
from pytest_replay.replication.log import SequencedLog
from pytest_replay.replication.messages import (
    BandwidthClass,
    ReplicaRole,
    SyncEvent,
    SyncHeartbeat,
    SyncNackError,
    SyncRequest,
    SyncResponse,
    channel_id_for,
)
from pytest_replay.replication.roles import (
    TransitionSignal,
    allowed_transitions,
    validate_transition,
)
from pytest_replay.replication.schedule import (
    Crash,
    Forgery,
    LinkSpec,
    NetworkSchedule,
    Partition,
    WriteStream,
    schedule_from_plain,
    schedule_to_plain,
)
from pytest_replay.replication.step import OutboundSyncRequest, TickInputs, tick
from pytest_replay.replication.tokens import (
    REQUEST_REGISTRY_SOFT_CAP,
    REQUEST_TTL_MS,
    OutstandingRequests,
)
from pytest_replay.strategies.replication import network_schedules

R = ReplicaRole
S = TransitionSignal
CID = channel_id_for("test/runtime")
OTHER = channel_id_for("test/other")


def filled(n: int, **options: object) -> SequencedLog:
    log = SequencedLog("t", **options)  # type: ignore[arg-type]
    for i in range(n):
        log.append(b"e%d" % i)
    return log


# ---------------------------------------------------------------- log


def test_log_append_trim_and_skip() -> None:
    log = filled(5)
    assert (log.first_retained_seq, log.next_seq, len(log)) == (0, 5, 5)
    assert log.trim_to(3) == 3 and log.entry(2) is None and log.entry(3) == b"e3"
    assert log.bytes_used == 4
    log.skip_to(9)
    assert (log.first_retained_seq, log.next_seq, len(log), log.bytes_used) == (9, 9, 0, 0)
    assert log.append(b"x") == 9
    with pytest.raises(SkipRejectedError, match="Fix:"):
        log.skip_to(3)


def test_log_skip_to_the_tail_keeps_the_retained_window() -> None:
    log = filled(5)
    log.trim_to(2)
    log.skip_to(5)  # no gap to leave: nothing changes
    assert (log.first_retained_seq, log.next_seq, log.bytes_used) == (2, 5, 6)
    assert log.payloads(2, 5) == [b"e2", b"e3", b"e4"]
    with pytest.raises(SkipRejectedError, match="persistent"):
        SequencedLog("p", allow_skip=False).skip_to(0)


def test_log_batch_must_start_at_the_tail_and_respects_capacity() -> None:
    log = SequencedLog("cap", capacity_bytes=4)
    with pytest.raises(LogSequenceError, match="next seq is 0"):
        log.append_batch(1, [b"a"])
    log.append_batch(0, [b"ab", b"cd"])
    with pytest.raises(LogFullError, match="capacity of 4 bytes"):
        log.append_batch(2, [b"e"])
    assert log.next_seq == 2  # all or nothing


def test_log_read_limits_bytes_but_always_makes_progress() -> None:
    log = SequencedLog("r")
    log.append_batch(0, [b"aaaa", b"bbbb", b"cc"])
    assert [e.seq for e in log.read(0, 8)] == [0, 1]
    assert [e.seq for e in log.read(0, 1)] == [0]
    with pytest.raises(LogSequenceError):
        filled(3).read(-1, 10)


def test_log_retention_and_persistent_skip() -> None:
    log = filled(10, retention_max_events=3)
    assert log.sweep_retention() == 7 and log.payloads(0, 10) == [b"e7", b"e8", b"e9"]
    with pytest.raises(SkipRejectedError, match="persistent"):
        SequencedLog("p", allow_skip=False).skip_to(5)
    with pytest.raises(LogSequenceError):
        SequencedLog("bad", retention_max_events=0)


@given(st.lists(st.sampled_from(["append", "trim", "skip"]), max_size=60))
def test_log_window_stays_contiguous(ops: list[str]) -> None:
    log = SequencedLog("prop")
    shadow: dict[int, bytes] = {}
    for i, op in enumerate(ops):
        if op == "append":
            shadow[log.append(b"%d" % i)] = b"%d" % i
        elif op == "trim":
            log.trim_to(log.first_retained_seq + 2)
        else:
            log.skip_to(log.next_seq + 3)
        first, tail = log.first_retained_seq, log.next_seq
        assert first <= tail and len(log) == tail - first
        assert log.payloads(first, tail) == [shadow[s] for s in range(first, tail)]
        assert log.bytes_used == sum(len(shadow[s]) for s in range(first, tail))


# ---------------------------------------------------------------- catch-up


def test_handle_sync_request_outcomes() -> None:
    log = filled(10)
    log.trim_to(4)
    out = handle_sync_request(log, SyncRequest(CID, 6, 1024, 77), CID)
    assert isinstance(out, SyncResponse)
    assert (out.first_seq, len(out.events), out.request_id, out.leader_first_retained_seq) == (
        6,
        4,
        77,
        4,
    )
    assert handle_sync_request(log, SyncRequest(CID, 2, 1024), CID) == SyncRequestNack(
        SyncNackError.BAD_RANGE, 4, "seq 2 is below the first retained seq 4"
    )
    empty = handle_sync_request(log, SyncRequest(CID, 10, 1024), CID)
    assert isinstance(empty, SyncResponse) and empty.events == ()
    other = handle_sync_request(log, SyncRequest(OTHER, 6, 1024), CID)
    assert isinstance(other, SyncRequestNack)
    assert other.error_code is SyncNackError.CHANNEL_CLOSED


def chunk(first: int, payloads: list[bytes], retained: int = 0) -> SyncResponse:
    events = tuple(SyncEvent(first + i, p) for i, p in enumerate(payloads))
    return SyncResponse(CID, first, retained, events, 1)


def test_apply_sync_response_cases() -> None:
    log = filled(3)
    assert apply_sync_response(log, chunk(3, []), CID) == 3
    assert apply_sync_response(log, chunk(2, [b"e2", b"n3", b"n4"]), CID) == 5  # overlap
    assert log.payloads(3, 5) == [b"n3", b"n4"]
    with pytest.raises(StaleChunkError):
        apply_sync_response(log, chunk(0, [b"a"]), CID)
    with pytest.raises(ChannelMismatchError):
        apply_sync_response(log, SyncResponse(OTHER, 5, 0, (SyncEvent(5, b"x"),), 1), CID)
    with pytest.raises(NonContiguousChunkError):
        apply_sync_response(log, SyncResponse(CID, 5, 0, (SyncEvent(6, b"x"),), 1), CID)
    with pytest.raises(GapBeforeChunkError) as trimmed:
        apply_sync_response(log, chunk(8, [b"x"], retained=8), CID)
    assert not trimmed.value.divergence_suspected and "Fix:" in str(trimmed.value)
    with pytest.raises(GapBeforeChunkError) as diverged:
        apply_sync_response(log, chunk(8, [b"x"], retained=2), CID)
    assert diverged.value.divergence_suspected
    full = SequencedLog("full", capacity_bytes=1)
    with pytest.raises(AppendFailedError, match="UnderCapacity"):
        apply_sync_response(full, chunk(0, [b"xy"]), CID)


def test_estimate_response_bytes() -> None:
    assert estimate_response_bytes(chunk(0, [])) == 47
    assert estimate_response_bytes(chunk(0, [b"abc", b""])) == 47 + 12 + 3 + 12


# ---------------------------------------------------------------- tokens and back-off


def test_outstanding_requests_take_once_expire_and_clear() -> None:
    reg = OutstandingRequests()
    reg.record(0x20, 1, 0)
    reg.record(0x20, 2, 0)
    reg.record(0x30, 3, 0)
    assert reg.take(0x20, 1, 10) and not reg.take(0x20, 1, 10)  # consumed
    assert not reg.take(0x30, 1, 10)  # right token, wrong leader
    assert not reg.take(0x20, 2, REQUEST_TTL_MS)  # expired
    reg.clear_leader(0x30)
    assert len(reg) == 0 and reg.leaders() == []


def test_outstanding_requests_soft_cap_drops_only_expired() -> None:
    reg = OutstandingRequests()
    for i in range(REQUEST_REGISTRY_SOFT_CAP):
        reg.record(0x20, i, 0 if i < 10 else REQUEST_TTL_MS)
    reg.record(0x20, 999, REQUEST_TTL_MS + 1)
    assert len(reg) == REQUEST_REGISTRY_SOFT_CAP - 10 + 1
    assert not reg.contains(0x20, 0) and reg.contains(0x20, 10)


def test_backoff_doubles_to_the_cap_and_gc() -> None:
    b = CatchupBackoff()
    windows = []
    for _ in range(CATCHUP_BACKOFF_THRESHOLD + 7):
        b.record_empty(0x20, 0)
        entry = b.entry(0x20)
        assert entry is not None
        windows.append(entry.backoff_until_ms)
    assert windows[:3] == [None] * 3
    assert windows[3:] == [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]
    b.record_empty(0x30, 0)
    b.gc_expired(30_000 + 2 * CATCHUP_BACKOFF_CAP_MS, 2 * CATCHUP_BACKOFF_CAP_MS)
    assert b.entry(0x20) is None and b.entry(0x30) is not None  # counting entries stay


# ---------------------------------------------------------------- budget


def test_budget_classes_refill_and_refund() -> None:
    budget = BandwidthBudget(0.5, 1_000, 0)
    assert budget.try_consume(600, 0) and not budget.try_consume(600, 0)
    assert budget.available(1_000) == 900  # 500 bytes refilled over one second
    assert not budget.try_consume_with_class(300, BandwidthClass.BACKGROUND, 1_000, 0.3)
    assert budget.try_consume_with_class(100, BandwidthClass.BACKGROUND, 1_000, 0.3)
    budget.refund(10_000)
    assert budget.available(1_000) == 1_000  # capped
    with pytest.raises(ScheduleError):
        BandwidthBudget(float("nan"), 1, 0)


# ---------------------------------------------------------------- roles and coordinator


def test_transition_matrix() -> None:
    validate_transition(R.REPLICA, R.CANDIDATE, S.LEADER_BEHIND)
    for role in R:
        validate_transition(role, R.IDLE, S.CHANNEL_CLOSE)
    with pytest.raises(InvalidTransitionError, match="Fix: from IDLE use one of: "):
        validate_transition(R.IDLE, R.LEADER, S.ELECTION_WON)
    assert allowed_transitions(R.IDLE) == [
        (R.IDLE, S.CHANNEL_CLOSE),
        (R.REPLICA, S.CAPABILITY_SELECTED),
    ]


class Sink:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[tuple[str, int]] = []

    def announce_chain(self, origin_hash: int, tip_seq: int) -> None:
        self.calls.append(("announce", tip_seq))
        if self.fail:
            raise OSError("down")

    def withdraw_chain(self, origin_hash: int) -> None:
        self.calls.append(("withdraw", origin_hash))


def test_coordinator_side_effects_observers_and_errors() -> None:
    sink = Sink()
    coord = ReplicationCoordinator(ChannelIdentity("c", 7), ReplicationConfig(), sink)
    changes = []
    coord.add_observer(changes.append)
    coord.record_tail_seq(5)
    coord.record_tail_seq(3)  # monotonic
    coord.transition_to(R.REPLICA, S.CAPABILITY_SELECTED)
    assert coord.transition_to(R.IDLE, S.CHANNEL_CLOSE) is not None
    assert coord.transition_to(R.IDLE, S.CHANNEL_CLOSE) is None  # idempotent, no side effect
    assert sink.calls == [("announce", 5), ("withdraw", 7)]
    assert [(c.source, c.target) for c in changes] == [(R.IDLE, R.REPLICA), (R.REPLICA, R.IDLE)]
    with pytest.raises(InvalidTransitionError):
        coord.transition_to(R.LEADER, S.ELECTION_WON)
    assert coord.role is R.IDLE
    failing = ReplicationCoordinator(ChannelIdentity("c", 7), tag_sink=Sink(fail=True))
    with pytest.raises(TagSinkError, match="role moved IDLE -> REPLICA"):
        failing.transition_to(R.REPLICA, S.CAPABILITY_SELECTED)
    assert failing.role is R.REPLICA  # moved despite the failing side effect


def test_errors_share_the_root() -> None:
    from pytest_replay.errors import ReplayError

    assert issubclass(ReplicationError, ReplayError)
    with pytest.raises(ScheduleError, match="Fix:"):
        ReplicationConfig(background_fraction=1.5)


# ---------------------------------------------------------------- tracker, election, tick


def test_tracker_belief_silence_and_health() -> None:
    t = HeartbeatTracker(100, 3, now_ms=0)
    assert not t.leader_silent(299) and t.leader_silent(300)  # no leader heard at all
    t.record_heartbeat(0x20, R.LEADER, 5, 250)
    assert t.believed_leader() == 0x20 and not t.leader_silent(500)
    assert t.leader_silent(550) and t.healthy_peers(549) == frozenset({0x20})
    t.record_heartbeat(0x20, R.REPLICA, 5, 560)  # stepped down: belief gone, silence restarts
    assert t.believed_leader() is None and not t.leader_silent(800) and t.leader_silent(860)
    assert t.peer_lag(0x99, 0) is None and t.peer_tail_seqs() == [(0x20, 5)]


def test_election_rtt_then_node_id() -> None:
    rtt = {1: 10, 2: 5, 3: 5, 4: None}.get
    assert (
        election_winner(9, [1, 2, 3, 4, 9], lambda p: 0 if p == 9 else rtt(p), lambda p: True) == 9
    )
    assert election_winner(9, [1, 2, 3, 4], rtt, lambda p: True) == 2  # tie on RTT: lower id
    assert election_winner(9, [1, 2, 3], rtt, lambda p: p == 1) == 1
    assert election_winner(9, [4], rtt, lambda p: True) is None
    lost = election_outcome(5, [1, 5], lambda p: 0, lambda p: True)
    assert lost is not None and (lost.target, lost.signal) == (R.REPLICA, S.ELECTION_LOST)


def tick_inputs(role: R, tracker: HeartbeatTracker, tail: int = 0, now: int = 0) -> TickInputs:
    return TickInputs(
        1, role, CID, tail, (1, 2, 3, 2), tracker, 0, 4096, now, BandwidthClass.FOREGROUND
    )


def test_tick_outcomes_by_role() -> None:
    tracker = HeartbeatTracker(100, now_ms=0)
    assert tick(tick_inputs(R.IDLE, tracker)).outbound == ()
    lead = tick(tick_inputs(R.LEADER, tracker, now=500))
    assert [o.target for o in lead.outbound] == [2, 3] and lead.transition is None
    silent = tick(tick_inputs(R.REPLICA, tracker, now=300))
    assert silent.transition is not None and silent.transition.signal is S.MISSED_HEARTBEATS
    tracker.record_heartbeat(2, R.LEADER, 9, 290)
    catch = tick(tick_inputs(R.REPLICA, tracker, tail=4, now=300))
    [req] = [o for o in catch.outbound if isinstance(o, OutboundSyncRequest)]
    assert (req.target, req.msg.since_seq, req.msg.request_id) == (2, 4, 0)
    assert not [
        o
        for o in tick(tick_inputs(R.REPLICA, tracker, 9, 300)).outbound
        if isinstance(o, OutboundSyncRequest)
    ]


# ---------------------------------------------------------------- inbox


def test_inbox_lanes() -> None:
    inbox = TwoLaneInbox(capacity=1, priority_capacity=1)
    beat = InboundHeartbeat(2, SyncHeartbeat(CID, 0, R.REPLICA, 0))
    resp = InboundSyncResponse(2, SyncResponse(CID, 0, 0, (), 0))
    assert is_priority_event(Shutdown()) and is_priority_event(resp)
    assert not is_priority_event(beat)
    assert inbox.try_push(beat) is None and inbox.try_push(beat) is beat
    assert inbox.try_push(resp) is None and inbox.lane_full(resp)
    assert inbox.lengths() == (1, 1)
    assert inbox.pop_priority() is resp and inbox.pop_normal() is beat
    inbox.close()
    assert inbox.try_push(beat) is beat


def test_inbox_push_waits_for_room_in_order() -> None:
    inbox = TwoLaneInbox(capacity=1, priority_capacity=1)
    beats = [InboundHeartbeat(2, SyncHeartbeat(CID, tail, R.REPLICA, 0)) for tail in range(3)]
    assert all(inbox.push(beat) for beat in beats)
    assert inbox.lengths() == (0, 1) and inbox.waiting() == (0, 2)
    assert inbox.try_push(beats[0]) is beats[0]
    assert [inbox.pop_normal() for _ in range(4)] == [*beats, None]
    inbox.push(beats[0])
    inbox.push(beats[1])
    inbox.clear()
    assert inbox.lengths() == inbox.waiting() == (0, 0)
    inbox.close()
    assert not inbox.push(beats[0]) and inbox.lengths() == (0, 0)


# ---------------------------------------------------------------- schedules


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: LinkSpec(latency_ms=0), "latency_ms=0"),
        (lambda: LinkSpec(drop=1.5), "not a probability"),
        (lambda: Partition(5, 5, (1,)), "start_ms < heal_ms"),
        (lambda: Crash(1, 10, 10), "restart_ms > at_ms"),
        (lambda: WriteStream(0, 0, 1, 1), "every_ms >= 1"),
        (lambda: Forgery(0, 9, 1, "gossip"), "kind one of"),  # type: ignore[arg-type]
        (lambda: NetworkSchedule(1, (), 10), "at least one node"),
        (lambda: NetworkSchedule(1, (1, 1), 10), "distinct"),
        (lambda: NetworkSchedule(1, (1, 2), 10, quiet_after_ms=20), "outside"),
        (
            lambda: NetworkSchedule(1, (1, 2), 100, partitions=(Partition(0, 90, (3,)),)),
            "outside",
        ),
        (
            lambda: NetworkSchedule(
                1, (1, 2), 100, quiet_after_ms=50, partitions=(Partition(0, 90, (1,)),)
            ),
            "heal by quiet_after_ms",
        ),
        (
            lambda: NetworkSchedule(1, (1, 2), 100, crashes=(Crash(1, 5, 20), Crash(1, 10, 30))),
            "still down",
        ),
        (
            lambda: NetworkSchedule(
                1, (1, 2), 100, quiet_after_ms=50, writes=(WriteStream(0, 10, 1, 10),)
            ),
            "finish writing",
        ),
        (
            lambda: NetworkSchedule(1, (1, 2), 100, forgeries=(Forgery(5, 2, 1, "heartbeat"),)),
            "outsider",
        ),
    ],
)
def test_schedule_validation(make: object, message: str) -> None:
    with pytest.raises(ScheduleError, match=message) as caught:
        make()  # type: ignore[operator]
    assert "Fix:" in str(caught.value)


@given(network_schedules())
def test_schedule_plain_round_trip(schedule: NetworkSchedule) -> None:
    assert schedule_from_plain(schedule_to_plain(schedule)) == schedule


def test_schedule_from_plain_rejects_bad_shapes() -> None:
    plain = schedule_to_plain(NetworkSchedule(1, (1, 2), 100))
    del plain["nodes"]
    with pytest.raises(ScheduleError, match="not a valid network schedule"):
        schedule_from_plain(plain, "x.rpltrace")


@pytest.mark.parametrize(
    ("field", "raw", "named"),
    [
        ("seed", float("inf"), "seed"),
        ("end_ms", float("inf"), "end_ms"),
        ("nodes", [1, float("inf")], "nodes"),
        ("seed", 1.7, "seed"),
        ("seed", "3", "seed"),
        ("seed", True, "seed"),
        ("link", [5, 0, 0.0, 0.0, 0.0, float("inf")], "link.reorder_ms"),
        ("link", [5, 0, float("nan"), 0.0, 0.0, 50], "link.drop"),
        ("budget_rate", float("inf"), "budget_rate"),
        ("crashes", [[1, float("inf"), None]], "crashes.at_ms"),
        ("channel_name", 5, "channel_name"),
    ],
)
def test_schedule_from_plain_takes_exact_types_only(field: str, raw: object, named: str) -> None:
    from pytest_replay.replication.errors import TraceFormatError
    from pytest_replay.replication.trace import decode_trace, encode_trace

    plain = schedule_to_plain(NetworkSchedule(1, (1, 2), 100))
    plain[field] = raw
    with pytest.raises(ScheduleError, match=rf"x\.rpltrace: schedule field {named} .*Fix:"):
        schedule_from_plain(plain, "x.rpltrace")
    good = encode_trace(NetworkSchedule(1, (1, 2), 100), [])
    header = msgpack.packb({"schedule": plain})
    data = good[:12] + len(header).to_bytes(4, "little") + good[16:20] + header
    with pytest.raises(TraceFormatError, match=named):
        decode_trace(data, "x.rpltrace")


def test_schedule_from_plain_accepts_whole_numbers_as_probabilities() -> None:
    schedule = NetworkSchedule(1, (1, 2), 100, link=LinkSpec(drop=0))  # type: ignore[arg-type]
    assert schedule_from_plain(schedule_to_plain(schedule)) == schedule
