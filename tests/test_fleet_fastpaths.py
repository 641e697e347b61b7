"""The fast paths of fleet replay against the step-by-step paths they stand in for.

* the engine's in-order prefix (no ready heap) against the reference order;
* step-blind sessions (apps that keep ``NoopApp.replay_step``) against the same apps
  replayed step by step, through the public plan;
* logs indexed together (vectorised checks) against one log indexed section by section,
  on generated fleets and on damaged logs.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from test_fleet_engine_properties import fleets, reference_order

from pytest_replay import strategies as rst
from pytest_replay.errors import ReplayError
from pytest_replay.fleet import (
    FleetCursor,
    FleetLogReader,
    FleetSession,
    Keyframe,
    ReplayEngine,
    ReplayPlan,
    Subsystem,
)
from pytest_replay.fleet.app import NoopApp
from pytest_replay.fleet.reader import _index_precisely, index_logs
from pytest_replay.fleet.stepblind import StepBlindSession, ignores_steps
from pytest_replay.fleet.testing import FakeFleet, FakeSession

# --------------------------------------------------------------------------- engine


@dataclass
class LoggedSession(FakeSession):
    """A fake session that logs every move into one list shared by the fleet."""

    log: list[tuple[int, int]] = field(default_factory=list)
    number: int = 0
    ignores_steps: bool = False

    def goto_index(self, index: int) -> None:
        super().goto_index(index)
        self.log.append((self.number, index))


def logged_sessions(spec: FakeFleet, blind: list[bool]) -> tuple[list[LoggedSession], list[Any]]:
    log: list[tuple[int, int]] = []
    sessions = [
        LoggedSession(
            s.instance_id,
            s.subsystem_id,
            s.subsystem_code,
            s.steps,
            log=log,
            number=n,
            ignores_steps=blind[n % len(blind)],
        )
        for n, s in enumerate(spec.fake_sessions())
    ]
    return sessions, log


def expected_moves(spec: FakeFleet) -> list[tuple[int, int]]:
    """(session, log-order index) of every step, in the reference order."""
    where: dict[tuple[int, int, int], tuple[int, int]] = {}
    for session, (instance, code) in enumerate(spec.sessions):
        for index, (step, _) in enumerate(spec.steps_of(session)):
            where[(instance, code, step)] = (session, index)
    return [where[key] for key in reference_order(spec)]


@given(spec=fleets(), blind=st.lists(st.booleans(), min_size=1, max_size=4))
def test_run_all_moves_sessions_in_the_reference_order(spec: FakeFleet, blind: list[bool]) -> None:
    """Every session that watches steps is moved to each of them in the reference
    order; a blind one to a subsequence of its own moves that ends where it must."""
    sessions, log = logged_sessions(spec, blind)
    engine = ReplayEngine(sessions)
    engine.run_all()
    assert engine.executed_nodes == len(spec.nodes)
    expected = expected_moves(spec)
    watching = [move for move in expected if not sessions[move[0]].ignores_steps]
    assert [move for move in log if not sessions[move[0]].ignores_steps] == watching
    for number, session in enumerate(sessions):
        own = [index for s, index in expected if s == number]
        assert session.moves[-1] == own[-1]
        assert set(session.moves) <= set(own)
        assert session.moves == sorted(session.moves)
    # The frontier is where stepping one node at a time leaves it.
    stepped = ReplayEngine(spec.fake_sessions())
    while stepped.step_causal() is not None:
        pass
    assert engine.current_frontier() == stepped.current_frontier()


@given(spec=fleets(), stop=st.integers(0, 10_000))
def test_stepping_after_a_partial_run_keeps_the_order(spec: FakeFleet, stop: int) -> None:
    """Some steps one at a time (in-order prefix), then the rest: the reference order."""
    engine = ReplayEngine(spec.fake_sessions())
    order = []
    for _ in range(stop % (len(spec.nodes) + 1)):
        cursor = engine.step_causal()
        assert cursor is not None
        order.append((cursor.instance_id, cursor.subsystem_code, cursor.step_id))
    while (cursor := engine.step_causal()) is not None:
        order.append((cursor.instance_id, cursor.subsystem_code, cursor.step_id))
    assert order == reference_order(spec)


# --------------------------------------------------------------------------- sessions


class QuietApp(NoopApp):
    """Logs start, stop and keyframe restores with the clock; ignores steps."""

    calls: ClassVar[list[tuple[object, ...]]] = []

    def start(self) -> None:
        self.calls.append((self.instance_id, self.subsystem.id, "start", self.clock.now))

    def stop(self) -> None:
        self.calls.append((self.instance_id, self.subsystem.id, "stop", self.clock.now))

    def restore_keyframe(self, keyframe: Keyframe) -> None:
        self.calls.append(
            (self.instance_id, self.subsystem.id, "restore", keyframe.step_id, self.clock.now)
        )


class WatchfulApp(QuietApp):
    """The same app, but its own ``replay_step`` makes replay hand it every step."""

    def replay_step(self, clock: Any, step: Any, keyframe: Keyframe | None) -> None:
        super().replay_step(clock, step, keyframe)


def _plan(spec: FakeFleet, folder: str, base: type[QuietApp]) -> tuple[ReplayPlan, list[Any]]:
    topology = spec.write(folder)
    calls: list[tuple[object, ...]] = []
    builder = ReplayPlan.builder(topology).discover_logs_under(f"{folder}/logs")
    for code in sorted({code for _, code in spec.sessions}):
        namespace = {"subsystem": Subsystem(f"s{code}", code), "calls": calls}
        builder.register(f"s{code}", type(f"{base.__name__}{code}", (base,), namespace))
    return builder.build(), calls


def test_only_apps_that_keep_the_noop_replay_step_ignore_steps() -> None:
    assert ignores_steps(NoopApp) and ignores_steps(QuietApp)
    assert not ignores_steps(WatchfulApp)


@settings(max_examples=25)
@given(
    spec=fleets(max_nodes=14, full=True),
    moves=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10_000)), max_size=5),
)
def test_step_blind_replay_equals_step_by_step_replay(
    spec: FakeFleet, moves: list[tuple[int, int]]
) -> None:
    """The same moves (steps, gotos, runs to the end) through apps that ignore steps
    and through apps that are handed every step: the same app calls, clocks, frontier."""

    def target_of(pick: int) -> FleetCursor:
        session, step, _ = spec.nodes[pick % len(spec.nodes)]
        instance, code = spec.sessions[session]
        return FleetCursor(instance, f"s{code}", step, code)

    outcomes = []
    with tempfile.TemporaryDirectory() as folder:
        for base, session_type in ((QuietApp, StepBlindSession), (WatchfulApp, FleetSession)):
            plan, calls = _plan(spec, f"{folder}/{base.__name__}", base)
            states = []
            with plan.start() as engine:
                assert {type(s) for s in engine.sessions} == {session_type}
                for kind, pick in moves:
                    if kind == 0:
                        for _ in range(pick % 4):
                            engine.step_causal()
                    elif kind == 1:
                        there = target_of(pick)
                        engine.goto(there.instance_id, there.subsystem_id, there.step_id)
                    else:
                        engine.run_all()
                    clocks = [
                        (s.current_index, s.clock.now)
                        for s in engine.sessions
                        if isinstance(s, FleetSession)
                    ]
                    states.append((engine.executed_nodes, engine.current_frontier(), clocks))
            outcomes.append((states, list(calls)))
    assert outcomes[0] == outcomes[1]


# --------------------------------------------------------------------------- indexing


def _same_index(bulk: FleetLogReader, base: Path) -> None:
    precise = _index_precisely(base)
    assert bulk.sections == precise.sections
    assert bulk.keyframes == precise.keyframes
    assert bulk.slab_paths == precise.slab_paths
    table, expected = bulk.step_table(), precise.table
    for name in ("step_ids", "origin_step_index", "origin_instance", "origin_code", "origin_step"):
        got, want = getattr(table, name), getattr(expected, name)
        assert got.dtype == want.dtype and np.array_equal(got, want), name
    assert [bulk.step_timestamp(i) for i in range(bulk.total_steps)] == precise.stamps.tolist()


@settings(max_examples=25)
@given(spec=fleets(max_nodes=30))
def test_logs_indexed_together_equal_logs_indexed_one_by_one(spec: FakeFleet) -> None:
    with tempfile.TemporaryDirectory() as folder:
        spec.write(folder)
        bases = sorted(Path(folder, "logs").rglob("*_0.flog"))
        bases = [b.with_name(b.name.replace("_0.flog", ".flog")) for b in bases]
        for reader, base in zip(index_logs(bases), bases, strict=True):
            _same_index(reader, base)


@given(case=rst.corrupted_logs("fleet"))
def test_damaged_logs_get_the_error_of_the_section_by_section_reader(
    tmp_path_factory: Any, case: rst.Corrupted
) -> None:
    path = case.write_to(tmp_path_factory.mktemp("fleet"))
    try:
        _index_precisely(path)
    except ReplayError as exc:
        expected: str | None = str(exc)
    else:
        expected = None
    try:
        reader = FleetLogReader(path)
    except ReplayError as exc:
        assert str(exc) == expected
    else:
        assert expected is None, expected
        _same_index(reader, path)
