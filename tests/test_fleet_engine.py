"""The causal replay engine: graph errors, stable order, goto, the stress topology."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_replay.fleet import (
    FleetCursor,
    FleetLogReader,
    ReplayEngine,
    ReplayGraphError,
    ReplayPlan,
)
from pytest_replay.fleet import graph as graph_module
from pytest_replay.fleet.testing import (
    STRESS_SUBSYSTEMS,
    AppCall,
    CallLogApp,
    FakeSession,
    NoopApp,
    app_types,
    order_of,
    ping_pong,
    write_stress_fleet,
)


def cursors(engine_order: list[FleetCursor]) -> list[tuple[str, int]]:
    return [(c.subsystem_id, c.step_id) for c in engine_order]


def stress_engine(
    root: Path, instances: int, steps: int, base: type[NoopApp] = NoopApp
) -> tuple[ReplayEngine, list[AppCall]]:
    topology = write_stress_fleet(root, instances, steps, section_steps=16)
    calls: list[AppCall] = []
    builder = ReplayPlan.builder(topology).discover_logs_under(root / "logs")
    for name, app in app_types(STRESS_SUBSYSTEMS, base, calls).items():
        builder.register(name, app)
    return builder.build().start(), calls


def assert_stress_order_is_topological(
    order: list[FleetCursor], instances: int, steps: int
) -> None:
    assert len(order) == instances * len(STRESS_SUBSYSTEMS) * steps
    position = {(c.instance_id, c.subsystem_id, c.step_id): i for i, c in enumerate(order)}
    assert len(position) == len(order)
    for instance in range(1, instances + 1):
        for name, _code in STRESS_SUBSYSTEMS:
            for step in range(1, steps):
                assert position[(instance, name, step - 1)] < position[(instance, name, step)]
        for step in range(steps):
            sense, plan, control, telemetry = (
                position[(instance, name, step)] for name, _ in STRESS_SUBSYSTEMS
            )
            assert sense < plan < control < telemetry
            assert sense < telemetry


# --------------------------------------------------------------------------- order


def test_engine_steps_in_stable_causal_order() -> None:
    sessions = ping_pong()
    engine = ReplayEngine(sessions)
    assert engine.total_nodes == 4 and engine.executed_nodes == 0
    assert cursors(order_of(engine)) == [("ping", 0), ("ping", 1), ("pong", 0), ("pong", 1)]
    assert engine.executed_nodes == 4
    assert engine.step_causal() is None
    assert [s.moves for s in sessions] == [[0, 1], [0, 1]]


def test_cursor_carries_instance_and_code() -> None:
    engine = ReplayEngine(ping_pong())
    assert engine.step_causal() == FleetCursor(1, "ping", 0, 0)


def test_order_prefers_instance_then_code_then_step() -> None:
    # Two instances whose sessions are given out of order: the engine sorts by key.
    sessions = [
        FakeSession(2, "b", 1, [(5, []), (7, [])]),
        FakeSession(2, "a", 0, [(6, [])]),
        FakeSession(1, "b", 1, [(1, [(2, 0, 6)])]),
    ]
    order = [(c.instance_id, c.subsystem_id, c.step_id) for c in order_of(ReplayEngine(sessions))]
    assert order == [(2, "a", 6), (1, "b", 1), (2, "b", 5), (2, "b", 7)]


def test_engine_goto_rebuilds_and_replays_to_target() -> None:
    sessions = ping_pong()
    engine = ReplayEngine(sessions)
    engine.run_all()
    engine.goto(1, "pong", 0)
    assert engine.executed_nodes == 3
    assert engine.current_frontier() == [FleetCursor(1, "ping", 1, 0), FleetCursor(1, "pong", 0, 1)]
    assert [s.resets for s in sessions] == [1, 1]


def test_goto_moves_forward_without_reset() -> None:
    sessions = ping_pong()
    engine = ReplayEngine(sessions)
    engine.step_causal()
    engine.goto(1, "pong", 0)
    assert engine.executed_nodes == 3
    assert [s.resets for s in sessions] == [0, 0]
    engine.goto(1, "pong", 0)  # already executed: replays from scratch
    assert engine.executed_nodes == 3
    assert [s.resets for s in sessions] == [1, 1]
    assert [s.moves for s in sessions] == [[0, 1], [0]]


def test_goto_unknown_target() -> None:
    engine = ReplayEngine(ping_pong())
    for target in [(1, "pong", 5), (2, "ping", 0), (1, "radar", 0), (1, "ping", -1)]:
        with pytest.raises(ReplayGraphError, match="does not exist") as info:
            engine.goto(*target)
        assert f"instance {target[0]} subsystem '{target[1]}' step {target[2]}" in str(info.value)


def test_reset_and_frontier() -> None:
    sessions = ping_pong()
    engine = ReplayEngine(sessions)
    assert engine.current_frontier() == []
    engine.step_causal()
    assert engine.current_frontier() == [FleetCursor(1, "ping", 0, 0)]
    engine.reset()
    assert engine.executed_nodes == 0 and engine.current_frontier() == []
    assert cursors(order_of(engine))[0] == ("ping", 0)


def test_an_empty_fleet_runs_nothing() -> None:
    engine = ReplayEngine([])
    assert engine.step_causal() is None
    engine.run_all()
    assert engine.total_nodes == 0


def test_a_failing_session_leaves_the_step_ready() -> None:
    class Flaky(FakeSession):
        fail = True

        def goto_index(self, index: int) -> None:
            if self.fail:
                self.fail = False
                raise RuntimeError("boom")
            super().goto_index(index)

    flaky = Flaky(1, "ping", 0, [(0, [])])
    engine = ReplayEngine([flaky])
    with pytest.raises(RuntimeError, match="boom"):
        engine.run_all()
    assert engine.executed_nodes == 0
    engine.run_all()
    assert engine.executed_nodes == 1 and flaky.moves == [0]


# --------------------------------------------------------------------------- errors


def test_engine_reports_unresolved_recorded_provenance() -> None:
    with pytest.raises(ReplayGraphError) as info:
        ReplayEngine(ping_pong(bad=True))
    assert str(info.value).startswith(
        "unresolved recorded provenance edge into instance 1 subsystem 'pong' step 0 from "
        "instance 1 subsystem code 0 step 99. Fix: "
    )


def test_duplicate_node() -> None:
    sessions = [FakeSession(1, "a", 3, [(0, []), (1, [])]), FakeSession(1, "b", 3, [(1, [])])]
    with pytest.raises(
        ReplayGraphError, match="duplicate replay node: instance 1 subsystem code 3 step 1"
    ):
        ReplayEngine(sessions)


def test_duplicate_cursor() -> None:
    sessions = [FakeSession(1, "a", 3, [(0, []), (1, [])]), FakeSession(1, "a", 4, [(1, [])])]
    with pytest.raises(
        ReplayGraphError, match="duplicate replay cursor: instance 1 subsystem 'a' step 1"
    ):
        ReplayEngine(sessions)


def test_duplicate_output_log(tmp_path: Path) -> None:
    out = tmp_path / "x.flog"
    sessions = [FakeSession(1, "a", 3, [(0, [])], out), FakeSession(1, "a", 4, [(1, [])], out)]
    with pytest.raises(
        ReplayGraphError, match="duplicate replay output log for instance 1 subsystem 'a'"
    ):
        ReplayEngine(sessions)


def test_provenance_pointing_at_itself() -> None:
    sessions = [FakeSession(4, "a", 2, [(0, []), (1, [(4, 2, 1)])])]
    with pytest.raises(
        ReplayGraphError, match="provenance on instance 4 subsystem 'a' step 1 points to itself"
    ):
        ReplayEngine(sessions)


def test_first_bad_edge_in_build_order_wins_over_a_later_unresolved_one() -> None:
    # Step 0 points at itself, step 1 at a step nobody recorded: step 0 is met first.
    sessions = [FakeSession(1, "ping", 0, [(0, [(1, 0, 0)]), (1, [(1, 0, 99)])])]
    with pytest.raises(ReplayGraphError) as info:
        ReplayEngine(sessions)
    assert str(info.value).startswith(
        "recorded provenance on instance 1 subsystem 'ping' step 0 points to itself. Fix: "
    )


def test_unresolved_edge_before_a_later_self_loop_is_reported() -> None:
    sessions = [FakeSession(1, "ping", 0, [(0, [(1, 0, 99)]), (1, [(1, 0, 1)])])]
    with pytest.raises(ReplayGraphError) as info:
        ReplayEngine(sessions)
    assert str(info.value).startswith(
        "unresolved recorded provenance edge into instance 1 subsystem 'ping' step 0 from "
        "instance 1 subsystem code 0 step 99. Fix: "
    )


def test_bad_edges_are_found_in_the_order_sessions_are_given() -> None:
    # Session "b" sorts after "a" by scheduling key but is given first, so it is checked
    # first; within one step, origins are checked sorted by (instance, code, step).
    sessions = [
        FakeSession(2, "b", 1, [(0, [(9, 9, 9), (3, 0, 5)])]),
        FakeSession(1, "a", 0, [(0, [(8, 8, 8)])]),
    ]
    with pytest.raises(ReplayGraphError) as info:
        ReplayEngine(sessions)
    assert str(info.value).startswith(
        "unresolved recorded provenance edge into instance 2 subsystem 'b' step 0 from "
        "instance 3 subsystem code 0 step 5. Fix: "
    )
    with pytest.raises(ReplayGraphError) as info:
        ReplayEngine(sessions[::-1])
    assert "into instance 1 subsystem 'a' step 0 from instance 8" in str(info.value)


def test_bad_edge_order_within_a_session_is_log_order() -> None:
    # Log order, not step-id order: step 7 is logged before step 2.
    sessions = [FakeSession(1, "a", 0, [(7, [(1, 0, 7)]), (2, [(5, 5, 5)])])]
    with pytest.raises(ReplayGraphError, match="provenance on instance 1 subsystem 'a' step 7"):
        ReplayEngine(sessions)


def test_no_causally_ready_starting_point() -> None:
    sessions = [
        FakeSession(1, "a", 0, [(0, [(1, 1, 0)])]),
        FakeSession(1, "b", 1, [(0, [(1, 0, 0)])]),
    ]
    with pytest.raises(ReplayGraphError, match="no causally ready starting point") as info:
        ReplayEngine(sessions)
    assert "instance 1 subsystem 'a' step 0" in str(info.value)


def test_deadlock_while_stepping_names_the_steps_left() -> None:
    sessions = [
        FakeSession(1, "a", 0, [(0, [])]),
        FakeSession(1, "b", 1, [(0, [(1, 2, 0)])]),
        FakeSession(1, "c", 2, [(0, [(1, 1, 0)])]),
    ]
    engine = ReplayEngine(sessions)
    assert engine.step_causal() == FleetCursor(1, "a", 0, 0)
    with pytest.raises(ReplayGraphError, match="deadlocked after 1 of 3 steps") as info:
        engine.step_causal()
    text = str(info.value)
    assert "instance 1 subsystem 'b' step 0; instance 1 subsystem 'c' step 0" in text
    engine.reset()
    with pytest.raises(ReplayGraphError, match="deadlocked"):
        engine.run_all()
    assert engine.executed_nodes == 1


def test_an_origin_in_the_previous_local_step_is_one_edge() -> None:
    sessions = [FakeSession(1, "a", 0, [(0, []), (1, [(1, 0, 0), (1, 0, 0)])])]
    engine = ReplayEngine(sessions)
    assert engine.graph.total_edges == 1
    assert engine.graph.successors(0) == [1]


# --------------------------------------------------------------------------- real logs


def test_plan_replays_real_logs_through_apps(tmp_path: Path) -> None:
    engine, calls = stress_engine(tmp_path, 1, 3, CallLogApp)
    with engine:
        engine.run_all()
        sense = [c[2:] for c in calls if c[1] == "sense"]
        assert sense == [
            ("build", "sense"),
            ("start", None),
            ("restore_keyframe", (0, 0)),
            ("replay_step", (0, 0, True)),
            ("replay_step", (1, 1000, False)),
            ("replay_step", (2, 2000, False)),
        ]
    assert calls[-1][2] == "stop"
    assert sum(1 for c in calls if c[2] == "stop") == 4


def test_engine_run_all_scales_across_many_identical_instances(tmp_path: Path) -> None:
    engine, _ = stress_engine(tmp_path, 6, 24)
    order = order_of(engine)
    assert_stress_order_is_topological(order, 6, 24)
    assert engine.executed_nodes == 6 * 4 * 24
    frontier = engine.current_frontier()
    assert len(frontier) == 24
    assert {(c.instance_id, c.subsystem_id, c.step_id) for c in frontier} == {
        (i, name, 23) for i in range(1, 7) for name, _ in STRESS_SUBSYSTEMS
    }


def test_engine_goto_matches_manual_replay_on_large_graph(tmp_path: Path) -> None:
    manual, manual_calls = stress_engine(tmp_path / "a", 5, 32, CallLogApp)
    steps = 0
    while True:
        cursor = manual.step_causal()
        assert cursor is not None, "manual replay exhausted before the target"
        steps += 1
        if (cursor.instance_id, cursor.subsystem_id, cursor.step_id) == (4, "control", 17):
            break
    via_goto, goto_calls = stress_engine(tmp_path / "b", 5, 32, CallLogApp)
    via_goto.goto(4, "control", 17)
    assert via_goto.executed_nodes == steps
    assert via_goto.current_frontier() == manual.current_frontier()
    assert goto_calls == manual_calls


def test_engine_heavy_stress_run_all_completes(tmp_path: Path) -> None:
    engine, _ = stress_engine(tmp_path, 12, 96)
    engine.run_all()
    assert engine.executed_nodes == 12 * 4 * 96 == engine.total_nodes
    assert len(engine.current_frontier()) == 12 * 4


def test_recording_replay_writes_output_logs(tmp_path: Path) -> None:
    topology = write_stress_fleet(tmp_path, 2, 5)
    calls: list[AppCall] = []
    builder = ReplayPlan.builder(topology).discover_logs_under(tmp_path / "logs")
    for name, app in app_types(STRESS_SUBSYSTEMS, CallLogApp, calls).items():
        builder.register(name, app)
    plan = builder.build()
    with plan.start(record_under=tmp_path / "out") as engine:
        engine.run_all()
        path = engine.output_log_path(2, "telemetry")
        assert path == tmp_path / "out" / "instance_2" / "telemetry.flog"
        assert engine.output_log_path(3, "telemetry") is None
    replayed = FleetLogReader(path)
    original = FleetLogReader(plan.assignment(2, "telemetry").log.base_path)  # type: ignore[union-attr]
    assert list(replayed.iter_steps()) == list(original.iter_steps())
    assert replayed.keyframes == original.keyframes
    assert plan.start().output_log_path(2, "telemetry") is None


# --------------------------------------------------------------------------- output logs


def recording_engine(root: Path, out: Path) -> ReplayEngine:
    topology = write_stress_fleet(root, 2, 6, section_steps=4)
    builder = ReplayPlan.builder(topology).discover_logs_under(root / "logs")
    for name, app in app_types(STRESS_SUBSYSTEMS, CallLogApp, []).items():
        builder.register(name, app)
    return builder.build().start(record_under=out)


def output_bytes(out: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(out)): path.read_bytes()
        for path in sorted(out.rglob("*"))
        if path.is_file()
    }


def test_goto_backwards_and_reset_leave_output_logs_as_a_fresh_replay(tmp_path: Path) -> None:
    # The reference rebuilds every output logger on reset: a log never keeps what an
    # earlier pass wrote.
    with recording_engine(tmp_path / "a", tmp_path / "a_out") as fresh:
        fresh.goto(1, "plan", 2)
    expected = output_bytes(tmp_path / "a_out")
    assert "instance_1/plan_0.flog" in expected and "instance_2/plan_0.flog" not in expected

    with recording_engine(tmp_path / "b", tmp_path / "b_out") as engine:
        engine.run_all()
        engine.goto(1, "plan", 2)  # backwards: reset and replay
    assert output_bytes(tmp_path / "b_out") == expected

    with recording_engine(tmp_path / "c", tmp_path / "c_out") as engine:
        engine.run_all()
        engine.reset()
        assert output_bytes(tmp_path / "c_out") == {}
        engine.goto(1, "plan", 2)
    assert output_bytes(tmp_path / "c_out") == expected


@pytest.mark.parametrize("chunk", [1, 3])
def test_bad_edges_are_found_in_build_order_when_origins_are_resolved_in_runs(
    monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    # Origins are resolved a run of sessions at a time (bounded scratch memory); the
    # first bad edge in build order is still the one reported, whichever run holds it.
    monkeypatch.setattr(graph_module, "EDGE_CHUNK_ORIGINS", chunk)
    good = [FakeSession(1, "a", 0, [(0, []), (1, [(1, 0, 0)]), (2, [(1, 0, 1)])])]
    later = [
        *good,
        FakeSession(2, "b", 1, [(0, [(1, 0, 2)]), (1, [(2, 1, 1)]), (2, [(7, 0, 0)])]),
        FakeSession(3, "c", 0, [(0, [(9, 9, 9)])]),
    ]
    with pytest.raises(ReplayGraphError) as info:
        ReplayEngine(later)
    assert str(info.value).startswith(
        "recorded provenance on instance 2 subsystem 'b' step 1 points to itself. Fix: "
    )
    with pytest.raises(ReplayGraphError) as info:
        ReplayEngine([later[0], later[2], later[1]])
    assert "into instance 3 subsystem 'c' step 0 from instance 9" in str(info.value)
