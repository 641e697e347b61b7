"""The reference runtime's tests, one by one, on a virtual clock (plus the paths they imply)."""

from __future__ import annotations

import pytest

from pytest_replay.replication.backoff import CATCHUP_BACKOFF_THRESHOLD, CatchupBackoff
from pytest_replay.replication.budget import BandwidthBudget
from pytest_replay.replication.config import UnderCapacity
from pytest_replay.replication.errors import RuntimeStoppedError
from pytest_replay.replication.heartbeat import HeartbeatTracker
from pytest_replay.replication.inbox import (
    RUNTIME_INBOX_CAPACITY,
    RUNTIME_PRIORITY_INBOX_CAPACITY,
    InboundHeartbeat,
    InboundSyncNack,
    InboundSyncRequest,
    InboundSyncResponse,
)
from pytest_replay.replication.lag import LagObservation, observe_lag
from pytest_replay.replication.log import SequencedLog
from pytest_replay.replication.messages import (
    BandwidthClass,
    ReplicaRole,
    SyncEvent,
    SyncHeartbeat,
    SyncNack,
    SyncNackError,
    SyncRequest,
    SyncResponse,
    channel_id_for,
)
from pytest_replay.replication.roles import TransitionSignal
from pytest_replay.replication.runtime import handle_disk_pressure
from pytest_replay.replication.testing import RuntimeHarness, build_harness
from pytest_replay.replication.tokens import REQUEST_TTL_MS

R = ReplicaRole
WRONG = channel_id_for("test/wrong_channel")


def heartbeat(h: RuntimeHarness, sender: int, role: R, tail: int, channel: bytes | None = None):
    msg = SyncHeartbeat(channel or h.channel_id, tail, role, 1_700_000_000_000)
    return InboundHeartbeat(sender, msg)


def response(h: RuntimeHarness, sender: int, first: int, payloads=(), token=0, retained=0):
    events = tuple(SyncEvent(first + i, p) for i, p in enumerate(payloads))
    return InboundSyncResponse(sender, SyncResponse(h.channel_id, first, retained, events, token))


def nack(h: RuntimeHarness, sender: int, code: SyncNackError, since=0, retained=0, token=0):
    return InboundSyncNack(sender, SyncNack(h.channel_id, since, code, retained, token, ""))


def request(h: RuntimeHarness, sender: int, since=0, klass=BandwidthClass.FOREGROUND, chan=None):
    return InboundSyncRequest(sender, SyncRequest(chan or h.channel_id, since, 1024, 0, klass))


# ---------------------------------------------------------------- heartbeats and election


def test_leader_emits_heartbeat_to_peers_each_tick() -> None:
    h = build_harness(0x10, (0x10, 0x20, 0x30), 100, role=R.LEADER)
    h.advance(350)
    beats = h.dispatcher.heartbeats
    assert len(beats) == 6  # ticks at 100, 200, 300 ms, two peers each
    assert [target for target, _ in beats] == [0x20, 0x30] * 3
    assert all(msg.role is R.LEADER and msg.tail_seq == 42 for _, msg in beats)
    h.runtime.cancel()
    assert h.runtime.is_stopped()


def test_inbound_heartbeat_records_into_tracker() -> None:
    h = build_harness(role=R.REPLICA)
    h.runtime.dispatch(heartbeat(h, 0x20, R.LEADER, 99))
    h.advance(150)
    state = h.runtime.state.tracker.peer_state(0x20)
    assert state is not None and state.tail_seq == 99 and state.role is R.LEADER
    assert h.runtime.state.tracker.believed_leader() == 0x20
    assert h.coordinator.role is R.REPLICA  # a fresh leader heartbeat starts no election
    assert [t for t, _ in h.dispatcher.heartbeats] == [0x20]
    h.runtime.cancel()


def test_peer_leader_observation_demotes_loser_to_replica() -> None:
    h = build_harness(heartbeat_ms=60_000, role=R.LEADER)  # local tail 42
    h.runtime.on_inbound(heartbeat(h, 0x20, R.LEADER, 99))
    assert h.coordinator.role is R.REPLICA
    assert h.coordinator.metrics.transition_count(R.LEADER, R.REPLICA, "PeerLeaderObserved") == 1
    assert h.kinds() == ["concede"]


def test_peer_leader_tail_tie_lower_node_id_wins() -> None:
    h = build_harness(0x10, heartbeat_ms=60_000, role=R.LEADER)
    h.runtime.on_inbound(heartbeat(h, 0x20, R.LEADER, 42))
    assert h.coordinator.role is R.LEADER  # 0x10 < 0x20 keeps the role
    other = build_harness(0x30, (0x20, 0x30), 60_000, role=R.LEADER)
    other.runtime.on_inbound(heartbeat(other, 0x20, R.LEADER, 42))
    assert other.coordinator.role is R.REPLICA  # the higher id concedes on a tie


def test_higher_tail_leader_keeps_role_whatever_the_ids() -> None:
    h = build_harness(0x30, (0x20, 0x30), 60_000, role=R.LEADER, tail=50)
    h.runtime.on_inbound(heartbeat(h, 0x20, R.LEADER, 49))
    assert h.coordinator.role is R.LEADER


def test_replica_with_silent_leader_runs_election_and_promotes_self() -> None:
    h = build_harness(heartbeat_ms=50, role=R.REPLICA)
    h.runtime.dispatch(heartbeat(h, 0x20, R.LEADER, 99))
    h.advance(500)
    assert h.coordinator.role is R.LEADER
    signals = [s for (_, _, s, n) in h.coordinator.metrics.snapshot().transitions if n]
    assert "MissedHeartbeats" in signals and "ElectionWon" in signals
    assert h.runtime.state.tracker.believed_leader() is None
    h.runtime.cancel()


def test_election_lost_when_a_peer_is_closer() -> None:
    # Self counts at RTT 0, so a peer only wins at RTT 0 with a lower node id.
    h = build_harness(0x20, (0x10, 0x20), 50, role=R.REPLICA, rtt=lambda peer: 0)
    h.advance(120)  # ticks at 50 and 100 ms: not silent yet (window 150 ms)
    h.runtime.dispatch(heartbeat(h, 0x10, R.REPLICA, 0))  # 0x10 is healthy, not leader
    h.advance(30)  # tick at 150 ms: silent -> Candidate -> 0x10 wins
    assert h.coordinator.metrics.transition_count(R.CANDIDATE, R.REPLICA, "ElectionLost") == 1
    assert h.coordinator.role is R.REPLICA
    h.advance(150)  # 0x10 went quiet: now self is the only healthy member
    assert h.coordinator.role is R.LEADER


class FailingAfterNAnnounce:
    """Announces succeed ``remaining`` times, then fail."""

    def __init__(self, remaining: int) -> None:
        self.remaining = remaining

    def announce_chain(self, origin_hash: int, tip_seq: int) -> None:
        if self.remaining == 0:
            raise OSError("simulated sink failure")
        self.remaining -= 1

    def withdraw_chain(self, origin_hash: int) -> None:
        return None


def test_post_election_tag_sink_failure_does_not_strand_candidate() -> None:
    h = build_harness(heartbeat_ms=50, role=R.REPLICA, tag_sink=FailingAfterNAnnounce(1))
    h.runtime.dispatch(heartbeat(h, 0x20, R.LEADER, 99))
    h.advance(500)
    assert h.coordinator.role is R.LEADER
    assert "tag_sink_failed" in h.kinds()
    assert h.runtime.state.tracker.believed_leader() is None
    h.runtime.cancel()


def test_shutdown_drives_idle_transition() -> None:
    h = build_harness(role=R.REPLICA)
    h.runtime.cancel()
    assert h.runtime.is_stopped()
    assert h.coordinator.role is R.IDLE
    assert h.coordinator.metrics.transition_count(R.REPLICA, R.IDLE, "ChannelClose") == 1


def test_leader_on_tick_clamps_advertised_tail_to_max_peer_tail() -> None:
    h = build_harness(tail=100, role=R.LEADER)
    h.runtime.state.tracker.record_heartbeat(0x20, R.REPLICA, 50, 0)
    h.runtime.on_tick()
    assert h.coordinator.tail_seq == 50  # only what a peer confirmed holding
    assert all(msg.tail_seq == 100 for _, msg in h.dispatcher.heartbeats)  # beats carry raw tail


def test_leader_on_tick_falls_back_to_local_tail_with_no_peers() -> None:
    h = build_harness(tail=77, role=R.LEADER)
    h.runtime.on_tick()
    assert h.coordinator.tail_seq == 77


def test_empty_response_does_not_strike_on_stale_heartbeat() -> None:
    h = build_harness(tail=None, role=R.REPLICA, start_ms=20_000)
    state = h.runtime.state
    state.tracker.record_heartbeat(0x20, R.LEADER, 200, 10_000)  # 10 s old: stale
    for _ in range(CATCHUP_BACKOFF_THRESHOLD + 2):
        state.outstanding.record(0x20, 0, h.clock.now_ms)
        h.runtime.on_inbound(response(h, 0x20, 0))
    assert state.backoff.entry(0x20) is None
    assert not state.backoff.is_in_backoff(0x20, h.clock.now_ms)


def test_empty_responses_on_fresh_heartbeat_engage_backoff_and_skip_requests() -> None:
    h = build_harness(tail=None, role=R.REPLICA, start_ms=1_000)
    state = h.runtime.state
    for _ in range(CATCHUP_BACKOFF_THRESHOLD + 1):
        state.tracker.record_heartbeat(0x20, R.LEADER, 200, h.clock.now_ms)
        state.outstanding.record(0x20, 7, h.clock.now_ms)
        h.runtime.on_inbound(response(h, 0x20, 0, token=7))
    assert h.kinds().count("empty_strike") == CATCHUP_BACKOFF_THRESHOLD + 1
    assert state.backoff.is_in_backoff(0x20, h.clock.now_ms)
    state.tracker.record_heartbeat(0x20, R.LEADER, 200, h.clock.now_ms)
    h.runtime.on_tick()
    assert h.dispatcher.sync_requests == []
    assert h.kinds()[-1] == "backoff_skip"
    # A productive response clears the strikes.
    state.outstanding.record(0x20, 8, h.clock.now_ms)
    h.runtime.on_inbound(response(h, 0x20, 0, [b"a"], token=8))
    assert h.log.next_seq == 1 and state.backoff.entry(0x20) is None


def test_catchup_backoff_threshold_and_reset() -> None:
    b = CatchupBackoff()
    for _ in range(CATCHUP_BACKOFF_THRESHOLD):
        b.record_empty(0x20, 0)
    assert not b.is_in_backoff(0x20, 0)
    b.record_empty(0x20, 0)
    assert b.is_in_backoff(0x20, 0)
    b.record_progress(0x20)
    assert not b.is_in_backoff(0x20, 0)


# ---------------------------------------------------------------- inbox lanes and lifecycle


def test_priority_lane_drains_under_low_priority_saturation() -> None:
    h = build_harness(heartbeat_ms=60_000, role=R.REPLICA)
    returned = [
        h.runtime.try_dispatch(heartbeat(h, 0x20, R.REPLICA, 0))
        for _ in range(RUNTIME_INBOX_CAPACITY * 2)
    ]
    assert sum(r is not None for r in returned) == RUNTIME_INBOX_CAPACITY
    h.runtime.cancel()
    # Shutdown rode the priority lane: it ran before any queued heartbeat, gracefully.
    assert h.coordinator.role is R.IDLE
    assert h.runtime.state.tracker.peer_state(0x20) is None
    assert h.runtime.is_stopped()


def test_priority_events_are_handled_before_normal_ones() -> None:
    h = build_harness(heartbeat_ms=60_000, role=R.REPLICA)
    h.runtime.try_dispatch(request(h, 0x20))
    h.runtime.try_dispatch(response(h, 0x20, 0, token=1))
    h.runtime.run_pending()
    assert [a.get("msg") for k, _, a in h.observed if k == "reject"] == ["sync_response"]
    assert len(h.dispatcher.sync_nacks) == 1  # the request, answered after the response


def test_try_dispatch_returns_event_on_full_buffer() -> None:
    h = build_harness(heartbeat_ms=60_000, role=R.REPLICA)
    events = [heartbeat(h, 0x20, R.REPLICA, i) for i in range(RUNTIME_INBOX_CAPACITY + 10)]
    returned = [h.runtime.try_dispatch(e) for e in events]
    assert returned[:RUNTIME_INBOX_CAPACITY] == [None] * RUNTIME_INBOX_CAPACITY
    assert all(r is e for r, e in zip(returned[-10:], events[-10:], strict=True))
    lanes = [nack(h, 0x20, SyncNackError.BACKPRESSURE) for _ in range(129)]
    back = [h.runtime.try_dispatch(e) for e in lanes]
    assert back.count(None) == RUNTIME_PRIORITY_INBOX_CAPACITY and back[-1] is lanes[-1]
    h.runtime.cancel()


def test_dispatch_on_a_full_lane_waits_and_keeps_dispatch_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The reference's dispatch is ``send(event).await``: a full lane delays the event,
    # it never refuses it while the runtime lives.
    h = build_harness(heartbeat_ms=60_000, role=R.REPLICA)
    handled: list[object] = []
    monkeypatch.setattr(h.runtime, "on_inbound", handled.append)
    beats = [heartbeat(h, 0x20, R.REPLICA, i) for i in range(RUNTIME_INBOX_CAPACITY + 5)]
    nacks = [nack(h, 0x20, SyncNackError.BACKPRESSURE, since=i) for i in range(130)]
    for event in beats + nacks:
        h.runtime.dispatch(event)
    assert h.runtime.inbox.lengths() == (RUNTIME_PRIORITY_INBOX_CAPACITY, RUNTIME_INBOX_CAPACITY)
    assert h.runtime.inbox.waiting() == (2, 5)
    # While events wait for room the lane stays full: try_dispatch still hands back.
    late = heartbeat(h, 0x20, R.REPLICA, 9_999)
    assert h.runtime.try_dispatch(late) is late
    assert h.runtime.run_pending() == len(beats) + len(nacks)
    assert handled == nacks + beats  # each lane in dispatch order, priority first
    assert h.runtime.inbox.waiting() == (0, 0)
    h.runtime.cancel()
    with pytest.raises(RuntimeStoppedError, match="has stopped"):
        h.runtime.dispatch(late)


def test_cancel_with_full_inbox_does_not_hang() -> None:
    h = build_harness(heartbeat_ms=60_000, role=R.REPLICA)
    for _ in range(RUNTIME_PRIORITY_INBOX_CAPACITY):
        assert h.runtime.try_dispatch(nack(h, 0x20, SyncNackError.BACKPRESSURE)) is None
    h.runtime.cancel()  # the priority lane is full: abort, without the Idle transition
    assert h.runtime.is_stopped()
    assert h.coordinator.role is R.REPLICA
    assert h.runtime.inbox.lengths() == (0, 0)


def test_abort_stops_at_once_like_dropping_the_handle() -> None:
    # The reference aborts the task when its handle is dropped without cancel(): no
    # graceful Idle transition, and nothing queued is ever handled.
    h = build_harness(heartbeat_ms=100, role=R.REPLICA)
    h.runtime.dispatch(heartbeat(h, 0x20, R.LEADER, 99))
    h.runtime.dispatch(response(h, 0x20, 0, [b"a"], token=1))
    h.runtime.abort()
    assert h.runtime.is_stopped() and h.coordinator.role is R.REPLICA
    assert h.runtime.inbox.lengths() == h.runtime.inbox.waiting() == (0, 0)
    assert h.runtime.run_pending() == 0
    h.clock.set(1_000)  # ticks are due, but a stopped runtime runs nothing
    assert h.runtime.run_pending() == 0
    assert h.runtime.state.tracker.peer_state(0x20) is None
    assert h.dispatcher.heartbeats == [] and h.dispatcher.sync_requests == []
    with pytest.raises(RuntimeStoppedError):
        h.runtime.dispatch(heartbeat(h, 0x20, R.LEADER, 99))


def test_dispatch_after_cancel_errors() -> None:
    h = build_harness()
    h.runtime.cancel()
    event = heartbeat(h, 0x20, R.REPLICA, 0)
    with pytest.raises(RuntimeStoppedError, match="Fix:"):
        h.runtime.dispatch(event)
    assert h.runtime.try_dispatch(event) is event


def test_is_stopped_is_false_before_first_cancel_completes() -> None:
    h = build_harness(heartbeat_ms=60_000)
    assert not h.runtime.is_stopped()
    h.runtime.cancel()
    assert h.runtime.is_stopped()
    h.runtime.cancel()
    assert h.runtime.is_stopped()


def test_channel_id_mismatch_drops_heartbeat() -> None:
    h = build_harness(role=R.REPLICA)
    h.runtime.dispatch(heartbeat(h, 0x20, R.LEADER, 99, channel=WRONG))
    h.advance(500)
    tracker = h.runtime.state.tracker
    assert tracker.peer_state(0x20) is None and tracker.believed_leader() is None
    assert ("reject", 0x20, {"reason": "wrong_channel", "msg": "heartbeat"}) in h.observed
    assert h.coordinator.role is R.LEADER  # silence ran the election; 0x20 was never believed


# ---------------------------------------------------------------- lag observation


def test_observe_lag_idle_and_candidate_emit_none() -> None:
    tracker = HeartbeatTracker(500)
    assert observe_lag(R.IDLE, [0x10, 0x20], 0x10, tracker, 0) is None
    assert observe_lag(R.CANDIDATE, [0x10, 0x20], 0x10, tracker, 0) is None


def test_observe_lag_leader_with_no_peer_observations_emits_none() -> None:
    assert observe_lag(R.LEADER, [0x10, 0x20, 0x30], 0x10, HeartbeatTracker(500), 0) is None


def test_observe_lag_leader_picks_worst_replica() -> None:
    tracker = HeartbeatTracker(500)
    tracker.record_heartbeat(0x20, R.REPLICA, 0, 0)
    tracker.record_heartbeat(0x30, R.REPLICA, 0, 100)
    found = observe_lag(R.LEADER, [0x10, 0x20, 0x30], 0x10, tracker, 1_000)
    assert found == LagObservation("leader", 1_000)


def test_observe_lag_replica_emits_believed_leader_lag() -> None:
    tracker = HeartbeatTracker(500)
    tracker.record_heartbeat(0x42, R.LEADER, 99, 0)
    assert observe_lag(R.REPLICA, [0x10, 0x42], 0x10, tracker, 250) == LagObservation(
        "replica", 250
    )


def test_observe_lag_replica_with_no_believed_leader_emits_none() -> None:
    assert observe_lag(R.REPLICA, [0x10, 0x42], 0x10, HeartbeatTracker(500), 0) is None


def test_observe_lag_leader_skips_self_in_replica_set() -> None:
    tracker = HeartbeatTracker(500)
    tracker.record_heartbeat(0x20, R.REPLICA, 0, 0)
    tracker.record_heartbeat(0x10, R.REPLICA, 0, -5_000)  # self must never count
    assert observe_lag(R.LEADER, [0x10, 0x20], 0x10, tracker, 500) == LagObservation("leader", 500)


def test_tick_records_lag_gauges() -> None:
    h = build_harness(role=R.REPLICA)
    h.runtime.dispatch(heartbeat(h, 0x20, R.LEADER, 42))
    h.advance(100)
    assert h.coordinator.metrics.replica_lag_ms == 100
    assert h.coordinator.metrics.leader_lag_ms is None


# ---------------------------------------------------------------- disk pressure


def test_disk_pressure_withdraw_drives_idle_transition() -> None:
    h = build_harness(role=R.REPLICA)
    handle_disk_pressure(h.coordinator, h.log, "test detail", 0x20)
    assert h.coordinator.role is R.IDLE
    assert h.coordinator.metrics.under_capacity_total == 1


def test_disk_pressure_evict_oldest_keeps_role_and_sweeps() -> None:
    log = SequencedLog("retained", retention_max_events=1)
    for i in range(5):
        log.append(f"event-{i}".encode())
    h = build_harness(role=R.REPLICA, policy=UnderCapacity.EVICT_OLDEST, log=log)
    handle_disk_pressure(h.coordinator, log, "test detail", 0x20)
    assert h.coordinator.role is R.REPLICA
    assert len(log) == 1 and log.entry(4) == b"event-4"
    assert h.coordinator.metrics.under_capacity_total == 1


def test_disk_pressure_withdraw_from_leader_and_candidate() -> None:
    for role, signal in [
        (R.LEADER, "LeaderDiskPressureWithdraw"),
        (R.CANDIDATE, "CandidateDiskPressureWithdraw"),
    ]:
        h = build_harness(role=role)
        handle_disk_pressure(h.coordinator, h.log, "test detail", 0x20)
        assert h.coordinator.role is R.IDLE
        assert h.coordinator.metrics.transition_count(role, R.IDLE, signal) == 1


def test_disk_pressure_withdraw_is_idempotent_on_idle_already() -> None:
    h = build_harness()
    handle_disk_pressure(h.coordinator, h.log, "test detail", 0x20)
    assert h.coordinator.role is R.IDLE
    assert h.coordinator.metrics.under_capacity_total == 1
    assert h.coordinator.metrics.snapshot().transitions == ()


def test_append_failure_on_apply_runs_the_policy() -> None:
    log = SequencedLog("tiny", capacity_bytes=3)
    h = build_harness(tail=None, role=R.REPLICA, log=log)
    h.runtime.state.tracker.record_heartbeat(0x20, R.LEADER, 9, 0)
    h.runtime.state.outstanding.record(0x20, 5, 0)
    h.runtime.on_inbound(response(h, 0x20, 0, [b"abcd"], token=5))
    assert log.next_seq == 0 and h.coordinator.role is R.IDLE
    assert h.coordinator.metrics.under_capacity_total == 1


# ---------------------------------------------------------------- serving sync requests


def test_sync_request_post_op_role_flip_emits_notleader_nack() -> None:
    # As in the reference: the role is gone before the request is handled.
    h = build_harness(heartbeat_ms=60_000, role=R.LEADER)
    h.coordinator.transition_to(R.IDLE, TransitionSignal.GRACEFUL_RELINQUISH)
    h.runtime.on_inbound(request(h, 0x20))
    [(target, sent)] = h.dispatcher.sync_nacks
    assert target == 0x20 and sent.error_code is SyncNackError.NOT_LEADER
    assert sent.channel_id == h.channel_id and h.dispatcher.sync_responses == []


def test_role_lost_after_the_chunk_was_read_nacks_not_leader() -> None:
    h = build_harness(heartbeat_ms=60_000, role=R.LEADER, tail=None)
    h.log.append(b"x")
    h.runtime._observe = lambda kind, peer, attrs: (  # a withdraw lands mid-serve
        h.coordinator.transition_to(R.IDLE, TransitionSignal.LEADER_DISK_PRESSURE_WITHDRAW)
        if kind == "serve"
        else None
    )
    h.runtime.on_inbound(request(h, 0x20))
    [(_, sent)] = h.dispatcher.sync_nacks
    assert sent.error_code is SyncNackError.NOT_LEADER
    assert h.dispatcher.sync_responses == []
    assert h.coordinator.metrics.sync_bytes_total == 0


def test_sync_request_with_wrong_channel_id_is_dropped() -> None:
    h = build_harness(heartbeat_ms=60_000, role=R.LEADER)
    h.runtime.on_inbound(request(h, 0x20, chan=WRONG))
    assert h.dispatcher.sync_nacks == [] and h.dispatcher.sync_responses == []


def test_leader_serves_a_chunk_and_counts_bytes() -> None:
    h = build_harness(heartbeat_ms=60_000, role=R.LEADER, tail=None)
    for p in (b"a", b"bb", b"ccc"):
        h.log.append(p)
    h.runtime.on_inbound(request(h, 0x20, since=1))
    [(target, sent)] = h.dispatcher.sync_responses
    assert target == 0x20 and [e.seq for e in sent.events] == [1, 2]
    assert h.coordinator.metrics.sync_bytes_total == 47 + 12 * 2 + 5


def test_bad_range_request_nacks_with_first_retained_seq() -> None:
    h = build_harness(heartbeat_ms=60_000, role=R.LEADER, tail=None)
    for i in range(10):
        h.log.append(b"%d" % i)
    h.log.trim_to(6)
    h.runtime.on_inbound(request(h, 0x20, since=2))
    [(_, sent)] = h.dispatcher.sync_nacks
    assert sent.error_code is SyncNackError.BAD_RANGE and sent.leader_first_retained_seq == 6


def test_closed_log_nacks_channel_closed() -> None:
    h = build_harness(heartbeat_ms=60_000, role=R.LEADER, tail=None)
    h.log.close()
    h.runtime.on_inbound(request(h, 0x20))
    assert h.dispatcher.sync_nacks[0][1].error_code is SyncNackError.CHANNEL_CLOSED


def test_failed_response_send_refunds_the_budget() -> None:
    budget = BandwidthBudget(0.0, 1_000, 0)
    h = build_harness(heartbeat_ms=60_000, role=R.LEADER, budget=budget, fail_responses=True)
    h.runtime.on_inbound(request(h, 0x20))
    assert len(h.dispatcher.failed_responses) == 1
    assert budget.available(0) == 1_000  # refunded
    assert h.coordinator.metrics.sync_bytes_total == 47  # the attempt still counts
    assert ("send_failed", 0x20, {"msg": "sync_response", "refund": 47}) in h.observed


def test_silent_loss_is_not_refunded() -> None:
    budget = BandwidthBudget(0.0, 1_000, 0)
    h = build_harness(heartbeat_ms=60_000, role=R.LEADER, budget=budget)
    h.runtime.on_inbound(request(h, 0x20))
    assert budget.available(0) == 1_000 - 47


# ---------------------------------------------------------------- peer-auth and believed leader


def test_inbound_from_non_replica_set_peer_is_dropped() -> None:
    h = build_harness(heartbeat_ms=60_000, role=R.REPLICA, tail=None)
    h.runtime.state.outstanding.record(0x99, 0, 0)
    h.runtime.on_inbound(response(h, 0x99, 0, [b"attacker"]))
    assert h.log.next_seq == 0
    h.runtime.on_inbound(heartbeat(h, 0x99, R.LEADER, 7))
    assert h.runtime.state.tracker.believed_leader() is None
    reasons = {a["reason"] for k, _, a in h.observed if k == "reject"}
    assert reasons == {"not_in_replica_set"}


def test_sync_response_from_non_leader_replica_peer_is_dropped() -> None:
    h = build_harness(0x10, (0x10, 0x20, 0x30), 60_000, role=R.REPLICA, tail=None)
    state = h.runtime.state
    state.tracker.record_heartbeat(0x20, R.LEADER, 5, 0)
    state.outstanding.record(0x30, 0, 0)
    h.runtime.on_inbound(response(h, 0x30, 0, [b"forged"]))
    assert h.log.next_seq == 0
    assert h.observed[-1][2]["reason"] == "not_believed_leader"
    assert not state.outstanding.contains(0x30, 0)  # the token was consumed first


def test_response_needs_a_live_token() -> None:
    h = build_harness(heartbeat_ms=60_000, role=R.REPLICA, tail=None)
    state = h.runtime.state
    state.tracker.record_heartbeat(0x20, R.LEADER, 5, 0)
    h.runtime.on_inbound(response(h, 0x20, 0, [b"a"], token=1))  # never minted
    state.outstanding.record(0x20, 2, 0)
    h.clock.set(REQUEST_TTL_MS)
    state.tracker.record_heartbeat(0x20, R.LEADER, 5, REQUEST_TTL_MS)
    h.runtime.on_inbound(response(h, 0x20, 0, [b"a"], token=2))  # expired
    assert h.log.next_seq == 0
    assert [a["reason"] for k, _, a in h.observed if k == "reject"] == ["unknown_token"] * 2


def test_response_applies_once_and_duplicates_are_dropped() -> None:
    h = build_harness(heartbeat_ms=60_000, role=R.REPLICA, tail=None)
    state = h.runtime.state
    state.tracker.record_heartbeat(0x20, R.LEADER, 2, 0)
    state.outstanding.record(0x20, 9, 0)
    event = response(h, 0x20, 0, [b"a", b"b"], token=9)
    h.runtime.on_inbound(event)
    h.runtime.on_inbound(event)
    assert h.log.payloads(0, 2) == [b"a", b"b"]
    assert h.kinds() == ["apply", "reject"]
    assert h.coordinator.tail_seq == 2


def test_response_ignored_unless_replica() -> None:
    h = build_harness(heartbeat_ms=60_000, role=R.LEADER, tail=None)
    state = h.runtime.state
    state.tracker.record_heartbeat(0x20, R.LEADER, 2, 0)
    state.outstanding.record(0x20, 9, 0)
    h.runtime.on_inbound(response(h, 0x20, 0, [b"a"], token=9))
    assert h.log.next_seq == 0 and h.observed[-1][2]["reason"] == "not_replica"


def test_sync_nack_notleader_clears_believed_leader() -> None:
    h = build_harness(heartbeat_ms=60_000, role=R.REPLICA)
    state = h.runtime.state
    state.tracker.record_heartbeat(0x20, R.LEADER, 99, 0)
    state.outstanding.record(0x20, 0, 0)
    state.outstanding.record(0x20, 1, 0)
    h.runtime.on_inbound(nack(h, 0x20, SyncNackError.NOT_LEADER))
    assert state.tracker.believed_leader() is None
    assert len(state.outstanding) == 0  # the leader's other tokens went with the belief


def test_nack_from_non_leader_or_with_unknown_token_is_dropped() -> None:
    h = build_harness(0x10, (0x10, 0x20, 0x30), 60_000, role=R.REPLICA)
    state = h.runtime.state
    state.tracker.record_heartbeat(0x20, R.LEADER, 99, 0)
    state.outstanding.record(0x30, 0, 0)
    h.runtime.on_inbound(nack(h, 0x30, SyncNackError.NOT_LEADER))
    h.runtime.on_inbound(nack(h, 0x20, SyncNackError.NOT_LEADER, token=5))
    assert state.tracker.believed_leader() == 0x20
    reasons = [a["reason"] for k, _, a in h.observed if k == "reject"]
    assert reasons == ["not_believed_leader", "unknown_token"]


def test_sync_nack_badrange_skips_local_tail() -> None:
    h = build_harness(heartbeat_ms=60_000, role=R.REPLICA, tail=None)
    state = h.runtime.state
    state.tracker.record_heartbeat(0x20, R.LEADER, 41, 0)
    state.outstanding.record(0x20, 0, 0)
    h.runtime.on_inbound(nack(h, 0x20, SyncNackError.BAD_RANGE, since=42, retained=100))
    assert h.log.next_seq == 100  # straight to the floor, one round trip
    assert h.coordinator.metrics.skip_ahead_total == 1
    # Without a floor in the NACK the replica steps past since_seq.
    state.outstanding.record(0x20, 1, 0)
    h.runtime.on_inbound(nack(h, 0x20, SyncNackError.BAD_RANGE, since=100, token=1))
    assert h.log.next_seq == 101


def test_badrange_on_a_persistent_log_falls_back() -> None:
    log = SequencedLog("persistent", allow_skip=False)
    h = build_harness(heartbeat_ms=60_000, role=R.REPLICA, tail=None, log=log)
    h.runtime.state.tracker.record_heartbeat(0x20, R.LEADER, 41, 0)
    h.runtime.state.outstanding.record(0x20, 0, 0)
    h.runtime.on_inbound(nack(h, 0x20, SyncNackError.BAD_RANGE, retained=100))
    assert log.next_seq == 0 and h.kinds()[-1] == "skip_rejected"


def test_channel_closed_nack_withdraws_and_backpressure_waits() -> None:
    h = build_harness(heartbeat_ms=60_000, role=R.REPLICA)
    state = h.runtime.state
    state.tracker.record_heartbeat(0x20, R.LEADER, 99, 0)
    state.outstanding.record(0x20, 0, 0)
    state.outstanding.record(0x20, 1, 0)
    h.runtime.on_inbound(nack(h, 0x20, SyncNackError.BACKPRESSURE))
    assert h.coordinator.role is R.REPLICA and state.tracker.believed_leader() == 0x20
    h.runtime.on_inbound(nack(h, 0x20, SyncNackError.CHANNEL_CLOSED, token=1))
    assert h.coordinator.role is R.IDLE


def test_gap_before_chunk_skips_ahead_and_applies() -> None:
    h = build_harness(heartbeat_ms=60_000, role=R.REPLICA, tail=None)
    state = h.runtime.state
    state.tracker.record_heartbeat(0x20, R.LEADER, 12, 0)
    state.outstanding.record(0x20, 3, 0)
    h.runtime.on_inbound(response(h, 0x20, 10, [b"j", b"k"], token=3, retained=10))
    assert (h.log.first_retained_seq, h.log.next_seq) == (10, 12)
    skip = next(a for k, _, a in h.observed if k == "skip_ahead")
    assert skip == {
        "cause": "gap",
        "from_seq": 0,
        "to_seq": 10,
        "divergence_suspected": 0,
    }
    assert h.coordinator.metrics.skip_ahead_total == 1


def test_gap_skip_ahead_retry_append_failure_is_only_observed() -> None:
    # The retried apply after a skip-ahead overflows the log's capacity: the
    # reference only logs it (no UnderCapacity policy, no counter, role kept).
    log = SequencedLog("cap", capacity_bytes=1)
    h = build_harness(heartbeat_ms=60_000, role=R.REPLICA, tail=None, log=log)
    state = h.runtime.state
    state.tracker.record_heartbeat(0x20, R.LEADER, 12, 0)
    state.outstanding.record(0x20, 3, 0)
    h.runtime.on_inbound(response(h, 0x20, 10, [b"jj", b"kk"], token=3, retained=10))
    assert h.coordinator.role is R.REPLICA
    assert h.coordinator.metrics.under_capacity_total == 0
    assert h.coordinator.metrics.skip_ahead_total == 1
    assert log.next_seq == 10  # the skip held; nothing was appended after it
    assert h.kinds() == ["skip_ahead", "apply_failed"]
    assert h.observed[-1] == ("apply_failed", 0x20, {"error": "AppendFailedError"})


def test_post_election_failed_transition_clears_believed_leader() -> None:
    # The reference's test is named "..._preserves_believed_leader" (and only
    # asserts the role), but its code clears the belief and the leader's tokens
    # when the post-election transition is rejected; this follows the code.
    h = build_harness(heartbeat_ms=50, role=R.REPLICA)
    # A close lands while the runtime is in Candidate, before the election's transition.
    h.coordinator.add_observer(
        lambda change: (
            h.coordinator.transition_to(R.IDLE, TransitionSignal.CHANNEL_CLOSE)
            if change.target is R.CANDIDATE
            else None
        )
    )
    h.runtime.dispatch(heartbeat(h, 0x20, R.LEADER, 99))
    h.runtime.run_pending()
    assert h.runtime.state.tracker.believed_leader() == 0x20
    h.runtime.state.outstanding.record(0x20, 7, 0)
    h.advance(300)
    assert h.coordinator.role is R.IDLE
    assert ("transition_failed", 0x10, {"error": "InvalidTransitionError"}) in h.observed
    assert h.runtime.state.tracker.believed_leader() is None
    assert not h.runtime.state.outstanding.contains(0x20, 7)
    assert 0x20 not in h.runtime.state.outstanding.leaders()


# ---------------------------------------------------------------- bandwidth classes


def test_replica_on_tick_stamps_inputs_default_bandwidth_class_on_sync_request() -> None:
    h = build_harness(tail=0, role=R.REPLICA, bandwidth_class=BandwidthClass.BACKGROUND)
    h.runtime.state.tracker.record_heartbeat(0x20, R.LEADER, 50, 0)
    h.runtime.on_tick()
    [(target, sent)] = h.dispatcher.sync_requests
    assert target == 0x20 and sent.bandwidth_class is BandwidthClass.BACKGROUND
    assert sent.since_seq == 0 and sent.request_id != 0
    assert h.runtime.state.outstanding.contains(0x20, sent.request_id)


def test_leader_serve_path_uses_class_aware_admission_for_background_request() -> None:
    budget = BandwidthBudget(1.0, 100, 0)  # reserve 70: 100 - 47 = 53 < 70
    h = build_harness(heartbeat_ms=60_000, tail=0, role=R.LEADER, budget=budget)
    h.runtime.on_inbound(request(h, 0x20, klass=BandwidthClass.BACKGROUND))
    [(target, sent)] = h.dispatcher.sync_nacks
    assert target == 0x20 and sent.error_code is SyncNackError.BACKPRESSURE
    assert h.dispatcher.sync_responses == []


def test_leader_serve_path_admits_foreground_under_tight_budget() -> None:
    budget = BandwidthBudget(1.0, 100, 0)
    h = build_harness(heartbeat_ms=60_000, tail=0, role=R.LEADER, budget=budget)
    h.runtime.on_inbound(request(h, 0x20, klass=BandwidthClass.FOREGROUND))
    assert h.dispatcher.sync_nacks == []
    assert len(h.dispatcher.sync_responses) == 1


# ---------------------------------------------------------------- leader behind (our extension)


def test_replica_ahead_of_its_leader_stands_for_election() -> None:
    h = build_harness(role=R.REPLICA, tail=10)
    for _ in range(3):
        h.runtime.on_inbound(heartbeat(h, 0x20, R.LEADER, 7))
        assert h.coordinator.role is R.REPLICA
    h.advance(100)
    assert h.coordinator.metrics.transition_count(R.REPLICA, R.CANDIDATE, "LeaderBehind") == 1
    assert h.coordinator.role is R.LEADER


def test_leader_catching_up_resets_the_behind_count() -> None:
    h = build_harness(role=R.REPLICA, tail=10)
    for tail in (7, 7, 10, 7, 7):
        h.runtime.on_inbound(heartbeat(h, 0x20, R.LEADER, tail))
    h.advance(100)
    assert h.coordinator.role is R.REPLICA
    assert h.runtime.state.tracker.leader_behind_beats == 2
