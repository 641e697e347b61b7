"""Ring-log throughput: ours side by side with a straightforward port of the reference.

The baseline is what a user would write first: ``struct.pack`` per record,
seek + write of the record, seek + write of the cursor, and a per-record
``struct.unpack`` walk on replay. Prints one JSON object; every figure is a
median over ``--repeat`` runs taken in this same process, so ratios are
meaningful on a noisy machine even when absolute times are not.

    python benchmarks/bench_ringlog.py [--repeat 5] [--records 200000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pytest_replay.diff import first_divergence
from pytest_replay.ringlog import (
    _RECORD,
    HEADER_BYTES,
    LOG_MAGIC,
    MAX_REPLAY_RECORDS,
    RECORD_BYTES,
    RECORD_MAGIC,
    RING_RECORD_DTYPE,
    RecordedSlot,
    RingLog,
)


class BaselineRingLog:
    """A line-by-line Python port of the reference writer and reader."""

    _REC = "<IQIIIIIIIIIIIQ"

    def __init__(self, path: Path, capacity: int) -> None:
        with open(path, "wb") as fh:
            fh.truncate(HEADER_BYTES + RECORD_BYTES * capacity)
            fh.write(LOG_MAGIC + struct.pack("<IIQQ", 1, 0, capacity, 0))
        self.file = open(path, "r+b")  # noqa: SIM115
        self.capacity = capacity
        self.next_slot = 0

    def append(self, slot: RecordedSlot) -> None:
        self.file.seek(HEADER_BYTES + RECORD_BYTES * self.next_slot)
        buf = struct.pack(
            self._REC, RECORD_MAGIC, slot.timestamp_ns, slot.slot_idx, slot.tenant_id,
            slot.opcode, *slot.args, slot.epoch, 0, 0, 0, 0,
        )  # fmt: skip
        self.file.write(buf)
        self.next_slot = (self.next_slot + 1) % self.capacity
        self.file.seek(24)
        self.file.write(struct.pack("<Q", self.next_slot))

    def replay(self) -> list[tuple[int, ...]]:
        out = []
        for step in range(self.capacity):
            index = (self.next_slot + step) % self.capacity
            self.file.seek(HEADER_BYTES + RECORD_BYTES * index)
            fields = struct.unpack(self._REC, self.file.read(RECORD_BYTES))
            if fields[0] == 0:
                continue
            out.append(fields)
        return out

    def close(self) -> None:
        self.file.close()


def timed(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def make_slots(n: int) -> list[RecordedSlot]:
    return [
        RecordedSlot(i, i % 64, i % 3, 0x40000000 + i % 9, (i, 2 * i, 3, 4), i) for i in range(n)
    ]


def make_array(n: int) -> np.ndarray:
    array = np.zeros(n, RING_RECORD_DTYPE)
    index = np.arange(n, dtype=np.uint64)
    array["timestamp_ns"] = index
    array["slot_idx"] = index % 64
    array["opcode"] = 0x40000000
    array["args"][:, 0] = index
    array["epoch"] = index
    return array


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--records", type=int, default=200_000)
    opts = parser.parse_args()
    n, repeat = opts.records, opts.repeat
    folder = Path(tempfile.mkdtemp(prefix="bench-ringlog-"))
    slots = make_slots(n)
    result: dict[str, object] = {"records": n, "repeat": repeat, "python": sys.version.split()[0]}

    # -- per-record append
    def ours_append() -> None:
        path = folder / "ours.vrrl"
        path.unlink(missing_ok=True)
        with RingLog.open(path, 65536) as log:
            append = log.append
            for slot in slots:
                append(slot)

    def base_append() -> None:
        path = folder / "base.vrrl"
        log = BaselineRingLog(path, 65536)
        append = log.append
        for slot in slots:
            append(slot)
        log.close()

    t_ours, t_base = timed(ours_append, repeat), timed(base_append, repeat)
    result["append"] = {
        "ours_records_per_s": round(n / t_ours),
        "baseline_records_per_s": round(n / t_base),
        "ratio": round(t_base / t_ours, 2),
        "target_ratio": 5.0,
    }

    # -- append_many of a structured array (wraps the ring several times)
    big = make_array(4 * MAX_REPLAY_RECORDS)

    def ours_many() -> None:
        path = folder / "many.vrrl"
        path.unlink(missing_ok=True)
        with RingLog.open(path, MAX_REPLAY_RECORDS) as log:
            for chunk in np.array_split(big, 16):
                log.append_many(chunk)

    t_many = timed(ours_many, repeat)
    t_base_per_record = t_base / n
    result["append_many"] = {
        "ours_records_per_s": round(len(big) / t_many),
        "baseline_records_per_s": round(1 / t_base_per_record),
        "ratio": round(t_base_per_record * len(big) / t_many, 1),
        "target_records_per_s": 10_000_000,
    }

    # -- decoding a full ring
    full = folder / "full.vrrl"
    with RingLog.open(full, MAX_REPLAY_RECORDS) as log:
        log.append_many(make_array(MAX_REPLAY_RECORDS + 12345))
    ring_bytes = MAX_REPLAY_RECORDS * RECORD_BYTES
    with RingLog.open(full, read_only=True) as log:
        t_decode = timed(log.records, repeat)
    small = folder / "small.vrrl"
    with RingLog.open(small, 65536) as log:
        log.append_many(make_array(65536 + 77))
    with RingLog.open(small, read_only=True) as log:
        t_decode_small = timed(log.records, repeat)
    base = BaselineRingLog(folder / "basefull.vrrl", 65536)
    for slot in slots[:65536]:
        base.append(slot)
    t_base_decode = timed(base.replay, max(1, repeat // 2))
    base.close()
    result["records_decode"] = {
        "ours_gb_per_s_full_ring": round(ring_bytes / t_decode / 1e9, 2),
        "ours_records_per_s": round(65536 / t_decode_small),
        "baseline_records_per_s": round(65536 / t_base_decode),
        "ratio": round(t_base_decode / t_decode_small, 1),
        "target_gb_per_s": 1.0,
    }

    # -- first_divergence on two 1M-record logs differing only in the last record
    left = make_array(MAX_REPLAY_RECORDS)
    right = left.copy()
    right["epoch"][-1] += 1
    right["timestamp_ns"] += 5  # volatile: must be ignored
    found = first_divergence(left, right)
    assert found is not None and found.index == MAX_REPLAY_RECORDS - 1, found
    t_div = timed(lambda: first_divergence(left, right), repeat)

    def naive_divergence() -> int:
        # What a user writes first: unpack both logs record by record with struct and
        # compare the tuples without the volatile timestamp (field 1 after the magic).
        unpack = _RECORD.iter_unpack
        pairs = zip(unpack(left.tobytes()), unpack(right.tobytes()), strict=True)
        for i, (a, b) in enumerate(pairs):
            if a[0] != b[0] or a[2:] != b[2:]:
                return i
        return -1

    assert naive_divergence() == MAX_REPLAY_RECORDS - 1
    t_naive = timed(naive_divergence, 1)
    result["first_divergence_1m"] = {
        "ours_ms": round(t_div * 1000, 2),
        "baseline_ms": round(t_naive * 1000, 1),
        "ratio": round(t_naive / t_div, 1),
        "target_ms": 100,
    }

    for path in folder.iterdir():
        os.unlink(path)
    folder.rmdir()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
