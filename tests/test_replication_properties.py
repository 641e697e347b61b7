"""Properties over many generated fault schedules: convergence, safety, determinism."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings

from pytest_replay.kinds import RecordingTarget
from pytest_replay.replication import (
    NetworkSchedule,
    Simulation,
    convergence_problems,
    safety_problems,
    verify_trace,
)
from pytest_replay.replication.kind import ReplicationRecorder
from pytest_replay.strategies.replication import network_schedules


@given(network_schedules())
def test_converges_after_the_network_goes_quiet(schedule: NetworkSchedule) -> None:
    sim = Simulation(schedule).run()
    # Exactly one leader; every replica holds the leader's retained range.
    assert convergence_problems(sim) == []


@given(network_schedules(max_forgeries=5))
def test_replicas_only_apply_genuine_responses_and_only_move_forward(
    schedule: NetworkSchedule,
) -> None:
    sim = Simulation(schedule).run()
    assert sim.trace is not None
    assert safety_problems(sim.trace.events, schedule.nodes) == []


@settings(max_examples=10)
@given(network_schedules(max_nodes=4))
def test_same_seed_same_trace_and_the_recording_verifies(schedule: NetworkSchedule) -> None:
    first = Simulation(schedule).run().encoded_trace()
    assert Simulation(schedule).run().encoded_trace() == first
    assert verify_trace(first) is None
    target = RecordingTarget(
        "t::p", "cluster", "replication", Path("cluster.rpltrace"), Path("."), expected=first
    )
    recorder = ReplicationRecorder(target, schedule)
    recorder.run()
    recorder.check_complete()
    assert recorder.finish().data == first


def test_safety_checker_catches_violations() -> None:
    # The checker is independent of the runtime: feed it a doctored trace.
    events: list[list[object]] = [
        [0, "start", 2, -1, {"incarnation": 1, "tail": 0}],
        [0, "role", 2, -1, {"from": "IDLE", "to": "REPLICA", "signal": "CapabilitySelected"}],
        [5, "deliver", 2, 1, {"wire": 1, "type": "sync_response", "sent": 1, "first": 0,
                               "events": 1, "token": 77, "retained": 0, "sender_role": "REPLICA"}],
        [5, "apply", 2, 1, {"request_id": 77, "first_seq": 0, "events": 1, "prev_tail": 3,
                             "new_tail": 1, "wire": 1}],
    ]  # fmt: skip
    problems = safety_problems(events, (1, 2))
    text = "\n".join(problems)
    assert "while REPLICA" in text  # sender was not leader
    assert "never sent" in text  # unknown token
    assert "tail was 0" in text and "backwards" in text
