"""Per-channel replication metrics (the operator's view of one channel)."""

from __future__ import annotations

from dataclasses import dataclass

from pytest_replay.replication.messages import ReplicaRole

__all__ = ["ChannelMetrics", "MetricsRegistry", "MetricsSnapshot"]


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """An immutable copy of :class:`ChannelMetrics`; transitions sorted for stable output."""

    leader_lag_ms: int | None
    replica_lag_ms: int | None
    sync_bytes_total: int
    skip_ahead_total: int
    under_capacity_total: int
    transitions: tuple[tuple[str, str, str, int], ...]


class ChannelMetrics:
    """Counters and gauges of one channel, updated by the coordinator and runtime."""

    __slots__ = (
        "_transitions",
        "leader_lag_ms",
        "replica_lag_ms",
        "skip_ahead_total",
        "sync_bytes_total",
        "under_capacity_total",
    )

    def __init__(self) -> None:
        #: Worst replica's heartbeat lag as seen by the leader (last observation).
        self.leader_lag_ms: int | None = None
        #: Believed leader's heartbeat lag as seen by a replica (last observation).
        self.replica_lag_ms: int | None = None
        self.sync_bytes_total = 0
        self.skip_ahead_total = 0
        self.under_capacity_total = 0
        self._transitions: dict[tuple[str, str, str], int] = {}

    def record_leader_lag(self, lag_ms: int) -> None:
        self.leader_lag_ms = lag_ms

    def record_replica_lag(self, lag_ms: int) -> None:
        self.replica_lag_ms = lag_ms

    def incr_sync_bytes(self, count: int) -> None:
        self.sync_bytes_total += count

    def incr_skip_ahead(self) -> None:
        self.skip_ahead_total += 1

    def incr_under_capacity(self) -> None:
        self.under_capacity_total += 1

    def record_transition(self, source: ReplicaRole, target: ReplicaRole, signal: str) -> None:
        key = (source.name, target.name, signal)
        self._transitions[key] = self._transitions.get(key, 0) + 1

    def transition_count(self, source: ReplicaRole, target: ReplicaRole, signal: str) -> int:
        return self._transitions.get((source.name, target.name, signal), 0)

    def snapshot(self) -> MetricsSnapshot:
        return MetricsSnapshot(
            leader_lag_ms=self.leader_lag_ms,
            replica_lag_ms=self.replica_lag_ms,
            sync_bytes_total=self.sync_bytes_total,
            skip_ahead_total=self.skip_ahead_total,
            under_capacity_total=self.under_capacity_total,
            transitions=tuple(sorted((*key, n) for key, n in self._transitions.items())),
        )


class MetricsRegistry:
    """Metrics by channel name; a channel's entry is created on first use."""

    __slots__ = ("_channels",)

    def __init__(self) -> None:
        self._channels: dict[str, ChannelMetrics] = {}

    def for_channel(self, channel_name: str) -> ChannelMetrics:
        metrics = self._channels.get(channel_name)
        if metrics is None:
            metrics = self._channels[channel_name] = ChannelMetrics()
        return metrics

    def channel_names(self) -> list[str]:
        return sorted(self._channels)
