"""Building blocks for tests and benchmarks of fleet replay: small fleets on disk and
app types that do nothing or log their calls."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Final

import numpy as np

from pytest_replay._atomic import atomic_write_bytes
from pytest_replay.fleet.app import MockClock, NoopApp
from pytest_replay.fleet.reader import StepTable
from pytest_replay.fleet.records import (
    ConfigSource,
    Keyframe,
    Message,
    Origin,
    StackInfo,
    Step,
    Subsystem,
)
from pytest_replay.fleet.topology import Interconnect, format_topology
from pytest_replay.fleet.writer import DEFAULT_SLAB_SIZE, FleetLogWriter
from pytest_replay.formats.fleet_log import LOG_EXTENSION

if TYPE_CHECKING:
    from pytest_replay.fleet.engine import FleetCursor, ReplayEngine

__all__ = [
    "STRESS_SUBSYSTEMS",
    "AppCall",
    "CallLogApp",
    "FakeFleet",
    "FakeSession",
    "NoopApp",
    "OriginKey",
    "app_types",
    "order_of",
    "ping_pong",
    "stack_for",
    "step_table",
    "write_identity_log",
    "write_stress_fleet",
    "write_topology",
]

#: The stress topology: sense <- nothing; plan <- sense; control <- plan;
#: telemetry <- sense and control (all within one instance, same step id).
STRESS_SUBSYSTEMS: Final = (("sense", 0), ("plan", 1), ("control", 2), ("telemetry", 3))
_STRESS_SOURCES: Final = {"sense": (), "plan": (0,), "control": (1,), "telemetry": (0, 2)}

#: (instance id, subsystem id, call name, argument) as logged by :class:`CallLogApp`.
AppCall = tuple[int, str, str, object]


def stack_for(subsystem_id: str | None, subsystem_code: int, instance_id: int) -> StackInfo:
    return StackInfo(
        app_name="demo",
        app_version="0.1.0",
        subsystem_id=subsystem_id,
        subsystem_code=subsystem_code,
        instance_id=instance_id,
        git_commit="abc123",
        git_dirty=False,
    )


def write_topology(
    path: str | os.PathLike[str],
    subsystems: Iterable[tuple[str, int] | tuple[str, int, str]],
    interconnects: Iterable[Interconnect] = (),
) -> Path:
    """Write a topology file (and an empty config file for each ``config`` named)."""
    target = Path(path)
    items = list(subsystems)
    for item in items:
        if len(item) == 3:
            atomic_write_bytes(target.parent / item[2], b"")
    atomic_write_bytes(target, format_topology(items, interconnects).encode("utf-8"))
    return target


def write_identity_log(
    base_path: str | os.PathLike[str],
    stack: StackInfo,
    mission: str | None,
    *,
    steps: Sequence[Step] = (),
    keyframes: Sequence[Keyframe] = (),
    effective_config: str = "(tasks: [], cnx: [])",
    slab_size: int | None = None,
) -> Path:
    """Write a log with an Instantiated record (and MissionStarted when ``mission``),
    then ``steps`` with ``keyframes`` interleaved at their step."""
    base = Path(base_path)
    by_step = {kf.step_id: kf for kf in keyframes}
    with FleetLogWriter(base, slab_size=slab_size or DEFAULT_SLAB_SIZE) as writer:
        writer.log_instantiated(
            stack, effective_config=effective_config, config_source=ConfigSource.EXTERNAL_FILE
        )
        if mission is not None:
            writer.log_mission_started(mission, timestamp_ns=1)
        for step in steps:
            keyframe = by_step.get(step.step_id)
            if keyframe is not None:
                writer.log_keyframe(keyframe)
            writer.log_step(step)
    return base


def stress_origins(subsystem_id: str, instance_id: int, step_id: int) -> tuple[Origin, ...]:
    return tuple(Origin(instance_id, code, step_id) for code in _STRESS_SOURCES[subsystem_id])


def write_stress_fleet(
    root: str | os.PathLike[str],
    instances: int,
    steps: int,
    *,
    payload: bytes = b"",
    keyframe_every: int = 0,
    section_steps: int = 256,
) -> Path:
    """Write the stress topology and one log per (instance 1..instances, subsystem) of
    ``steps`` steps under ``root/logs``; returns the topology path.

    Every log has a keyframe at step 0 (and every ``keyframe_every`` steps when > 0).
    """
    folder = Path(root)
    topology = write_topology(folder / "topology.toml", STRESS_SUBSYSTEMS)
    for instance_id in range(1, instances + 1):
        for subsystem_id, code in STRESS_SUBSYSTEMS:
            base = folder / "logs" / f"instance_{instance_id}" / f"{subsystem_id}{LOG_EXTENSION}"
            with FleetLogWriter(base, section_steps=section_steps) as writer:
                writer.log_instantiated(
                    stack_for(subsystem_id, code, instance_id), effective_config=subsystem_id
                )
                writer.log_mission_started("default", timestamp_ns=1)
                for step_id in range(steps):
                    if step_id == 0 or (keyframe_every and step_id % keyframe_every == 0):
                        writer.log_keyframe(
                            Keyframe(step_id, 1000 * step_id, f"{step_id}".encode())
                        )
                    origins = stress_origins(subsystem_id, instance_id, step_id)
                    messages = tuple(Message(payload, origin) for origin in origins) or (
                        Message(payload),
                    )
                    writer.log_step(Step(step_id, 1000 * step_id + code, messages))
    return topology


class CallLogApp(NoopApp):
    """Logs every call into the class's ``calls`` list and, when replay records, copies
    each step to its output log."""

    calls: ClassVar[list[AppCall]] = []

    def __init__(
        self,
        instance_id: int,
        effective_config: str,
        clock: MockClock,
        output: FleetLogWriter | None,
    ) -> None:
        super().__init__(instance_id, effective_config, clock, output)
        self._log("build", effective_config)
        if output is not None:
            output.log_instantiated(
                stack_for(self.subsystem.id, self.subsystem.code, instance_id),
                effective_config=effective_config,
            )

    def _log(self, call: str, argument: object) -> None:
        self.calls.append((self.instance_id, str(self.subsystem.id), call, argument))

    def start(self) -> None:
        self._log("start", None)

    def stop(self) -> None:
        self._log("stop", None)

    def restore_keyframe(self, keyframe: Keyframe) -> None:
        self._log("restore_keyframe", (keyframe.step_id, self.clock.now))

    def replay_step(self, clock: MockClock, step: Step, keyframe: Keyframe | None) -> None:
        self._log("replay_step", (step.step_id, clock.now, keyframe is not None))
        if self.output is not None:
            if keyframe is not None:
                self.output.log_keyframe(keyframe)
            self.output.log_step(Step(step.step_id, step.timestamp_ns, tuple(step.messages)))


def app_types(
    subsystems: Iterable[tuple[str, int]],
    base: type[NoopApp] = NoopApp,
    calls: list[AppCall] | None = None,
) -> dict[str, type[NoopApp]]:
    """One subclass of ``base`` per (id, code); a :class:`CallLogApp` base logs into
    ``calls`` (a fresh list when omitted)."""
    sink: list[AppCall] = [] if calls is None else calls
    out: dict[str, type[NoopApp]] = {}
    for subsystem_id, code in subsystems:
        namespace: dict[str, object] = {"subsystem": Subsystem(subsystem_id, code)}
        if issubclass(base, CallLogApp):
            namespace["calls"] = sink
        out[subsystem_id] = type(f"{base.__name__}_{subsystem_id}", (base,), namespace)
    return out


# --------------------------------------------------------------------------- engine fakes

#: (instance id, subsystem code, step id) of a message's origin.
OriginKey = tuple[int, int, int]


def step_table(steps: Sequence[tuple[int, Sequence[OriginKey]]]) -> StepTable:
    """A :class:`StepTable` from (step id, origins) pairs in log order."""
    index = [position for position, (_, origins) in enumerate(steps) for _ in origins]
    flat = [origin for _, origins in steps for origin in origins]
    return StepTable(
        step_ids=np.array([step_id for step_id, _ in steps], np.uint64),
        origin_step_index=np.array(index, np.int64),
        origin_instance=np.array([o[0] for o in flat], np.uint32),
        origin_code=np.array([o[1] for o in flat], np.uint16),
        origin_step=np.array([o[2] for o in flat], np.uint64),
    )


@dataclass
class FakeSession:
    """An engine session over in-memory steps that logs the moves it was asked for
    (the reference's fake session, for graph and scheduling tests)."""

    instance_id: int
    subsystem_id: str
    subsystem_code: int
    steps: list[tuple[int, list[OriginKey]]]
    output_log_path: Path | None = None
    moves: list[int] = field(default_factory=list)
    resets: int = 0
    closes: int = 0

    def step_table(self) -> StepTable:
        return step_table(self.steps)

    def goto_index(self, index: int) -> None:
        self.moves.append(index)

    def reset(self) -> None:
        self.resets += 1
        self.moves = []

    def close(self) -> None:
        self.closes += 1


def ping_pong(*, bad: bool = False) -> list[FakeSession]:
    """The reference's ping/pong pair: pong step i has a message from ping step i
    (``bad``: pong's only step names ping step 99, which was never recorded)."""
    ping = FakeSession(1, "ping", 0, [(0, []), (1, [])])
    if bad:
        return [ping, FakeSession(1, "pong", 1, [(0, [(1, 0, 99)])])]
    return [ping, FakeSession(1, "pong", 1, [(0, [(1, 0, 0)]), (1, [(1, 0, 1)])])]


def order_of(engine: ReplayEngine) -> list[FleetCursor]:
    """Step the engine to the end; the cursors in execution order."""
    out = []
    while (cursor := engine.step_causal()) is not None:
        out.append(cursor)
    return out


@dataclass(frozen=True)
class FakeFleet:
    """A fleet as data: ``sessions[s] = (instance id, subsystem code)`` (subsystem id
    ``s<code>``); ``nodes`` are ``(session, step id, origins)`` in one valid causal order,
    so every origin names an earlier node; ``keyframes`` are extra ``(session, step id)``
    keyframes (every log has one at its first step)."""

    sessions: tuple[tuple[int, int], ...]
    nodes: tuple[tuple[int, int, tuple[OriginKey, ...]], ...]
    keyframes: frozenset[tuple[int, int]] = frozenset()

    def steps_of(self, session: int) -> list[tuple[int, list[OriginKey]]]:
        return [(step, list(origins)) for s, step, origins in self.nodes if s == session]

    def fake_sessions(self) -> list[FakeSession]:
        return [
            FakeSession(instance, f"s{code}", code, self.steps_of(index))
            for index, (instance, code) in enumerate(self.sessions)
        ]

    def write(self, root: str | os.PathLike[str]) -> Path:
        """Write the topology and one log per session under ``root/logs``; returns the
        topology path. Step ``n`` runs at ``10 n + 1`` ns, its keyframe holds ``10 n``."""
        folder = Path(root)
        codes = sorted({code for _, code in self.sessions})
        topology = write_topology(folder / "topology.toml", [(f"s{c}", c) for c in codes])
        for index, (instance, code) in enumerate(self.sessions):
            base = folder / "logs" / f"i{instance}" / f"s{code}{LOG_EXTENSION}"
            with FleetLogWriter(base, section_steps=3) as writer:
                writer.log_instantiated(
                    stack_for(f"s{code}", code, instance), effective_config=f"cfg{code}"
                )
                for position, (step, origins) in enumerate(self.steps_of(index)):
                    if position == 0 or (index, step) in self.keyframes:
                        writer.log_keyframe(Keyframe(step, 10 * step, b"k%d" % step))
                    messages = tuple(Message(b"%d" % step, Origin(*o)) for o in origins)
                    writer.log(step, 10 * step + 1, messages)
        return topology
