"""Strategies for fleet replay: steps and messages, provenance graphs, faulty fleets, and
single fleet logs built in memory.

:func:`provenance_graphs` draws a :class:`FleetSpec`: a topology, the steps every
(instance, subsystem) session recorded, and the provenance origins of their
messages. The graph is drawn as a list of nodes in a hidden global order, each
with its parent choices among the nodes drawn before it, so the graph is acyclic
by construction, generation never rejects, and Hypothesis shrinks a failure by
deleting nodes (list elements): a bug that needs one node with two parents
shrinks to three nodes. :func:`materialize` writes the spec as real fleet logs
and a topology file; :func:`faulty_provenance_graphs` injects exactly one
labelled fault with the error replay must raise.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from hypothesis import strategies as st

from pytest_replay._atomic import atomic_write_bytes
from pytest_replay.errors import ReplayError
from pytest_replay.fleet.errors import ReplayGraphError, ReplayValidationError
from pytest_replay.fleet.logformat import encode_keyframes, encode_lifecycle, encode_steps
from pytest_replay.fleet.records import (
    MAX_CODE,
    MAX_INSTANCE_ID,
    ConfigSource,
    Instantiated,
    Keyframe,
    LifecycleRecord,
    Message,
    MissionStarted,
    Origin,
    StackInfo,
    Step,
)
from pytest_replay.fleet.topology import format_topology
from pytest_replay.fleet.writer import FleetLogWriter
from pytest_replay.formats.fleet_log import (
    LOG_EXTENSION,
    SLAB_HEADER,
    SectionType,
    encode_end_frame,
    encode_frame,
    encode_slab_header,
)

from .errors import StrategyArgumentError

__all__ = [
    "FAULTS",
    "PROVENANCE_GRAPH_NODE_LIMIT",
    "FaultyFleet",
    "FleetLogCase",
    "FleetSpec",
    "MaterializedFleet",
    "NodeKey",
    "SessionSpec",
    "faulty_provenance_graphs",
    "fleet_log_cases",
    "materialize",
    "messages",
    "origins",
    "provenance_graphs",
    "slab_name",
    "steps",
]

_U64 = st.integers(0, 2**64 - 1)

#: A node of the causal graph, ordered like the engine's scheduling key:
#: (instance id, subsystem code, step id).
NodeKey = tuple[int, int, int]


# --------------------------------------------------------------------------- values


def origins() -> st.SearchStrategy[Origin]:
    """Any :class:`~pytest_replay.fleet.Origin` the log format stores.

    >>> 0 <= origins().example().subsystem_code <= 0xFFFF
    True
    """
    return st.builds(Origin, st.integers(0, MAX_INSTANCE_ID), st.integers(0, MAX_CODE), _U64)


def messages(max_payload: int = 16) -> st.SearchStrategy[Message]:
    """A fleet :class:`~pytest_replay.fleet.Message`, with or without provenance.

    >>> isinstance(messages().example().payload, bytes)
    True
    """
    return st.builds(Message, st.binary(max_size=max_payload), st.none() | origins())


def steps(step_id: st.SearchStrategy[int] = _U64, max_messages: int = 3) -> st.SearchStrategy[Step]:
    """One :class:`~pytest_replay.fleet.Step` with up to ``max_messages`` messages.

    >>> step = steps(step_id=st.just(7)).example()
    >>> step.step_id
    7
    """
    return st.builds(Step, step_id, _U64, st.lists(messages(), max_size=max_messages).map(tuple))


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True, slots=True)
class SessionSpec:
    """The recorded log of one (instance, subsystem) session."""

    instance_id: int
    subsystem_id: str
    subsystem_code: int
    steps: tuple[Step, ...]
    keyframes: tuple[Keyframe, ...]
    mission: str | None = "default"

    def node(self, step: Step) -> NodeKey:
        return (self.instance_id, self.subsystem_code, step.step_id)


@dataclass(frozen=True, slots=True)
class FleetSpec:
    """A whole recorded fleet: topology, sessions and provenance.

    ``sessions`` are sorted by (instance id, subsystem code). ``hidden_order`` is
    the order nodes were generated in; every provenance edge of a spec from
    :func:`provenance_graphs` goes forward in it. ``extra_logs`` are additional
    logs (a fault: a second log for a session that has one already).
    """

    subsystems: tuple[tuple[str, int], ...]
    sessions: tuple[SessionSpec, ...]
    hidden_order: tuple[NodeKey, ...]
    extra_logs: tuple[SessionSpec, ...] = ()

    @property
    def instances(self) -> tuple[int, ...]:
        return tuple(sorted({session.instance_id for session in self.sessions}))

    @property
    def total_nodes(self) -> int:
        return sum(len(session.steps) for session in self.sessions)

    def nodes(self) -> list[NodeKey]:
        """Every recorded step, in scheduling-key order."""
        return sorted(session.node(step) for session in self.sessions for step in session.steps)

    def subsystem_of(self, code: int) -> str:
        for subsystem_id, known in self.subsystems:
            if known == code:
                return subsystem_id
        raise KeyError(code)

    def edges(self) -> list[tuple[NodeKey, NodeKey]]:
        """Distinct causal edges (before, after): local order and provenance, sorted."""
        out: set[tuple[NodeKey, NodeKey]] = set()
        for session in self.sessions:
            previous: NodeKey | None = None
            for step in session.steps:
                node = session.node(step)
                if previous is not None:
                    out.add((previous, node))
                for message in step.messages:
                    origin = message.origin
                    if origin is not None:
                        out.add(((origin.instance_id, origin.subsystem_code, origin.step_id), node))
                previous = node
        return sorted(out)

    def expected_order(self) -> list[NodeKey]:
        """The order a correct engine replays: among causally ready nodes, always the
        smallest (instance id, subsystem code, step id). Computed here with Kahn's
        algorithm; raises :class:`StrategyArgumentError` when the spec has a cycle."""
        nodes = self.nodes()
        successors: dict[NodeKey, list[NodeKey]] = {node: [] for node in nodes}
        waiting = dict.fromkeys(nodes, 0)
        for before, after in self.edges():
            successors[before].append(after)
            waiting[after] += 1
        ready = [node for node in nodes if waiting[node] == 0]
        heapq.heapify(ready)
        order: list[NodeKey] = []
        while ready:
            node = heapq.heappop(ready)
            order.append(node)
            for successor in successors[node]:
                waiting[successor] -= 1
                if waiting[successor] == 0:
                    heapq.heappush(ready, successor)
        if len(order) != len(nodes):
            raise StrategyArgumentError(
                f"the spec has a provenance cycle ({len(nodes) - len(order)} nodes never ready)",
                fix="use provenance_graphs(), whose specs are acyclic.",
            )
        return order


def _subsystem_names(count: int) -> list[tuple[str, int]]:
    # Names sort opposite to codes, so a scheduler ordering by name instead of code shows.
    return [(f"sub{count - 1 - k}", 3 * k + 1) for k in range(count)]


def _checked_count(value: int, name: str) -> int:
    if value < 1:
        raise StrategyArgumentError(f"{name}={value} must be >= 1", fix="pass a larger count.")
    return value


def _as_strategy(value: int | st.SearchStrategy[int], name: str) -> st.SearchStrategy[int]:
    return st.just(_checked_count(value, name)) if isinstance(value, int) else value


#: The most nodes a fixed-size graph (``steps`` an int) may have with the default
#: ``max_origins=2`` under Hypothesis' default health checks: such a graph is drawn
#: as one byte string of ``2 + max_origins`` bytes a node, and ``large_base_example``
#: fails once the smallest example needs half of Hypothesis' 8 KiB budget, so the
#: bound is about ``4_000 // (2 + max_origins)``. It also caps the drawn node list of
#: a variable-size graph. The strategies tests check both ends of the bound.
PROVENANCE_GRAPH_NODE_LIMIT: Final = 1_000


#: A message's payload is the rank of its parent among the node's choices: one byte.
_PAYLOADS: Final = tuple(bytes([k]) for k in range(4))
#: The messages of a step without provenance: one empty message, shared (immutable).
_NO_PROVENANCE: Final = (Message(b""),)


@st.composite
def _provenance_graphs(
    draw: st.DrawFn,
    instances: st.SearchStrategy[int],
    subsystems: st.SearchStrategy[int],
    steps_per_session: int | st.SearchStrategy[int],
    cross_instance: bool,
    max_origins: int,
) -> FleetSpec:
    instance_count = max(1, draw(instances))
    subsystem_count = max(1, draw(subsystems))
    topology = _subsystem_names(subsystem_count)
    instance_ids = [1 + k for k in range(instance_count)]
    keys = [(i, s) for i in instance_ids for s in range(subsystem_count)]
    # A node is one number: its session choice and step-id gap in the low 16 bits, its
    # parent choices (indices into the nodes drawn before it) in the bytes above. The
    # layout does not depend on the counts, so shrinking a count keeps every node's
    # parents.
    nodes: list[int]
    if isinstance(steps_per_session, int):
        # The size is the caller's: no node can be deleted, so one byte string (the
        # cheapest draw, which keeps big graphs inside the health checks) holds them.
        room = [steps_per_session] * len(keys)
        fixed = True
        width = 2 + max_origins
        raw = draw(st.binary(min_size=sum(room) * width, max_size=sum(room) * width))
        nodes = [int.from_bytes(raw[at : at + width], "little") for at in range(0, len(raw), width)]
    else:
        # A list with one number a node: the shrinker deletes a node by deleting its
        # element. Drawn counts are each session's fewest steps, padded after the list.
        nodes = draw(
            st.lists(
                st.integers(0, 2 ** (16 + 8 * max_origins) - 1),
                max_size=PROVENANCE_GRAPH_NODE_LIMIT,
            )
        )
        room = []
        fixed = False
    next_id = [-1] * len(keys)
    built: list[list[Step]] = [[] for _ in keys]
    hidden: list[NodeKey] = []
    # Each node's Origin, built once and shared by every message naming it (an Origin
    # is immutable), in drawing order: overall, or per instance without cross_instance.
    origins: list[Origin] = []
    by_instance: dict[int, list[Origin]] = {i: [] for i in instance_ids}
    codes = [topology[sub][1] for _instance, sub in keys]

    def add(session: int, gap: int, parents: int) -> None:
        instance_id = keys[session][0]
        step_id = next_id[session] + 1 + gap
        next_id[session] = step_id
        pool = origins if cross_instance else by_instance[instance_id]
        made: tuple[Message, ...] = _NO_PROVENANCE
        if parents and pool:
            # The parent choices packed in ``parents``, one byte each: an odd byte ``b``
            # names the candidate at index ``b >> 1`` in drawing order (modulo the pool),
            # an even byte no parent. A message's payload is its choice's rank.
            chosen = [
                pool[(byte >> 1) % len(pool)]
                for k in range(max_origins)
                if (byte := parents >> (8 * k) & 0xFF) & 1
            ]
            if chosen:
                made = tuple(map(Message, _PAYLOADS, chosen))
        built[session].append(Step(step_id, len(hidden), made))
        code = codes[session]
        origin = Origin(instance_id, code, step_id)
        by_instance[instance_id].append(origin)
        origins.append(origin)
        hidden.append((instance_id, code, step_id))

    for node in nodes:
        session, gap = (node >> 2 & 0x3FFF) % len(keys), node & 3
        if fixed:
            while room[session] == 0:  # full: the next session (in order) with room
                session = (session + 1) % len(keys)
            room[session] -= 1
        add(session, gap, node >> 16)
    if not isinstance(steps_per_session, int):
        # Counts are drawn after the nodes, so fewer sessions leave every node where it
        # was in Hypothesis' choice sequence; padding steps have no provenance.
        for session in range(len(keys)):
            for _ in range(max(1, draw(steps_per_session)) - len(built[session])):
                add(session, 0, 0)

    sessions = []
    for (instance_id, sub), recorded in zip(keys, built, strict=True):
        name, code = topology[sub]
        first = recorded[0]
        sessions.append(
            SessionSpec(
                instance_id,
                name,
                code,
                tuple(recorded),
                (Keyframe(first.step_id, first.timestamp_ns, b""),),
            )
        )
    sessions.sort(key=lambda s: (s.instance_id, s.subsystem_code))
    return FleetSpec(tuple(topology), tuple(sessions), tuple(hidden))


_DEFAULT_INSTANCES = st.integers(1, 3)
_DEFAULT_SUBSYSTEMS = st.integers(1, 3)
_DEFAULT_STEPS = st.integers(1, 5)


def provenance_graphs(
    instances: int | st.SearchStrategy[int] = _DEFAULT_INSTANCES,
    subsystems: int | st.SearchStrategy[int] = _DEFAULT_SUBSYSTEMS,
    steps: int | st.SearchStrategy[int] = _DEFAULT_STEPS,
    cross_instance: bool = True,
    max_origins: int = 2,
) -> st.SearchStrategy[FleetSpec]:
    """A fleet of ``instances`` x ``subsystems`` sessions whose provenance graph is
    acyclic by construction.

    ``instances`` and ``subsystems`` are counts or strategies of counts. The graph is
    a list of nodes in a hidden global order; each node holds up to ``max_origins``
    messages naming earlier nodes (of any instance, or of its own instance when
    ``cross_instance`` is false) or one message without provenance.

    ``steps`` as a strategy is drawn per session as the fewest steps it has: the
    drawn node list (any length) goes first, and sessions with fewer steps are padded
    with steps without provenance. Hypothesis deletes a node by deleting its list
    element, so a failure shrinks to the nodes it needs (a bug that needs one node
    with two parents shrinks to three nodes). ``steps`` as an int gives every session
    exactly that many steps; nothing can then be deleted, and the nodes are drawn as
    one byte string of ``2 + max_origins`` bytes a node, which Hypothesis' default
    ``large_base_example`` health check accepts up to about
    ``4_000 // (2 + max_origins)`` nodes (:data:`PROVENANCE_GRAPH_NODE_LIMIT`,
    1,000, with the default ``max_origins``)::

        >>> spec = provenance_graphs(instances=2, subsystems=2, steps=3).example()
        >>> spec.total_nodes, len(spec.expected_order())
        (12, 12)
    """
    if not 0 <= max_origins <= 4:
        raise StrategyArgumentError(f"max_origins={max_origins} is outside 0..4", fix="use 0..4.")
    return _provenance_graphs(
        _as_strategy(instances, "instances"),
        _as_strategy(subsystems, "subsystems"),
        _checked_count(steps, "steps") if isinstance(steps, int) else steps,
        cross_instance,
        max_origins,
    )


# --------------------------------------------------------------------------- materialize


@dataclass(frozen=True, slots=True)
class MaterializedFleet:
    """Where :func:`materialize` wrote a fleet."""

    root: Path
    topology_path: Path
    logs_root: Path
    log_paths: tuple[Path, ...]


def _stack(session: SessionSpec) -> StackInfo:
    return StackInfo(
        app_name="strategies",
        app_version="1",
        subsystem_id=session.subsystem_id,
        subsystem_code=session.subsystem_code,
        instance_id=session.instance_id,
    )


def _write_log(base: Path, session: SessionSpec, section_steps: int, slab_size: int) -> None:
    keyframes = {kf.step_id: kf for kf in session.keyframes}
    with FleetLogWriter(base, section_steps=section_steps, slab_size=slab_size) as writer:
        writer.log_instantiated(
            _stack(session),
            effective_config=session.subsystem_id,
            config_source=ConfigSource.EXTERNAL_FILE,
        )
        if session.mission is not None:
            writer.log_mission_started(session.mission, timestamp_ns=1)
        for step in session.steps:
            keyframe = keyframes.get(step.step_id)
            if keyframe is not None:
                writer.log_keyframe(keyframe)
            writer.log_step(step)


def materialize(
    spec: FleetSpec,
    folder: str | os.PathLike[str],
    *,
    section_steps: int = 64,
    slab_size: int = 1 << 20,
) -> MaterializedFleet:
    """Write ``spec`` as a topology file and one fleet log per session.

    Layout: ``folder/topology.toml`` and
    ``folder/logs/instance_<id>/<subsystem>.flog`` (extra logs of a fault under
    ``folder/logs/extra_<k>/...``), written by
    :class:`~pytest_replay.fleet.FleetLogWriter`, so the catalog, the plan builder
    and the engine read them as any recorded fleet::

        >>> import tempfile
        >>> from pytest_replay.fleet import ReplayCatalog
        >>> spec = provenance_graphs(instances=2, subsystems=1, steps=2).example()
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     fleet = materialize(spec, tmp)
        ...     len(ReplayCatalog.discover_under(fleet.logs_root).logs)
        2
    """
    root = Path(folder)
    logs = root / "logs"
    topology = root / "topology.toml"
    atomic_write_bytes(topology, format_topology(spec.subsystems).encode("utf-8"))
    paths = []
    for session in spec.sessions:
        base = logs / f"instance_{session.instance_id}" / f"{session.subsystem_id}{LOG_EXTENSION}"
        _write_log(base, session, section_steps, slab_size)
        paths.append(base)
    for k, session in enumerate(spec.extra_logs):
        base = (
            logs
            / f"extra_{k}"
            / f"instance_{session.instance_id}"
            / f"{session.subsystem_id}{LOG_EXTENSION}"
        )
        _write_log(base, session, section_steps, slab_size)
        paths.append(base)
    return MaterializedFleet(root, topology, logs, tuple(paths))


# --------------------------------------------------------------------------- faults


@dataclass(frozen=True, slots=True)
class FaultyFleet:
    """A fleet with exactly one labelled ``fault``.

    Replaying it through the public path (discover the logs, build the plan,
    start the engine, run every step) must raise ``expected_error`` with
    ``match`` in its message, and nothing else.
    """

    spec: FleetSpec
    fault: str
    detail: str
    expected_error: type[ReplayError]
    match: str


def _replace_step(spec: FleetSpec, session_index: int, step_index: int, step: Step) -> FleetSpec:
    sessions = list(spec.sessions)
    session = sessions[session_index]
    recorded = list(session.steps)
    recorded[step_index] = step
    sessions[session_index] = replace(session, steps=tuple(recorded))
    return replace(spec, sessions=tuple(sessions))


def _with_origin(step: Step, origin: NodeKey) -> Step:
    return replace(step, messages=(*step.messages, Message(b"fault", Origin(*origin))))


def _pick_step(draw: st.DrawFn, spec: FleetSpec) -> tuple[int, int]:
    session = draw(st.integers(0, len(spec.sessions) - 1))
    return session, draw(st.integers(0, len(spec.sessions[session].steps) - 1))


def _fault_unresolved(draw: st.DrawFn, spec: FleetSpec) -> FaultyFleet:
    s, k = _pick_step(draw, spec)
    source = spec.sessions[draw(st.integers(0, len(spec.sessions) - 1))]
    if draw(st.booleans()):
        missing = (source.instance_id, source.subsystem_code, source.steps[-1].step_id + 1)
    else:
        missing = (max(spec.instances) + 1, source.subsystem_code, source.steps[0].step_id)
    step = spec.sessions[s].steps[k]
    faulty = _replace_step(spec, s, k, _with_origin(step, missing))
    return FaultyFleet(
        faulty,
        "unresolved_origin",
        f"step {step.step_id} of session {s} names unrecorded step {missing}",
        ReplayGraphError,
        "unresolved recorded provenance",
    )


def _fault_self_origin(draw: st.DrawFn, spec: FleetSpec) -> FaultyFleet:
    s, k = _pick_step(draw, spec)
    session = spec.sessions[s]
    step = session.steps[k]
    faulty = _replace_step(spec, s, k, _with_origin(step, session.node(step)))
    return FaultyFleet(
        faulty,
        "self_origin",
        f"step {session.node(step)} names itself",
        ReplayGraphError,
        "points to itself",
    )


def _fault_cycle(draw: st.DrawFn, spec: FleetSpec) -> FaultyFleet:
    located = [(s, k) for s, session in enumerate(spec.sessions) for k in range(len(session.steps))]
    first = draw(st.integers(0, len(located) - 2))
    second = draw(st.integers(first + 1, len(located) - 1))
    (sa, ka), (sb, kb) = located[first], located[second]
    a = spec.sessions[sa].node(spec.sessions[sa].steps[ka])
    b = spec.sessions[sb].node(spec.sessions[sb].steps[kb])
    faulty = _replace_step(spec, sa, ka, _with_origin(spec.sessions[sa].steps[ka], b))
    faulty = _replace_step(faulty, sb, kb, _with_origin(faulty.sessions[sb].steps[kb], a))
    return FaultyFleet(
        faulty, "cycle", f"steps {a} and {b} name each other", ReplayGraphError, "cycle"
    )


def _fault_duplicate_node(draw: st.DrawFn, spec: FleetSpec) -> FaultyFleet:
    s = draw(st.integers(0, len(spec.sessions) - 1))
    session = spec.sessions[s]
    faulty = replace(spec, extra_logs=(session,))
    return FaultyFleet(
        faulty,
        "duplicate_node",
        f"instance {session.instance_id} '{session.subsystem_id}' recorded by two logs",
        ReplayValidationError,
        f"logs for instance {session.instance_id}",
    )


def _fault_mission(draw: st.DrawFn, spec: FleetSpec) -> FaultyFleet:
    s = draw(st.integers(0, len(spec.sessions) - 1))
    sessions = list(spec.sessions)
    sessions[s] = replace(sessions[s], mission="other-mission")
    return FaultyFleet(
        replace(spec, sessions=tuple(sessions)),
        "mission_disagreement",
        f"session {s} recorded mission 'other-mission'",
        ReplayValidationError,
        "disagree on mission",
    )


def _instances_with_peers(spec: FleetSpec) -> list[int]:
    """Sessions whose instance has another session (removing them leaves the instance)."""
    return [
        s
        for s, session in enumerate(spec.sessions)
        if sum(other.instance_id == session.instance_id for other in spec.sessions) > 1
    ]


def _fault_missing_log(draw: st.DrawFn, spec: FleetSpec) -> FaultyFleet:
    s = draw(st.sampled_from(_instances_with_peers(spec)))
    session = spec.sessions[s]
    sessions = spec.sessions[:s] + spec.sessions[s + 1 :]
    return FaultyFleet(
        replace(spec, sessions=sessions),
        "missing_log",
        f"log of instance {session.instance_id} '{session.subsystem_id}' not written",
        ReplayValidationError,
        f"missing log for instance {session.instance_id} subsystem '{session.subsystem_id}'",
    )


_FAULTS: Final = (
    ("unresolved_origin", lambda spec: True, _fault_unresolved),
    ("self_origin", lambda spec: True, _fault_self_origin),
    ("cycle", lambda spec: spec.total_nodes >= 2, _fault_cycle),
    ("duplicate_node", lambda spec: True, _fault_duplicate_node),
    ("mission_disagreement", lambda spec: len(spec.sessions) >= 2, _fault_mission),
    ("missing_log", lambda spec: bool(_instances_with_peers(spec)), _fault_missing_log),
)

#: Every fault :func:`faulty_provenance_graphs` injects.
FAULTS: Final = tuple(name for name, _applies, _build in _FAULTS)


@st.composite
def _faulty(
    draw: st.DrawFn, base: st.SearchStrategy[FleetSpec], allowed: frozenset[str]
) -> FaultyFleet:
    spec = draw(base)
    usable = [item for item in _FAULTS if item[0] in allowed and item[1](spec)]
    if not usable:  # a narrow ``faults`` that this fleet cannot carry
        usable = [item for item in _FAULTS if item[0] == "unresolved_origin"]
    _name, _applies, build = draw(st.sampled_from(usable))
    result: FaultyFleet = build(draw, spec)
    return result


def faulty_provenance_graphs(
    instances: int | st.SearchStrategy[int] = _DEFAULT_INSTANCES,
    subsystems: int | st.SearchStrategy[int] = _DEFAULT_SUBSYSTEMS,
    steps: int | st.SearchStrategy[int] = _DEFAULT_STEPS,
    *,
    faults: Sequence[str] | None = None,
) -> st.SearchStrategy[FaultyFleet]:
    """A fleet from :func:`provenance_graphs` with exactly one labelled fault.

    Faults (:data:`FAULTS`): unresolved origin and self-origin
    (:class:`~pytest_replay.fleet.ReplayGraphError` when the engine is built), a
    provenance cycle (``ReplayGraphError``, at build or as a deadlock while running),
    duplicate node (two logs for one session), mission disagreement and missing log
    (:class:`~pytest_replay.fleet.ReplayValidationError` from the plan builder).
    Faults that a drawn fleet cannot carry are skipped; ``unresolved_origin`` fits
    every fleet and is the fallback::

        >>> case = faulty_provenance_graphs(faults=["self_origin"]).example()
        >>> case.fault, case.expected_error.__name__
        ('self_origin', 'ReplayGraphError')
    """
    if isinstance(faults, str):  # one label, not its characters
        faults = [faults]
    allowed = frozenset(FAULTS if faults is None else faults)
    unknown = sorted(allowed - set(FAULTS))
    if unknown or not allowed:
        raise StrategyArgumentError(
            f"unknown faults {unknown or '(none)'}", fix=f"pick from {', '.join(FAULTS)}."
        )
    return _faulty(provenance_graphs(instances, subsystems, steps), allowed)


# --------------------------------------------------------------------------- single logs


def slab_name(index: int) -> str:
    """File name of slab ``index`` of the log a :class:`FleetLogCase` describes."""
    return f"log_{index}{LOG_EXTENSION}"


@dataclass(frozen=True, slots=True)
class FleetLogCase:
    """One valid fleet log held in memory: its slab files and what a reader replays.

    ``original`` is the lifecycle records, then the steps (messages as tuples), then
    the keyframes. Write the slabs as ``slab_name(i)`` next to each other and open
    ``base_name``.
    """

    slabs: tuple[bytes, ...]
    original: tuple[LifecycleRecord | Step | Keyframe, ...]
    base_name: str = f"log{LOG_EXTENSION}"

    def files(self) -> Iterator[tuple[str, bytes]]:
        for index, data in enumerate(self.slabs):
            yield slab_name(index), data


def _slabs(frames: Sequence[bytes], slab_size: int) -> tuple[bytes, ...]:
    """Pack frames into slabs as the writer does: a new slab when the next frame would
    make a slab with at least one frame larger than ``slab_size``."""
    groups: list[list[bytes]] = [[]]
    size = SLAB_HEADER.size
    for frame in frames:
        if groups[-1] and size + len(frame) > slab_size:
            groups.append([])
            size = SLAB_HEADER.size
        groups[-1].append(frame)
        size += len(frame)
    out = []
    for index, group in enumerate(groups):
        body = b"".join(group)
        header = encode_slab_header(index, final=index == len(groups) - 1)
        out.append(header + body + encode_end_frame(body, len(group)))
    return tuple(out)


@st.composite
def fleet_log_cases(
    draw: st.DrawFn, max_steps: int = 8, slab_size: int | None = None
) -> FleetLogCase:
    """A valid single fleet log built in memory: lifecycle records, steps in sections of
    1-3, keyframes (always one at the first step), split into 1 or more slabs (of at most
    ``slab_size`` bytes unless one frame is larger; drawn when ``None``).

    >>> case = fleet_log_cases().example()
    >>> len(case.slabs) >= 1
    True
    """
    instance_id = draw(st.integers(0, 9))
    code = draw(st.integers(0, 9))
    stack = StackInfo("strategies", "1", f"sub{code}", code, instance_id)
    lifecycle: list[LifecycleRecord] = [Instantiated(0, ConfigSource.EXTERNAL_FILE, "cfg", stack)]
    if draw(st.booleans()):
        lifecycle.append(MissionStarted(1, draw(st.sampled_from(["alpha", "beta"]))))
    count = draw(st.integers(1, max_steps))
    recorded: list[Step] = []
    step_id = -1
    for _ in range(count):
        step_id += draw(st.integers(1, 3))
        payloads = draw(st.lists(messages(max_payload=6), max_size=2))
        recorded.append(Step(step_id, draw(st.integers(0, 2**20)), tuple(payloads)))
    keyed = [recorded[0]] + [s for s in recorded[1:] if draw(st.booleans())]
    keyframes = [Keyframe(s.step_id, s.timestamp_ns, draw(st.binary(max_size=4))) for s in keyed]
    section_steps = draw(st.integers(1, 3))
    frames = [encode_frame(SectionType.LIFECYCLE, encode_lifecycle([r])) for r in lifecycle]
    for start in range(0, count, section_steps):
        section = recorded[start : start + section_steps]
        frames.append(encode_frame(SectionType.STEPS, encode_steps(section)))
        ids = {s.step_id for s in section}
        inside = [kf for kf in keyframes if kf.step_id in ids]
        if inside:
            frames.append(encode_frame(SectionType.KEYFRAMES, encode_keyframes(inside)))
    if slab_size is None:
        # Shrinks towards the largest slab: a minimal failing case is then one file.
        slab_size = 1024 - draw(st.integers(0, 1024 - 64))
    original = (*lifecycle, *recorded, *keyframes)
    return FleetLogCase(_slabs(frames, slab_size), original)
