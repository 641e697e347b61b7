"""A one-node harness: a runtime on a virtual clock, with a recording dispatcher.

The reference tests drive one runtime against a recorder mock; this is the
same rig without tasks: the clock only moves when :meth:`RuntimeHarness.advance`
says so, and every tick due on the way runs in order.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from pytest_replay.replication.budget import BandwidthBudget
from pytest_replay.replication.clock import SimClock
from pytest_replay.replication.config import ReplicationConfig, UnderCapacity
from pytest_replay.replication.coordinator import (
    ChainTagSink,
    ChannelIdentity,
    ReplicationCoordinator,
)
from pytest_replay.replication.dispatch import RecordingDispatcher
from pytest_replay.replication.election import RttLookup
from pytest_replay.replication.log import SequencedLog
from pytest_replay.replication.messages import (
    BandwidthClass,
    ChannelId,
    NodeId,
    ReplicaRole,
    channel_id_for,
)
from pytest_replay.replication.metrics import MetricsRegistry
from pytest_replay.replication.roles import TransitionSignal
from pytest_replay.replication.runtime import ObservedValue, ReplicationRuntime, RuntimeInputs

__all__ = ["TEST_CHANNEL", "RuntimeHarness", "build_harness"]

TEST_CHANNEL = "test/runtime"

_PATH: dict[ReplicaRole, list[tuple[ReplicaRole, TransitionSignal]]] = {
    ReplicaRole.IDLE: [],
    ReplicaRole.REPLICA: [(ReplicaRole.REPLICA, TransitionSignal.CAPABILITY_SELECTED)],
    ReplicaRole.CANDIDATE: [
        (ReplicaRole.REPLICA, TransitionSignal.CAPABILITY_SELECTED),
        (ReplicaRole.CANDIDATE, TransitionSignal.MISSED_HEARTBEATS),
    ],
    ReplicaRole.LEADER: [
        (ReplicaRole.REPLICA, TransitionSignal.CAPABILITY_SELECTED),
        (ReplicaRole.CANDIDATE, TransitionSignal.MISSED_HEARTBEATS),
        (ReplicaRole.LEADER, TransitionSignal.ELECTION_WON),
    ],
}


def promote(coordinator: ReplicationCoordinator, role: ReplicaRole) -> None:
    """Walk an Idle coordinator to ``role`` through valid transitions."""
    for target, signal in _PATH[role]:
        coordinator.transition_to(target, signal)


@dataclass
class RuntimeHarness:
    """One runtime and everything around it."""

    clock: SimClock
    runtime: ReplicationRuntime
    coordinator: ReplicationCoordinator
    dispatcher: RecordingDispatcher
    budget: BandwidthBudget
    log: SequencedLog
    registry: MetricsRegistry
    channel_id: ChannelId
    observed: list[tuple[str, NodeId, dict[str, ObservedValue]]] = field(default_factory=list)

    def advance(self, ms: int) -> None:
        """Handle what is queued now, then move the clock ``ms`` forward tick by tick."""
        target = self.clock.now_ms + ms
        runtime = self.runtime
        runtime.run_pending()
        while not runtime.is_stopped() and runtime.next_tick_ms <= target:
            self.clock.set(runtime.next_tick_ms)
            runtime.run_pending()
        self.clock.set(target)
        runtime.run_pending()

    def kinds(self) -> list[str]:
        """The kinds of the runtime's observations so far."""
        return [kind for kind, _peer, _attrs in self.observed]


def build_harness(
    self_id: NodeId = 0x10,
    replicas: Sequence[NodeId] = (0x10, 0x20),
    heartbeat_ms: int = 100,
    *,
    tail: int | None = 42,
    role: ReplicaRole = ReplicaRole.IDLE,
    tag_sink: ChainTagSink | None = None,
    policy: UnderCapacity = UnderCapacity.WITHDRAW,
    budget: BandwidthBudget | None = None,
    bandwidth_class: BandwidthClass = BandwidthClass.FOREGROUND,
    background_fraction: float = 0.3,
    log: SequencedLog | None = None,
    start_ms: int = 0,
    fail_responses: bool = False,
    seed: int = 0,
    rtt: RttLookup | None = None,
) -> RuntimeHarness:
    """A runtime for ``self_id`` in ``replicas``, its coordinator walked to ``role``.

    ``tail`` fixes what the runtime reports as its local tail (the reference
    tests' ``tail_provider``); ``None`` reads the log.
    """
    clock = SimClock(start_ms)
    registry = MetricsRegistry()
    channel = ChannelIdentity(TEST_CHANNEL, 0xCAFE_BABE)
    coordinator = ReplicationCoordinator(
        channel,
        ReplicationConfig(heartbeat_ms=heartbeat_ms, on_under_capacity=policy),
        tag_sink,
        registry,
    )
    promote(coordinator, role)
    dispatcher = RecordingDispatcher(fail_responses=fail_responses)
    the_log = log if log is not None else SequencedLog(TEST_CHANNEL)
    # Seeded so request tokens are the same on every run.
    tokens = random.Random(seed)
    fixed_tail = tail
    inputs = RuntimeInputs(
        channel=channel,
        channel_id=channel_id_for(TEST_CHANNEL),
        self_node_id=self_id,
        replica_set=tuple(replicas),
        heartbeat_ms=heartbeat_ms,
        log=the_log,
        wall_clock=lambda: 1_700_000_000_000,
        rtt_lookup=rtt if rtt is not None else (lambda peer: 5),
        token_source=lambda: tokens.getrandbits(64),
        tail_provider=None if fixed_tail is None else (lambda: fixed_tail),
        default_bandwidth_class=bandwidth_class,
        background_fraction=background_fraction,
    )
    the_budget = budget if budget is not None else BandwidthBudget(0.5, 10_000_000, start_ms)
    observed: list[tuple[str, NodeId, dict[str, ObservedValue]]] = []

    def observe(kind: str, peer: NodeId, attrs: dict[str, ObservedValue]) -> None:
        observed.append((kind, peer, attrs))

    runtime = ReplicationRuntime(
        inputs, coordinator, dispatcher, the_budget, clock=clock, observer=observe
    )
    return RuntimeHarness(
        clock=clock,
        runtime=runtime,
        coordinator=coordinator,
        dispatcher=dispatcher,
        budget=the_budget,
        log=the_log,
        registry=registry,
        channel_id=inputs.channel_id,
        observed=observed,
    )
