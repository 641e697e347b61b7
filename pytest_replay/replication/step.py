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
    outbound: tuple[OutboundMessage, ...]
    transition: PendingTransition | None


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
        return TickOutcome((), None)
    beat = SyncHeartbeat(inputs.channel_id, inputs.tail_seq, role, inputs.wall_clock_ms)
    outbound: list[OutboundMessage] = []
    seen: set[NodeId] = set()
    for peer in inputs.replica_set:
        if peer != inputs.self_node_id and peer not in seen:
            seen.add(peer)
            outbound.append(OutboundHeartbeat(peer, beat))
    transition: PendingTransition | None = None
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
                request = SyncRequest(
                    channel_id=inputs.channel_id,
                    since_seq=inputs.tail_seq,
                    chunk_max=inputs.chunk_max_bytes,
                    request_id=0,
                    bandwidth_class=inputs.default_bandwidth_class,
                )
                outbound.append(OutboundSyncRequest(leader, request))
    return TickOutcome(tuple(outbound), transition)
