"""``replay.replication`` through the plugin: record, verify, break, read the report."""

from __future__ import annotations

import pytest

SOURCE = """
from pytest_replay.replication import (
    Crash, LinkSpec, NetworkSchedule, Partition, WriteStream, convergence_problems,
)

def test_cluster(replay):
    schedule = NetworkSchedule(
        seed=3,
        nodes=(1, 2, 3),
        end_ms=4_000,
        quiet_after_ms=2_000,
        link=LinkSpec(latency_ms=4, jitter_ms=3, drop={drop}),
        partitions=(Partition(600, 1_200, (1,)),),
        crashes=(Crash(2, 900, 1_500),),
        writes=(WriteStream(400, 40, 2, 60),),
    )
    run = replay.replication("cluster", schedule)
    sim = run.run_until(1_300)
    {extra}
    run.run()
    assert convergence_problems(sim) == []
"""


def test_record_verify_break(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_repl=SOURCE.format(drop=0.05, extra="pass"))
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    stored = pytester.path / "__replay__" / "test_repl" / "test_cluster" / "cluster.rpltrace"
    first = stored.read_bytes()
    pytester.runpytest("--replay-verify").assert_outcomes(passed=1)
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    assert stored.read_bytes() == first  # byte-identical run after run

    # A client write the recording never saw: caught live, at that very event.
    pytester.makepyfile(test_repl=SOURCE.format(drop=0.05, extra="sim.write(1)"))
    result = pytester.runpytest("--replay-verify")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*replay diverged: test_repl.py::test_cluster*",
            "*recording 'cluster' (kind replication)*",
            "*expected #* got #* t=1300ms write node=1*",
            "*first divergence at record #*, field *",
            "*context (the records before it):*",
            "*pytest test_repl.py::test_cluster --replay-record*",
        ]
    )

    # Another loss rate is another schedule: refused before simulating anything.
    pytester.makepyfile(test_repl=SOURCE.format(drop=0.06, extra="pass"))
    result = pytester.runpytest("--replay-verify")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*the test simulates another schedule than the stored trace*",
            "*first divergence at schedule*link*",
        ]
    )
