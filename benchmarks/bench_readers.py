"""What closing files and verifying wrapped rings cost on the paths users call.

Each figure is the median of ``--repeat`` runs (GC on) taken in this process, interleaved
with the same number of runs of its baseline:

* ring recorder appends (single and batched, wrapping a 1,024-record ring), ours with the
  overwritten-records digest, baseline the same recorder with the digest switched off;
* ``load_journal_records`` of a closed record file (end frame checked) against the same
  records in a file written before end frames;
* ``FleetLogReader`` over version-2 slabs (end frames, digests checked) against the same
  log rewritten as version-1 slabs.

Prints one ``PASS/FAIL measure ours baseline ratio target`` line per target.

    python benchmarks/bench_readers.py [--repeat 11] [--records 200000] [--quick]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import struct
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from pytest_replay.errors import UnclosedFormatWarning
from pytest_replay.fleet import FleetLogReader, FleetLogWriter, Message, Step
from pytest_replay.fleet.testing import stack_for
from pytest_replay.formats.fleet_log import END_FRAME_BYTES as SLAB_END_BYTES
from pytest_replay.formats.journal import END_FRAME_BYTES, RECORDS_MAGIC, encode_file_header
from pytest_replay.journal import (
    JournalRecord,
    JournalRecordKind,
    RunLifecycle,
    load_journal_records,
    write_journal_records,
)
from pytest_replay.kinds import RING_KIND, RecordingTarget, RingRecorder
from pytest_replay.ringlog import RecordedSlot


def medians(
    ours: Callable[[], object], baseline: Callable[[], object], repeat: int
) -> tuple[float, float]:
    """Median seconds of each, runs interleaved so that machine load drifts hit both alike."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for run, out in ((ours, times[0]), (baseline, times[1])):
            start = time.perf_counter()
            run()
            out.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def verdict(measure: str, ours: float, baseline: float, target: float) -> None:
    ratio = ours / baseline
    status = "PASS" if ratio <= target else "FAIL"
    print(f"{status} {measure} {ours:.4f}s {baseline:.4f}s {ratio:.3f} <={target}")


def ring_appends(root: Path, slots: list[RecordedSlot], batch: int, digest: bool) -> None:
    scratch = Path(tempfile.mkdtemp(dir=root))
    target = RecordingTarget("b::t", "ring", "ring", scratch / "ring.vrrl", scratch)
    recorder = RING_KIND.open(target, capacity=1024)
    assert isinstance(recorder, RingRecorder)
    if not digest:
        recorder._digest.due = 2**62  # the baseline: the same recorder, never hashing
    try:
        if batch == 1:
            for slot in slots:
                recorder.append(slot)
        else:
            for start in range(0, len(slots), batch):
                recorder.append_many(slots[start : start + batch])
    finally:
        recorder.close()


def fleet_log(root: Path, steps: int) -> tuple[Path, Path]:
    base = root / "bench.flog"
    with FleetLogWriter(base, slab_size=1 << 20, initial_keyframe=True) as writer:
        writer.log_instantiated(stack_for("bench", 1, 0))
        for step in range(steps):
            writer.log_step(Step(step, step, (Message(step.to_bytes(8, "little")),)))
    legacy = root / "legacy"
    legacy.mkdir()
    for slab in sorted(root.glob("bench_*.flog")):
        data = slab.read_bytes()
        (legacy / slab.name).write_bytes(data[:8] + struct.pack("<H", 1) + data[10:-SLAB_END_BYTES])
    return base, legacy / base.name


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="20,000 records, 5 repeats")
    args = parser.parse_args()
    if args.quick:
        args.records, args.repeat = 20_000, 5
    warnings.simplefilter("ignore", UnclosedFormatWarning)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        slots = [RecordedSlot(i, i % 64, 0, 1, (i, 0, 0, 0), 0) for i in range(args.records)]
        for batch, target in ((1, 1.15), (1000, 1.15)):
            ours, base = medians(
                functools.partial(ring_appends, root, slots, batch, True),
                functools.partial(ring_appends, root, slots, batch, False),
                args.repeat,
            )
            verdict(f"ring_recorder_append_batch{batch}", ours, base, target)

        records = [
            JournalRecord(f"r{i}", i + 1, JournalRecordKind.RUN, RunLifecycle(f"step {i}"))
            for i in range(args.records // 4)
        ]
        closed = root / "closed.jrecs"
        write_journal_records(closed, records)
        data = closed.read_bytes()
        legacy = root / "legacy.jrecs"
        legacy.write_bytes(encode_file_header(RECORDS_MAGIC) + data[16:-END_FRAME_BYTES])
        ours, base = medians(
            lambda: load_journal_records(closed), lambda: load_journal_records(legacy), args.repeat
        )
        verdict("load_journal_records", ours, base, 1.10)

        v2, v1 = fleet_log(root, args.records)
        ours, base = medians(lambda: FleetLogReader(v2), lambda: FleetLogReader(v1), args.repeat)
        verdict("fleet_log_reader_open", ours, base, 1.15)  # one BLAKE3 pass per slab


if __name__ == "__main__":
    main()
