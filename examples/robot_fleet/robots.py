"""A small robot fleet: 3 robots, each running sense -> plan -> control -> telemetry.

Every tick, each robot

* **sense** reads its position (true position plus seeded sensor noise) and the command
  its motors actuated last tick (a message from *control* of the previous tick);
* **plan** turns the reading and the other robots' last telemetry reports into a desired
  velocity, and waits while a robot with a smaller id is too close;
* **control** limits the acceleration and outputs the motor command;
* **telemetry** reports the robot's position to the other robots' planners.

Each subsystem is a small state machine whose only input is the list of messages of its
step (``on_step``). The live mission builds those messages and logs them, with the origin
of every message that came from another step; replay feeds the logged messages to the
same ``on_step`` code, so a replayed subsystem reaches the same state as the live one.
Every ``KEYFRAME_EVERY`` ticks each subsystem logs a keyframe holding its state before
the step, so replay can start there instead of at tick 0.

Everything is integer millimetres and nanoseconds of a mock clock: no floats, no wall
clock, and the only randomness is ``random.Random(seed)``.
"""

from __future__ import annotations

import abc
import json
import random
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pytest_replay.fleet import (
    FleetLogWriter,
    Keyframe,
    Message,
    MockClock,
    NoopApp,
    Origin,
    Step,
    Subsystem,
)

MISSION = "warehouse-crossing"
ROBOTS = (1, 2, 3)
SUBSYSTEMS = ("sense", "plan", "control", "telemetry")
CODES = {name: code for code, name in enumerate(SUBSYSTEMS)}

TICKS = 60
TICK_NS = 10_000_000  # 100 Hz
KEYFRAME_EVERY = 8
MAX_SPEED = 40  # mm per tick, per axis
MAX_ACCEL = 10  # mm per tick per tick, per axis
SAFE_DISTANCE = 300  # mm (Chebyshev); closer than this, wait for smaller robot ids
NOISE = 2  # mm of sensor noise, per axis

# Robot 2 crosses the paths of robots 1 and 3, so the planners must talk to each other.
START = {1: (-600, 0), 2: (0, -600), 3: (600, 300)}
GOAL = {1: (600, 0), 2: (0, 600), 3: (-600, 300)}

_XY = struct.Struct("<ii")
_REPORT = struct.Struct("<Iii")


def robot_config(robot: int) -> str:
    """The effective configuration of one robot (logged with every one of its logs)."""
    (sx, sy), (gx, gy) = START[robot], GOAL[robot]
    return f"robot={robot}\nstart={sx},{sy}\ngoal={gx},{gy}\n"


def parse_config(text: str) -> dict[str, tuple[int, ...]]:
    values: dict[str, tuple[int, ...]] = {}
    for line in text.splitlines():
        key, _, value = line.partition("=")
        values[key] = tuple(int(part) for part in value.split(","))
    return values


def _clamp(value: int, limit: int) -> int:
    return max(-limit, min(limit, value))


# --------------------------------------------------------------------------- subsystems


class Logic(abc.ABC):
    """One subsystem's state machine: ``on_step(messages) -> output payload``."""

    name: ClassVar[str]

    def __init__(self, config: dict[str, tuple[int, ...]]) -> None:
        self.config = config

    @abc.abstractmethod
    def on_step(self, messages: Sequence[Message]) -> bytes:
        """Consume one step's messages, update the state, return the output payload."""

    def state(self) -> dict[str, Any]:
        """A copy of the state as plain JSON data (what keyframes hold)."""
        return dict(json.loads(self.encode()))

    def restore(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)

    def encode(self) -> bytes:
        fields = {k: v for k, v in vars(self).items() if k != "config"}
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


class Sense(Logic):
    name = "sense"

    def __init__(self, config: dict[str, tuple[int, ...]]) -> None:
        super().__init__(config)
        self.reading = list(config["start"])
        self.driven = 0  # odometry: mm driven, from the actuated commands

    def on_step(self, messages: Sequence[Message]) -> bytes:
        raw, *actuated = messages  # the raw reading, then last tick's command (if any)
        for message in actuated:
            vx, vy = _XY.unpack(message.payload)
            self.driven += abs(vx) + abs(vy)
        self.reading = list(_XY.unpack(raw.payload))
        return raw.payload


class Plan(Logic):
    name = "plan"

    def __init__(self, config: dict[str, tuple[int, ...]]) -> None:
        super().__init__(config)
        self.desired = [0, 0]
        self.yields = 0
        self.peers: dict[str, list[int]] = {}

    def on_step(self, messages: Sequence[Message]) -> bytes:
        reading, *reports = messages
        x, y = _XY.unpack(reading.payload)
        for report in reports:
            peer, px, py = _REPORT.unpack(report.payload)
            self.peers[str(peer)] = [px, py]
        gx, gy = self.config["goal"]
        vx, vy = _clamp(gx - x, MAX_SPEED), _clamp(gy - y, MAX_SPEED)
        me = self.config["robot"][0]
        for peer, (px, py) in sorted(self.peers.items()):
            if int(peer) < me and max(abs(x - px), abs(y - py)) < SAFE_DISTANCE:
                # Wait for a higher-priority robot to pass.
                vx, vy = 0, 0
                self.yields += 1
                break
        self.desired = [vx, vy]
        return _XY.pack(vx, vy)


class Control(Logic):
    name = "control"

    def __init__(self, config: dict[str, tuple[int, ...]]) -> None:
        super().__init__(config)
        self.velocity = [0, 0]
        self.effort = 0

    def on_step(self, messages: Sequence[Message]) -> bytes:
        (desired,) = messages
        dx, dy = _XY.unpack(desired.payload)
        vx, vy = self.velocity
        vx += _clamp(dx - vx, MAX_ACCEL)
        vy += _clamp(dy - vy, MAX_ACCEL)
        self.velocity = [vx, vy]
        self.effort += abs(vx) + abs(vy)
        return _XY.pack(vx, vy)


class Telemetry(Logic):
    name = "telemetry"

    def __init__(self, config: dict[str, tuple[int, ...]]) -> None:
        super().__init__(config)
        self.reports = 0
        self.moving_ticks = 0

    def on_step(self, messages: Sequence[Message]) -> bytes:
        reading, command = messages
        x, y = _XY.unpack(reading.payload)
        vx, vy = _XY.unpack(command.payload)
        self.reports += 1
        self.moving_ticks += int(vx != 0 or vy != 0)
        return _REPORT.pack(self.config["robot"][0], x, y)


LOGIC: dict[str, type[Logic]] = {cls.name: cls for cls in (Sense, Plan, Control, Telemetry)}


# --------------------------------------------------------------------------- live mission


@dataclass
class MissionResult:
    """What the live mission did: final positions, and every subsystem's state after
    every tick, keyed by (robot, subsystem, tick)."""

    positions: dict[int, tuple[int, int]]
    min_separation: int
    states: dict[tuple[int, str, int], dict[str, Any]] = field(default_factory=dict)


def run_mission(
    open_writer: Callable[[int, str], FleetLogWriter], seed: int, ticks: int = TICKS
) -> MissionResult:
    """Run the fleet for ``ticks`` ticks, logging every step through ``open_writer``.

    ``open_writer(robot, subsystem)`` returns the log writer of that pair (in a test:
    ``replay.fleet(...).writer``). Writers are closed at the end.
    """
    rng = random.Random(seed)
    logic = {(r, s): LOGIC[s](parse_config(robot_config(r))) for r in ROBOTS for s in SUBSYSTEMS}
    writers = {(r, s): open_writer(r, s) for r in ROBOTS for s in SUBSYSTEMS}
    position = {r: START[r] for r in ROBOTS}
    result = MissionResult(dict(position), min_separation=1 << 30)

    def step(robot: int, subsystem: str, tick: int, messages: list[Message]) -> bytes:
        key = (robot, subsystem)
        timestamp = tick * TICK_NS + CODES[subsystem] * 1_000
        if tick and tick % KEYFRAME_EVERY == 0:
            # The state *before* the step: replay restores it, then replays this step.
            writers[key].log_keyframe(Keyframe(tick, timestamp, logic[key].encode()))
        output = logic[key].on_step(messages)
        writers[key].log(tick, timestamp, messages)
        result.states[(robot, subsystem, tick)] = logic[key].state()
        return output

    def origin(robot: int, subsystem: str, tick: int) -> Origin:
        return Origin(robot, CODES[subsystem], tick)

    commands: dict[int, bytes] = {}
    reports: dict[int, bytes] = {}
    for tick in range(ticks):
        readings = {}
        for robot in ROBOTS:
            x, y = position[robot]
            raw = _XY.pack(x + rng.randint(-NOISE, NOISE), y + rng.randint(-NOISE, NOISE))
            sensed = [Message(raw)]
            if tick:
                sensed.append(Message(commands[robot], origin(robot, "control", tick - 1)))
            readings[robot] = step(robot, "sense", tick, sensed)
        new_reports = {}
        for robot in ROBOTS:
            inputs = [Message(readings[robot], origin(robot, "sense", tick))]
            inputs += [
                Message(reports[peer], origin(peer, "telemetry", tick - 1))
                for peer in ROBOTS
                if peer != robot and tick
            ]
            desired = step(robot, "plan", tick, inputs)
            command = step(robot, "control", tick, [Message(desired, origin(robot, "plan", tick))])
            commands[robot] = command
            new_reports[robot] = step(
                robot,
                "telemetry",
                tick,
                [
                    Message(readings[robot], origin(robot, "sense", tick)),
                    Message(command, origin(robot, "control", tick)),
                ],
            )
            vx, vy = _XY.unpack(command)
            position[robot] = (position[robot][0] + vx, position[robot][1] + vy)
        reports = new_reports
        for a in ROBOTS:
            for b in ROBOTS:
                if a < b:
                    (ax, ay), (bx, by) = position[a], position[b]
                    separation = max(abs(ax - bx), abs(ay - by))
                    result.min_separation = min(result.min_separation, separation)
    for _key, writer in sorted(writers.items()):
        writer.close()
    result.positions = dict(position)
    return result


# --------------------------------------------------------------------------- replay apps


class RobotApp(NoopApp):
    """Replays one subsystem of one robot from its log (the fleet engine's app protocol).

    ``restore_keyframe`` rebuilds the state a keyframe holds (an empty keyframe is the
    initial state); ``replay_step`` feeds the logged messages to the same ``on_step`` as
    the live mission and remembers the mock-clock time it ran at.
    """

    def __init__(
        self,
        instance_id: int,
        effective_config: str,
        clock: MockClock,
        output: FleetLogWriter | None,
    ) -> None:
        super().__init__(instance_id, effective_config, clock, output)
        self.robot = instance_id
        self.config = parse_config(effective_config)
        self.logic = LOGIC[str(self.subsystem.id)](self.config)
        self.restored_from: list[int] = []
        self.last_time_ns = -1

    def restore_keyframe(self, keyframe: Keyframe) -> None:
        self.logic = LOGIC[str(self.subsystem.id)](self.config)
        if keyframe.state:
            self.logic.restore(json.loads(keyframe.state))
        self.restored_from.append(keyframe.step_id)

    def replay_step(self, clock: MockClock, step: Step, keyframe: Keyframe | None) -> None:
        self.logic.on_step(step.messages)
        self.last_time_ns = clock.now


def _app_type(name: str) -> type[RobotApp]:
    return type(f"{name.title()}App", (RobotApp,), {"subsystem": Subsystem(name, CODES[name])})


APPS: dict[str, type[RobotApp]] = {name: _app_type(name) for name in SUBSYSTEMS}
