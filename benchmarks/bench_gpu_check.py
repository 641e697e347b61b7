"""CupyBackend against NumpyBackend through the public capture path, on a machine with a GPU.

One verdict line per check, ``PASS|FAIL measure ours baseline ratio target``,
``ours`` being CuPy and ``baseline`` NumPy, timed in this process (GC on, median
of ``--repeat`` runs, at least 5):

* ``capture_records_identical``: an ordered ``open_capture`` of ``--slots`` slots
  writes the same VRRL records on both backends (target: all equal);
* ``capture_slots_per_s``: that capture, kernel, copies and log writes included
  (target: CuPy at least 0.9 times NumPy's rate: the staging, record building
  and log writes are the same host work on both, so the GPU can gain little
  here, but it must not cost more than a tenth);
* ``pump_slots_per_s``: one ``Megakernel.pump`` of ``--slots`` slots,
  host-to-device and device-to-host copies included (target: CuPy at least as
  fast as NumPy).

Exits 1 when a check fails and 2 when CuPy or a GPU is missing (with the reason).

    python benchmarks/bench_gpu_check.py [--repeat 5] [--slots 1000000] [--ring 65536]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pytest_replay.megakernel import (
    CupyBackend,
    Megakernel,
    MegakernelBackend,
    NumpyBackend,
    Opcode,
    gpu_available,
    open_capture,
)
from pytest_replay.ringlog import MAX_REPLAY_RECORDS, RingLog

# Every opcode, faults and an invalid one included, as a mixed production stream would be.
OPCODES = np.array([*[int(op) for op in Opcode], 0x42], dtype=np.uint32)
CAPTURE_TARGET_RATIO = 0.9


def median_seconds(run: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def make_program(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tenants, opcodes and 4 argument words per slot (what a VRRL record holds)."""
    rng = np.random.default_rng(seed)
    tenants = rng.integers(0, 16, n).astype(np.uint32)
    opcodes = OPCODES[rng.integers(0, len(OPCODES), n)]
    args = rng.integers(0, 2**32, (n, 4), dtype=np.uint64).astype(np.uint32)
    return tenants, opcodes, args


def capture(
    path: Path, backend: MegakernelBackend, program: tuple[np.ndarray, ...], ring: int
) -> None:
    """Publish the program in ring-sized bursts through ``open_capture``, pumping each."""
    tenants, opcodes, args = program
    with open_capture(path, backend=backend, slots=ring, capacity=len(tenants)) as run:
        for start in range(0, len(tenants), ring):
            stop = start + ring
            run.publish_many(tenants[start:stop], opcodes[start:stop], args[start:stop])
            run.pump()


def verdict(
    passed: bool, measure: str, ours: object, baseline: object, ratio: float, target: str
) -> bool:
    print(f"{'PASS' if passed else 'FAIL'} {measure} {ours} {baseline} {ratio:.2f} {target}")
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--slots", type=int, default=1_000_000)
    parser.add_argument("--ring", type=int, default=65_536)
    opts = parser.parse_args()
    if opts.repeat < 5:
        parser.error("--repeat must be at least 5 (verdicts are medians of >= 5 runs)")
    if not 1 <= opts.slots <= MAX_REPLAY_RECORDS:
        parser.error(f"--slots must be in 1..{MAX_REPLAY_RECORDS} (one VRRL log)")
    available, reason = gpu_available()
    if not available:
        print(f"SKIP gpu_check: {reason}", file=sys.stderr)
        return 2
    n, ring, repeat = opts.slots, opts.ring, opts.repeat
    gpu, cpu = CupyBackend(), NumpyBackend()
    print(f"# device {gpu.device_name()}, {n} slots, ring {ring}, median of {repeat}")
    program = make_program(n)
    ok = True
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as folder:
        on_gpu, on_cpu = Path(folder) / "cupy.vrrl", Path(folder) / "numpy.vrrl"
        capture(on_gpu, gpu, program, ring)  # compiles the kernel outside the timing
        capture(on_cpu, cpu, program, ring)
        with (
            RingLog.open(on_gpu, read_only=True) as ours,
            RingLog.open(on_cpu, read_only=True) as base,
        ):
            got, want = ours.records(), base.records()
        same = int(np.count_nonzero(got == want)) if len(got) == len(want) else 0
        ok &= verdict(same == n, "capture_records_identical", same, len(want), same / n, f"=={n}")

        t_gpu = median_seconds(lambda: capture(on_gpu, gpu, program, ring), repeat)
        t_cpu = median_seconds(lambda: capture(on_cpu, cpu, program, ring), repeat)
        ok &= verdict(
            t_cpu / t_gpu >= CAPTURE_TARGET_RATIO,
            "capture_slots_per_s",
            round(n / t_gpu),
            round(n / t_cpu),
            t_cpu / t_gpu,
            f">={CAPTURE_TARGET_RATIO:.2f}",
        )

    tenants, opcodes, args = program

    def pump_once(backend: MegakernelBackend) -> Callable[[], object]:
        megakernel = Megakernel(backend, n, keep_history=False)

        def run() -> object:
            megakernel.publish_many(tenants, opcodes, args)
            return megakernel.pump()

        return run

    gpu_pump, cpu_pump = pump_once(gpu), pump_once(cpu)
    gpu_pump()  # the first launch at this ring size allocates device memory
    t_gpu, t_cpu = median_seconds(gpu_pump, repeat), median_seconds(cpu_pump, repeat)
    ok &= verdict(
        t_gpu <= t_cpu,
        "pump_slots_per_s",
        round(n / t_gpu),
        round(n / t_cpu),
        t_cpu / t_gpu,
        ">=1.00",
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
