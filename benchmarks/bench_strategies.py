"""Generation speed of the public strategies, side by side with named baselines.

* ``provenance_graphs`` at 1,000 nodes (5 instances x 4 subsystems x 50 steps) against a
  plain ``random.Random`` builder of the same kind of DAG (no Hypothesis, no shrinking);
  also the time for 100 such examples (target: under 3 s);
* ``corrupted_logs`` for each format against drawing the undamaged log alone;
* ``reordered_journals`` at 1,000 records against ``journals`` at 1,000 records, and
  the reference reducer's time on the same journals.

Prints one JSON object. ``--examples N`` scales every measurement.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import time
from collections.abc import Callable
from typing import Any

from _harness import verdict
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from pytest_replay import strategies as rst
from pytest_replay.journal import ReplayReducerError, reduce_journal

GRAPH = {"instances": 5, "subsystems": 4, "steps": 50}


def rate(strategy: st.SearchStrategy[Any], examples: int, sink: Callable[[Any], None]) -> float:
    """Examples per second Hypothesis generates (generate phase only, fixed seed)."""
    count = 0

    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def run(value: Any) -> None:
        nonlocal count
        count += 1
        sink(value)

    start = time.perf_counter()
    run()
    return count / (time.perf_counter() - start)


def baseline_graph(rng: random.Random) -> int:
    """The same shape of fleet DAG with plain random numbers: nodes in a random
    interleaving, each with up to two origins among earlier nodes."""
    sessions = GRAPH["instances"] * GRAPH["subsystems"]
    left = [GRAPH["steps"]] * sessions
    remaining = list(range(sessions))
    nodes: list[tuple[int, int]] = []
    edges: list[tuple[int, int]] = []
    next_id = [-1] * sessions
    while remaining:
        session = remaining[rng.randrange(len(remaining))]
        left[session] -= 1
        if not left[session]:
            remaining.remove(session)
        next_id[session] += 1 + rng.randrange(4)
        position = len(nodes)
        for _ in range(rng.randrange(3) if position else 0):
            edges.append((rng.randrange(position), position))
        nodes.append((session, next_id[session]))
    return len(edges)


def baseline_rate(examples: int) -> float:
    rng = random.Random(1234)
    start = time.perf_counter()
    for _ in range(examples):
        baseline_graph(rng)
    return examples / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke run)")
    args = parser.parse_args()
    n = 10 if args.quick else args.examples
    nodes: list[int] = []

    graphs = rst.provenance_graphs(**GRAPH)
    start = time.perf_counter()
    graph_rate = rate(graphs, n, lambda spec: nodes.append(spec.total_nodes))
    graph_seconds = time.perf_counter() - start
    graph_baseline = baseline_rate(n)

    corrupted: dict[str, Any] = {}
    bases = {
        "ring": rst.ring_logs(capacity=st.integers(1, 8), max_appends=12),
        "journal": st.lists(rst.journal_entries(), max_size=10),
        "fleet": rst.fleet_log_cases(),
    }
    for fmt, base in bases.items():
        ours = rate(rst.corrupted_logs(fmt), 2 * n, lambda case: None)  # type: ignore[arg-type]
        plain = rate(base, 2 * n, lambda case: None)
        corrupted[fmt] = {
            "examples_per_s": round(ours, 1),
            "baseline_undamaged_examples_per_s": round(plain, 1),
            "ratio": round(ours / plain, 3),
        }

    reduced = {"seconds": 0.0, "count": 0}

    def reduce_it(case: rst.ReorderedJournal) -> None:
        began = time.perf_counter()
        with contextlib.suppress(ReplayReducerError):
            reduce_journal(
                case.records,
                case.mode,
                available_content_refs=case.available_content_refs,
                missing_content_policy=case.missing_content_policy,
            )
        reduced["seconds"] += time.perf_counter() - began
        reduced["count"] += 1

    big = n // 5 or 1
    reordered = rate(rst.reordered_journals(min_records=1000, max_records=1000), big, reduce_it)
    plain_journals = rate(rst.journals(min_records=1000, max_records=1000), big, lambda c: None)
    reduce_rate = reduced["count"] / reduced["seconds"] if reduced["seconds"] else 0.0
    per_100 = graph_seconds * 100 / n
    verdict(
        "provenance_graphs_1000_nodes_s_per_100",
        per_100,
        3.0,
        op="<=",
        baseline=100 / graph_baseline,
        ratio=(100 / graph_baseline) / per_100,
    )

    print(
        json.dumps(
            {
                "benchmark": "strategies",
                "examples": n,
                "provenance_graphs_1000_nodes": {
                    "nodes_per_example": round(sum(nodes) / len(nodes)),
                    "examples_per_s": round(graph_rate, 1),
                    "seconds_for_examples": round(graph_seconds, 3),
                    "under_3s_per_100": graph_seconds * 100 / n < 3.0,
                    "baseline_random_dag_examples_per_s": round(graph_baseline, 1),
                    "ratio": round(graph_rate / graph_baseline, 3),
                },
                "corrupted_logs": corrupted,
                "reordered_journals_1000_records": {
                    "examples_per_s": round(reordered, 1),
                    "baseline_journals_1000_examples_per_s": round(plain_journals, 1),
                    "ratio": round(reordered / plain_journals, 3),
                    "reference_reducer_journals_per_s": round(reduce_rate, 1),
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
