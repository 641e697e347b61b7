"""The pure per-tick step: which heartbeats and sync requests to send, which transition to take.

``tick`` reads the tracker but never mutates it; the runtime performs the
sends (minting request tokens, honouring back-off) and the transition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pytest_replay.replication.election import PendingTransition
from pytest_replay.replication.heartbeat import HeartbeatTracker
from pytest_replay.replication.messages import (
    BandwidthClass,
    ChannelId,
    NodeId,
    ReplicaRole,
    SyncHeartbeat,
    SyncRequest,
)
from pytest_replay.replication.roles import TransitionSignal

__all__ = [
    "OutboundHeartbeat",
    "OutboundMessage",
    "OutboundSyncRequest",
    "TickInputs",
    "TickOutcome",
    "tick",
]


@dataclass(frozen=True, slots=True)
class TickInputs:
    """Everything one tick looks at."""

    self_node_id: NodeId
    current_role: ReplicaRole
    channel_id: ChannelId
    tail_seq: int
    replica_set: Sequence[NodeId]
    tracker: HeartbeatTracker
    wall_clock_ms: int
    chunk_max_bytes: int
    now_ms: int
    default_bandwidth_class: BandwidthClass


@dataclass(frozen=True, slots=True)
class OutboundHeartbeat:
    target: NodeId
    msg: SyncHeartbeat


@dataclass(frozen=True, slots=True)
class OutboundSyncRequest:
    """A catch-up request; ``msg.request_id`` is 0 until the runtime mints a token."""

    target: NodeId
    msg: SyncRequest


OutboundMessage = OutboundHeartbeat | OutboundSyncRequest


@dataclass(frozen=True, slots=True)
class TickOutcome:
    """What one tick decided: one heartbeat for every peer in ``heartbeat_targets``
    (the same message to each: a tick fans out to the whole replica set, so it is
    built once), then at most one catch-up request, then the transition."""

    heartbeat: SyncHeartbeat | None
    heartbeat_targets: tuple[NodeId, ...]
    sync_request: OutboundSyncRequest | None
    transition: PendingTransition | None

    @property
    def outbound(self) -> tuple[OutboundMessage, ...]:
        """Every message to send, in send order."""
        beat = self.heartbeat
        out: list[OutboundMessage] = []
        if beat is not None:
            out.extend(OutboundHeartbeat(peer, beat) for peer in self.heartbeat_targets)
        if self.sync_request is not None:
            out.append(self.sync_request)
        return tuple(out)


def tick(inputs: TickInputs) -> TickOutcome:
    """One heartbeat interval's worth of decisions.

    * Idle sends nothing.
    * Every other role heartbeats every other member of the replica set.
    * A Replica whose leader went silent moves to Candidate (MissedHeartbeats);
      one whose leader kept advertising a shorter log than ours moves to
      Candidate on LeaderBehind; otherwise, when the believed leader advertises
      a longer tail than ours, it asks for events from our tail.
    """
    role = inputs.current_role
    if role is ReplicaRole.IDLE:
        return TickOutcome(None, (), None, None)
    beat = SyncHeartbeat(inputs.channel_id, inputs.tail_seq, role, inputs.wall_clock_ms)
    me = inputs.self_node_id
    # Each peer once, in replica-set order.
    targets = tuple(dict.fromkeys([peer for peer in inputs.replica_set if peer != me]))
    transition: PendingTransition | None = None
    request: OutboundSyncRequest | None = None
    if role is ReplicaRole.REPLICA:
        tracker = inputs.tracker
        if tracker.leader_silent(inputs.now_ms):
            transition = PendingTransition(
                ReplicaRole.CANDIDATE, TransitionSignal.MISSED_HEARTBEATS
            )
        elif tracker.leader_behind():
            transition = PendingTransition(ReplicaRole.CANDIDATE, TransitionSignal.LEADER_BEHIND)
        else:
            leader = tracker.believed_leader()
            state = None if leader is None else tracker.peer_state(leader)
            if (
                leader is not None
                and state is not None
                and leader != inputs.self_node_id
                and state.tail_seq > inputs.tail_seq
            ):
                request = OutboundSyncRequest(
                    leader,
                    SyncRequest(
                        channel_id=inputs.channel_id,
                        since_seq=inputs.tail_seq,
                        chunk_max=inputs.chunk_max_bytes,
                        request_id=0,
                        bandwidth_class=inputs.default_bandwidth_class,
                    ),
                )
    return TickOutcome(beat, targets, request, transition)
