"""The causal replay engine against generated fleets, through the public path: the fleet is
written as real logs, discovered, planned and replayed.

* every order is a linear extension of the provenance graph, and equals networkx's
  lexicographic topological order with the engine's key;
* ``goto(target)`` equals stepping until the target, forward and after a rewind;
* the order does not depend on the order in which the log paths were discovered;
* every labelled fault raises its documented error and nothing else;
* of several bad provenance edges, the first met in build order is the one reported;
* a planted scheduling bug shrinks to a graph of at most 4 nodes.
"""

from __future__ import annotations

import heapq
import tempfile
from pathlib import Path

import networkx as nx
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from pytest_replay import strategies as rst
from pytest_replay.fleet import (
    FleetCursor,
    FleetError,
    ReplayCatalog,
    ReplayEngine,
    ReplayGraphError,
)
from pytest_replay.fleet import ReplayPlanBuilder as Builder
from pytest_replay.fleet.testing import AppCall, CallLogApp, FakeSession, app_types


def _engine(
    spec: rst.FleetSpec, root: Path | rst.MaterializedFleet, discovery: list[int] | None = None
) -> tuple[ReplayEngine, list[AppCall]]:
    fleet = root if isinstance(root, rst.MaterializedFleet) else rst.materialize(spec, root)
    paths = list(fleet.log_paths)
    if discovery is not None:
        paths = [paths[k] for k in discovery]
    builder = Builder(fleet.topology_path).with_catalog(ReplayCatalog.discover(paths))
    calls: list[AppCall] = []
    for subsystem_id, app in app_types(spec.subsystems, CallLogApp, calls).items():
        builder.register(subsystem_id, app)
    return builder.build().start(), calls


def _key(cursor: FleetCursor) -> rst.NodeKey:
    return (cursor.instance_id, cursor.subsystem_code, cursor.step_id)


def _step_all(engine: ReplayEngine) -> list[rst.NodeKey]:
    order = []
    while (cursor := engine.step_causal()) is not None:
        order.append(_key(cursor))
    return order


@given(spec=rst.provenance_graphs(), data=st.data())
def test_replay_order_is_the_lexicographic_linear_extension(
    tmp_path_factory, spec: rst.FleetSpec, data: st.DataObject
) -> None:
    fleet = rst.materialize(spec, tmp_path_factory.mktemp("fleet"), section_steps=4)
    discovery = data.draw(st.permutations(range(len(spec.sessions))), label="discovery")
    engine, _calls = _engine(spec, fleet, list(discovery))
    with engine:
        order = _step_all(engine)

    graph = nx.DiGraph()
    graph.add_nodes_from(spec.nodes())
    graph.add_edges_from(spec.edges())
    position = {node: k for k, node in enumerate(order)}
    assert sorted(order) == spec.nodes()
    assert all(position[a] < position[b] for a, b in graph.edges)
    assert order == list(nx.lexicographical_topological_sort(graph, key=lambda node: node))
    assert order == spec.expected_order()

    # The same fleet discovered in file order replays in the same order.
    again, _calls = _engine(spec, fleet)
    with again:
        assert _step_all(again) == order


@given(spec=rst.provenance_graphs(), data=st.data())
def test_goto_equals_stepping_until_the_target(
    tmp_path_factory, spec: rst.FleetSpec, data: st.DataObject
) -> None:
    engine, calls = _engine(spec, tmp_path_factory.mktemp("fleet"))
    order = spec.expected_order()
    index = data.draw(st.integers(0, len(order) - 1), label="target index")
    instance_id, code, step_id = order[index]
    subsystem_id = spec.subsystem_of(code)
    with engine:
        for _ in range(index + 1):
            engine.step_causal()
        stepped_frontier = engine.current_frontier()
        stepped_calls = list(calls)

        engine.reset()
        calls.clear()
        engine.goto(instance_id, subsystem_id, step_id)
        assert engine.executed_nodes == index + 1
        assert engine.current_frontier() == stepped_frontier
        assert calls == stepped_calls

        engine.run_all()  # past the target, then back: goto rewinds and replays
        engine.goto(instance_id, subsystem_id, step_id)
        assert engine.executed_nodes == index + 1
        assert engine.current_frontier() == stepped_frontier


@given(case=rst.faulty_provenance_graphs())
def test_every_labelled_fault_raises_its_documented_error(
    tmp_path_factory, case: rst.FaultyFleet
) -> None:
    try:
        engine, _calls = _engine(case.spec, tmp_path_factory.mktemp("faulty"))
        with engine:
            engine.run_all()
    except FleetError as exc:
        assert type(exc) is case.expected_error, (case.fault, case.detail, exc)
        assert case.match in str(exc), (case.fault, str(exc))
        assert "Fix:" in str(exc)
    else:
        raise AssertionError(f"fault {case.fault} ({case.detail}) replayed without an error")


@st.composite
def _sessions_with_bad_edges(draw: st.DrawFn) -> list[FakeSession]:
    """Sessions with unique identities and step ids, given in any order, whose origins
    mix resolvable steps, steps nobody recorded and the step itself."""
    pairs = st.tuples(st.integers(0, 3), st.integers(0, 3))
    identities = draw(st.lists(pairs, min_size=1, max_size=4, unique=True))
    shapes = [
        (instance, code, sorted(draw(st.sets(st.integers(0, 9), min_size=1, max_size=4))))
        for instance, code in identities
    ]
    recorded = [(i, c, step) for i, c, steps in shapes for step in steps]
    sessions = []
    for index, (instance, code, steps) in enumerate(shapes):
        rows = []
        for step in steps:
            choices = st.sampled_from([*recorded, (instance, code, step)]) | st.tuples(
                st.integers(0, 4), st.integers(0, 4), st.integers(0, 12)
            )
            rows.append((step, draw(st.lists(choices, max_size=3))))
        sessions.append(FakeSession(instance, f"s{index}", code, rows))
    return sessions


def _first_bad_edge(sessions: list[FakeSession]) -> str | None:
    """The reference's walk: targets in build order, each target's origins sorted."""
    known = {
        (s.instance_id, s.subsystem_code, step): (k, step)
        for k, s in enumerate(sessions)
        for step, _origins in s.steps
    }
    for k, session in enumerate(sessions):
        for step, origins in session.steps:
            into = f"instance {session.instance_id} subsystem '{session.subsystem_id}' step {step}"
            for origin in sorted(set(origins)):
                if origin not in known:
                    return (
                        f"unresolved recorded provenance edge into {into} from instance "
                        f"{origin[0]} subsystem code {origin[1]} step {origin[2]}. Fix: "
                    )
                if known[origin] == (k, step):
                    return f"recorded provenance on {into} points to itself. Fix: "
    return None


@given(sessions=_sessions_with_bad_edges())
def test_the_first_bad_provenance_edge_in_build_order_is_reported(
    sessions: list[FakeSession],
) -> None:
    expected = _first_bad_edge(sessions)
    try:
        ReplayEngine(sessions)
    except ReplayGraphError as exc:
        if expected is None:
            assert "no causally ready starting point" in str(exc), str(exc)
        else:
            assert str(exc).startswith(expected), (expected, str(exc))
    else:
        assert expected is None


def _engine_with_a_planted_bug(spec: rst.FleetSpec) -> list[rst.NodeKey]:
    """A scheduler that forgets provenance across instances (the planted bug)."""
    waiting = dict.fromkeys(spec.nodes(), 0)
    after: dict[rst.NodeKey, list[rst.NodeKey]] = {node: [] for node in waiting}
    for a, b in spec.edges():
        if a[0] == b[0]:
            after[a].append(b)
            waiting[b] += 1
    ready = [node for node, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        node = heapq.heappop(ready)
        order.append(node)
        for successor in after[node]:
            waiting[successor] -= 1
            if waiting[successor] == 0:
                heapq.heappush(ready, successor)
    return order


def test_a_planted_engine_bug_shrinks_to_a_tiny_graph() -> None:
    strategy = rst.provenance_graphs(
        instances=st.integers(1, 4), subsystems=st.integers(1, 3), steps=st.integers(1, 8)
    )
    smallest = find(
        strategy,
        lambda spec: _engine_with_a_planted_bug(spec) != spec.expected_order(),
        settings=settings(
            max_examples=2_000,
            database=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
    assert smallest.total_nodes <= 4, smallest
    # The real engine replays the shrunk fleet correctly: the bug is only in the fake.
    with tempfile.TemporaryDirectory() as folder:
        engine, _calls = _engine(smallest, Path(folder))
        with engine:
            assert _step_all(engine) == smallest.expected_order()
