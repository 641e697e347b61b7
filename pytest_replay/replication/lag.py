"""Lag observation: the gauge a tick records for its role.

A leader reports its worst peer (longest time since that peer's last
heartbeat, never counting itself or peers never heard); a replica reports its
believed leader's lag; Candidate and Idle report nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pytest_replay.replication.heartbeat import HeartbeatTracker
from pytest_replay.replication.messages import NodeId, ReplicaRole

__all__ = ["LagObservation", "observe_lag"]


@dataclass(frozen=True, slots=True)
class LagObservation:
    kind: Literal["leader", "replica"]
    lag_ms: int


def observe_lag(
    role: ReplicaRole,
    replica_set: Iterable[NodeId],
    self_node_id: NodeId,
    tracker: HeartbeatTracker,
    now_ms: int,
) -> LagObservation | None:
    if role is ReplicaRole.LEADER:
        lags = [
            lag
            for peer in replica_set
            if peer != self_node_id
            for lag in (tracker.peer_lag(peer, now_ms),)
            if lag is not None
        ]
        return LagObservation("leader", max(lags)) if lags else None
    if role is ReplicaRole.REPLICA:
        leader = tracker.believed_leader()
        if leader is None:
            return None
        lag = tracker.peer_lag(leader, now_ms)
        return None if lag is None else LagObservation("replica", lag)
    return None
