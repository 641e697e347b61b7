"""Fleet replay throughput: the causal engine side by side with networkx, and log I/O.

Figures (one JSON object on stdout):

* ``engine``: build + ``run_all`` of :class:`ReplayEngine` with no-op sessions on the
  stress topology (sense <- nothing; plan <- sense; control <- plan; telemetry <- sense
  and control), default 2,500 instances x 4 subsystems x 100 steps = 1,000,000 nodes,
  against ``networkx.lexicographical_topological_sort`` over the same graph (DiGraph
  build + sort; nodes are the engine's own node numbers so networkx compares plain ints,
  its cheapest case). Peak RSS is read right after our run, before networkx runs.
* ``end_to_end``: a smaller fleet written to disk, discovered, planned and replayed
  with real sessions and no-op apps (log indexing and step decoding included).
* ``logs``: :class:`FleetLogWriter` write and :class:`FleetLogReader` index + decode of
  every step and message of a ~100 MB fleet, in MB/s of message payload, beside a plain
  atomic write (temp file, fsync, rename) and read of the same payload bytes.

    python benchmarks/bench_fleet.py [--instances 2500] [--steps 100] [--log-mb 100]
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import networkx as nx
import numpy as np

from pytest_replay._atomic import atomic_write_bytes
from pytest_replay.fleet import (
    FleetLogReader,
    FleetLogWriter,
    Message,
    Origin,
    ReplayEngine,
    ReplayPlan,
    Step,
    StepTable,
)
from pytest_replay.fleet.testing import (
    STRESS_SUBSYSTEMS,
    NoopApp,
    app_types,
    stack_for,
    write_stress_fleet,
)

_SOURCES = {"sense": (), "plan": (0,), "control": (1,), "telemetry": (0, 2)}


class NoopSession:
    """An engine session whose steps do nothing: measures the engine alone."""

    __slots__ = ("_table", "instance_id", "output_log_path", "subsystem_code", "subsystem_id")

    def __init__(self, instance_id: int, subsystem_id: str, code: int, table: StepTable) -> None:
        self.instance_id = instance_id
        self.subsystem_id = subsystem_id
        self.subsystem_code = code
        self.output_log_path: Path | None = None
        self._table = table

    def step_table(self) -> StepTable:
        return self._table

    def goto_index(self, index: int) -> None:
        pass

    def reset(self) -> None:
        pass

    def close(self) -> None:
        pass


def stress_sessions(instances: int, steps: int) -> list[NoopSession]:
    """The stress fleet's step tables, as the reader would hand them over (flat arrays)."""
    ids = np.arange(steps, dtype=np.uint64)
    out = []
    for instance in range(1, instances + 1):
        for name, code in STRESS_SUBSYSTEMS:
            sources = _SOURCES[name]
            k = len(sources)
            table = StepTable(
                step_ids=ids,
                origin_step_index=np.repeat(np.arange(steps, dtype=np.int64), k),
                origin_instance=np.full(steps * k, instance, np.uint32),
                origin_code=np.tile(np.array(sources, np.uint16), steps),
                origin_step=np.repeat(ids, k),
            )
            out.append(NoopSession(instance, name, code, table))
    return out


def rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / (1024 * 1024)


def bench_engine(instances: int, steps: int, networkx: bool, repeat: int) -> dict[str, object]:
    sessions = stress_sessions(instances, steps)
    runs = []
    for _ in range(repeat):
        gc.collect()
        cpu = time.process_time()
        start = time.perf_counter()
        engine = ReplayEngine(sessions)
        built = time.perf_counter()
        engine.run_all()
        done = time.perf_counter()
        runs.append((done - start, built - start, done - built, time.process_time() - cpu))
    # Best of ``repeat``: the machine is shared, so the fastest run is the least disturbed.
    ours, build_s, run_s, cpu_s = min(runs)
    nodes = engine.total_nodes
    assert engine.executed_nodes == nodes == instances * 4 * steps
    result: dict[str, object] = {
        "nodes": nodes,
        "edges": engine.graph.total_edges,
        "build_s": round(build_s, 3),
        "run_all_s": round(run_s, 3),
        "total_s": round(ours, 3),
        "nodes_per_s": round(nodes / ours),
        "cpu_nodes_per_s": round(nodes / cpu_s),
        "peak_rss_mb": round(rss_mb(), 1),
    }
    if networkx:
        graph = engine.graph
        src = np.concatenate(
            [
                np.flatnonzero(graph.local_next >= 0),
                np.repeat(np.arange(nodes), np.diff(graph.indptr)),
            ]
        )
        dst = np.concatenate([graph.local_next[graph.local_next >= 0], graph.indices])
        del engine, sessions
        gc.collect()
        start = time.perf_counter()
        digraph: nx.DiGraph[int] = nx.DiGraph()
        digraph.add_nodes_from(range(nodes))
        digraph.add_edges_from(zip(src.tolist(), dst.tolist(), strict=True))
        order = list(nx.lexicographical_topological_sort(digraph))
        seconds = time.perf_counter() - start
        # Our node numbers are in scheduling-key order, so the orders must be identical.
        assert order == list(range(nodes)), "networkx disagrees with the engine's order"
        result["networkx_s"] = round(seconds, 3)
        result["networkx_nodes_per_s"] = round(nodes / seconds)
        result["speedup_vs_networkx"] = round(seconds / ours, 2)
    return result


def bench_end_to_end(folder: Path, instances: int, steps: int) -> dict[str, object]:
    topology = write_stress_fleet(folder, instances, steps)
    start = time.perf_counter()
    builder = ReplayPlan.builder(topology).discover_logs_under(folder / "logs")
    for name, app in app_types(STRESS_SUBSYSTEMS, NoopApp).items():
        builder.register(name, app)
    with builder.build().start() as engine:
        engine.run_all()
        nodes = engine.executed_nodes
    seconds = time.perf_counter() - start
    return {
        "nodes": nodes,
        "logs": instances * 4,
        "total_s": round(seconds, 3),
        "nodes_per_s": round(nodes / seconds),
    }


def bench_logs(folder: Path, megabytes: int) -> dict[str, object]:
    payload_size = 1024
    instances = 25
    per_log = max(1, megabytes * 1024 * 1024 // (payload_size * instances * 4))
    rng = np.random.default_rng(7)
    blob = rng.integers(0, 256, payload_size * 4096, dtype=np.uint8).tobytes()
    steps = [
        Step(
            i,
            1000 * i,
            (
                Message(
                    blob[(i % 4000) * payload_size : (i % 4000 + 1) * payload_size], Origin(1, 0, i)
                ),
            ),
        )
        for i in range(per_log)
    ]
    total_bytes = payload_size * per_log * instances * 4
    bases = []
    start = time.perf_counter()
    for instance in range(1, instances + 1):
        for name, code in STRESS_SUBSYSTEMS:
            base = folder / "logs" / f"i{instance}" / f"{name}.flog"
            with FleetLogWriter(base) as writer:
                writer.log_instantiated(stack_for(name, code, instance))
                for step in steps:
                    writer.log_step(step)
            bases.append(base)
    write_s = time.perf_counter() - start
    on_disk = sum(p.stat().st_size for p in (folder / "logs").rglob("*.flog"))

    start = time.perf_counter()
    decoded = 0
    for base in bases:
        reader = FleetLogReader(base)
        for step in reader.iter_steps():
            for message in step.messages:
                decoded += len(message.payload)
    read_s = time.perf_counter() - start
    assert decoded == total_bytes

    raw = folder / "raw"
    raw.mkdir()
    payload = steps[0].messages[0].payload * per_log
    start = time.perf_counter()
    for index in range(len(bases)):
        atomic_write_bytes(raw / f"{index}.bin", payload)  # same durability as a slab
    raw_write_s = time.perf_counter() - start
    start = time.perf_counter()
    raw_read = sum(len((raw / f"{index}.bin").read_bytes()) for index in range(len(bases)))
    raw_read_s = time.perf_counter() - start
    assert raw_read == total_bytes
    mb = total_bytes / 1e6
    return {
        "payload_mb": round(mb, 1),
        "on_disk_mb": round(on_disk / 1e6, 1),
        "logs": len(bases),
        "steps": per_log * len(bases),
        "write_mb_s": round(mb / write_s, 1),
        "index_decode_mb_s": round(mb / read_s, 1),
        "raw_write_mb_s": round(mb / raw_write_s, 1),
        "raw_read_mb_s": round(mb / raw_read_s, 1),
        "write_vs_raw": round(raw_write_s / write_s, 3),
        "read_vs_raw": round(raw_read_s / read_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=2500)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--e2e-instances", type=int, default=100)
    parser.add_argument("--log-mb", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-networkx", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    try:
        engine = bench_engine(args.instances, args.steps, not args.no_networkx, args.repeat)
        e2e = bench_end_to_end(folder / "e2e", args.e2e_instances, args.steps)
        logs = bench_logs(folder / "io", args.log_mb)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    targets = {
        "nodes_per_s_min": 400_000,
        "peak_rss_mb_max": 1536,
        "speedup_vs_networkx_min": 3.0,
    }
    figures = {k: float(v) for k, v in engine.items() if isinstance(v, (int, float))}
    ok = (
        figures["nodes_per_s"] >= targets["nodes_per_s_min"]
        and figures["peak_rss_mb"] <= targets["peak_rss_mb_max"]
        and figures.get("speedup_vs_networkx", float("inf")) >= targets["speedup_vs_networkx_min"]
    )
    print(
        json.dumps(
            {
                "benchmark": "fleet",
                "engine": engine,
                "end_to_end": e2e,
                "logs": logs,
                "targets": targets,
                "targets_met": ok,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
