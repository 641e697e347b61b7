"""Strategies for the replication simulator: links and whole fault schedules.

>>> from pytest_replay.strategies.replication import network_schedules
>>> schedule = network_schedules(max_nodes=3).example()
>>> 2 <= len(schedule.nodes) <= 3 and schedule.quiet_ms < schedule.end_ms
True
"""

from __future__ import annotations

from hypothesis import strategies as st

from pytest_replay.replication.messages import NodeId
from pytest_replay.replication.schedule import (
    Crash,
    ForgeKind,
    Forgery,
    LinkSpec,
    NetworkSchedule,
    Partition,
    WriteStream,
)

from .errors import StrategyArgumentError

__all__ = ["OUTSIDER_BASE", "link_specs", "network_schedules"]

#: Forged messages from outside the replica set use ids from here on.
OUTSIDER_BASE = 1_000


def link_specs(
    *,
    max_latency_ms: int = 20,
    max_jitter_ms: int = 10,
    max_drop: float = 0.2,
    max_duplicate: float = 0.1,
    max_reorder: float = 0.2,
) -> st.SearchStrategy[LinkSpec]:
    """A lossy, jittery link; the bounds keep a 100 ms heartbeat meaningful.

    >>> spec = link_specs(max_drop=0.0).example()
    >>> spec.drop == 0.0 and spec.latency_ms >= 1
    True
    """
    return st.builds(
        LinkSpec,
        latency_ms=st.integers(1, max_latency_ms),
        jitter_ms=st.integers(0, max_jitter_ms),
        drop=st.floats(0.0, max_drop),
        duplicate=st.floats(0.0, max_duplicate),
        reorder=st.floats(0.0, max_reorder),
        reorder_ms=st.integers(1, 60),
    )


@st.composite
def _partitions(
    draw: st.DrawFn, nodes: tuple[NodeId, ...], fault_ms: int, most: int
) -> tuple[Partition, ...]:
    out = []
    for _ in range(draw(st.integers(0, most))):
        start = draw(st.integers(0, fault_ms - 2))
        heal = draw(st.integers(start + 1, fault_ms))
        side = draw(
            st.lists(st.sampled_from(nodes), min_size=1, max_size=len(nodes) - 1, unique=True)
        )
        out.append(Partition(start, heal, tuple(sorted(side))))
    return tuple(out)


@st.composite
def _crashes(
    draw: st.DrawFn, nodes: tuple[NodeId, ...], fault_ms: int, most: int
) -> tuple[Crash, ...]:
    victims = draw(st.lists(st.sampled_from(nodes), max_size=min(most, len(nodes)), unique=True))
    out = []
    for node in victims:
        at = draw(st.integers(0, fault_ms - 2))
        out.append(Crash(node, at, draw(st.integers(at + 1, fault_ms))))
    return tuple(out)


@st.composite
def _writes(draw: st.DrawFn, fault_ms: int, most: int, max_entries: int) -> tuple[WriteStream, ...]:
    out = []
    for _ in range(draw(st.integers(0, most))):
        start = draw(st.integers(0, fault_ms - 1))
        every = draw(st.integers(5, 200))
        batch = draw(st.integers(1, 10))
        room = (fault_ms - 1 - start) // every + 1
        total = draw(st.integers(0, min(max_entries, room * batch)))
        out.append(WriteStream(start, every, batch, total, draw(st.integers(1, 64))))
    return tuple(out)


@st.composite
def _forgeries(
    draw: st.DrawFn, nodes: tuple[NodeId, ...], fault_ms: int, most: int
) -> tuple[Forgery, ...]:
    out = []
    for _ in range(draw(st.integers(0, most))):
        at = draw(st.integers(0, fault_ms - 1))
        target = draw(st.sampled_from(nodes))
        if draw(st.booleans()):
            sender = OUTSIDER_BASE + draw(st.integers(0, 7))
            kinds: tuple[ForgeKind, ...] = ("response", "nack", "heartbeat", "request")
        else:
            sender = draw(st.sampled_from(nodes))
            kinds = ("response", "nack")
        out.append(Forgery(at, sender, target, draw(st.sampled_from(kinds))))
    return tuple(out)


def network_schedules(
    *,
    min_nodes: int = 2,
    max_nodes: int = 5,
    fault_ms: int = 3_000,
    quiet_ms: int = 4_000,
    max_partitions: int = 2,
    max_crashes: int = 2,
    max_write_streams: int = 2,
    max_entries: int = 200,
    max_forgeries: int = 3,
    links: st.SearchStrategy[LinkSpec] | None = None,
) -> st.SearchStrategy[NetworkSchedule]:
    """A fault schedule: faults and writes in ``[0, fault_ms)``, then ``quiet_ms`` of calm.

    Node ids are distinct small integers (so tie-breaks on node id vary);
    partitions isolate a non-empty proper subset; every crashed node
    restarts before the quiet period; forgeries come from outsiders (any
    message kind) or from members (responses and NACKs only). ``quiet_ms``
    should leave room for convergence: 40 heartbeats by default.
    """
    if not 1 <= min_nodes <= max_nodes or fault_ms < 2 or quiet_ms < 0:
        raise StrategyArgumentError(
            f"network_schedules got impossible bounds (min_nodes={min_nodes}, "
            f"max_nodes={max_nodes}, fault_ms={fault_ms}, quiet_ms={quiet_ms})",
            fix="1 <= min_nodes <= max_nodes, fault_ms >= 2, quiet_ms >= 0.",
        )
    return _network_schedules(
        min_nodes=min_nodes,
        max_nodes=max_nodes,
        fault_ms=fault_ms,
        quiet_ms=quiet_ms,
        max_partitions=max_partitions,
        max_crashes=max_crashes,
        max_write_streams=max_write_streams,
        max_entries=max_entries,
        max_forgeries=max_forgeries,
        links=links,
    )


@st.composite
def _network_schedules(
    draw: st.DrawFn,
    *,
    min_nodes: int = 2,
    max_nodes: int = 5,
    fault_ms: int = 3_000,
    quiet_ms: int = 4_000,
    max_partitions: int = 2,
    max_crashes: int = 2,
    max_write_streams: int = 2,
    max_entries: int = 200,
    max_forgeries: int = 3,
    links: st.SearchStrategy[LinkSpec] | None = None,
) -> NetworkSchedule:
    ids = draw(st.lists(st.integers(1, 64), min_size=min_nodes, max_size=max_nodes, unique=True))
    nodes = tuple(sorted(ids))
    link_strategy = links if links is not None else link_specs()
    overrides: list[tuple[int, int, LinkSpec]] = []
    if len(nodes) > 1:
        # Two distinct nodes without a filter: the second index skips over the first.
        last = len(nodes) - 1
        override = st.tuples(st.integers(0, last), st.integers(0, last - 1), link_strategy).map(
            lambda t: (nodes[t[0]], nodes[t[1] + (t[1] >= t[0])], t[2])
        )
        overrides = draw(st.lists(override, max_size=2, unique_by=lambda t: (t[0], t[1])))
    return NetworkSchedule(
        seed=draw(st.integers(0, 2**32 - 1)),
        nodes=nodes,
        end_ms=fault_ms + quiet_ms,
        link=draw(link_strategy),
        links=tuple(overrides),
        partitions=draw(_partitions(nodes, fault_ms, max_partitions if len(nodes) > 1 else 0)),
        crashes=draw(_crashes(nodes, fault_ms, max_crashes)),
        writes=draw(_writes(fault_ms, max_write_streams, max_entries)),
        forgeries=draw(_forgeries(nodes, fault_ms, max_forgeries)),
        quiet_after_ms=fault_ms,
    )
