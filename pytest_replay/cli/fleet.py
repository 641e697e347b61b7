"""``pytest-replay fleet replay TOPOLOGY PATHS...``: validate a fleet's logs and show the
causal order a replay would run them in.

The logs are validated exactly as a replay plan validates them (every problem is
listed, exit status 1). A valid fleet is scheduled by the causal engine over
sessions that run no app code: the order, the frontier at a ``--goto`` target and
the graph's node and edge counts depend on the recorded steps and provenance only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_replay.cli.common import EXIT_DIFFERENT, EXIT_OK, CliError, Run

if TYPE_CHECKING:
    from pytest_replay.fleet import FleetCursor, FleetLogReader, StepTable

__all__ = ["Target", "parse_goto", "parse_instances", "run_fleet_replay"]


@dataclass(frozen=True, slots=True)
class Target:
    """A ``--goto`` target: one recorded step of one (instance, subsystem)."""

    instance_id: int
    subsystem_id: str
    step_id: int


def parse_goto(text: str) -> Target:
    parts = text.split(":")
    if len(parts) != 3 or not parts[1]:
        raise CliError(
            f"--goto {text!r} is not INSTANCE:SUBSYSTEM:STEP",
            "write it like --goto 2:plan:17 (instance id, subsystem id, step id)",
        )
    try:
        return Target(int(parts[0]), parts[1], int(parts[2]))
    except ValueError:
        raise CliError(
            f"--goto {text!r} has an instance or step id that is not an integer",
            "write it like --goto 2:plan:17",
        ) from None


def parse_instances(text: str) -> list[int]:
    try:
        return sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise CliError(
            f"--instances {text!r} is not a comma-separated list of instance ids",
            "write it like --instances 1,3",
        ) from None


class _OrderSession:
    """A session that only has a step table: the engine schedules it, nothing runs."""

    def __init__(self, instance_id: int, subsystem_id: str, code: int, reader: FleetLogReader):
        self.instance_id = instance_id
        self.subsystem_id = subsystem_id
        self.subsystem_code = code
        self.output_log_path: Path | None = None
        self._table = reader.step_table()

    def step_table(self) -> StepTable:
        return self._table

    def goto_index(self, index: int) -> None:
        """Scheduling only: there is no app state to move."""

    def reset(self) -> None:
        """Scheduling only: there is no app state to reset."""

    def close(self) -> None:
        """Scheduling only: there is no app or output log to close."""


def _cursor(cursor: FleetCursor) -> dict[str, Any]:
    return {
        "instance_id": cursor.instance_id,
        "subsystem_id": cursor.subsystem_id,
        "subsystem_code": cursor.subsystem_code,
        "step_id": cursor.step_id,
    }


def _line(position: int | None, cursor: FleetCursor) -> str:
    prefix = "" if position is None else f"#{position} "
    return (
        f"{prefix}instance {cursor.instance_id} subsystem '{cursor.subsystem_id}' "
        f"(code {cursor.subsystem_code}) step {cursor.step_id}"
    )


def run_fleet_replay(
    run: Run,
    topology: Path,
    paths: Sequence[Path],
    steps: int | None,
    goto: str | None,
    instances: str | None,
) -> int:
    from pytest_replay.fleet import (
        FleetLogReader,
        ReplayEngine,
        ReplayPlanBuilder,
        ReplayValidationError,
        Subsystem,
        recording_app_for,
    )

    target = None if goto is None else parse_goto(goto)
    if steps is not None and steps < 0:
        raise CliError(f"--steps {steps} is negative", "pass 0 or more (or --all)")
    if not topology.is_file():
        raise CliError(f"topology '{topology}' is not a file", "pass the topology TOML file")
    builder = ReplayPlanBuilder(topology).discover_logs(paths)
    if instances is not None:
        builder.instances(parse_instances(instances))
    unused: list[Any] = []
    for spec in builder.topology.subsystems:
        builder.register(spec.id, recording_app_for(Subsystem(spec.id, spec.code), unused))
    try:
        plan = builder.build()
    except ReplayValidationError as exc:
        if run.json:
            run.emit_json({"valid": False, "topology": str(topology), "problems": list(exc.issues)})
        else:
            count = len(exc.issues)
            run.print(
                f"fleet replay: {count} validation problem{'s' if count != 1 else ''} "
                f"for topology '{topology}':"
            )
            for issue in exc.issues:
                run.print(f"  - {issue}")
            run.print(
                "Fix: record the missing logs, remove stray or duplicate ones, and select "
                "instances (--instances) whose logs agree with the topology."
            )
        return EXIT_DIFFERENT
    sessions = []
    with run.bar("indexing fleet logs", len(plan.assignments)) as bar:
        for assignment in plan.assignments:
            reader = FleetLogReader(assignment.log.base_path)
            sessions.append(
                _OrderSession(
                    assignment.instance_id,
                    assignment.subsystem_id,
                    assignment.registration.subsystem.code,
                    reader,
                )
            )
            bar.advance()
    engine = ReplayEngine(sessions)
    total = engine.total_nodes
    report: dict[str, Any] = {
        "valid": True,
        "topology": str(topology),
        "instances": list(plan.selected_instances),
        "subsystems": {spec.id: spec.code for spec in plan.topology.subsystems},
        "mission": plan.mission,
        "logs": len(plan.assignments),
        "nodes": total,
        "edges": engine.graph.total_edges,
    }
    order: list[FleetCursor] = []
    if target is not None:
        _check_target(sessions, target)
        wanted = (target.instance_id, target.subsystem_id, target.step_id)
        with run.bar("replaying to the target", total) as bar:
            while True:
                cursor = engine.step_causal()
                if cursor is None:
                    raise CliError(
                        f"fleet replay ran out of steps before instance {target.instance_id} "
                        f"subsystem '{target.subsystem_id}' step {target.step_id}",
                        "the target is unreachable; check the recorded provenance",
                    )
                order.append(cursor)
                bar.advance()
                if (cursor.instance_id, cursor.subsystem_id, cursor.step_id) == wanted:
                    break
        frontier = engine.current_frontier()
        report["goto"] = _cursor_target(target)
        report["executed"] = engine.executed_nodes
        report["frontier"] = [_cursor(c) for c in frontier]
        limit = len(order) if steps is None else min(steps, len(order))
        report["order"] = [_cursor(c) for c in order[:limit]]
    else:
        limit = total if steps is None else min(steps, total)
        with run.bar("scheduling steps", limit) as bar:
            for _ in range(limit):
                cursor = engine.step_causal()
                if cursor is None:
                    break
                order.append(cursor)
                bar.advance()
        report["order"] = [_cursor(c) for c in order]
    report["order_shown"] = len(report["order"])
    if run.json:
        run.emit_json(report)
        return EXIT_OK
    run.print(
        f"fleet replay: topology '{topology}', {len(plan.selected_instances)} instance(s) x "
        f"{len(plan.topology.subsystems)} subsystem(s), {len(plan.assignments)} log(s)"
    )
    if plan.mission is not None:
        run.print(f"  mission: {plan.mission}")
    run.print(f"  nodes (steps): {total}")
    run.print(f"  edges: {report['edges']}")
    shown = report["order_shown"]
    if target is not None:
        run.print(
            f"  goto instance {target.instance_id} subsystem '{target.subsystem_id}' step "
            f"{target.step_id}: executed {engine.executed_nodes} of {total} steps"
        )
        run.print("  frontier (the latest executed step of each session):")
        for cursor in engine.current_frontier():
            run.print(f"    {_line(None, cursor)}")
        if shown:
            run.print(f"  causal order to the target (first {shown} of {len(order)}):")
    elif shown:
        run.print(f"  causal order ({'all' if shown == total else f'first {shown} of'} {total}):")
    for position, cursor in enumerate(order[:shown]):
        run.print(f"    {_line(position, cursor)}")
    return EXIT_OK


def _check_target(sessions: Sequence[_OrderSession], target: Target) -> None:
    """Raise unless some session of the target's (instance, subsystem) recorded its step."""
    import numpy as np

    for session in sessions:
        if (session.instance_id, session.subsystem_id) != (
            target.instance_id,
            target.subsystem_id,
        ):
            continue
        ids = session.step_table().step_ids
        if 0 <= target.step_id < 1 << 64:
            position = int(np.searchsorted(ids, np.uint64(target.step_id)))
            if position < len(ids) and int(ids[position]) == target.step_id:
                return
        first = int(ids[0]) if len(ids) else None
        last = int(ids[-1]) if len(ids) else None
        raise CliError(
            f"--goto target instance {target.instance_id} subsystem '{target.subsystem_id}' "
            f"step {target.step_id} was not recorded (its log holds step ids {first}..{last})",
            "pass a step id the log holds (pytest-replay inspect shows them)",
        )
    known = sorted({(s.instance_id, s.subsystem_id) for s in sessions})
    shown = ", ".join(f"{i}:{name}" for i, name in known)
    raise CliError(
        f"--goto target instance {target.instance_id} subsystem '{target.subsystem_id}' is not "
        "part of this replay",
        f"use one of {shown}" if shown else "replay a fleet with logs",
    )


def _cursor_target(target: Target) -> dict[str, Any]:
    return {
        "instance_id": target.instance_id,
        "subsystem_id": target.subsystem_id,
        "step_id": target.step_id,
    }
