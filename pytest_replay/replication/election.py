"""Deterministic leader election: lowest RTT wins, then the lowest node id.

The electing node counts itself at RTT 0 and always as healthy; peers count
only when healthy and when their RTT is known. Every node that runs the
election with the same inputs picks the same winner; when partitions give
nodes different inputs, the dual-leader rule (see the runtime) converges them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pytest_replay.replication.messages import NodeId, ReplicaRole
from pytest_replay.replication.roles import TransitionSignal

__all__ = ["PendingTransition", "RttLookup", "election_outcome", "election_winner"]

#: RTT in milliseconds to a peer, or ``None`` when unknown (the peer is skipped).
RttLookup = Callable[[NodeId], int | None]


@dataclass(frozen=True, slots=True)
class PendingTransition:
    """A transition a pure step function asks the runtime to perform."""

    target: ReplicaRole
    signal: TransitionSignal


def election_winner(
    self_node_id: NodeId,
    replica_set: Iterable[NodeId],
    rtt_lookup: RttLookup,
    is_healthy: Callable[[NodeId], bool],
) -> NodeId | None:
    """The elected node, or ``None`` when no member is eligible."""
    best: tuple[int, NodeId] | None = None
    for peer in sorted(set(replica_set)):
        if not is_healthy(peer):
            continue
        rtt = 0 if peer == self_node_id else rtt_lookup(peer)
        if rtt is None:
            continue
        key = (rtt, peer)
        if best is None or key < best:
            best = key
    return None if best is None else best[1]


def election_outcome(
    self_node_id: NodeId,
    replica_set: Iterable[NodeId],
    rtt_lookup: RttLookup,
    is_healthy: Callable[[NodeId], bool],
) -> PendingTransition | None:
    """What a Candidate does next: Leader on ElectionWon, Replica on ElectionLost."""
    winner = election_winner(self_node_id, replica_set, rtt_lookup, is_healthy)
    if winner is None:
        return None
    if winner == self_node_id:
        return PendingTransition(ReplicaRole.LEADER, TransitionSignal.ELECTION_WON)
    return PendingTransition(ReplicaRole.REPLICA, TransitionSignal.ELECTION_LOST)
