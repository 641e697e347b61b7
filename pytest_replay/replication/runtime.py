"""The replication runtime of one channel on one node.

It ties the pure pieces together: every heartbeat interval it runs
:func:`~pytest_replay.replication.step.tick` (heartbeats, catch-up requests,
silence detection and the election), and for every inbound event it applies
the gates and reactions of the reference runtime:

* peer-auth: events from senders outside the replica set are dropped;
* channel-id check on every message;
* SyncRequest: NotLeader NACK unless Leader, catch-up via
  :func:`handle_sync_request`, class-aware bandwidth admission (Backpressure
  NACK), a second role check after the work (NotLeader NACK), refund of the
  budget when the send fails;
* SyncResponse: the request token is consumed first, then only the believed
  leader, and only while Replica, may apply; empty responses strike the
  back-off only when the leader's heartbeat is fresh; gaps skip ahead;
  append failures run the disk-pressure policy;
* SyncNack: only from the believed leader with a live token; NotLeader clears
  the belief, BadRange skips to the leader's first retained seq, Backpressure
  waits, ChannelClosed closes the channel.

Nothing here reads a wall clock or an unseeded random source: time comes
from the injected ``clock`` and request tokens from ``inputs.token_source``.
The runtime is driven by whoever owns it (the simulator, or a test) through
:meth:`ReplicationRuntime.run_pending`, which mirrors the reference's biased
select: priority lane, then a due tick, then the normal lane.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from pytest_replay.replication.backoff import CATCHUP_BACKOFF_CAP_MS, CatchupBackoff
from pytest_replay.replication.budget import BandwidthBudget
from pytest_replay.replication.catchup import (
    SyncRequestNack,
    apply_sync_response,
    estimate_served_bytes,
    handle_sync_request,
)
from pytest_replay.replication.config import (
    DEFAULT_BACKGROUND_FRACTION,
    DEFAULT_MISS_THRESHOLD,
    SYNC_REQUEST_CHUNK_MAX_DEFAULT,
    UnderCapacity,
)
from pytest_replay.replication.coordinator import ChannelIdentity, ReplicationCoordinator
from pytest_replay.replication.dispatch import ReplicationDispatcher
from pytest_replay.replication.election import RttLookup, election_outcome
from pytest_replay.replication.errors import (
    AppendFailedError,
    ApplyError,
    CoordinatorError,
    DispatchError,
    GapBeforeChunkError,
    InvalidTransitionError,
    RuntimeStoppedError,
    ScheduleError,
    SkipRejectedError,
    TagSinkError,
)
from pytest_replay.replication.heartbeat import HeartbeatTracker
from pytest_replay.replication.inbox import (
    RUNTIME_INBOX_CAPACITY,
    RUNTIME_PRIORITY_INBOX_CAPACITY,
    Inbound,
    InboundHeartbeat,
    InboundSyncNack,
    InboundSyncRequest,
    InboundSyncResponse,
    Shutdown,
    TwoLaneInbox,
)
from pytest_replay.replication.lag import observe_lag
from pytest_replay.replication.log import SequencedLog
from pytest_replay.replication.messages import (
    BandwidthClass,
    ChannelId,
    NodeId,
    ReplicaRole,
    SyncNack,
    SyncNackError,
    SyncResponse,
)
from pytest_replay.replication.roles import TransitionSignal
from pytest_replay.replication.step import TickInputs, tick
from pytest_replay.replication.tokens import OutstandingRequests

__all__ = [
    "ObservedValue",
    "ReplicationRuntime",
    "RuntimeInputs",
    "RuntimeObserver",
    "RuntimeState",
    "handle_disk_pressure",
]

ObservedValue = int | str | bytes
#: ``observer(kind, peer, attrs)``: a decision the runtime took about ``peer``.
RuntimeObserver = Callable[[str, NodeId, dict[str, ObservedValue]], None]


def _ignore(kind: str, peer: NodeId, attrs: dict[str, ObservedValue]) -> None:
    return None


@dataclass(frozen=True, slots=True)
class RuntimeInputs:
    """What the runtime is given when the channel opens."""

    channel: ChannelIdentity
    channel_id: ChannelId
    self_node_id: NodeId
    replica_set: tuple[NodeId, ...]
    heartbeat_ms: int
    log: SequencedLog
    #: Milliseconds stamped on outbound heartbeats (operator drift display only).
    wall_clock: Callable[[], int]
    rtt_lookup: RttLookup
    #: Mints request tokens; seed it (``random.Random(seed).getrandbits``) for replay.
    token_source: Callable[[], int]
    #: The local tail; ``None`` reads ``log.next_seq``.
    tail_provider: Callable[[], int] | None = None
    default_bandwidth_class: BandwidthClass = BandwidthClass.FOREGROUND
    background_fraction: float = DEFAULT_BACKGROUND_FRACTION
    miss_threshold: int = DEFAULT_MISS_THRESHOLD
    chunk_max_bytes: int = SYNC_REQUEST_CHUNK_MAX_DEFAULT

    def __post_init__(self) -> None:
        if not self.replica_set:
            raise ScheduleError(
                "empty replica_set",
                where=f"node {self.self_node_id:#x}",
                fix="list every node that replicates the channel (usually including this one).",
            )
        if self.heartbeat_ms < 1 or self.miss_threshold < 1:
            raise ScheduleError(
                f"heartbeat_ms={self.heartbeat_ms}, miss_threshold={self.miss_threshold}",
                where=f"node {self.self_node_id:#x}",
                fix="both must be >= 1.",
            )
        if not 0.0 <= self.background_fraction <= 1.0:
            raise ScheduleError(
                f"background_fraction={self.background_fraction} is outside [0, 1]",
                where=f"node {self.self_node_id:#x}",
                fix="use e.g. 0.3.",
            )

    def tail(self) -> int:
        return self.log.next_seq if self.tail_provider is None else self.tail_provider()


@dataclass(slots=True)
class RuntimeState:
    """The runtime's mutable per-channel state (lost on a crash)."""

    tracker: HeartbeatTracker
    budget: BandwidthBudget
    backoff: CatchupBackoff = dataclasses.field(default_factory=CatchupBackoff)
    outstanding: OutstandingRequests = dataclasses.field(default_factory=OutstandingRequests)


def clear_leader_belief_and_tokens(state: RuntimeState, now_ms: int) -> None:
    """Forget the believed leader *and* the tokens minted for it."""
    prior = state.tracker.believed_leader()
    state.tracker.clear_believed_leader(now_ms)
    if prior is not None:
        state.outstanding.clear_leader(prior)


def handle_disk_pressure(
    coordinator: ReplicationCoordinator,
    log: SequencedLog,
    detail: str,
    sender: NodeId,
    observer: RuntimeObserver = _ignore,
) -> None:
    """React to a local append failure with the channel's UnderCapacity policy.

    Withdraw picks the signal that is valid for the current role (so a Leader or
    Candidate also reaches Idle); EvictOldest sweeps retention and keeps the role.
    The under-capacity counter advances either way.
    """
    coordinator.metrics.incr_under_capacity()
    policy = coordinator.config.on_under_capacity
    observer("disk_pressure", sender, {"policy": policy.value, "detail": detail})
    if policy is UnderCapacity.WITHDRAW:
        signal = {
            ReplicaRole.REPLICA: TransitionSignal.DISK_PRESSURE_WITHDRAW,
            ReplicaRole.IDLE: TransitionSignal.CHANNEL_CLOSE,
            ReplicaRole.LEADER: TransitionSignal.LEADER_DISK_PRESSURE_WITHDRAW,
            ReplicaRole.CANDIDATE: TransitionSignal.CANDIDATE_DISK_PRESSURE_WITHDRAW,
        }[coordinator.role]
        try:
            coordinator.transition_to(ReplicaRole.IDLE, signal)
        except CoordinatorError as exc:
            observer("transition_failed", sender, {"error": type(exc).__name__})
    else:
        log.sweep_retention()


class ReplicationRuntime:
    """Runtime of one replicated channel, driven by an injected clock."""

    def __init__(
        self,
        inputs: RuntimeInputs,
        coordinator: ReplicationCoordinator,
        dispatcher: ReplicationDispatcher,
        budget: BandwidthBudget,
        *,
        clock: Callable[[], int],
        state: RuntimeState | None = None,
        observer: RuntimeObserver | None = None,
        inbox_capacity: int = RUNTIME_INBOX_CAPACITY,
        priority_inbox_capacity: int = RUNTIME_PRIORITY_INBOX_CAPACITY,
    ) -> None:
        self._inputs = inputs
        # Every inbound message is checked against the replica set: a set, not the tuple.
        self._members = frozenset(inputs.replica_set)
        self._coordinator = coordinator
        self._dispatcher = dispatcher
        self._clock = clock
        now = clock()
        self._state = (
            state
            if state is not None
            else RuntimeState(
                HeartbeatTracker(inputs.heartbeat_ms, inputs.miss_threshold, now_ms=now), budget
            )
        )
        self._observe: RuntimeObserver = observer if observer is not None else _ignore
        self._inbox = TwoLaneInbox(inbox_capacity, priority_inbox_capacity)
        # The reference consumes the interval's immediate first tick, so the
        # first real tick lands one interval after start.
        self._start_ms = now
        self._next_tick_ms = now + inputs.heartbeat_ms
        self._running = True
        self._stopped = False

    # -- handle -------------------------------------------------------------
    @property
    def coordinator(self) -> ReplicationCoordinator:
        return self._coordinator

    @property
    def inputs(self) -> RuntimeInputs:
        return self._inputs

    @property
    def state(self) -> RuntimeState:
        return self._state

    @property
    def inbox(self) -> TwoLaneInbox:
        return self._inbox

    @property
    def next_tick_ms(self) -> int:
        return self._next_tick_ms

    def is_stopped(self) -> bool:
        return self._stopped

    def try_dispatch(self, event: Inbound) -> Inbound | None:
        """Queue ``event`` on its lane; returns it back when the lane is full (events
        are waiting for room) or the runtime stopped."""
        if not self._running:
            return event
        return self._inbox.try_push(event)

    def dispatch(self, event: Inbound) -> None:
        """Queue ``event``, waiting for room when its lane is full.

        The reference awaits the lane's send; here a full lane keeps the event in line
        behind those already waiting, and each event :meth:`run_pending` takes off the
        lane lets the first one in, so every event is handled in dispatch order, after
        the ones queued before it. Raises :class:`RuntimeStoppedError` once stopped;
        events still waiting when the runtime stops are dropped with the queued ones.
        """
        if not self._running:
            raise RuntimeStoppedError(
                f"runtime for channel {self._inputs.channel.channel_name!r} has stopped",
                where=f"node {self._inputs.self_node_id:#x}",
                fix="open the channel again (new runtime) before dispatching.",
            )
        self._inbox.push(event)

    def cancel(self) -> None:
        """Shut down: Shutdown on the priority lane, or abort when that lane is full.

        The graceful path drains the priority lane (Shutdown is behind any
        responses already queued there) and moves the role to Idle; the abort
        path stops without the Idle transition. Idempotent.
        """
        if not self._running:
            return
        if self._inbox.try_push(Shutdown()) is None:
            self.run_pending()
        if self._running:
            self.abort()

    def abort(self) -> None:
        """Stop at once, without the graceful Idle transition."""
        self._running = False
        self._inbox.close()
        self._inbox.clear()
        self._stopped = True

    # -- task loop ----------------------------------------------------------
    def run_pending(self) -> int:
        """Handle everything due now; returns how many events and ticks ran."""
        handled = 0
        # Bound once: the simulator calls this twice per delivered message.
        pop_priority, pop_normal = self._inbox.pop_priority, self._inbox.pop_normal
        clock = self._clock
        while self._running:
            event = pop_priority()
            if event is None:
                now = clock()
                if now >= self._next_tick_ms:
                    # Missed intervals are skipped, not replayed.
                    period = self._inputs.heartbeat_ms
                    elapsed = now - self._start_ms
                    self._next_tick_ms = self._start_ms + (elapsed // period + 1) * period
                    handled += 1
                    self.on_tick()
                    continue
                event = pop_normal()
                if event is None:
                    break
            handled += 1
            self._handle(event)
        return handled

    def _handle(self, event: Inbound) -> None:
        if isinstance(event, Shutdown):
            try:
                self._coordinator.transition_to(ReplicaRole.IDLE, TransitionSignal.CHANNEL_CLOSE)
            except CoordinatorError as exc:
                self._observe("transition_failed", self._inputs.self_node_id, {"error": str(exc)})
            self._running = False
            self._inbox.close()
            self._inbox.clear()
            self._stopped = True
            return
        self.on_inbound(event)

    # -- tick ---------------------------------------------------------------
    def on_tick(self) -> None:
        inputs, state, coordinator = self._inputs, self._state, self._coordinator
        now = self._clock()
        state.backoff.gc_expired(now, 2 * CATCHUP_BACKOFF_CAP_MS)
        tail_seq = inputs.tail()
        advertised = tail_seq
        if coordinator.role is ReplicaRole.LEADER:
            # Advertise only what some peer confirmed holding; a sole leader with
            # no peer reports owns its writes and advertises its own tail.
            peer_tails = [
                t for peer, t in state.tracker.peer_tail_seqs() if peer != inputs.self_node_id
            ]
            if peer_tails:
                advertised = min(tail_seq, max(peer_tails))
        coordinator.record_tail_seq(advertised)
        role = coordinator.role
        outcome = tick(
            TickInputs(
                self_node_id=inputs.self_node_id,
                current_role=role,
                channel_id=inputs.channel_id,
                tail_seq=tail_seq,
                replica_set=inputs.replica_set,
                tracker=state.tracker,
                wall_clock_ms=inputs.wall_clock(),
                chunk_max_bytes=inputs.chunk_max_bytes,
                now_ms=now,
                default_bandwidth_class=inputs.default_bandwidth_class,
            )
        )
        lag = observe_lag(role, inputs.replica_set, inputs.self_node_id, state.tracker, now)
        if lag is not None:
            if lag.kind == "leader":
                coordinator.metrics.record_leader_lag(lag.lag_ms)
            else:
                coordinator.metrics.record_replica_lag(lag.lag_ms)
        beat = outcome.heartbeat
        if beat is not None:
            send_heartbeat = self._dispatcher.send_heartbeat
            for target in outcome.heartbeat_targets:
                try:
                    send_heartbeat(target, beat)
                except DispatchError:
                    self._observe("send_failed", target, {"msg": "heartbeat"})
        out = outcome.sync_request
        if out is not None:
            if state.backoff.is_in_backoff(out.target, now):
                self._observe("backoff_skip", out.target, {"since_seq": out.msg.since_seq})
            else:
                token = inputs.token_source() & 0xFFFF_FFFF_FFFF_FFFF
                msg = dataclasses.replace(out.msg, request_id=token)
                state.outstanding.record(out.target, token, now)
                try:
                    self._dispatcher.send_sync_request(out.target, msg)
                except DispatchError:
                    self._observe("send_failed", out.target, {"msg": "sync_request"})
        pending = outcome.transition
        if pending is None:
            return
        try:
            coordinator.transition_to(pending.target, pending.signal)
        except CoordinatorError as exc:
            self._observe("transition_failed", inputs.self_node_id, {"error": type(exc).__name__})
            return
        if pending.target is not ReplicaRole.CANDIDATE:
            return
        # Elect within the same tick so the Candidate window stays instantaneous.
        healthy = state.tracker.healthy_peers(now)
        elect = election_outcome(
            inputs.self_node_id,
            inputs.replica_set,
            inputs.rtt_lookup,
            lambda peer: peer == inputs.self_node_id or peer in healthy,
        )
        if elect is None:
            return
        try:
            coordinator.transition_to(elect.target, elect.signal)
        except TagSinkError:
            # The role moved; only the chain tag is stale. Act on the new role.
            self._observe("tag_sink_failed", inputs.self_node_id, {"target": elect.target.name})
            clear_leader_belief_and_tokens(state, now)
        except InvalidTransitionError:
            # The role moved out from under the election (e.g. closed meanwhile):
            # clear the belief so the next tick rediscovers from a clean slate.
            self._observe(
                "transition_failed", inputs.self_node_id, {"error": "InvalidTransitionError"}
            )
            clear_leader_belief_and_tokens(state, now)
        else:
            clear_leader_belief_and_tokens(state, now)

    # -- inbound ------------------------------------------------------------
    def on_inbound(self, event: Inbound) -> None:
        if isinstance(event, Shutdown):
            self._handle(event)
            return
        inputs = self._inputs
        sender = event.sender
        if sender not in self._members:
            self._observe("reject", sender, {"reason": "not_in_replica_set", "msg": _kind(event)})
            return
        if event.msg.channel_id != inputs.channel_id:
            self._observe("reject", sender, {"reason": "wrong_channel", "msg": _kind(event)})
            return
        if isinstance(event, InboundHeartbeat):
            self._on_heartbeat(event)
        elif isinstance(event, InboundSyncRequest):
            self._on_sync_request(event)
        elif isinstance(event, InboundSyncResponse):
            self._on_sync_response(event)
        else:
            self._on_sync_nack(event)

    def _on_heartbeat(self, event: InboundHeartbeat) -> None:
        inputs, coordinator = self._inputs, self._coordinator
        msg, sender = event.msg, event.sender
        tracker = self._state.tracker
        tracker.record_heartbeat(sender, msg.role, msg.tail_seq, self._clock())
        # Read once: recording the heartbeat never moves the role.
        role = coordinator.role
        if role is ReplicaRole.REPLICA:
            tracker.note_leader_tail(sender, msg.tail_seq, inputs.tail())
        elif (
            role is ReplicaRole.LEADER
            and msg.role is ReplicaRole.LEADER
            and sender != inputs.self_node_id
        ):
            # Two leaders (a partition healed, or a symmetric election): the longer
            # tail keeps the role, a tie goes to the lower node id.
            local_tail = inputs.tail()
            local_wins = local_tail > msg.tail_seq or (
                local_tail == msg.tail_seq and inputs.self_node_id < sender
            )
            if not local_wins:
                self._observe(
                    "concede", sender, {"local_tail": local_tail, "peer_tail": msg.tail_seq}
                )
                try:
                    coordinator.transition_to(
                        ReplicaRole.REPLICA, TransitionSignal.PEER_LEADER_OBSERVED
                    )
                except CoordinatorError as exc:
                    self._observe("transition_failed", sender, {"error": type(exc).__name__})

    def _current_role(self) -> ReplicaRole:
        """The role now (a fresh read: observers may have moved it since the last one)."""
        return self._coordinator.role

    def _nack(self, target: NodeId, since_seq: int, request_id: int, code: SyncNackError) -> None:
        nack = SyncNack(self._inputs.channel_id, since_seq, code, 0, request_id, "")
        try:
            self._dispatcher.send_sync_nack(target, nack)
        except DispatchError:
            self._observe("send_failed", target, {"msg": "sync_nack"})

    def _on_sync_request(self, event: InboundSyncRequest) -> None:
        inputs, coordinator, state = self._inputs, self._coordinator, self._state
        msg, sender = event.msg, event.sender
        if coordinator.role is not ReplicaRole.LEADER:
            self._nack(sender, msg.since_seq, msg.request_id, SyncNackError.NOT_LEADER)
            return
        outcome = handle_sync_request(inputs.log, msg, inputs.channel_id)
        if isinstance(outcome, SyncRequestNack):
            nack = SyncNack(
                inputs.channel_id,
                msg.since_seq,
                outcome.error_code,
                outcome.leader_first_retained_seq,
                msg.request_id,
                outcome.detail,
            )
            try:
                self._dispatcher.send_sync_nack(sender, nack)
            except DispatchError:
                self._observe("send_failed", sender, {"msg": "sync_nack"})
            return
        cost = estimate_served_bytes(inputs.log, outcome)
        admitted = state.budget.try_consume_with_class(
            cost, msg.bandwidth_class, self._clock(), inputs.background_fraction
        )
        if not admitted:
            self._nack(sender, msg.since_seq, msg.request_id, SyncNackError.BACKPRESSURE)
            return
        # Observers run here, between the work and the send; one may move the role
        # (a disk-pressure withdraw, a concession), which the re-check below catches.
        self._observe(
            "serve",
            sender,
            {"first_seq": outcome.first_seq, "events": len(outcome.events), "bytes": cost},
        )
        if self._current_role() is not ReplicaRole.LEADER:
            # The role moved while the chunk was read: never ship as non-leader.
            self._nack(sender, msg.since_seq, msg.request_id, SyncNackError.NOT_LEADER)
            return
        coordinator.metrics.incr_sync_bytes(cost)
        try:
            self._dispatcher.send_sync_response(sender, outcome)
        except DispatchError:
            # Only a synchronous failure refunds; silent loss still costs budget.
            state.budget.refund(cost)
            self._observe("send_failed", sender, {"msg": "sync_response", "refund": cost})

    def _on_sync_response(self, event: InboundSyncResponse) -> None:
        inputs, coordinator, state = self._inputs, self._coordinator, self._state
        msg, sender = event.msg, event.sender
        now = self._clock()
        # Consume the token before any other gate so a response that arrives
        # during role churn does not leave its token behind until the TTL.
        if not state.outstanding.take(sender, msg.request_id, now):
            self._observe("reject", sender, {"reason": "unknown_token", "msg": "sync_response"})
            return
        believed = state.tracker.believed_leader()
        if believed != sender:
            self._observe(
                "reject", sender, {"reason": "not_believed_leader", "msg": "sync_response"}
            )
            return
        if coordinator.role is not ReplicaRole.REPLICA:
            self._observe("reject", sender, {"reason": "not_replica", "msg": "sync_response"})
            return
        log = inputs.log
        pre_apply_tail = log.next_seq
        try:
            new_tail = apply_sync_response(log, msg, inputs.channel_id)
        except AppendFailedError as exc:
            handle_disk_pressure(coordinator, log, exc.detail, sender, self._observe)
            return
        except GapBeforeChunkError as gap:
            self._skip_ahead_on_gap(sender, msg, gap)
            return
        except ApplyError as exc:
            self._observe("apply_failed", sender, {"error": type(exc).__name__})
            return
        coordinator.record_tail_seq(new_tail)
        self._observe_apply(sender, msg, pre_apply_tail, new_tail)
        if new_tail > pre_apply_tail:
            state.backoff.record_progress(sender)
            return
        # Strike only on a fresh heartbeat: a stale advertised tail is no
        # evidence that the leader has anything more to send.
        tracker = state.tracker
        peer = tracker.peer_state(sender)
        lag = tracker.peer_lag(sender, now)
        if (
            peer is not None
            and lag is not None
            and lag < tracker.silence_window_ms
            and peer.tail_seq > new_tail
        ):
            state.backoff.record_empty(sender, now)
            self._observe("empty_strike", sender, {"tail": new_tail, "peer_tail": peer.tail_seq})

    def _observe_apply(self, sender: NodeId, msg: SyncResponse, prev: int, new: int) -> None:
        self._observe(
            "apply",
            sender,
            {
                "request_id": msg.request_id,
                "first_seq": msg.first_seq,
                "events": len(msg.events),
                "prev_tail": prev,
                "new_tail": new,
            },
        )

    def _skip_ahead_on_gap(
        self, sender: NodeId, msg: SyncResponse, gap: GapBeforeChunkError
    ) -> None:
        inputs, coordinator = self._inputs, self._coordinator
        coordinator.metrics.incr_skip_ahead()
        log = inputs.log
        try:
            log.skip_to(gap.first_seq)
        except SkipRejectedError:
            self._observe("skip_rejected", sender, {"to_seq": gap.first_seq})
            return
        self._observe(
            "skip_ahead",
            sender,
            {
                "cause": "gap",
                "from_seq": gap.local_next,
                "to_seq": gap.first_seq,
                "divergence_suspected": int(gap.divergence_suspected),
            },
        )
        pre = log.next_seq
        try:
            new_tail = apply_sync_response(log, msg, inputs.channel_id)
        except ApplyError as exc:
            # As in the reference, a failed retry is only observed: even an
            # append failure here does not run the UnderCapacity policy.
            self._observe("apply_failed", sender, {"error": type(exc).__name__})
            return
        coordinator.record_tail_seq(new_tail)
        self._observe_apply(sender, msg, pre, new_tail)

    def _on_sync_nack(self, event: InboundSyncNack) -> None:
        inputs, coordinator, state = self._inputs, self._coordinator, self._state
        msg, sender = event.msg, event.sender
        believed = state.tracker.believed_leader()
        if believed != sender:
            self._observe("reject", sender, {"reason": "not_believed_leader", "msg": "sync_nack"})
            return
        now = self._clock()
        if not state.outstanding.take(sender, msg.request_id, now):
            self._observe("reject", sender, {"reason": "unknown_token", "msg": "sync_nack"})
            return
        code = msg.error_code
        self._observe("nack", sender, {"error": code.name, "since_seq": msg.since_seq})
        if code is SyncNackError.NOT_LEADER:
            clear_leader_belief_and_tokens(state, now)
        elif code is SyncNackError.BAD_RANGE:
            coordinator.metrics.incr_skip_ahead()
            target = (
                msg.leader_first_retained_seq
                if msg.leader_first_retained_seq > 0
                else msg.since_seq + 1
            )
            from_seq = inputs.log.next_seq
            try:
                inputs.log.skip_to(target)
            except SkipRejectedError:
                self._observe("skip_rejected", sender, {"to_seq": target})
            else:
                self._observe(
                    "skip_ahead",
                    sender,
                    {"cause": "bad_range", "from_seq": from_seq, "to_seq": target,
                     "divergence_suspected": 0},
                )  # fmt: skip
        elif code is SyncNackError.CHANNEL_CLOSED:
            # ChannelClose is valid from every role, so the withdraw always lands.
            try:
                coordinator.transition_to(ReplicaRole.IDLE, TransitionSignal.CHANNEL_CLOSE)
            except CoordinatorError as exc:
                self._observe("transition_failed", sender, {"error": type(exc).__name__})
        # Backpressure: nothing to do; the next tick asks again.


def _kind(event: Inbound) -> str:
    return {
        InboundHeartbeat: "heartbeat",
        InboundSyncRequest: "sync_request",
        InboundSyncResponse: "sync_response",
        InboundSyncNack: "sync_nack",
    }.get(type(event), "shutdown")
