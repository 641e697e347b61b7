"""The job pump under pytest_replay: every slot the megakernel consumes is recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pump import BAD_OPCODE, TENANTS, JobPump, make_workload, reference_result

from pytest_replay.kinds import RecordingTarget
from pytest_replay.megakernel import differential_replay, replay_capture
from pytest_replay.megakernel.kind import MEGAKERNEL_KIND

SEED = 2024
SLOTS = 32
STORED = (
    Path(__file__).parent / ".replay" / "test_megakernel_pump.py" / "test_pump_serves_every_tenant"
)


def test_pump_serves_every_tenant(replay):
    mk = replay.megakernel("ring", backend="auto", slots=SLOTS)
    jobs = make_workload(SEED)
    report = JobPump(mk).run(jobs)

    buggy = sorted(job.job_id for job in jobs if job.opcode == BAD_OPCODE)
    flaky = sorted(job.job_id for job in jobs if job.flaky)
    assert buggy and flaky  # the workload exercises both fault paths
    assert report.failed == {job_id: "PROGRAM_BUG" for job_id in buggy}
    assert sorted(report.retried) == flaky
    assert report.results == {
        job.job_id: reference_result(job) for job in jobs if job.job_id not in buggy
    }
    # The ring's back-pressure cut the run into bursts of at most SLOTS slots.
    assert max(report.bursts) == SLOTS
    assert sum(report.bursts) == len(jobs) + len(flaky) == mk.recorded
    stream = mk.observe()
    assert [stream.entry(i).epoch for i in range(len(stream))] == list(range(mk.recorded))

    replay.data("receipts", {str(t): report.checksum(t, jobs) for t in TENANTS})


@pytest.mark.replay_determinism(runs=2)
def test_capture_replays_on_every_backend(replay):
    mk = replay.megakernel("ring", backend="auto", slots=SLOTS)
    JobPump(mk).run(make_workload(SEED + 1))
    info = mk.info()

    again = replay_capture(mk.ring_log, "numpy", slots=info.slots, mode=info.mode)
    assert again.matched, again.describe()
    # NumPy against this machine's best backend (CuPy where a GPU is present), output
    # bytes included.
    both = differential_replay(mk.ring_log, "numpy", "auto", slots=info.slots, mode=info.mode)
    assert both.matched, both.describe()


@pytest.mark.replay_gpu
def test_cupy_reproduces_the_committed_recording(tmp_path):
    """The recording committed from a CPU-only machine is what CuPy records, byte for byte."""
    manifest = json.loads((STORED / "manifest.json").read_text())
    committed = (STORED / "ring.mkvrrl").read_bytes()
    target = RecordingTarget(
        nodeid="gpu-check",
        name="ring",
        kind="megakernel",
        stored_path=tmp_path / "ring.mkvrrl",
        scratch=tmp_path,
        expected=committed,
        expected_meta=manifest["recordings"]["ring"]["meta"],
    )
    mk = MEGAKERNEL_KIND.open(target, backend="cupy", slots=SLOTS)
    try:
        JobPump(mk).run(make_workload(SEED))  # compared live, burst by burst
        mk.check_complete()
        assert mk.finish().data == committed
    finally:
        mk.close()
