"""Replication simulator throughput and time to convergence.

Two runs of the deterministic simulator:

* ``five_nodes``: 5 nodes, ``--entries`` (100,000) client entries written in
  batches of 100 every 10 ms under 5 % loss; then the network keeps its loss
  and we count simulated heartbeats until the cluster converges.
* ``fifty_nodes``: 50 nodes (2,450 heartbeats per interval), 5 % loss,
  ``--fifty-entries`` entries, then convergence likewise.

Throughput is simulated events (deliveries, timers) per CPU second, and entries held
(accepted entries times the nodes holding them once converged) per CPU second: a
simulation is single-threaded, so CPU time is what it costs on a shared machine.
The baseline, run in the same process, is a bare discrete-event loop: the same
number of timed actions pushed and popped on a ``heapq`` with a trivial handler,
i.e. the floor any Python simulator pays (its verdict column is actions per CPU-s).
Targets: >= 100,000 events per CPU-s with 50 nodes; >= 500,000 entries held per
CPU-s with 5 nodes. Prints one JSON object and one verdict line per target.

    python benchmarks/bench_replication.py [--entries 100000] [--fifty-entries 5000] [--quick]
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import time
from typing import Any

from _harness import measure, verdict

from pytest_replay.replication import (
    LinkSpec,
    NetworkSchedule,
    Simulation,
    WriteStream,
    convergence_problems,
)


def bare_loop(actions: int, seed: int = 1) -> float:
    """Seconds a plain heapq event loop takes for ``actions`` push/pop pairs."""
    rng = random.Random(seed)
    heap: list[tuple[int, int, int, Any]] = []
    sink: list[Any] = []
    start = time.perf_counter()
    order = 0
    for i in range(64):
        order += 1
        heapq.heappush(heap, (i, order, 0, None))
    done = 0
    while done < actions:
        now, _, _, _ = heapq.heappop(heap)
        sink.append([now, "deliver", 0, 0, {"wire": done}])
        order += 1
        heapq.heappush(heap, (now + rng.randint(1, 10), order, 0, None))
        done += 1
    return time.perf_counter() - start


def scenario(
    name: str, nodes: int, entries: int, batch: int, every_ms: int, repeat: int
) -> dict[str, Any]:
    batches = -(-entries // batch)
    last_write = 1_000 + (batches - 1) * every_ms
    schedule = NetworkSchedule(
        seed=2024,
        nodes=tuple(range(1, nodes + 1)),
        end_ms=last_write + 60_000,
        link=LinkSpec(latency_ms=5, jitter_ms=3, drop=0.05),
        writes=(WriteStream(1_000, every_ms, batch, entries, 16),),
    )
    runs: list[tuple[Simulation, int | None]] = []

    def run() -> None:
        sim = Simulation(schedule, keep_trace=False)
        sim.run_until(last_write)
        runs.append((sim, sim.run_until_converged(schedule.end_ms)))

    timing = measure(run, repeat)
    sim, converged_at = runs[-1]
    assert all(other.stats == sim.stats for other, _ in runs), "the simulator is not deterministic"
    problems = convergence_problems(sim)
    stats = sim.stats
    base = measure(lambda: bare_loop(stats.actions), repeat)
    hb = schedule.heartbeat_ms
    return {
        "name": name,
        "nodes": nodes,
        "entries_written": stats.writes_accepted,
        "entries_rejected": stats.writes_rejected,
        "simulated_ms": sim.now_ms,
        "run": timing.as_dict(),
        "trace_events": stats.events,
        "actions": stats.actions,
        "messages_delivered": stats.delivered,
        "messages_dropped": stats.dropped,
        "events_per_cpu_s": round(stats.events / timing.cpu),
        # Every node holds every accepted entry once the cluster has converged (0 when
        # it has not: the target then fails).
        "entries_held_per_cpu_s": (
            round(nodes * stats.writes_accepted / timing.cpu) if not problems else 0
        ),
        "actions_per_cpu_s": round(stats.actions / timing.cpu),
        "converged": not problems,
        "heartbeats_to_converge_after_last_write": (
            None if converged_at is None else -(-(converged_at - last_write) // hb)
        ),
        "baseline_bare_heapq_loop": base.as_dict(stats.actions, "actions_per_s"),
        "baseline_actions_per_cpu_s": round(stats.actions / base.cpu),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--fifty-entries", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.entries, args.fifty_entries = 2_000, 200
    result: dict[str, Any] = {"benchmark": "replication"}
    # (name, nodes, entries, batch, what is counted, target per CPU-s)
    for name, nodes, entries, batch, measure_of, target in (
        ("fifty_nodes", 50, args.fifty_entries, 50, "events", 100_000),
        ("five_nodes", 5, args.entries, 100, "entries_held", 500_000),
    ):
        figures = scenario(name, nodes, entries, batch, 10, args.repeat)
        verdict(
            f"sim_{measure_of}_per_cpu_s_{nodes}_nodes_{entries}_entries",
            figures[f"{measure_of}_per_cpu_s"],
            target,
            baseline=figures["baseline_actions_per_cpu_s"],
        )
        result[name] = figures
    print(json.dumps(result))


if __name__ == "__main__":
    main()
