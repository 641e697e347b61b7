"""The robot fleet under pytest_replay: record the mission, jump around in its replay."""

from __future__ import annotations

from pathlib import Path

import pytest
from robots import (
    APPS,
    CODES,
    GOAL,
    KEYFRAME_EVERY,
    MISSION,
    ROBOTS,
    SAFE_DISTANCE,
    SUBSYSTEMS,
    TICK_NS,
    TICKS,
    MissionResult,
    robot_config,
    run_mission,
)

from pytest_replay.fleet import FleetCursor, ReplayEngine, ReplayPlan

TOPOLOGY = Path(__file__).parent / "topology.toml"


def fly(replay) -> tuple[object, MissionResult]:
    """Run the mission with every log going into the test's ``fleet`` recording."""
    fleet = replay.fleet("fleet", TOPOLOGY)

    def open_writer(robot, subsystem):
        return fleet.writer(robot, subsystem, mission=MISSION, effective_config=robot_config(robot))

    return fleet, run_mission(open_writer, seed=replay.seed)


def start_engine(fleet) -> ReplayEngine:
    """A causal replay of the logs this run wrote, with the robots' own subsystem code."""
    builder = ReplayPlan.builder(TOPOLOGY).discover_logs_under(fleet.logs_root)
    for name in SUBSYSTEMS:
        builder.register(name, APPS[name])
    return builder.build().start()


def app_state(engine: ReplayEngine, robot: int, subsystem: str):
    (session,) = [
        s for s in engine.sessions if (s.instance_id, s.subsystem_id) == (robot, subsystem)
    ]
    return session.app


@pytest.mark.replay_determinism(runs=2)
def test_mission(replay):
    _fleet, mission = fly(replay)
    for robot in ROBOTS:
        x, y = mission.positions[robot]
        gx, gy = GOAL[robot]
        assert max(abs(x - gx), abs(y - gy)) <= 10, f"robot {robot} ended at {(x, y)}"
    assert mission.min_separation >= SAFE_DISTANCE // 2
    # Robots 2 and 3 had to wait for a robot they only know about through messages.
    last = TICKS - 1
    assert mission.states[(2, "plan", last)]["yields"] > 0
    assert mission.states[(3, "plan", last)]["yields"] > 0


def test_goto_replays_to_the_live_state(replay):
    fleet, mission = fly(replay)
    with start_engine(fleet) as engine:
        assert engine.total_nodes == len(ROBOTS) * len(SUBSYSTEMS) * TICKS

        engine.goto(2, "plan", 21)
        frontier = engine.current_frontier()
        assert FleetCursor(2, "plan", 21, CODES["plan"]) in frontier
        # plan 21 of robot 2 read the telemetry of robots 1 and 3 from tick 20: both ran.
        ticks = {(c.instance_id, c.subsystem_id): c.step_id for c in frontier}
        assert ticks[(1, "telemetry")] >= 20
        assert ticks[(3, "telemetry")] >= 20
        # Every subsystem the replay reached is exactly where the live mission was.
        for cursor in frontier:
            app = app_state(engine, cursor.instance_id, cursor.subsystem_id)
            live = mission.states[(cursor.instance_id, cursor.subsystem_id, cursor.step_id)]
            assert app.logic.state() == live, cursor
        assert app_state(engine, 2, "plan").last_time_ns == 21 * TICK_NS + CODES["plan"] * 1_000

        # Backwards: goto resets and replays from the start, only as far as it must.
        ran = engine.executed_nodes
        engine.goto(1, "control", 5)
        assert engine.executed_nodes < ran
        app = app_state(engine, 1, "control")
        assert app.logic.state() == mission.states[(1, "control", 5)]

        engine.run_all()
        for robot in ROBOTS:
            for name in SUBSYSTEMS:
                final = app_state(engine, robot, name).logic.state()
                assert final == mission.states[(robot, name, TICKS - 1)]


def test_seek_starts_from_the_nearest_keyframe(replay):
    fleet, mission = fly(replay)
    with start_engine(fleet) as engine:
        (session,) = [s for s in engine.sessions if (s.instance_id, s.subsystem_id) == (3, "plan")]
        target = 2 * KEYFRAME_EVERY + 3
        session.goto_step(target)
        assert session.last_keyframe == 2 * KEYFRAME_EVERY  # not tick 0
        assert session.app.restored_from == [2 * KEYFRAME_EVERY]
        assert session.app.logic.state() == mission.states[(3, "plan", target)]
