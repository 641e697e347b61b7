"""The simulator's traces, pinned: a fixed seed must give these exact bytes forever.

Every speed-up of the simulator and the runtime keeps these digests: a trace that
changes by one byte fails here, whatever the other tests still accept. The schedules
cover loss, jitter, duplicates, reordering, partitions, crashes and restarts, forged
messages, retention with skip-ahead, disk pressure, and chunked catch-up of many nodes.
"""

from __future__ import annotations

import hashlib

import pytest

from pytest_replay.replication import (
    Crash,
    Forgery,
    LinkSpec,
    NetworkSchedule,
    Partition,
    Simulation,
    WriteStream,
)
from pytest_replay.replication.config import UnderCapacity
from pytest_replay.replication.trace import RawEvent

PINNED: dict[str, tuple[NetworkSchedule, str, int]] = {
    "busy": (
        NetworkSchedule(
            seed=3,
            nodes=(1, 2, 3, 4),
            end_ms=5_000,
            quiet_after_ms=2_500,
            link=LinkSpec(latency_ms=4, jitter_ms=4, drop=0.1, duplicate=0.1, reorder=0.2),
            partitions=(Partition(800, 1_600, (2, 4)),),
            crashes=(Crash(1, 1_000, 1_900),),
            writes=(WriteStream(400, 30, 2, 100),),
            forgeries=(Forgery(900, 1_003, 3, "response"),),
        ),
        "6ff7380cb46e7b0cc2012a6142f6a619",
        737,
    ),
    "lossy": (
        NetworkSchedule(
            seed=5,
            nodes=(1, 2, 3, 4, 5),
            end_ms=8_000,
            quiet_after_ms=4_000,
            link=LinkSpec(latency_ms=8, jitter_ms=6, drop=0.2, duplicate=0.2, reorder=0.3),
            writes=(WriteStream(600, 20, 3, 300),),
        ),
        "b24673e93cc635e924a3a7e4b007e4bb",
        2073,
    ),
    "retention": (
        NetworkSchedule(
            seed=11,
            nodes=(1, 2, 3),
            end_ms=6_000,
            quiet_after_ms=3_000,
            retention_max_events=20,
            writes=(WriteStream(500, 50, 2, 100),),
            crashes=(Crash(3, 400, 2_500),),
        ),
        "616376465a20999a57892ee6dd8f080a",
        492,
    ),
    "pressure": (
        NetworkSchedule(
            seed=11,
            nodes=(1, 2, 3),
            end_ms=3_000,
            capacity_bytes=((3, 64),),
            on_under_capacity=UnderCapacity.WITHDRAW,
            writes=(WriteStream(500, 100, 4, 40),),
        ),
        "37abda3e72cf42aa90863fed781bdc32",
        177,
    ),
    # The benchmark's shape, smaller: many nodes, 5 % loss, chunked catch-up.
    "many_nodes": (
        NetworkSchedule(
            seed=2024,
            nodes=tuple(range(1, 13)),
            end_ms=4_000,
            link=LinkSpec(latency_ms=5, jitter_ms=3, drop=0.05),
            writes=(WriteStream(1_000, 10, 50, 1_000, 16),),
            chunk_max_bytes=256,
        ),
        "e831ebe9a4d50084912d64daa3a5fba6",
        6451,
    ),
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_trace_bytes_are_pinned_for_a_fixed_seed(name: str) -> None:
    schedule, digest, events = PINNED[name]
    sim = Simulation(schedule).run()
    assert sim.trace is not None and len(sim.trace.events) == events
    assert hashlib.blake2b(sim.encoded_trace(), digest_size=16).hexdigest() == digest


@pytest.mark.parametrize("name", sorted(PINNED))
def test_a_run_without_a_kept_trace_takes_the_same_course(name: str) -> None:
    """``keep_trace=False`` (the benchmark's run) and a live sink see what the trace keeps."""
    schedule, _, _ = PINNED[name]
    kept = Simulation(schedule).run()
    seen: list[RawEvent] = []
    live = Simulation(schedule, keep_trace=False, sinks=[seen.append]).run()
    bare = Simulation(schedule, keep_trace=False).run()
    assert kept.trace is not None and seen == kept.trace.events
    assert kept.stats == live.stats == bare.stats
    for sim in (live, bare):
        assert {n: node.log.digest() for n, node in sim.nodes.items()} == {
            n: node.log.digest() for n, node in kept.nodes.items()
        }
        assert sim.now_ms == kept.now_ms and sim.roles() == kept.roles()
