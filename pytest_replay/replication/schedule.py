"""What a simulation runs: nodes, links, faults and client writes, as one frozen value.

A :class:`NetworkSchedule` is everything that decides a simulated run besides
the code: the seed, the replica set, the per-link behaviour (latency, jitter,
drop / duplicate / reorder probabilities), partitions, crashes with restarts,
client write streams and forged messages. The same schedule always gives the
same trace, so a schedule is also what a recording stores to be re-run.

Faults are confined to ``[0, quiet_after_ms)``: from ``quiet_after_ms`` on
the links stop dropping, duplicating and reordering (latency and jitter stay),
every partition has healed and every crashed node that restarts is back. The
convergence property is stated over that quiet tail.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pytest_replay.replication.config import (
    DEFAULT_HEARTBEAT_MS,
    DEFAULT_MISS_THRESHOLD,
    SYNC_REQUEST_CHUNK_MAX_DEFAULT,
    UnderCapacity,
)
from pytest_replay.replication.errors import ScheduleError
from pytest_replay.replication.messages import NodeId

__all__ = [
    "Crash",
    "ForgeKind",
    "Forgery",
    "LinkSpec",
    "NetworkSchedule",
    "Partition",
    "WriteStream",
    "schedule_from_plain",
    "schedule_to_plain",
]

ForgeKind = Literal["response", "nack", "heartbeat", "request"]
_FORGE_KINDS: tuple[str, ...] = ("response", "nack", "heartbeat", "request")


def _probability(name: str, value: float) -> None:
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ScheduleError(
            f"{name}={value} is not a probability", fix="use a value in [0, 1], e.g. 0.05."
        )


@dataclass(frozen=True, slots=True)
class LinkSpec:
    """How one directed link behaves.

    Each message takes ``latency_ms`` plus a uniform ``0..jitter_ms``; it is
    lost with probability ``drop``, delivered a second time with probability
    ``duplicate``, and held back by an extra ``1..reorder_ms`` with
    probability ``reorder`` (so later messages overtake it). Latency is at
    least 1 ms: the election counts the electing node at RTT 0, so a peer at
    RTT 0 would tie with it.
    """

    latency_ms: int = 5
    jitter_ms: int = 0
    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_ms: int = 50

    def __post_init__(self) -> None:
        if self.latency_ms < 1:
            raise ScheduleError(
                f"link latency_ms={self.latency_ms} must be >= 1", fix="use e.g. 5."
            )
        if self.jitter_ms < 0 or self.reorder_ms < 1:
            raise ScheduleError(
                f"link jitter_ms={self.jitter_ms} / reorder_ms={self.reorder_ms}: jitter must "
                "be >= 0 and the reorder hold-back >= 1",
                fix="use e.g. jitter_ms=2, reorder_ms=50.",
            )
        _probability("link drop", self.drop)
        _probability("link duplicate", self.duplicate)
        _probability("link reorder", self.reorder)

    @property
    def rtt_ms(self) -> int:
        """Round-trip estimate the election uses for this link."""
        return 2 * self.latency_ms

    def calm(self) -> LinkSpec:
        """The same link without drops, duplicates or reordering (the quiet network)."""
        return dataclasses.replace(self, drop=0.0, duplicate=0.0, reorder=0.0)


@dataclass(frozen=True, slots=True)
class Partition:
    """From ``start_ms`` until ``heal_ms``, ``side`` and the other nodes cannot talk."""

    start_ms: int
    heal_ms: int
    side: tuple[NodeId, ...]

    def __post_init__(self) -> None:
        if not 0 <= self.start_ms < self.heal_ms:
            raise ScheduleError(
                f"partition {self.side}: start {self.start_ms} ms / heal {self.heal_ms} ms",
                fix="0 <= start_ms < heal_ms.",
            )
        if not self.side:
            raise ScheduleError("partition with an empty side", fix="name at least one node.")

    def separates(self, a: NodeId, b: NodeId) -> bool:
        return (a in self.side) != (b in self.side)


@dataclass(frozen=True, slots=True)
class Crash:
    """``node`` loses its in-memory state at ``at_ms``; its log survives.

    With ``restart_ms`` it reopens the channel then (as a Replica); with
    ``None`` it stays down.
    """

    node: NodeId
    at_ms: int
    restart_ms: int | None = None

    def __post_init__(self) -> None:
        if self.at_ms < 0 or (self.restart_ms is not None and self.restart_ms <= self.at_ms):
            raise ScheduleError(
                f"crash of node {self.node:#x} at {self.at_ms} ms, restart {self.restart_ms}",
                fix="at_ms >= 0 and restart_ms > at_ms (or None to stay down).",
            )


@dataclass(frozen=True, slots=True)
class WriteStream:
    """A client appending ``batch`` entries every ``every_ms`` from ``start_ms``, ``total`` in all.

    A batch goes to the leader that holds the longest log in the cluster (the
    lowest node id among such leaders); when there is none the batch is
    rejected and traced, never queued. Writing only where the longest log is
    keeps the history linear: the runtime, like its reference, does not
    reconcile two logs that were written independently.
    """

    start_ms: int
    every_ms: int
    batch: int
    total: int
    payload_bytes: int = 16

    def __post_init__(self) -> None:
        if self.start_ms < 0 or self.every_ms < 1 or self.batch < 1 or self.total < 0:
            raise ScheduleError(
                f"write stream start={self.start_ms} every={self.every_ms} batch={self.batch} "
                f"total={self.total}",
                fix="start_ms >= 0, every_ms >= 1, batch >= 1, total >= 0.",
            )
        if not 1 <= self.payload_bytes <= 1 << 20:
            raise ScheduleError(
                f"write stream payload_bytes={self.payload_bytes}", fix="use 1..1048576."
            )

    @property
    def batches(self) -> int:
        return -(-self.total // self.batch)

    @property
    def last_ms(self) -> int:
        """When the last batch is attempted (``start_ms`` when there is none)."""
        return self.start_ms + max(0, self.batches - 1) * self.every_ms


@dataclass(frozen=True, slots=True)
class Forgery:
    """At ``at_ms``, ``sender`` ships a forged message of ``kind`` to ``target``.

    ``response`` carries one event at the target's tail and a random token;
    ``nack`` is a BadRange pointing far ahead (it would skip the target's log
    forward); ``heartbeat`` claims Leader with a huge tail; ``request`` asks
    for the whole log. A member of the replica set may only forge responses
    and NACKs (its heartbeats and requests are indistinguishable from real
    ones, which the design does not defend against); an outsider may forge
    anything.
    """

    at_ms: int
    sender: NodeId
    target: NodeId
    kind: ForgeKind = "response"

    def __post_init__(self) -> None:
        if self.at_ms < 0 or self.kind not in _FORGE_KINDS:
            raise ScheduleError(
                f"forgery at {self.at_ms} ms of kind {self.kind!r}",
                fix=f"at_ms >= 0 and kind one of {', '.join(_FORGE_KINDS)}.",
            )


@dataclass(frozen=True, slots=True)
class NetworkSchedule:
    """One simulated run: the replica set, the network, the faults and the writes."""

    seed: int
    nodes: tuple[NodeId, ...]
    end_ms: int
    link: LinkSpec = LinkSpec()
    #: Directed overrides ``(source, destination, spec)``.
    links: tuple[tuple[NodeId, NodeId, LinkSpec], ...] = ()
    partitions: tuple[Partition, ...] = ()
    crashes: tuple[Crash, ...] = ()
    writes: tuple[WriteStream, ...] = ()
    forgeries: tuple[Forgery, ...] = ()
    #: From here on no fault happens and links are calm; ``None`` means ``end_ms``.
    quiet_after_ms: int | None = None
    heartbeat_ms: int = DEFAULT_HEARTBEAT_MS
    miss_threshold: int = DEFAULT_MISS_THRESHOLD
    chunk_max_bytes: int = SYNC_REQUEST_CHUNK_MAX_DEFAULT
    #: The writer sweeps the leader's log to this many entries after each batch.
    retention_max_events: int | None = None
    #: Per-node log capacity in payload bytes (the simulated disk).
    capacity_bytes: tuple[tuple[NodeId, int], ...] = ()
    on_under_capacity: UnderCapacity = UnderCapacity.WITHDRAW
    #: Bandwidth bucket of every node: capacity and the fraction refilled per second.
    budget_bytes: int = 10_000_000
    budget_rate: float = 0.5
    channel_name: str = "sim/replicated"

    def __post_init__(self) -> None:
        nodes = self.nodes
        if not nodes or len(set(nodes)) != len(nodes) or min(nodes) < 0:
            raise ScheduleError(
                f"nodes={nodes}: need at least one node, distinct non-negative ids",
                fix="e.g. nodes=(1, 2, 3).",
            )
        if self.end_ms < 0:
            raise ScheduleError(f"end_ms={self.end_ms} is negative", fix="use e.g. 5000.")
        quiet = self.quiet_ms
        if not 0 <= quiet <= self.end_ms:
            raise ScheduleError(
                f"quiet_after_ms={self.quiet_after_ms} is outside [0, end_ms={self.end_ms}]",
                fix="pick a time within the run (or None for end_ms).",
            )
        if self.heartbeat_ms < 1 or self.miss_threshold < 1 or self.chunk_max_bytes < 1:
            raise ScheduleError(
                f"heartbeat_ms={self.heartbeat_ms}, miss_threshold={self.miss_threshold}, "
                f"chunk_max_bytes={self.chunk_max_bytes}",
                fix="all must be >= 1.",
            )
        if self.retention_max_events is not None and self.retention_max_events < 1:
            raise ScheduleError(
                f"retention_max_events={self.retention_max_events}", fix="None or >= 1."
            )
        if self.budget_bytes < 0 or not (math.isfinite(self.budget_rate) and self.budget_rate >= 0):
            raise ScheduleError(
                f"budget_bytes={self.budget_bytes}, budget_rate={self.budget_rate}",
                fix="a size >= 0 and a finite rate >= 0.",
            )
        members = set(nodes)
        for source, dest, _spec in self.links:
            if source not in members or dest not in members:
                raise ScheduleError(
                    f"link override {source:#x} -> {dest:#x} names a node outside {nodes}",
                    fix="override links between members only.",
                )
        for partition in self.partitions:
            if not set(partition.side) <= members:
                raise ScheduleError(
                    f"partition side {partition.side} names a node outside {nodes}",
                    fix="list members only.",
                )
            if partition.heal_ms > quiet:
                raise ScheduleError(
                    f"partition {partition.side} heals at {partition.heal_ms} ms, after the "
                    f"network goes quiet at {quiet} ms",
                    fix="heal by quiet_after_ms.",
                )
        crashed: dict[NodeId, list[Crash]] = {}
        for crash in self.crashes:
            if crash.node not in members:
                raise ScheduleError(
                    f"crash of node {crash.node:#x}, which is not in {nodes}", fix="crash members."
                )
            if crash.at_ms >= quiet or (crash.restart_ms is not None and crash.restart_ms > quiet):
                raise ScheduleError(
                    f"crash of node {crash.node:#x} at {crash.at_ms} ms (restart "
                    f"{crash.restart_ms}) reaches past quiet_after_ms={quiet}",
                    fix="crash and restart before the network goes quiet.",
                )
            crashed.setdefault(crash.node, []).append(crash)
        for node, spans in sorted(crashed.items()):
            spans.sort(key=lambda c: c.at_ms)
            for before, after in itertools.pairwise(spans):
                if before.restart_ms is None or after.at_ms < before.restart_ms:
                    raise ScheduleError(
                        f"node {node:#x} crashes at {after.at_ms} ms while still down from the "
                        f"crash at {before.at_ms} ms",
                        fix="crash it again only after it restarted.",
                    )
        for stream in self.writes:
            if stream.total and stream.last_ms >= quiet:
                raise ScheduleError(
                    f"write stream ends at {stream.last_ms} ms, at or after quiet_after_ms={quiet}",
                    fix="finish writing before the network goes quiet.",
                )
        for forgery in self.forgeries:
            if forgery.target not in members or forgery.at_ms >= quiet:
                raise ScheduleError(
                    f"forgery to {forgery.target:#x} at {forgery.at_ms} ms: the target must be a "
                    f"member and the time before quiet_after_ms={quiet}",
                    fix="adjust it.",
                )
            if forgery.sender in members and forgery.kind in ("heartbeat", "request"):
                raise ScheduleError(
                    f"member {forgery.sender:#x} forging a {forgery.kind}: members can only "
                    "forge responses and NACKs",
                    fix="use an outsider id as sender.",
                )
        for node, capacity in self.capacity_bytes:
            if node not in members or capacity < 0:
                raise ScheduleError(
                    f"capacity {capacity} for node {node:#x}", fix="a member and a size >= 0."
                )

    @property
    def quiet_ms(self) -> int:
        return self.end_ms if self.quiet_after_ms is None else self.quiet_after_ms

    def link_spec(self, source: NodeId, dest: NodeId) -> LinkSpec:
        for s, d, spec in self.links:
            if s == source and d == dest:
                return spec
        return self.link

    def capacity_of(self, node: NodeId) -> int | None:
        for n, capacity in self.capacity_bytes:
            if n == node:
                return capacity
        return None


# --------------------------------------------------------------------------- plain form


def schedule_to_plain(schedule: NetworkSchedule) -> dict[str, Any]:
    """A msgpack-ready form of ``schedule`` (stored in every trace recording)."""

    def link(spec: LinkSpec) -> list[Any]:
        return [
            spec.latency_ms,
            spec.jitter_ms,
            spec.drop,
            spec.duplicate,
            spec.reorder,
            spec.reorder_ms,
        ]

    return {
        "seed": schedule.seed,
        "nodes": list(schedule.nodes),
        "end_ms": schedule.end_ms,
        "link": link(schedule.link),
        "links": [[s, d, link(spec)] for s, d, spec in schedule.links],
        "partitions": [[p.start_ms, p.heal_ms, list(p.side)] for p in schedule.partitions],
        "crashes": [[c.node, c.at_ms, c.restart_ms] for c in schedule.crashes],
        "writes": [
            [w.start_ms, w.every_ms, w.batch, w.total, w.payload_bytes] for w in schedule.writes
        ],
        "forgeries": [[f.at_ms, f.sender, f.target, f.kind] for f in schedule.forgeries],
        "quiet_after_ms": schedule.quiet_after_ms,
        "heartbeat_ms": schedule.heartbeat_ms,
        "miss_threshold": schedule.miss_threshold,
        "chunk_max_bytes": schedule.chunk_max_bytes,
        "retention_max_events": schedule.retention_max_events,
        "capacity_bytes": [[n, c] for n, c in schedule.capacity_bytes],
        "on_under_capacity": schedule.on_under_capacity.value,
        "budget_bytes": schedule.budget_bytes,
        "budget_rate": schedule.budget_rate,
        "channel_name": schedule.channel_name,
    }


#: What msgpack can carry; a stored integer outside it was not written by us.
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1


def schedule_from_plain(value: Mapping[str, Any], source: str = "schedule") -> NetworkSchedule:
    """Inverse of :func:`schedule_to_plain`; raises :class:`ScheduleError` on a bad shape."""

    def bad(name: str, raw: object, want: str) -> ScheduleError:
        return ScheduleError(
            f"schedule field {name} is {raw!r:.80}, not {want}",
            where=source,
            fix="re-record it (pytest --replay-record).",
        )

    # Exact types, not int()/float() casts: a cast would quietly turn 1.7
    # into 1 or "3" into 3, and int(inf) leaks OverflowError.
    def whole(name: str, raw: Any) -> int:
        if type(raw) is int and _INT_MIN <= raw <= _INT_MAX:
            return raw
        raise bad(name, raw, "an integer")

    def maybe_whole(name: str, raw: Any) -> int | None:
        return None if raw is None else whole(name, raw)

    def real(name: str, raw: Any) -> float:
        # An int is a valid float field: a LinkSpec(drop=0) is stored as 0.
        if (type(raw) is int and _INT_MIN <= raw <= _INT_MAX) or (
            type(raw) is float and math.isfinite(raw)
        ):
            return float(raw)
        raise bad(name, raw, "a finite number")

    def ids(name: str, raw: Any) -> tuple[int, ...]:
        return tuple(whole(name, n) for n in raw)

    def link(name: str, raw: Any) -> LinkSpec:
        latency, jitter, drop, duplicate, reorder, reorder_ms = raw
        return LinkSpec(
            whole(f"{name}.latency_ms", latency),
            whole(f"{name}.jitter_ms", jitter),
            real(f"{name}.drop", drop),
            real(f"{name}.duplicate", duplicate),
            real(f"{name}.reorder", reorder),
            whole(f"{name}.reorder_ms", reorder_ms),
        )

    def forge_kind(raw: Any) -> ForgeKind:
        if type(raw) is str and raw in _FORGE_KINDS:
            return raw  # type: ignore[return-value]
        raise bad("forgeries.kind", raw, f"one of {', '.join(_FORGE_KINDS)}")

    def text(name: str, raw: Any) -> str:
        if type(raw) is str:
            return raw
        raise bad(name, raw, "a string")

    try:
        return NetworkSchedule(
            seed=whole("seed", value["seed"]),
            nodes=ids("nodes", value["nodes"]),
            end_ms=whole("end_ms", value["end_ms"]),
            link=link("link", value["link"]),
            links=tuple(
                (whole("links.source", s), whole("links.dest", d), link("links.spec", spec))
                for s, d, spec in value["links"]
            ),
            partitions=tuple(
                Partition(
                    whole("partitions.start_ms", a),
                    whole("partitions.heal_ms", b),
                    ids("partitions.side", side),
                )
                for a, b, side in value["partitions"]
            ),
            crashes=tuple(
                Crash(
                    whole("crashes.node", n),
                    whole("crashes.at_ms", at),
                    maybe_whole("crashes.restart_ms", back),
                )
                for n, at, back in value["crashes"]
            ),
            writes=tuple(WriteStream(*ids("writes", w)) for w in value["writes"]),
            forgeries=tuple(
                Forgery(
                    whole("forgeries.at_ms", at),
                    whole("forgeries.sender", s),
                    whole("forgeries.target", t),
                    forge_kind(kind),
                )
                for at, s, t, kind in value["forgeries"]
            ),
            quiet_after_ms=maybe_whole("quiet_after_ms", value["quiet_after_ms"]),
            heartbeat_ms=whole("heartbeat_ms", value["heartbeat_ms"]),
            miss_threshold=whole("miss_threshold", value["miss_threshold"]),
            chunk_max_bytes=whole("chunk_max_bytes", value["chunk_max_bytes"]),
            retention_max_events=maybe_whole("retention_max_events", value["retention_max_events"]),
            capacity_bytes=tuple(
                (whole("capacity_bytes.node", n), whole("capacity_bytes.size", c))
                for n, c in value["capacity_bytes"]
            ),
            on_under_capacity=UnderCapacity(value["on_under_capacity"]),
            budget_bytes=whole("budget_bytes", value["budget_bytes"]),
            budget_rate=real("budget_rate", value["budget_rate"]),
            channel_name=text("channel_name", value["channel_name"]),
        )
    except ScheduleError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ScheduleError(
            f"not a valid network schedule ({type(exc).__name__}: {exc})",
            where=source,
            fix="re-record it (pytest --replay-record).",
        ) from exc
