"""The deterministic simulator: N nodes running the replication runtime over a seeded network.

There are no threads and no wall clock. A heap of timed actions (message
deliveries, heartbeat ticks, node starts and crashes, partitions, client
writes, forged messages) is processed in ``(time, insertion order)`` order on
a :class:`~pytest_replay.replication.clock.SimClock`; every random choice
(link drops, jitter, duplicates, reordering, start offsets, request tokens)
comes from generators derived from the schedule's seed. The same schedule
therefore yields the same trace, byte for byte.

Each node owns a :class:`~pytest_replay.replication.log.SequencedLog` that
survives crashes, and, while up, a
:class:`~pytest_replay.replication.runtime.ReplicationRuntime` with its
coordinator, tracker, budget, back-off and request tokens, which a crash
loses. A restart opens the channel again (Idle -> Replica).

Trace conventions (see :mod:`~pytest_replay.replication.trace`): a message
event (``deliver`` / ``drop``) happens at the destination (``node``) and
names the source as ``peer``; its attrs carry ``wire`` (the message id),
``type``, ``sent`` (ms) and a summary of the message. Runtime decisions made
while handling a message carry that message's ``wire`` id.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

from pytest_replay.divergence import Divergence
from pytest_replay.replication.budget import BandwidthBudget
from pytest_replay.replication.clock import SimClock
from pytest_replay.replication.config import ReplicationConfig
from pytest_replay.replication.coordinator import (
    ChainTagSink,
    ChannelIdentity,
    ReplicationCoordinator,
    RoleChange,
)
from pytest_replay.replication.errors import DispatchError, LogFullError, ScheduleError
from pytest_replay.replication.inbox import (
    Inbound,
    InboundHeartbeat,
    InboundSyncNack,
    InboundSyncRequest,
    InboundSyncResponse,
)
from pytest_replay.replication.log import SequencedLog
from pytest_replay.replication.messages import (
    Message,
    NodeId,
    ReplicaRole,
    SyncEvent,
    SyncHeartbeat,
    SyncNack,
    SyncNackError,
    SyncRequest,
    SyncResponse,
    channel_id_for,
)
from pytest_replay.replication.metrics import MetricsRegistry
from pytest_replay.replication.properties import convergence_problems
from pytest_replay.replication.roles import TransitionSignal
from pytest_replay.replication.runtime import ObservedValue, ReplicationRuntime, RuntimeInputs
from pytest_replay.replication.schedule import Forgery, LinkSpec, NetworkSchedule, Partition
from pytest_replay.replication.trace import (
    NO_NODE,
    RawEvent,
    TraceBuffer,
    TraceSink,
    decode_trace,
    encode_trace,
    event_fields,
)

__all__ = [
    "WALL_CLOCK_EPOCH_MS",
    "SimNode",
    "SimStats",
    "Simulation",
    "first_trace_divergence",
    "purpose_seed",
    "verify_trace",
]

#: Added to the simulated time for the heartbeat's (display-only) wall clock field.
WALL_CLOCK_EPOCH_MS = 1_700_000_000_000

_DELIVER, _TICK, _START, _CRASH, _PARTITION, _HEAL, _WRITE, _FORGE, _QUIET = range(9)


def purpose_seed(seed: int, *parts: object) -> int:
    """A 64-bit seed for one purpose of one run (BLAKE2b of the seed and the parts)."""
    text = ":".join([str(seed), *(str(p) for p in parts)]).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


# A message on the network: ``(wire id, source, dest, message, trace summary)``. A plain
# tuple: one is built per message sent, and a frozen dataclass's ``__init__`` (one
# ``object.__setattr__`` per field) took about 1.8 us against a tuple's 0.07 us.
_Wire = tuple[int, NodeId, NodeId, Message, dict[str, ObservedValue]]


def randint_from_bits(getrandbits: Callable[[int], int], lo: int, hi: int) -> int:
    """``random.Random.randint(lo, hi)``'s draw, taken from ``getrandbits``: the same
    number, consuming the generator's stream the same way (rejection sampling on
    ``bit_length`` bits), without its three layers of argument checks."""
    n = hi - lo + 1
    k = n.bit_length()
    r = getrandbits(k)
    while r >= n:
        r = getrandbits(k)
    return lo + r


@dataclass(slots=True)
class SimStats:
    """Counters of one run (for benchmarks and reports; not part of the trace)."""

    actions: int = 0
    sent: int = 0
    delivered: int = 0
    dropped: int = 0
    events: int = 0
    writes_accepted: int = 0
    writes_rejected: int = 0


class SimNode:
    """One simulated node: a log that survives crashes, and a runtime while up."""

    __slots__ = ("current_wire", "id", "incarnation", "log", "registry", "runtime", "tick_at")

    def __init__(self, node_id: NodeId, log: SequencedLog) -> None:
        self.id = node_id
        self.log = log
        self.registry = MetricsRegistry()
        self.runtime: ReplicationRuntime | None = None
        self.incarnation = 0
        self.tick_at = -1
        self.current_wire = -1

    @property
    def up(self) -> bool:
        return self.runtime is not None

    @property
    def role(self) -> ReplicaRole | None:
        """The current role, or ``None`` while crashed."""
        return None if self.runtime is None else self.runtime.coordinator.role


class _SimDispatcher:
    """Routes one node's outbound messages into the simulated network.

    Each send is ``Simulation._send`` with the node bound by a ``partial`` (a C call,
    not one more Python frame per message: a tick sends one heartbeat per peer).
    """

    __slots__ = ("send_heartbeat", "send_sync_nack", "send_sync_request", "send_sync_response")

    send_heartbeat: Callable[[NodeId, SyncHeartbeat], None]
    send_sync_request: Callable[[NodeId, SyncRequest], None]
    send_sync_response: Callable[[NodeId, SyncResponse], None]
    send_sync_nack: Callable[[NodeId, SyncNack], None]

    def __init__(self, sim: Simulation, node: NodeId) -> None:
        send = partial(sim._send, node)
        self.send_heartbeat = self.send_sync_request = send
        self.send_sync_response = self.send_sync_nack = send


# Enum ``.name`` is a descriptor call; every message sent reads one or two of them.
_ROLE_NAMES: Final = {role: role.name for role in ReplicaRole}


def _summary(wire: int, msg: Message, now: int) -> dict[str, ObservedValue]:
    if isinstance(msg, SyncHeartbeat):
        return {
            "wire": wire,
            "type": "heartbeat",
            "sent": now,
            "role": _ROLE_NAMES[msg.role],
            "tail": msg.tail_seq,
        }
    if isinstance(msg, SyncRequest):
        return {
            "wire": wire,
            "type": "sync_request",
            "sent": now,
            "since": msg.since_seq,
            "token": msg.request_id,
            "class": msg.bandwidth_class.name,
        }
    if isinstance(msg, SyncResponse):
        return {
            "wire": wire,
            "type": "sync_response",
            "sent": now,
            "first": msg.first_seq,
            "events": len(msg.events),
            "token": msg.request_id,
            "retained": msg.leader_first_retained_seq,
        }
    return {
        "wire": wire,
        "type": "sync_nack",
        "sent": now,
        "code": msg.error_code.name,
        "since": msg.since_seq,
        "token": msg.request_id,
        "retained": msg.leader_first_retained_seq,
    }


def _inbound(source: NodeId, msg: Message) -> Inbound:
    if isinstance(msg, SyncHeartbeat):
        return InboundHeartbeat(source, msg)
    if isinstance(msg, SyncRequest):
        return InboundSyncRequest(source, msg)
    if isinstance(msg, SyncResponse):
        return InboundSyncResponse(source, msg)
    return InboundSyncNack(source, msg)


class Simulation:
    """A deterministic run of one replicated channel over ``schedule``.

    ``sinks`` receive every trace event as it is produced (a recorder compares
    them live); with ``keep_trace`` the events are also kept in :attr:`trace`.
    ``tag_sink`` builds each node's chain-tag sink (default: accept all).
    """

    def __init__(
        self,
        schedule: NetworkSchedule,
        *,
        sinks: Sequence[TraceSink] = (),
        keep_trace: bool = True,
        tag_sink: Callable[[NodeId], ChainTagSink] | None = None,
    ) -> None:
        self.schedule = schedule
        self.clock = SimClock(0)
        self.stats = SimStats()
        self.trace: TraceBuffer | None = TraceBuffer() if keep_trace else None
        outputs: list[TraceSink] = ([self.trace] if self.trace is not None else []) + list(sinks)
        self._outputs = outputs
        self._tag_sink = tag_sink
        self._members = frozenset(schedule.nodes)
        self._replica_set = tuple(schedule.nodes)
        self._channel_id = channel_id_for(schedule.channel_name)
        self._rng = random.Random(purpose_seed(schedule.seed, "network"))
        self._bits = self._rng.getrandbits
        self._links: dict[tuple[NodeId, NodeId], LinkSpec] = {
            (s, d): spec for s, d, spec in schedule.links
        }
        self._calm_links: dict[LinkSpec, LinkSpec] = {}
        self._calm = False
        self._active: list[Partition] = []
        self._heap: list[tuple[int, int, int, Any]] = []
        self._order = 0
        self._wire = 0
        self._written = 0
        self.nodes: dict[NodeId, SimNode] = {}
        for node_id in sorted(schedule.nodes):
            log = SequencedLog(
                f"node {node_id:#x} log",
                retention_max_events=schedule.retention_max_events,
                capacity_bytes=schedule.capacity_of(node_id),
            )
            self.nodes[node_id] = SimNode(node_id, log)
        hb = schedule.heartbeat_ms
        for node_id in sorted(schedule.nodes):
            self._push(purpose_seed(schedule.seed, "start", node_id) % hb, _START, node_id)
        for partition in schedule.partitions:
            self._push(partition.start_ms, _PARTITION, partition)
            self._push(partition.heal_ms, _HEAL, partition)
        for crash in schedule.crashes:
            self._push(crash.at_ms, _CRASH, crash.node)
            if crash.restart_ms is not None:
                self._push(crash.restart_ms, _START, crash.node)
        for index, stream in enumerate(schedule.writes):
            if stream.total:
                self._push(stream.start_ms, _WRITE, (index, 0))
        for forgery in schedule.forgeries:
            self._push(forgery.at_ms, _FORGE, forgery)
        if schedule.quiet_after_ms is not None:
            self._push(schedule.quiet_after_ms, _QUIET, None)

    # -- reading ------------------------------------------------------------
    @property
    def now_ms(self) -> int:
        return self.clock.now_ms

    def node(self, node_id: NodeId) -> SimNode:
        try:
            return self.nodes[node_id]
        except KeyError:
            raise ScheduleError(
                f"node {node_id:#x} is not simulated (nodes: {sorted(self.nodes)})",
                fix="use a member of the schedule's replica set.",
            ) from None

    def roles(self) -> dict[NodeId, ReplicaRole | None]:
        """Every node's role (``None`` while crashed), by node id."""
        return {node_id: node.role for node_id, node in self.nodes.items()}

    def leaders(self) -> list[NodeId]:
        return [n for n, node in self.nodes.items() if node.role is ReplicaRole.LEADER]

    def pending(self) -> int:
        """Actions still queued (message deliveries, ticks, faults, writes)."""
        return len(self._heap)

    def encoded_trace(self) -> bytes:
        """The stored form of the trace so far (needs ``keep_trace=True``)."""
        if self.trace is None:
            raise ScheduleError(
                "this simulation keeps no trace", fix="create it with keep_trace=True."
            )
        return encode_trace(self.schedule, self.trace.events)

    # -- driving ------------------------------------------------------------
    def run(self) -> Simulation:
        """Run to the schedule's ``end_ms``."""
        self.run_until(self.schedule.end_ms)
        return self

    def run_until(self, time_ms: int) -> None:
        """Process every action due at or before ``time_ms``; the clock ends at ``time_ms``."""
        heap = self._heap
        while heap and heap[0][0] <= time_ms:
            self._step()
        if time_ms > self.clock.now_ms:
            self.clock.set(time_ms)

    def step(self) -> bool:
        """Process the next action; ``False`` when nothing is queued."""
        if not self._heap:
            return False
        self._step()
        return True

    def run_until_converged(self, limit_ms: int) -> int | None:
        """Run heartbeat by heartbeat until :meth:`converged`.

        Returns the time it converged, or ``None`` if not by ``limit_ms``.
        """
        hb = self.schedule.heartbeat_ms
        while True:
            if self.converged():
                return self.clock.now_ms
            if self.clock.now_ms >= limit_ms:
                return None
            self.run_until(min(limit_ms, self.clock.now_ms + hb))

    def converged(self) -> bool:
        """One leader, every other live node a replica holding exactly the leader's log."""
        return not convergence_problems(self)

    def inject(self, source: NodeId, dest: NodeId, msg: Message) -> int:
        """Send ``msg`` from ``source`` (any id, member or not) through the network now.

        The message is marked ``forged`` in the trace; returns its wire id.
        """
        self._send(source, dest, msg, forged=True)
        return self._wire

    # -- internals ----------------------------------------------------------
    def _push(self, time_ms: int, action: int, payload: Any) -> None:
        self._order += 1
        heapq.heappush(self._heap, (time_ms, self._order, action, payload))

    def _emit(self, kind: str, node: int, peer: int, attrs: dict[str, ObservedValue]) -> None:
        event: RawEvent = [self.clock.now_ms, kind, node, peer, attrs]
        self.stats.events += 1
        for output in self._outputs:
            output(event)

    def _step(self) -> None:
        time_ms, _order, action, payload = heapq.heappop(self._heap)
        self.clock.set(time_ms)
        self.stats.actions += 1
        if action == _DELIVER:
            self._deliver(payload, time_ms)
        elif action == _TICK:
            node = self.nodes[payload[0]]
            if node.runtime is not None and node.incarnation == payload[1]:
                node.runtime.run_pending()
                self._ensure_tick(node)
        elif action == _START:
            self._start(self.nodes[payload])
        elif action == _CRASH:
            self._crash(self.nodes[payload])
        elif action == _PARTITION:
            self._active.append(payload)
            self._emit("partition", NO_NODE, NO_NODE, {"side": _ids(payload.side)})
        elif action == _HEAL:
            self._active.remove(payload)
            self._emit("heal", NO_NODE, NO_NODE, {"side": _ids(payload.side)})
        elif action == _WRITE:
            self._write(*payload)
        elif action == _FORGE:
            self._forge(payload)
        else:
            self._calm = True
            self._emit("quiet", NO_NODE, NO_NODE, {})

    def _blocked(self, a: NodeId, b: NodeId) -> bool:
        return any(p.separates(a, b) for p in self._active)

    def _link(self, source: NodeId, dest: NodeId) -> LinkSpec:
        spec = self._links.get((source, dest), self.schedule.link)
        if self._calm:
            calm = self._calm_links.get(spec)
            if calm is None:
                calm = self._calm_links[spec] = spec.calm()
            return calm
        return spec

    def _send(self, source: NodeId, dest: NodeId, msg: Message, *, forged: bool = False) -> None:
        """Put ``msg`` on the network (its wire id is ``self._wire`` afterwards)."""
        now = self.clock.now_ms
        self._wire += 1
        wire = self._wire
        self.stats.sent += 1
        summary = _summary(wire, msg, now)
        if forged:
            summary["forged"] = 1
        else:
            runtime = self.nodes[source].runtime
            summary["sender_role"] = (
                "DOWN" if runtime is None else _ROLE_NAMES[runtime.coordinator.role]
            )
        if dest not in self._members and not forged:
            raise DispatchError(
                f"peer {dest:#x} is unknown to the network",
                where=f"node {source:#x}",
                fix="only address members of the replica set.",
            )
        if self._active and self._blocked(source, dest):
            self._drop(dest, source, summary, "partition")
            return
        spec = self._link(source, dest) if self._links or self._calm else self.schedule.link
        rng = self._rng
        if spec.drop and rng.random() < spec.drop:
            self._drop(dest, source, summary, "loss")
            return
        delay = spec.latency_ms
        if spec.jitter_ms:
            delay += randint_from_bits(self._bits, 0, spec.jitter_ms)
        if spec.reorder and rng.random() < spec.reorder:
            delay += randint_from_bits(self._bits, 1, spec.reorder_ms)
        self._order += 1
        heapq.heappush(
            self._heap, (now + delay, self._order, _DELIVER, (wire, source, dest, msg, summary))
        )
        if spec.duplicate and rng.random() < spec.duplicate:
            again = dict(summary)
            again["duplicate"] = 1
            self._push(
                now + delay + randint_from_bits(self._bits, 1, spec.latency_ms + spec.jitter_ms),
                _DELIVER,
                (wire, source, dest, msg, again),
            )

    def _drop(
        self, dest: NodeId, source: NodeId, summary: dict[str, ObservedValue], reason: str
    ) -> None:
        self.stats.dropped += 1
        attrs = dict(summary)
        attrs["reason"] = reason
        self._emit("drop", dest, source, attrs)

    def _deliver(self, packet: _Wire, now: int) -> None:
        wire, source, dest, msg, summary = packet
        node = self.nodes.get(dest)
        runtime = None if node is None else node.runtime
        if node is None or runtime is None:
            self._drop(dest, source, summary, "down")
            return
        if self._active and self._blocked(source, dest):
            self._drop(dest, source, summary, "partition")
            return
        # A tick due now (or anything still queued) runs first, so what follows is this
        # message's handling alone. Asked first: nothing is due for most deliveries.
        if now >= runtime.next_tick_ms or not runtime.inbox.empty():
            runtime.run_pending()
        if runtime.try_dispatch(_inbound(source, msg)) is not None:
            self._drop(dest, source, summary, "inbox_full")
            return
        self.stats.delivered += 1
        self._emit("deliver", dest, source, summary)
        node.current_wire = wire
        try:
            runtime.run_pending()
        finally:
            node.current_wire = -1
        self._ensure_tick(node)

    def _ensure_tick(self, node: SimNode) -> None:
        runtime = node.runtime
        if runtime is not None:
            due = runtime.next_tick_ms
            if node.tick_at != due:
                node.tick_at = due
                self._push(due, _TICK, (node.id, node.incarnation))

    def _observer(self, node: SimNode) -> Callable[[str, NodeId, dict[str, ObservedValue]], None]:
        def observe(kind: str, peer: NodeId, attrs: dict[str, ObservedValue]) -> None:
            if node.current_wire >= 0:
                attrs = dict(attrs)
                attrs["wire"] = node.current_wire
            self._emit(kind, node.id, peer, attrs)

        return observe

    def _role_observer(self, node: SimNode) -> Callable[[RoleChange], None]:
        def observe(change: RoleChange) -> None:
            self._emit(
                "role",
                node.id,
                NO_NODE,
                {
                    "from": change.source.name,
                    "to": change.target.name,
                    "signal": change.signal.value,
                },
            )

        return observe

    def _start(self, node: SimNode) -> None:
        if node.runtime is not None:
            return
        schedule = self.schedule
        node.incarnation += 1
        config = ReplicationConfig(
            heartbeat_ms=schedule.heartbeat_ms,
            miss_threshold=schedule.miss_threshold,
            on_under_capacity=schedule.on_under_capacity,
            chunk_max_bytes=schedule.chunk_max_bytes,
        )
        channel = ChannelIdentity(schedule.channel_name, origin_hash=node.id)
        coordinator = ReplicationCoordinator(
            channel,
            config,
            None if self._tag_sink is None else self._tag_sink(node.id),
            node.registry,
        )
        coordinator.add_observer(self._role_observer(node))
        tokens = random.Random(purpose_seed(schedule.seed, "tokens", node.id, node.incarnation))
        clock = self.clock
        links = self.schedule
        members = self._members
        me = node.id

        def rtt(peer: NodeId) -> int | None:
            return links.link_spec(me, peer).rtt_ms if peer in members else None

        inputs = RuntimeInputs(
            channel=channel,
            channel_id=self._channel_id,
            self_node_id=node.id,
            replica_set=self._replica_set,
            heartbeat_ms=schedule.heartbeat_ms,
            log=node.log,
            wall_clock=lambda: WALL_CLOCK_EPOCH_MS + clock.now_ms,
            rtt_lookup=rtt,
            token_source=lambda: tokens.getrandbits(64),
            miss_threshold=schedule.miss_threshold,
            chunk_max_bytes=schedule.chunk_max_bytes,
        )
        budget = BandwidthBudget(schedule.budget_rate, schedule.budget_bytes, clock.now_ms)
        node.runtime = ReplicationRuntime(
            inputs,
            coordinator,
            _SimDispatcher(self, node.id),
            budget,
            clock=clock,
            observer=self._observer(node),
        )
        self._emit(
            "start",
            node.id,
            NO_NODE,
            {"incarnation": node.incarnation, "tail": node.log.next_seq},
        )
        coordinator.transition_to(ReplicaRole.REPLICA, TransitionSignal.CAPABILITY_SELECTED)
        self._ensure_tick(node)

    def _crash(self, node: SimNode) -> None:
        if node.runtime is None:
            return
        node.runtime.abort()
        node.runtime = None
        node.tick_at = -1
        self._emit("crash", node.id, NO_NODE, {"incarnation": node.incarnation})

    def _write_target(self) -> SimNode | None:
        longest = max(node.log.next_seq for node in self.nodes.values())
        for node in self.nodes.values():
            if node.role is ReplicaRole.LEADER and node.log.next_seq == longest:
                return node
        return None

    def _write(self, index: int, batch_index: int) -> None:
        stream = self.schedule.writes[index]
        count = min(stream.batch, stream.total - batch_index * stream.batch)
        self.write(count, stream.payload_bytes, tag=f"{index}.{batch_index}")
        if batch_index + 1 < stream.batches:
            self._push(self.clock.now_ms + stream.every_ms, _WRITE, (index, batch_index + 1))

    def write(self, count: int, payload_bytes: int = 16, *, tag: str = "w") -> int | None:
        """A client appends ``count`` entries now; the first seq, or ``None`` when rejected.

        See :class:`~pytest_replay.replication.schedule.WriteStream` for where writes go.
        """
        target = self._write_target()
        if target is None:
            self.stats.writes_rejected += count
            self._emit(
                "write_rejected",
                NO_NODE,
                NO_NODE,
                {"count": count, "reason": "no leader holds the longest log"},
            )
            return None
        log = target.log
        first = log.next_seq
        stem = tag.encode()
        payloads = [
            (b"%s.%d|" % (stem, self._written + j)).ljust(payload_bytes, b"~")[:payload_bytes]
            for j in range(count)
        ]
        try:
            log.append_batch(first, payloads)
        except LogFullError:
            self.stats.writes_rejected += count
            self._emit("write_rejected", target.id, NO_NODE, {"count": count, "reason": "log full"})
            return None
        self._written += count
        self.stats.writes_accepted += count
        self._emit("write", target.id, NO_NODE, {"first": first, "count": count})
        dropped = log.sweep_retention()
        if dropped:
            self._emit(
                "trim",
                target.id,
                NO_NODE,
                {"dropped": dropped, "first_retained": log.first_retained_seq},
            )
        return first

    def _forge(self, forgery: Forgery) -> None:
        target = self.nodes[forgery.target]
        tail = target.log.next_seq
        token = self._rng.getrandbits(64)
        msg: Message
        if forgery.kind == "response":
            msg = SyncResponse(self._channel_id, tail, 0, (SyncEvent(tail, b"forged"),), token)
        elif forgery.kind == "nack":
            msg = SyncNack(
                self._channel_id, tail, SyncNackError.BAD_RANGE, tail + 1_000_000, token, ""
            )
        elif forgery.kind == "heartbeat":
            msg = SyncHeartbeat(self._channel_id, 1 << 40, ReplicaRole.LEADER, WALL_CLOCK_EPOCH_MS)
        else:
            msg = SyncRequest(self._channel_id, 0, self.schedule.chunk_max_bytes, token)
        self._send(forgery.sender, forgery.target, msg, forged=True)


def _ids(nodes: Sequence[NodeId]) -> str:
    return ",".join(str(n) for n in nodes)


# --------------------------------------------------------------------------- replay


def first_trace_divergence(
    expected: Sequence[RawEvent], actual: Sequence[RawEvent]
) -> Divergence | None:
    """The first event where two traces differ (a length divergence if one is a prefix)."""
    for index, (want, got) in enumerate(zip(expected, actual, strict=False)):
        if want != got:
            found = event_fields(want, got)
            if found is not None:
                return Divergence(index, found[0], found[1], found[2])
    if len(expected) != len(actual):
        n = min(len(expected), len(actual))
        return Divergence(n, "length", len(expected), len(actual), "length")
    return None


def verify_trace(data: bytes, source: str = "trace") -> Divergence | None:
    """Re-simulate the schedule stored in ``data``; the first divergence, or ``None``."""
    stored = decode_trace(data, source)
    sim = Simulation(stored.schedule).run()
    assert sim.trace is not None
    return first_trace_divergence(stored.events, sim.trace.events)
