"""Properties of the causal engine on random fleets."""

from __future__ import annotations

import dataclasses
import tempfile
from unittest import mock

import networkx as nx
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_replay.fleet import FleetCursor, ReplayEngine, ReplayPlan
from pytest_replay.fleet import graph as graph_module
from pytest_replay.fleet.testing import AppCall, CallLogApp, FakeFleet, app_types, order_of


@st.composite
def fleets(
    draw: st.DrawFn, *, max_sessions: int = 5, max_nodes: int = 24, full: bool = False
) -> FakeFleet:
    """A random causal fleet: sessions with distinct (instance, code), each with at least
    one step, steps interleaved in a random valid order, and origins drawn from steps
    that come earlier in that order. ``full``: every instance runs every subsystem (what a
    replay plan requires)."""
    if full:
        instances, codes = draw(st.integers(1, 2)), draw(st.integers(1, 2))
        pairs = [(i, c) for i in range(instances) for c in range(codes)]
    else:
        pairs = draw(
            st.lists(
                st.tuples(st.integers(0, 3), st.integers(0, 3)),
                min_size=1,
                max_size=max_sessions,
                unique=True,
            )
        )
    extra = draw(st.lists(st.integers(0, len(pairs) - 1), max_size=max(0, max_nodes - len(pairs))))
    schedule = draw(st.permutations([*range(len(pairs)), *extra]))
    sessions = tuple(pairs)
    next_step = [draw(st.integers(0, 3)) for _ in sessions]
    nodes: list[tuple[int, int, tuple[tuple[int, int, int], ...]]] = []
    keys: list[tuple[int, int, int]] = []
    for session in schedule:
        step = next_step[session]
        next_step[session] += draw(st.integers(1, 3))
        origins: tuple[tuple[int, int, int], ...] = ()
        if keys:
            picks = draw(st.lists(st.integers(0, len(keys) - 1), max_size=3))
            origins = tuple(keys[p] for p in picks)
        instance, code = sessions[session]
        nodes.append((session, step, origins))
        keys.append((instance, code, step))
    keyframes = draw(st.frozensets(st.sampled_from([(s, step) for s, step, _ in nodes])))
    return FakeFleet(sessions, tuple(nodes), keyframes)


def reference_order(spec: FakeFleet) -> list[tuple[int, int, int]]:
    graph: nx.DiGraph[tuple[int, int, int]] = nx.DiGraph()
    last: dict[int, tuple[int, int, int]] = {}
    for session, step, origins in spec.nodes:
        instance, code = spec.sessions[session]
        node = (instance, code, step)
        graph.add_node(node)
        if session in last:
            graph.add_edge(last[session], node)
        last[session] = node
        for origin in origins:
            graph.add_edge(origin, node)
    return list(nx.lexicographical_topological_sort(graph, key=lambda node: node))


@given(spec=fleets())
def test_order_equals_networkx_lexicographical_topological_sort(spec: FakeFleet) -> None:
    engine = ReplayEngine(spec.fake_sessions())
    order = [(c.instance_id, c.subsystem_code, c.step_id) for c in order_of(engine)]
    assert order == reference_order(spec)
    engine.reset()
    engine.run_all()
    assert engine.executed_nodes == len(spec.nodes)


@given(spec=fleets(), chunk=st.integers(1, 4))
def test_graph_resolved_in_runs_of_origins_equals_the_graph_resolved_at_once(
    spec: FakeFleet, chunk: int
) -> None:
    whole = ReplayEngine(spec.fake_sessions()).graph
    with mock.patch.object(graph_module, "EDGE_CHUNK_ORIGINS", chunk):
        runs = ReplayEngine(spec.fake_sessions()).graph
    for field in dataclasses.fields(whole):
        a, b = getattr(whole, field.name), getattr(runs, field.name)
        assert a.dtype == b.dtype and np.array_equal(a, b), field.name


def _replay(spec: FakeFleet, folder: str) -> tuple[ReplayPlan, list[AppCall]]:
    topology = spec.write(folder)
    calls: list[AppCall] = []
    builder = ReplayPlan.builder(topology).discover_logs_under(f"{folder}/logs")
    codes = sorted({code for _, code in spec.sessions})
    for name, app in app_types([(f"s{c}", c) for c in codes], CallLogApp, calls).items():
        builder.register(name, app)
    return builder.build(), calls


def _since_last_reset(calls: list[AppCall]) -> list[AppCall]:
    """Calls of the apps alive now: every app's calls since its last ``stop``."""
    alive: dict[tuple[int, str], list[AppCall]] = {}
    for call in calls:
        key = (call[0], call[1])
        if call[2] == "stop":
            alive.pop(key, None)
        else:
            alive.setdefault(key, []).append(call)
    return [call for key in sorted(alive) for call in alive[key]]


@settings(max_examples=25)
@given(
    spec=fleets(max_nodes=14, full=True),
    moves=st.lists(st.tuples(st.booleans(), st.integers(0, 10_000)), max_size=4),
    final=st.integers(0, 10_000),
)
def test_goto_equals_a_fresh_replay_stepped_to_the_target(
    spec: FakeFleet, moves: list[tuple[bool, int]], final: int
) -> None:
    """Steps and gotos in any order, then a goto: the fleet (executed count, frontier and
    the calls of the live apps) is where a fresh replay stepped to that target is."""

    def target_of(pick: int) -> FleetCursor:
        session, step, _ = spec.nodes[pick % len(spec.nodes)]
        instance, code = spec.sessions[session]
        return FleetCursor(instance, f"s{code}", step, code)

    with tempfile.TemporaryDirectory() as folder:
        plan, calls = _replay(spec, folder)
        with plan.start() as engine:
            for is_goto, pick in moves:
                if is_goto:
                    there = target_of(pick)
                    engine.goto(there.instance_id, there.subsystem_id, there.step_id)
                else:
                    for _ in range(pick % 4):
                        engine.step_causal()
            target = target_of(final)
            engine.goto(target.instance_id, target.subsystem_id, target.step_id)
            executed, frontier = engine.executed_nodes, engine.current_frontier()
            via_goto = _since_last_reset(calls)
        fresh_plan, fresh_calls = _replay(spec, f"{folder}/fresh")
        with fresh_plan.start() as fresh:
            steps = 0
            while (cursor := fresh.step_causal()) != target:
                assert cursor is not None
                steps += 1
            assert executed == steps + 1
            assert frontier == fresh.current_frontier()
            assert via_goto == _since_last_reset(fresh_calls)
