"""Megakernel capture and replay throughput, ours beside the per-slot baseline.

* capture: slots/s published, run by the kernel and written to a VRRL log, one
  ``append_many`` per burst, against the same run writing each record with
  ``RingLog.append`` (target: >= 1,000,000 slots/s batched);
* replay: records/s of ``replay_capture`` + first-divergence diff of a
  1,000,000-slot capture on NumPy, against a per-record replay loop;
* gpu: CupyBackend vs NumpyBackend pump of 1,000,000 slots, host-to-device and
  device-to-host copies included (skipped, with the reason, without CuPy/GPU).

Prints one JSON object of medians over ``--repeat`` runs taken in this process.

    python benchmarks/bench_megakernel.py [--repeat 3] [--slots 1000000]
"""

from __future__ import annotations

import argparse
import json
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
    MegakernelCapture,
    NumpyBackend,
    Opcode,
    SlotStatus,
    gpu_available,
    replay_capture,
)
from pytest_replay.ringlog import (
    MAX_REPLAY_RECORDS,
    RecordedSlot,
    ReplayFailureEvidence,
    RingLog,
)

WORK = [Opcode.NOP, Opcode.ADD, Opcode.MUL, Opcode.XOR, Opcode.HASH, Opcode.COPY]


def timed(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def make_program(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    tenants = rng.integers(0, 16, n).astype(np.uint32)
    opcodes = np.array(WORK, dtype=np.uint32)[np.arange(n) % len(WORK)]
    opcodes[::4096] = Opcode.FAULT_DEVICE_LOST  # rare faults exercise the evidence path
    args = rng.integers(0, 2**32, (n, 4), dtype=np.uint64).astype(np.uint32)
    return tenants, opcodes, args


def capture_batched(path: Path, program: tuple[np.ndarray, ...], ring: int) -> int:
    tenants, opcodes, args = program
    path.unlink(missing_ok=True)
    with RingLog.open(path, MAX_REPLAY_RECORDS) as log:
        capture = MegakernelCapture(Megakernel(NumpyBackend(), ring, keep_history=False), log)
        for start in range(0, len(opcodes), ring):
            stop = start + ring
            capture.publish_many(tenants[start:stop], opcodes[start:stop], args[start:stop])
            capture.pump()
        return capture.recorded


def capture_per_slot(path: Path, program: tuple[np.ndarray, ...], ring: int) -> int:
    """The same run, but every record goes to the log with its own ``append`` call."""
    tenants, opcodes, args = program
    path.unlink(missing_ok=True)
    written = 0
    with RingLog.open(path, MAX_REPLAY_RECORDS) as log:
        mk = Megakernel(NumpyBackend(), ring, keep_history=False)
        for start in range(0, len(opcodes), ring):
            stop = start + ring
            mk.publish_many(tenants[start:stop], opcodes[start:stop], args[start:stop])
            result = mk.pump()
            faults = {fault.sequence: fault for fault in result.faults}
            words, epochs = result.words.tolist(), result.output.epochs.tolist()
            for row, (slot, sequence) in enumerate(
                zip(result.slots.tolist(), result.sequences.tolist(), strict=True)
            ):
                w = words[row]
                record = RecordedSlot(
                    sequence, slot, w[1], w[2], (w[3], w[4], w[5], w[6]), epochs[row]
                )
                fault = faults.get(sequence)
                if fault is None:
                    log.append(record)
                else:
                    evidence = ReplayFailureEvidence.from_backend_error(
                        int(SlotStatus.FAULT), fault.error, fault.output
                    )
                    log.append_with_failure(record, evidence)
                written += 1
    return written


def replay_per_record(path: Path, ring: int, limit: int) -> int:
    """A straightforward replay: one publish per record, compare record by record."""
    with RingLog.open(path, read_only=True) as log:
        records = log.replay_records()[:limit]
    mk = Megakernel(NumpyBackend(), ring, keep_history=False)
    compared = 0
    for start in range(0, len(records), ring):
        chunk = records[start : start + ring]
        for record in chunk:
            mk.publish(record.slot.tenant_id, record.slot.opcode, record.slot.args)
        result = mk.pump()
        codes = result.output.fault_codes.tolist()
        for row, record in enumerate(chunk):
            expected_fault = record.failure.backend_error_code if record.failure else 0
            if (
                int(result.slots[row]) != record.slot.slot_idx
                or int(result.output.epochs[row]) != record.slot.epoch
                or codes[row] != expected_fault
            ):
                raise AssertionError(f"baseline replay diverged at record {start + row}")
            compared += 1
    return compared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--slots", type=int, default=1_000_000, help="slots per capture")
    parser.add_argument("--ring", type=int, default=65_536, help="megakernel ring size")
    parser.add_argument("--baseline-slots", type=int, default=200_000)
    opts = parser.parse_args()
    n, ring, repeat = opts.slots, opts.ring, opts.repeat
    if not 1 <= n <= MAX_REPLAY_RECORDS:
        parser.error(f"--slots must be in 1..{MAX_REPLAY_RECORDS} (one VRRL log)")
    folder = Path(tempfile.mkdtemp(prefix="bench-megakernel-"))
    program = make_program(n)
    small = tuple(column[: opts.baseline_slots] for column in program)
    result: dict[str, object] = {
        "slots": n,
        "ring": ring,
        "repeat": repeat,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
    }

    # -- capture
    path = folder / "capture.vrrl"
    t_batched = timed(lambda: capture_batched(path, program, ring), repeat)
    base_path = folder / "per_slot.vrrl"
    t_per_slot = timed(lambda: capture_per_slot(base_path, small, ring), repeat)
    batched_rate = n / t_batched
    per_slot_rate = len(small[0]) / t_per_slot
    result["capture"] = {
        "batched_slots_per_s": round(batched_rate),
        "per_slot_append_slots_per_s": round(per_slot_rate),
        "ratio": round(batched_rate / per_slot_rate, 1),
        "target_slots_per_s": 1_000_000,
    }

    # -- replay + diff of the whole capture
    capture_batched(path, program, ring)
    report = replay_capture(path, "numpy", slots=ring, mode="ordered")
    assert report.matched and report.records == n, report.describe()
    t_replay = timed(lambda: replay_capture(path, "numpy", slots=ring, mode="ordered"), repeat)
    limit = opts.baseline_slots
    t_naive = timed(lambda: replay_per_record(path, ring, limit), max(1, repeat // 2))
    replay_rate = n / t_replay
    naive_rate = min(limit, n) / t_naive
    result["replay_diff"] = {
        "records": n,
        "ours_records_per_s": round(replay_rate),
        "per_record_baseline_records_per_s": round(naive_rate),
        "ratio": round(replay_rate / naive_rate, 1),
    }

    # -- kernel throughput, GPU vs NumPy
    available, reason = gpu_available()
    if available:
        gpu_backend = CupyBackend()
        tenants, opcodes, args = program

        def pump_once(backend: NumpyBackend | CupyBackend) -> Callable[[], object]:
            mk = Megakernel(backend, n, keep_history=False)

            def run() -> object:
                mk.publish_many(tenants, opcodes, args)
                return mk.pump()

            return run

        gpu_run, cpu_run = pump_once(gpu_backend), pump_once(NumpyBackend())
        gpu_run()  # compile the kernel and warm the allocator outside the timing
        t_gpu, t_cpu = timed(gpu_run, repeat), timed(cpu_run, repeat)
        result["kernel_1m"] = {
            "device": gpu_backend.device_name(),
            "cupy_slots_per_s": round(n / t_gpu),
            "numpy_slots_per_s": round(n / t_cpu),
            "ratio_cupy_over_numpy": round(t_cpu / t_gpu, 1),
            "includes": "publish staging, host-to-device, kernel, device-to-host",
        }
    else:
        result["kernel_1m"] = {"skipped": reason}

    for leftover in folder.iterdir():
        leftover.unlink()
    folder.rmdir()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
