"""Megakernel capture and replay throughput, ours beside the per-slot baseline.

* capture: slots/s through ``open_capture`` (``keep_history=False``): published, run
  by the kernel and written to a VRRL log, one ``publish_many`` + ``pump`` per burst,
  against a plain loop writing the same records with one ``RingLog.append`` call each
  (targets: >= 1,000,000 slots/s and >= 5x the loop), beside a floor: the same
  file's bytes copied into a fresh file through ``mmap`` and flushed;
* replay: records/s of ``replay_capture`` + first-divergence diff of a
  1,000,000-slot capture on NumPy, against a per-record replay loop;
* gpu: CupyBackend vs NumpyBackend pump of 1,000,000 slots, host-to-device and
  device-to-host copies included (skipped, with the reason, without CuPy/GPU).

Prints one JSON object of medians over ``--repeat`` (at least 5) runs taken in this
process, and one verdict line per target.

    python benchmarks/bench_megakernel.py [--slots 1000000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _harness import measure, verdict

from pytest_replay.megakernel import (
    CupyBackend,
    Megakernel,
    NumpyBackend,
    Opcode,
    gpu_available,
    open_capture,
    replay_capture,
)
from pytest_replay.ringlog import MAX_REPLAY_RECORDS, RECORD_BYTES, ReplayRecord, RingLog

WORK = [Opcode.NOP, Opcode.ADD, Opcode.MUL, Opcode.XOR, Opcode.HASH, Opcode.COPY]


def make_program(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    tenants = rng.integers(0, 16, n).astype(np.uint32)
    opcodes = np.array(WORK, dtype=np.uint32)[np.arange(n) % len(WORK)]
    opcodes[::4096] = Opcode.FAULT_DEVICE_LOST  # rare faults exercise the evidence path
    args = rng.integers(0, 2**32, (n, 4), dtype=np.uint64).astype(np.uint32)
    return tenants, opcodes, args


def capture(path: Path, program: tuple[np.ndarray, ...], ring: int) -> int:
    """The public path: ``open_capture``, one publish_many + pump per ring-full burst."""
    tenants, opcodes, args = program
    with open_capture(
        path, backend="numpy", slots=ring, capacity=MAX_REPLAY_RECORDS, keep_history=False
    ) as mk:
        for start in range(0, len(opcodes), ring):
            stop = start + ring
            mk.publish_many(tenants[start:stop], opcodes[start:stop], args[start:stop])
            mk.pump()
        return mk.recorded


def append_loop(path: Path, records: list[ReplayRecord]) -> int:
    """Baseline: the same records written with one ``RingLog.append`` call each, into a
    fresh log (the caller removes the last run's file, untimed: ``open_capture`` frees
    the file it replaces off the caller's path, so neither pays for that here)."""
    with RingLog.open(path, MAX_REPLAY_RECORDS) as log:
        append, with_failure = log.append, log.append_with_failure
        for record in records:
            if record.failure is None:
                append(record.slot)
            else:
                with_failure(record.slot, record.failure)
    return len(records)


def raw_copy(path: Path, image: bytes, written: int, chunk: int) -> None:
    """Floor: the ``written`` bytes of the capture file copied into a fresh file of the
    same size through ``mmap`` (as ``RingLog`` writes), one copy per burst, then flushed.
    No kernel runs and no record is built: no capture can write its log faster."""
    path.unlink(missing_ok=True)
    with path.open("w+b") as handle:
        handle.truncate(len(image))
        with mmap.mmap(handle.fileno(), len(image)) as mapped:
            source = memoryview(image)
            for offset in range(0, written, chunk):
                end = min(offset + chunk, written)
                mapped[offset:end] = source[offset:end]
            mapped.flush()
        os.fsync(handle.fileno())


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
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--slots", type=int, default=1_000_000, help="slots per capture")
    parser.add_argument("--ring", type=int, default=65_536, help="megakernel ring size")
    parser.add_argument("--baseline-slots", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke run)")
    opts = parser.parse_args()
    if opts.quick:
        opts.slots, opts.baseline_slots = 50_000, 10_000
    n, ring, repeat = opts.slots, opts.ring, opts.repeat
    if not 1 <= n <= MAX_REPLAY_RECORDS:
        parser.error(f"--slots must be in 1..{MAX_REPLAY_RECORDS} (one VRRL log)")
    folder = Path(tempfile.mkdtemp(prefix="bench-megakernel-"))
    program = make_program(n)
    result: dict[str, object] = {
        "slots": n,
        "ring": ring,
        "repeat": repeat,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
    }

    # -- capture
    path = folder / "capture.vrrl"
    ours = measure(lambda: capture(path, program, ring), repeat)
    with RingLog.open(path, read_only=True) as log:
        records = log.replay_records()[: opts.baseline_slots]
    per_slot = folder / "per_slot.vrrl"
    base = measure(
        lambda: append_loop(per_slot, records),
        repeat,
        setup=lambda: per_slot.unlink(missing_ok=True),
    )
    ours_rate, base_rate = n / ours.wall, len(records) / base.wall
    image = path.read_bytes()
    written = len(image) - (MAX_REPLAY_RECORDS - n) * RECORD_BYTES  # header + n records
    floor = measure(
        lambda: raw_copy(folder / "raw.bin", image, written, ring * RECORD_BYTES), repeat
    )
    floor_rate = n / floor.wall
    verdict("open_capture_slots_per_s", ours_rate, 1_000_000, baseline=base_rate)
    verdict(
        "open_capture_vs_append_loop", ours_rate / base_rate, 5.0, baseline=1.0,
        ratio=ours_rate / base_rate,
    )  # fmt: skip
    result["capture"] = {
        "ours_open_capture": ours.as_dict(n, "slots_per_s"),
        "baseline_ringlog_append_loop": base.as_dict(len(records), "slots_per_s"),
        "floor_raw_mmap_copy_of_the_file": floor.as_dict(n, "slots_per_s"),
        # The best ratio any capture could reach here: the floor over the append loop.
        "floor_vs_append_loop": round(floor_rate / base_rate, 2),
        "targets": ">= 1M slots/s and >= 5x the append loop",
    }

    # -- replay + diff of the whole capture
    capture(path, program, ring)
    report = replay_capture(path, "numpy", slots=ring, mode="ordered")
    assert report.matched and report.records == n, report.describe()
    t_replay = measure(
        lambda: replay_capture(path, "numpy", slots=ring, mode="ordered"), repeat
    ).wall
    limit = opts.baseline_slots
    t_naive = measure(lambda: replay_per_record(path, ring, limit), repeat).wall
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
        t_gpu, t_cpu = measure(gpu_run, repeat).wall, measure(cpu_run, repeat).wall
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
