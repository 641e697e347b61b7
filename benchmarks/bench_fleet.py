"""Fleet replay through the public API, side by side with networkx, in one process.

* ``end_to_end``: logs written with :class:`FleetLogWriter` (the stress fleet: sense <-
  nothing; plan <- sense; control <- plan; telemetry <- sense and control; default
  2,500 instances x 4 subsystems x 100 steps = 1,000,000 nodes), then timed:
  ``ReplayPlan.builder(topology).discover_logs_under(logs)`` + registrations +
  ``build()`` + ``plan.start()`` + ``engine.run_all()`` with no-op apps. The baseline
  is ``networkx.lexicographical_topological_sort`` over the same causal graph with
  (instance, subsystem code, step id) tuple keys (DiGraph build + sort), on the edges
  read from the same plan. Peak RSS is read after our runs, before networkx runs; the
  logs are written by a child process so the writer's memory is not counted.
* ``topology``: the same replay of one instance of a topology with ``--subsystems``
  (20,000) subsystems against one of a tenth as many: linear when the big one takes at
  most 2x ten times the small one.

    python benchmarks/bench_fleet.py [--instances 2500] [--steps 100] [--quick]
    python benchmarks/bench_fleet.py --instances 25000 --no-networkx   # 10M nodes
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import networkx as nx
import numpy as np
from _harness import measure, peak_rss_mb, verdict

from pytest_replay.fleet import FleetLogWriter, Keyframe, ReplayPlan, Step
from pytest_replay.fleet.app import NoopApp
from pytest_replay.fleet.testing import (
    STRESS_SUBSYSTEMS,
    app_types,
    stack_for,
    write_topology,
)


def replay(topology: Path, logs: Path, subsystems: tuple[tuple[str, int], ...]) -> int:
    """The path users run; returns the number of executed nodes."""
    builder = ReplayPlan.builder(topology).discover_logs_under(logs)
    for name, app in app_types(subsystems, NoopApp).items():
        builder.register(name, app)
    with builder.build().start() as engine:
        engine.run_all()
        return engine.executed_nodes


def networkx_order(topology: Path, logs: Path) -> tuple[int, float]:
    """Seconds networkx takes to order the same causal graph (tuple keys)."""
    builder = ReplayPlan.builder(topology).discover_logs_under(logs)
    for name, app in app_types(STRESS_SUBSYSTEMS, NoopApp).items():
        builder.register(name, app)
    with builder.build().start() as engine:
        graph = engine.graph
        keys = [
            (s.instance_id, s.subsystem_code)
            for s in engine.sessions  # node_session indexes the engine's sessions
        ]
        session = graph.node_session.tolist()
        steps = graph.node_step.tolist()
        names = [(*keys[s], step) for s, step in zip(session, steps, strict=True)]
        src = np.concatenate(
            [
                np.flatnonzero(graph.local_next >= 0),
                np.repeat(np.arange(graph.total_nodes), np.diff(graph.indptr)),
            ]
        ).tolist()
        dst = np.concatenate([graph.local_next[graph.local_next >= 0], graph.indices]).tolist()
    edges = [(names[a], names[b]) for a, b in zip(src, dst, strict=True)]
    holder: list[list[tuple[int, int, int]]] = []

    def run() -> None:
        digraph: nx.DiGraph[tuple[int, int, int]] = nx.DiGraph()
        digraph.add_nodes_from(names)
        digraph.add_edges_from(edges)
        holder.append(list(nx.lexicographical_topological_sort(digraph)))

    timing = measure(run, 5, setup=holder.clear)
    # Node numbers are in scheduling-key order and the engine ran them in that order.
    assert holder[0] == names, "networkx disagrees with the engine's order"
    return len(names), timing.wall


def write_fleet(folder: Path, instances: int, steps: int) -> Path:
    """Write the stress fleet in a child process (its memory is not ours)."""
    code = (
        "import sys; from pathlib import Path; "
        "from pytest_replay.fleet.testing import write_stress_fleet; "
        "write_stress_fleet(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(folder), str(instances), str(steps)], check=True
    )
    return folder / "topology.toml"


def bench_end_to_end(
    folder: Path, instances: int, steps: int, repeat: int, networkx: bool
) -> dict[str, object]:
    topology = write_fleet(folder, instances, steps)
    nodes = []
    timing = measure(
        lambda: nodes.append(replay(topology, folder / "logs", STRESS_SUBSYSTEMS)), repeat
    )
    total = nodes[0]
    assert total == instances * 4 * steps, total
    rss = peak_rss_mb()
    result: dict[str, object] = {
        "nodes": total,
        "logs": instances * 4,
        **timing.as_dict(total, "nodes_per_s"),
        "peak_rss_mb": round(rss, 1),
    }
    baseline = None
    if networkx:
        _, seconds = networkx_order(topology, folder / "logs")
        baseline = total / seconds
        result["networkx_s_median"] = round(seconds, 3)
        result["networkx_nodes_per_s"] = round(baseline)
    label = f"e2e_nodes_per_s_{total // 1000}k_nodes"
    verdict(label, total / timing.wall, 400_000, baseline=baseline)
    if baseline is not None:
        speedup = (total / timing.wall) / baseline
        verdict("e2e_speedup_vs_networkx", speedup, 3.0, baseline=1.0, ratio=speedup)
    limit = 1536 if total <= 1_000_000 else 2048
    verdict(f"e2e_peak_rss_mb_{total // 1000}k_nodes", rss, limit, op="<=")
    return result


def write_wide(
    folder: Path, subsystems: int, steps: int
) -> tuple[Path, tuple[tuple[str, int], ...]]:
    specs = tuple((f"s{code}", code) for code in range(subsystems))
    topology = write_topology(folder / "topology.toml", specs)
    for name, code in specs:
        with FleetLogWriter(folder / "logs" / f"{name}.flog") as writer:
            writer.log_instantiated(stack_for(name, code, 1), effective_config=name)
            writer.log_keyframe(Keyframe(0, 0, b""))
            for step in range(steps):
                writer.log_step(Step(step, step))
    return topology, specs


def bench_topology(folder: Path, subsystems: int, steps: int, repeat: int) -> dict[str, object]:
    figures = {}
    for count in (subsystems // 10, subsystems):
        topology, specs = write_wide(folder / str(count), count, steps)
        timing = measure(
            functools.partial(replay, topology, folder / str(count) / "logs", specs), repeat
        )
        figures[count] = timing
    small, big = figures[subsystems // 10], figures[subsystems]
    ratio = big.wall / (10 * small.wall)
    verdict(
        f"topology_{subsystems}_subsystems_vs_10x_{subsystems // 10}",
        ratio,
        2.0,
        op="<=",
        baseline=10 * small.wall,
        ratio=ratio,
    )
    return {
        "subsystems": subsystems,
        "steps_per_log": steps,
        "big": big.as_dict(),
        "small": small.as_dict(),
        "big_over_10x_small": round(ratio, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=2500)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--subsystems", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-networkx", action="store_true")
    parser.add_argument("--no-topology", action="store_true")
    parser.add_argument("--no-e2e", action="store_true", help="only the topology part")
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.instances, args.subsystems = 10, 200
    folder = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    result: dict[str, object] = {"benchmark": "fleet"}
    try:
        if not args.no_e2e:
            result["end_to_end"] = bench_end_to_end(
                folder / "e2e", args.instances, args.steps, args.repeat, not args.no_networkx
            )
            shutil.rmtree(folder / "e2e")
        if not args.no_topology:
            result["topology"] = bench_topology(folder / "wide", args.subsystems, 2, args.repeat)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
