"""A job pump in front of a megakernel.

Tenants submit small compute jobs (add, multiply, xor, hash over four argument words).
:class:`JobPump` publishes them into the megakernel's slot ring one by one. When the ring
is full (``RingFull``, the ring's back-pressure) it pumps, so the kernel consumes the
whole burst, and reads every slot's result back. Faulted slots are handled by their
failure class:

* ``TRANSIENT_QUEUE`` (a queue timeout): the job is published again, up to
  ``max_attempts`` times;
* anything else (a program bug such as an invalid opcode): the job fails for good.

The workload is drawn from ``numpy.random.default_rng(seed)``. Some jobs are *flaky*:
their first attempt is published as ``FAULT_QUEUE_TIMEOUT``, the model's way of making
that slot time out. Others are *buggy*: they carry an opcode the kernel does not know.
:func:`reference_result` computes each job's result in plain Python, so a test can check
the kernel independently of any recording.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from pytest_replay.megakernel import Opcode, PumpResult, RingFull, SlotStatus
from pytest_replay.ringlog import ReplayFailureClass

TENANTS = (1, 2, 3, 4)
OPERATIONS = (Opcode.ADD, Opcode.MUL, Opcode.XOR, Opcode.HASH)
BAD_OPCODE = 0x7E  # not an opcode: the kernel faults with "invalid opcode"
FLAKY_PERCENT = 6
BUGGY_PERCENT = 2
_MASK = 0xFFFF_FFFF
_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


@dataclass(frozen=True, slots=True)
class Job:
    job_id: int
    tenant: int
    opcode: int
    args: tuple[int, int, int, int]
    flaky: bool = False


def make_workload(seed: int, jobs: int = 200) -> list[Job]:
    """``jobs`` jobs for the four tenants; the same list for the same seed, everywhere."""
    rng = np.random.default_rng(seed)
    tenants = rng.choice(np.array(TENANTS), size=jobs)
    operations = rng.integers(0, len(OPERATIONS), size=jobs)
    args = rng.integers(0, 1 << 32, size=(jobs, 4), dtype=np.uint64)
    dice = rng.integers(0, 100, size=jobs)
    workload = []
    for i in range(jobs):
        buggy = dice[i] < BUGGY_PERCENT
        opcode = BAD_OPCODE if buggy else int(OPERATIONS[operations[i]])
        a0, a1, a2, a3 = (int(word) for word in args[i])
        workload.append(
            Job(
                job_id=i,
                tenant=int(tenants[i]),
                opcode=opcode,
                args=(a0, a1, a2, a3),
                flaky=not buggy and dice[i] >= 100 - FLAKY_PERCENT,
            )
        )
    return workload


def reference_result(job: Job) -> int:
    """What the kernel must write to ``out[0]`` for ``job`` (see docs/megakernel.md)."""
    a0, a1 = job.args[0], job.args[1]
    if job.opcode == Opcode.ADD:
        return (a0 + a1) & _MASK
    if job.opcode == Opcode.MUL:
        return (a0 * a1) & _MASK
    if job.opcode == Opcode.XOR:
        return a0 ^ a1
    if job.opcode == Opcode.HASH:
        words = (*job.args, *([0] * 9))  # all 13 argument words, little-endian
        h = _FNV_OFFSET
        for byte in b"".join(w.to_bytes(4, "little") for w in words):
            h = ((h ^ byte) * _FNV_PRIME) & _MASK
        return h
    raise ValueError(f"job {job.job_id} has no reference result (opcode {job.opcode:#x})")


class Ring(Protocol):
    """What the pump needs: a megakernel, a capture, or ``replay.megakernel(...)``."""

    def publish(self, tenant: int, opcode: int, args: tuple[int, ...] = ()) -> int: ...

    def pump(self) -> PumpResult: ...


@dataclass
class PumpReport:
    """What a run of the pump did."""

    results: dict[int, int] = field(default_factory=dict)  # job id -> out[0]
    failed: dict[int, str] = field(default_factory=dict)  # job id -> failure class
    retried: list[int] = field(default_factory=list)  # job ids, once per retry
    bursts: list[int] = field(default_factory=list)  # slots consumed per pump

    def checksum(self, tenant: int, jobs: list[Job]) -> int:
        """FNV-style fold of a tenant's results in job order (the tenant's receipt)."""
        h = _FNV_OFFSET
        for job in jobs:
            if job.tenant == tenant and job.job_id in self.results:
                h = ((h ^ self.results[job.job_id]) * _FNV_PRIME) & _MASK
        return h


class JobPump:
    """Publishes jobs into ``ring`` and pumps whenever the ring is full (and at the end)."""

    def __init__(self, ring: Ring, *, max_attempts: int = 3) -> None:
        self._ring = ring
        self._max_attempts = max_attempts
        self._sequence = 0  # publish sequence number of the next slot
        self._in_flight: dict[int, tuple[Job, int]] = {}  # sequence -> (job, attempt)

    def run(self, jobs: list[Job]) -> PumpReport:
        report = PumpReport()
        queue: deque[tuple[Job, int]] = deque((job, 1) for job in jobs)
        while queue or self._in_flight:
            while queue:
                job, attempt = queue[0]
                timeout = job.flaky and attempt == 1
                opcode = Opcode.FAULT_QUEUE_TIMEOUT if timeout else job.opcode
                try:
                    self._ring.publish(job.tenant, opcode, job.args)
                except RingFull:
                    break  # back-pressure: let the kernel consume what is published
                queue.popleft()
                self._in_flight[self._sequence] = (job, attempt)
                self._sequence += 1
            self._drain(queue, report)
        return report

    def _drain(self, queue: deque[tuple[Job, int]], report: PumpReport) -> None:
        burst = self._ring.pump()
        report.bursts.append(len(burst))
        faults = {fault.sequence: fault for fault in burst.faults}
        for row, sequence in enumerate(burst.sequences.tolist()):
            job, attempt = self._in_flight.pop(sequence)
            if int(burst.output.statuses[row]) == SlotStatus.DONE:
                report.results[job.job_id] = int(burst.output.outputs[row, 0])
                continue
            failure = faults[sequence].error.failure_class
            if failure == ReplayFailureClass.TRANSIENT_QUEUE and attempt < self._max_attempts:
                queue.append((job, attempt + 1))
                report.retried.append(job.job_id)
            else:
                report.failed[job.job_id] = "UNCLASSIFIED" if failure is None else failure.name
