"""The per-channel coordinator: owns the role, validates transitions, keeps metrics.

A transition first validates against :mod:`~pytest_replay.replication.roles`,
then moves the role, counts it, notifies observers, and finally runs the
chain-tag side effect (announce on entering Replica or Leader, withdraw on
entering Idle). A failing side effect raises :class:`TagSinkError` *after*
the role moved, so callers can tell "state did not move" from "state moved,
tag is stale".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pytest_replay.replication.config import ReplicationConfig
from pytest_replay.replication.errors import TagSinkError
from pytest_replay.replication.messages import ReplicaRole
from pytest_replay.replication.metrics import ChannelMetrics, MetricsRegistry
from pytest_replay.replication.roles import TransitionSignal, is_idempotent, validate_transition

__all__ = [
    "ChainTagSink",
    "ChannelIdentity",
    "NoopTagSink",
    "ReplicationCoordinator",
    "RoleChange",
    "TransitionObserver",
]


@dataclass(frozen=True, slots=True)
class ChannelIdentity:
    """Which channel, and the origin hash its chain tag is announced under."""

    channel_name: str
    origin_hash: int


@dataclass(frozen=True, slots=True)
class RoleChange:
    """One completed role transition."""

    source: ReplicaRole
    target: ReplicaRole
    signal: TransitionSignal


class ChainTagSink(Protocol):
    """Where a node announces (or withdraws) that it holds a channel's chain.

    Either method raises any exception to report failure.
    """

    def announce_chain(self, origin_hash: int, tip_seq: int) -> None: ...

    def withdraw_chain(self, origin_hash: int) -> None: ...


class NoopTagSink:
    """A sink that accepts every announcement and withdrawal."""

    def announce_chain(self, origin_hash: int, tip_seq: int) -> None:
        return None

    def withdraw_chain(self, origin_hash: int) -> None:
        return None


TransitionObserver = Callable[[RoleChange], None]


class ReplicationCoordinator:
    """Role state machine of one channel on one node."""

    __slots__ = ("_channel", "_config", "_metrics", "_observers", "_role", "_sink", "_tail_seq")

    def __init__(
        self,
        channel: ChannelIdentity,
        config: ReplicationConfig | None = None,
        tag_sink: ChainTagSink | None = None,
        registry: MetricsRegistry | None = None,
    ) -> None:
        self._channel = channel
        self._config = config if config is not None else ReplicationConfig()
        self._sink: ChainTagSink = tag_sink if tag_sink is not None else NoopTagSink()
        registry = registry if registry is not None else MetricsRegistry()
        self._metrics = registry.for_channel(channel.channel_name)
        self._role = ReplicaRole.IDLE
        self._tail_seq = 0
        self._observers: list[TransitionObserver] = []

    @property
    def channel(self) -> ChannelIdentity:
        return self._channel

    @property
    def role(self) -> ReplicaRole:
        return self._role

    @property
    def config(self) -> ReplicationConfig:
        return self._config

    @property
    def metrics(self) -> ChannelMetrics:
        return self._metrics

    @property
    def tail_seq(self) -> int:
        """The tail advertised with chain tags (monotonic)."""
        return self._tail_seq

    def record_tail_seq(self, tail_seq: int) -> None:
        """Raise the advertised tail; a lower value is ignored."""
        if tail_seq > self._tail_seq:
            self._tail_seq = tail_seq

    def add_observer(self, observer: TransitionObserver) -> None:
        """Call ``observer`` after every completed transition (before the side effect)."""
        self._observers.append(observer)

    def transition_to(self, target: ReplicaRole, signal: TransitionSignal) -> RoleChange | None:
        """Move to ``target`` on ``signal``.

        Returns the change, or ``None`` for the idempotent Idle → Idle close.
        Raises :class:`InvalidTransitionError` (role unchanged) or
        :class:`TagSinkError` (role changed, side effect failed).
        """
        source = self._role
        if is_idempotent(source, target, signal):
            return None
        validate_transition(source, target, signal)
        self._role = target
        change = RoleChange(source, target, signal)
        self._metrics.record_transition(source, target, signal.value)
        for observer in list(self._observers):
            observer(change)
        try:
            if target in (ReplicaRole.REPLICA, ReplicaRole.LEADER):
                self._sink.announce_chain(self._channel.origin_hash, self._tail_seq)
            elif target is ReplicaRole.IDLE:
                self._sink.withdraw_chain(self._channel.origin_hash)
        except Exception as exc:
            raise TagSinkError(
                f"role moved {source.name} -> {target.name} on {signal.value}, but the "
                f"chain-tag side effect failed: {exc}",
                where=f"channel {self._channel.channel_name!r}",
                fix="the tag re-announces on the next successful transition; check the tag sink.",
            ) from exc
        return change
