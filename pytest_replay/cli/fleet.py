"""``pytest-replay fleet replay TOPOLOGY PATHS...`` (or ``RECORDING.fleet``): validate a
fleet's logs and show the causal order a replay would run them in; ``fleet graph`` exports
the causal graph (or the neighbourhood of one step) as Graphviz DOT or SVG.

The logs are validated exactly as a replay plan validates them (every problem is
listed, exit status 1). A valid fleet is scheduled by the causal engine over
sessions that run no app code: the order, the frontier at a ``--goto`` target and
the graph's node and edge counts depend on the recorded steps and provenance only.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_replay.cli.common import EXIT_DIFFERENT, EXIT_OK, CliError, Run
from pytest_replay.errors import render_error

if TYPE_CHECKING:
    from pytest_replay.fleet import FleetCursor, FleetLogReader, ReplayPlan, StepTable

__all__ = ["Target", "fleet_inputs", "run_fleet_graph", "run_fleet_replay"]


def _is_recording(path: Path) -> bool:
    from pytest_replay.cli import detect as formats

    if not path.is_file():
        return False
    try:
        return formats.detect(path).format == formats.FLEET_RECORDING
    except CliError:
        return False


@contextlib.contextmanager
def fleet_inputs(
    topology: Path, paths: Sequence[Path]
) -> Iterator[tuple[Path, Sequence[Path], str]]:
    """(topology, log paths, what to call the fleet) from the command line: a stored
    ``.fleet`` recording is unpacked into a temporary folder for the command's duration."""
    stray = [path for path in paths if _is_recording(path)]
    if stray:
        raise CliError(
            f"'{stray[0]}' is a fleet recording (.fleet), not a folder of fleet logs",
            f"pass the recording alone: pytest-replay fleet replay {stray[0]}",
        )
    if not _is_recording(topology):
        if not paths:
            raise CliError(
                f"no fleet logs given after topology '{topology}'",
                "pass TOPOLOGY and the logs or folders that hold them, or a .fleet recording alone",
            )
        yield topology, paths, str(topology)
        return
    if paths:
        raise CliError(
            f"'{topology}' is a fleet recording, which holds its topology and logs; "
            f"{len(paths)} more path(s) were given",
            f"pass the recording alone: pytest-replay fleet replay {topology}",
        )
    from pytest_replay.fleet import load_fleet_recording

    recording = load_fleet_recording(topology)
    with tempfile.TemporaryDirectory(prefix="pytest-replay-fleet-") as folder:
        topology_path, logs_root = recording.materialise(folder)
        yield topology_path, [logs_root], f"{topology} ({recording.topology_name})"


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


def _plan(
    run: Run, topology: Path, paths: Sequence[Path], instances: str | None, name: str
) -> tuple[ReplayPlan, list[_OrderSession]] | None:
    """The validated plan and a scheduling-only session per log, or ``None`` after printing
    the validation problems (exit status 1)."""
    from pytest_replay.fleet import (
        FleetLogReader,
        ReplayPlanBuilder,
        ReplayValidationError,
        Subsystem,
        recording_app_for,
    )

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
            run.emit_json({"valid": False, "topology": name, "problems": list(exc.issues)})
        else:
            count = len(exc.issues)
            lines = [
                f"fleet replay: {count} validation problem{'s' if count != 1 else ''} "
                f"for topology '{name}':",
                *(f"  - {issue}" for issue in exc.issues),
            ]
            run.print(
                render_error(
                    "\n".join(lines) + "\n",
                    fix="record the missing logs, remove stray or duplicate ones, and select "
                    "instances (--instances) whose logs agree with the topology.",
                )
            )
        return None
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
    return plan, sessions


def run_fleet_replay(
    run: Run,
    topology: Path,
    paths: Sequence[Path],
    steps: int | None,
    goto: str | None,
    instances: str | None,
    shown: str | None = None,
) -> int:
    from pytest_replay.fleet import ReplayEngine

    target = None if goto is None else parse_goto(goto)
    if steps is not None and steps < 0:
        raise CliError(f"--steps {steps} is negative", "pass 0 or more (or --all)")
    name = shown or str(topology)
    planned = _plan(run, topology, paths, instances, name)
    if planned is None:
        return EXIT_DIFFERENT
    plan, sessions = planned
    engine = ReplayEngine(sessions)
    total = engine.total_nodes
    report: dict[str, Any] = {
        "valid": True,
        "topology": name,
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
        f"fleet replay: topology '{name}', {len(plan.selected_instances)} instance(s) x "
        f"{len(plan.topology.subsystems)} subsystem(s), {len(plan.assignments)} log(s)"
    )
    if plan.mission is not None:
        run.print(f"  mission: {plan.mission}")
    run.print(f"  nodes (steps): {total}")
    run.print(f"  edges: {report['edges']}")
    count: int = report["order_shown"]
    if target is not None:
        run.print(
            f"  goto instance {target.instance_id} subsystem '{target.subsystem_id}' step "
            f"{target.step_id}: executed {engine.executed_nodes} of {total} steps"
        )
        run.print("  frontier (the latest executed step of each session):")
        for cursor in engine.current_frontier():
            run.print(f"    {_line(None, cursor)}")
        if count:
            run.print(f"  causal order to the target (first {count} of {len(order)}):")
    elif count:
        run.print(f"  causal order ({'all' if count == total else f'first {count} of'} {total}):")
    for position, cursor in enumerate(order[:count]):
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


# --------------------------------------------------------------------------- graph


def _dot_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def fleet_dot(sessions: Sequence[_OrderSession], around: Target | None, radius: int) -> str:
    """The causal graph as DOT: a cluster per session, a node per step (``instance:
    subsystem:step``), solid edges for log order, dashed ones for message origins; with
    ``around``, only the steps within ``radius`` edges of that step (which is filled)."""
    from pytest_replay.fleet.graph import SessionNodes, build_causal_graph

    graph = build_causal_graph(
        [
            SessionNodes(s.instance_id, s.subsystem_id, s.subsystem_code, s.step_table())
            for s in sessions
        ]
    )
    session_of = graph.node_session.tolist()
    step_of = graph.node_step.tolist()
    local_next = graph.local_next.tolist()
    indptr, indices = graph.indptr.tolist(), graph.indices.tolist()
    edges = [(n, local_next[n], "solid") for n in range(graph.total_nodes) if local_next[n] >= 0]
    edges += [
        (n, indices[k], "dashed")
        for n in range(graph.total_nodes)
        for k in range(indptr[n], indptr[n + 1])
    ]
    kept: set[int] | None = None
    centre: int | None = None
    if around is not None:
        centre = _node_of(sessions, session_of, step_of, around)
        neighbours: dict[int, list[int]] = {}
        for a, b, _style in edges:
            neighbours.setdefault(a, []).append(b)
            neighbours.setdefault(b, []).append(a)
        kept = {centre}
        frontier = [centre]
        for _ in range(max(0, radius)):
            frontier = [m for n in frontier for m in neighbours.get(n, []) if m not in kept]
            kept.update(frontier)
    lines = [
        "digraph fleet {",
        "  rankdir=LR;",
        '  node [shape=box, fontname="monospace"];',
    ]
    members_of: dict[int, list[int]] = {}
    for n in range(graph.total_nodes):
        if kept is None or n in kept:
            members_of.setdefault(session_of[n], []).append(n)
    for index, session in enumerate(sessions):
        members = members_of.get(index, [])
        if not members:
            continue
        label = f"instance {session.instance_id} / {session.subsystem_id}"
        lines.append(f"  subgraph cluster_{index} {{")
        lines.append(f"    label={_dot_text(label)};")
        for n in members:
            text = f"{session.instance_id}:{session.subsystem_id}:{step_of[n]}"
            fill = ", style=filled, fillcolor=salmon" if n == centre else ""
            lines.append(f"    n{n} [label={_dot_text(text)}{fill}];")
        lines.append("  }")
    for a, b, style in sorted(edges):
        if kept is None or (a in kept and b in kept):
            lines.append(f"  n{a} -> n{b}" + (" [style=dashed];" if style == "dashed" else ";"))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _node_of(
    sessions: Sequence[_OrderSession], session_of: list[int], step_of: list[int], target: Target
) -> int:
    _check_target(sessions, target)
    for node, (session, step) in enumerate(zip(session_of, step_of, strict=True)):
        s = sessions[session]
        if (s.instance_id, s.subsystem_id, step) == (
            target.instance_id,
            target.subsystem_id,
            target.step_id,
        ):
            return node
    raise AssertionError("unreachable: _check_target found the step")  # pragma: no cover


def run_fleet_graph(
    run: Run,
    topology: Path,
    paths: Sequence[Path],
    around: str | None,
    radius: int,
    output: Path | None,
    shown: str | None = None,
) -> int:
    from pytest_replay._atomic import atomic_write_bytes

    target = None if around is None else parse_goto(around)
    if radius < 0:
        raise CliError(f"--radius {radius} is negative", "pass 0 or more")
    planned = _plan(run, topology, paths, None, shown or str(topology))
    if planned is None:
        return EXIT_DIFFERENT
    _plan_value, sessions = planned
    dot = fleet_dot(sessions, target, radius)
    if output is None:
        run.out.write(dot)
        return EXIT_OK
    data = dot.encode()
    if output.suffix == ".svg":
        program = shutil.which("dot")
        if program is None:
            raise CliError(
                "Graphviz 'dot' is not installed, so no SVG can be drawn",
                f"install Graphviz, or write DOT: -o {output.with_suffix('.dot')}",
            )
        done = subprocess.run([program, "-Tsvg"], input=data, capture_output=True, check=False)
        if done.returncode != 0:
            raise CliError(
                f"Graphviz 'dot' failed ({done.stderr.decode(errors='replace').strip()})",
                "write DOT instead (-o graph.dot) and check it",
            )
        data = done.stdout
    atomic_write_bytes(output, data)
    run.print(f"wrote {output} ({len(sessions)} logs)")
    return EXIT_OK
