"""Replication simulator throughput and time to convergence.

Two runs of the deterministic simulator:

* ``five_nodes``: 5 nodes, ``--entries`` (100,000) client entries written in
  batches of 100 every 10 ms under 5 % loss; then the network keeps its loss
  and we count simulated heartbeats until the cluster converges.
* ``fifty_nodes``: 50 nodes (2,450 heartbeats per interval), 5 % loss,
  ``--fifty-entries`` entries, then convergence likewise.

Throughput is trace events (and simulator actions) per wall-clock second.
The baseline, run in the same process, is a bare discrete-event loop: the
same number of timed actions pushed and popped on a ``heapq`` with a trivial
handler, i.e. the floor any Python simulator pays; the ratio says what the
replication runtime (gates, tracker, catch-up, trace) costs on top of it.
Prints one JSON object.

    python benchmarks/bench_replication.py [--entries 100000] [--fifty-entries 5000]
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import time
from typing import Any

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


def scenario(name: str, nodes: int, entries: int, batch: int, every_ms: int) -> dict[str, Any]:
    batches = -(-entries // batch)
    last_write = 1_000 + (batches - 1) * every_ms
    schedule = NetworkSchedule(
        seed=2024,
        nodes=tuple(range(1, nodes + 1)),
        end_ms=last_write + 60_000,
        link=LinkSpec(latency_ms=5, jitter_ms=3, drop=0.05),
        writes=(WriteStream(1_000, every_ms, batch, entries, 16),),
    )
    sim = Simulation(schedule, keep_trace=False)
    start = time.perf_counter()
    sim.run_until(last_write)
    converged_at = sim.run_until_converged(schedule.end_ms)
    wall = time.perf_counter() - start
    problems = convergence_problems(sim)
    stats = sim.stats
    base = bare_loop(stats.actions)
    hb = schedule.heartbeat_ms
    return {
        "nodes": nodes,
        "entries_written": stats.writes_accepted,
        "entries_rejected": stats.writes_rejected,
        "simulated_ms": sim.now_ms,
        "wall_s": round(wall, 3),
        "trace_events": stats.events,
        "actions": stats.actions,
        "messages_delivered": stats.delivered,
        "messages_dropped": stats.dropped,
        "events_per_s": round(stats.events / wall),
        "actions_per_s": round(stats.actions / wall),
        "simulated_ms_per_wall_s": round(sim.now_ms / wall),
        "converged": not problems,
        "heartbeats_to_converge_after_last_write": (
            None if converged_at is None else -(-(converged_at - last_write) // hb)
        ),
        "baseline_bare_heapq_loop_s": round(base, 3),
        "overhead_vs_bare_loop": round(wall / base, 1),
        "name": name,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--fifty-entries", type=int, default=5_000)
    args = parser.parse_args()
    five = scenario("five_nodes", 5, args.entries, 100, 10)
    fifty = scenario("fifty_nodes", 50, args.fifty_entries, 50, 10)
    print(json.dumps({"benchmark": "replication", "five_nodes": five, "fifty_nodes": fifty}))


if __name__ == "__main__":
    main()
