"""Ring-log throughput: ours side by side with a straightforward port of the reference.

The baseline is what a user would write first: ``struct.pack`` per record,
seek + write of the record, seek + write of the cursor, and a per-record
``struct.unpack`` walk on replay. Prints one JSON object; every figure is a
median over ``--repeat`` runs taken in this same process, so ratios are
meaningful on a noisy machine even when absolute times are not.

Targets: ``append`` >= 5x that naive port; ``append_many`` of a structured array >=
0.6x a raw numpy store of the same bytes into a memory map; decoding a full ring >=
0.25x a raw byte copy of the same file; ``first_divergence`` of two full rings
<= 100 ms. Prints one JSON object and one verdict line per target.

    python benchmarks/bench_ringlog.py [--repeat 5] [--records 200000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np
from _harness import measure, verdict

from pytest_replay.diff import first_divergence
from pytest_replay.ringlog import (
    HEADER_BYTES,
    LOG_MAGIC,
    MAX_REPLAY_RECORDS,
    RECORD_BYTES,
    RECORD_MAGIC,
    RECORD_STRUCT,
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


def raw_store(path: Path, capacity: int, chunks: list[np.ndarray]) -> None:
    """Baseline for ``append_many``: the same record bytes copied into a memory map of
    the ring's size, wrapping like the ring (no header, no cursor, no checks)."""
    size = capacity * RECORD_BYTES
    with open(path, "wb") as fh:
        fh.truncate(HEADER_BYTES + size)
    area = np.memmap(path, np.uint8, "r+", offset=HEADER_BYTES, shape=(size,))
    position = 0
    for chunk in chunks:
        data = chunk.view(np.uint8).reshape(-1)
        while len(data):
            take = min(len(data), size - position)
            area[position : position + take] = data[:take]
            data = data[take:]
            position = (position + take) % size
    area.flush()
    del area


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke run)")
    opts = parser.parse_args()
    ring = MAX_REPLAY_RECORDS
    if opts.quick:
        opts.records, ring = 20_000, 1 << 16
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

    ours, base = measure(ours_append, repeat), measure(base_append, repeat)
    verdict("append_records_per_s", n / ours.wall, 5.0 * n / base.wall, baseline=n / base.wall)
    result["append"] = {
        "ours": ours.as_dict(n, "records_per_s"),
        "baseline_naive_port": base.as_dict(n, "records_per_s"),
        "target": ">= 5x the naive port",
    }

    # -- append_many of a structured array (wraps the ring several times)
    big = make_array(4 * ring)
    chunks = np.array_split(big, 16)

    def ours_many() -> None:
        path = folder / "many.vrrl"
        path.unlink(missing_ok=True)
        with RingLog.open(path, ring) as log:
            for chunk in chunks:
                log.append_many(chunk)

    many = measure(ours_many, repeat)
    raw = measure(lambda: raw_store(folder / "raw.bin", ring, chunks), repeat)
    verdict(
        "append_many_records_per_s",
        len(big) / many.wall,
        0.6 * len(big) / raw.wall,
        baseline=len(big) / raw.wall,
    )
    result["append_many"] = {
        "records": len(big),
        "ours": many.as_dict(len(big), "records_per_s"),
        "baseline_raw_numpy_store": raw.as_dict(len(big), "records_per_s"),
        "target": ">= 0.6x the raw numpy store of the same bytes",
    }

    # -- decoding a full ring
    full = folder / "full.vrrl"
    with RingLog.open(full, ring) as log:
        log.append_many(make_array(ring + 12345))
    file_bytes = full.stat().st_size
    with RingLog.open(full, read_only=True) as log:
        decode = measure(log.records, repeat)
    copy = measure(full.read_bytes, repeat)
    verdict(
        "full_ring_decode_gb_per_s",
        file_bytes / decode.wall / 1e9,
        0.25 * file_bytes / copy.wall / 1e9,
        baseline=file_bytes / copy.wall / 1e9,
    )
    result["records_decode"] = {
        "records": ring,
        "ours": decode.as_dict(ring, "records_per_s"),
        "baseline_raw_byte_copy": copy.as_dict(file_bytes, "bytes_per_s"),
        "target": ">= 0.25x a raw byte copy of the same file",
    }

    # -- first_divergence on two full rings differing only in the last record
    left = make_array(ring)
    right = left.copy()
    right["epoch"][-1] += 1
    right["timestamp_ns"] += 5  # volatile: must be ignored
    found = first_divergence(left, right)
    assert found is not None and found.index == ring - 1, found
    div = measure(lambda: first_divergence(left, right), repeat)

    def naive_divergence() -> int:
        # What a user writes first: unpack both logs record by record with struct and
        # compare the tuples without the volatile timestamp (field 1 after the magic).
        unpack = RECORD_STRUCT.iter_unpack
        pairs = zip(unpack(left.tobytes()), unpack(right.tobytes()), strict=True)
        for i, (a, b) in enumerate(pairs):
            if a[0] != b[0] or a[2:] != b[2:]:
                return i
        return -1

    assert naive_divergence() == ring - 1
    naive = measure(naive_divergence, repeat)
    verdict(
        f"first_divergence_ms_{ring // 1000}k_records",
        div.wall * 1000,
        100,
        op="<=",
        baseline=naive.wall * 1000,
        ratio=naive.wall / div.wall,
    )
    result["first_divergence"] = {
        "records": ring,
        "ours": div.as_dict(),
        "baseline_struct_walk": naive.as_dict(),
        "target_ms": 100,
    }

    shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
