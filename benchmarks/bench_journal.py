"""Journal throughput: reducer, entry codec, SqliteJournal and FileJournal, side by side.

* reducer: apply + finish over a synthetic journal (default 1,000,000 records);
  the baseline is the same fold written the obvious way (records as dicts,
  one if/elif chain on a string kind, a list scan for duplicates avoided by a
  dict; no per-record dataclasses), so the ratio shows what the typed model costs.
* codec: our tagged msgpack entry codec vs a JSON-lines codec of the same
  entries in the reference's serde_json shape (``{"DeviceCmd": {...}}``).
* SqliteJournal: ``write_messages`` per batch of 1,000 (one transaction each) against
  write-through (one message per call, what the reference harness does), and
  ``replay_messages`` against a raw ``sqlite3`` fetch of the same rows.
* FileJournal: ``write_messages`` per batch of 1,000 with its fsync, against writing
  the same bytes with as many ``os.write`` + ``os.fsync`` calls.

Store entries are shaped like the reference design's rows: 100-500 bytes encoded.
Prints one JSON object and a verdict line per target; every figure is the median of
``--repeat`` (at least 5) runs in this process, min and max beside it.

    python benchmarks/bench_journal.py [--records 1000000] [--entries 200000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from _harness import measure, verdict

from pytest_replay.journal import (
    BatchSize,
    DeviceCmd,
    EffectIntent,
    EffectResult,
    FileJournal,
    JournalEntry,
    JournalRecord,
    JournalRecordKind,
    KernelCmd,
    OpaquePayload,
    OutputDeliveryIntent,
    OutputDeliveryResult,
    PersistentRepr,
    ReducerMode,
    ReplayReducer,
    ReplayStatus,
    RngSeed,
    RunCheckpoint,
    SqliteJournal,
    decode_entries,
    encode_entries,
    encode_entry,
)

# --------------------------------------------------------------------------- reducer


def make_records(n: int) -> list[JournalRecord]:
    out: list[JournalRecord] = []
    seq = 0
    i = 0
    while len(out) < n:
        seq += 1
        phase = i % 8
        rid = f"r{seq}"
        if phase == 0:
            rec = JournalRecord(
                rid,
                seq,
                JournalRecordKind.EFFECT_INTENT,
                EffectIntent(f"e{i}", idempotency_key=f"k{i}"),
            )
        elif phase == 1:
            rec = JournalRecord(
                rid, seq, JournalRecordKind.EFFECT_RESULT, EffectResult(f"e{i - 1}")
            )
        elif phase == 2:
            rec = JournalRecord(
                rid,
                seq,
                JournalRecordKind.OUTPUT_DISPATCH,
                OutputDeliveryIntent(f"d{i}", "sink", f"dk{i}"),
                content_refs=(f"c{i % 100}",),
            )
        elif phase == 3:
            rec = JournalRecord(
                rid, seq, JournalRecordKind.OUTPUT_DISPATCH, OutputDeliveryResult(f"d{i - 1}")
            )
        elif phase == 4:
            rec = JournalRecord(
                rid,
                seq,
                JournalRecordKind.CHECKPOINT,
                RunCheckpoint(f"cp{i}", i, seq, "loop", i),
            )
        else:
            rec = JournalRecord(
                rid, seq, JournalRecordKind.MESSAGE, OpaquePayload("message", b"hello")
            )
        out.append(rec)
        i += 1
    return out


def baseline_reduce(records: list[dict[str, Any]]) -> str:
    seen: dict[str, dict[str, Any]] = {}
    last = None
    pending: dict[str, str] = {}
    intents: dict[str, str] = {}
    results: set[str] = set()
    checkpoint = None
    for rec in records:
        rid = rec["record_id"]
        if rid in seen:
            raise ValueError("duplicate")
        if last is not None and rec["journal_seq"] <= last:
            raise ValueError("order")
        kind = rec["type"]
        body = rec["payload"]
        if kind == "effect_intent":
            pending[body["effect_id"]] = rid
        elif kind == "effect_result":
            pending.pop(body["effect_id"], None)
        elif kind == "output_intent":
            intents[body["delivery_id"]] = rid
        elif kind == "output_result":
            results.add(body["delivery_id"])
        elif kind == "checkpoint":
            key = (body["covers_journal_seq"], body["checkpoint_seq"], body["created_at_millis"])
            if checkpoint is None or key > checkpoint:
                checkpoint = key
        last = rec["journal_seq"]
        seen[rid] = rec
    open_outputs = [d for d in intents if d not in results]
    return "complete" if not pending and not open_outputs else "repair_needed"


def as_dicts(records: list[JournalRecord]) -> list[dict[str, Any]]:
    names = {
        EffectIntent: "effect_intent",
        EffectResult: "effect_result",
        OutputDeliveryIntent: "output_intent",
        OutputDeliveryResult: "output_result",
        RunCheckpoint: "checkpoint",
        OpaquePayload: "opaque",
    }
    out = []
    for rec in records:
        payload = rec.payload
        body = {name: getattr(payload, name) for name in payload.__slots__}
        out.append(
            {
                "record_id": rec.record_id,
                "journal_seq": rec.journal_seq,
                "type": names[type(payload)],
                "payload": body,
            }
        )
    return out


def bench_reducer(n: int, repeat: int) -> dict[str, Any]:
    records = make_records(n)

    def ours() -> None:
        reducer = ReplayReducer(ReducerMode.AUDIT)
        apply = reducer.apply
        for record in records:
            apply(record)
        result = reducer.finish()
        assert result.status is ReplayStatus.COMPLETE, result.repair_needed[:3]

    timing = measure(ours, repeat)
    plain = as_dicts(records)
    base = measure(lambda: baseline_reduce(plain), repeat)
    verdict("reducer_records_per_s", n / timing.wall, 200_000, baseline=n / base.wall)
    return {
        "records": n,
        "ours": timing.as_dict(n, "records_per_s"),
        "baseline_dict_fold": base.as_dict(n, "records_per_s"),
        "target_records_per_s": 200_000,
    }


# --------------------------------------------------------------------------- codec


def make_entries(n: int, *, realistic: bool = False) -> list[JournalEntry]:
    """Device and kernel commands, RNG seeds and batch sizes; ``realistic``: shaped like
    the reference design's journal rows, 100-500 bytes encoded (argument text added)."""
    rng = random.Random(7)
    out: list[JournalEntry] = []
    for i in range(n):
        detail = "/" + rng.randbytes(rng.randint(40, 225)).hex() if realistic else ""
        phase = i % 4
        if phase == 0:
            out.append(DeviceCmd(i * 13, "memcpy_h2d", f"bytes={i * 4096}{detail}"))
        elif phase == 1:
            grid = f"grid=({i % 64},1,1) block=(256,1,1)"
            out.append(KernelCmd(i * 13 + 7, "launch", f"{grid}{detail}"))
        elif phase == 2:
            out.append(RngSeed(f"/user/worker-{i % 16}/rng{detail}", (i * 2654435761) % 2**64))
        else:
            out.append(BatchSize(f"/user/worker-{i % 16}{detail}", 32 + i % 512))
    return out


_JSON_KINDS: dict[str, type[Any]] = {
    "DeviceCmd": DeviceCmd,
    "KernelCmd": KernelCmd,
    "RngSeed": RngSeed,
    "BatchSize": BatchSize,
}


def json_encode(entries: list[JournalEntry]) -> bytes:
    lines = []
    dumps = json.dumps
    for entry in entries:
        fields = {name: getattr(entry, name) for name in entry.__slots__}
        lines.append(dumps({type(entry).__name__: fields}, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode()


def json_decode(data: bytes) -> list[JournalEntry]:
    out = []
    loads = json.loads
    for line in data.decode().splitlines():
        ((kind, fields),) = loads(line).items()
        out.append(_JSON_KINDS[kind](**fields))
    return out


def bench_codec(n: int, repeat: int) -> dict[str, Any]:
    entries = make_entries(n)
    ours_bytes = encode_entries(entries)
    json_bytes = json_encode(entries)
    assert decode_entries(ours_bytes) == entries
    assert json_decode(json_bytes) == entries
    t_enc = measure(lambda: encode_entries(entries), repeat).wall
    t_dec = measure(lambda: decode_entries(ours_bytes), repeat).wall
    t_jenc = measure(lambda: json_encode(entries), repeat).wall
    t_jdec = measure(lambda: json_decode(json_bytes), repeat).wall
    ratio = (t_jenc + t_jdec) / (t_enc + t_dec)
    verdict("codec_speedup_vs_json_lines", ratio, 2.0, baseline=1.0, ratio=ratio)
    return {
        "entries": n,
        "ours_encode_per_s": round(n / t_enc),
        "ours_decode_per_s": round(n / t_dec),
        "json_lines_encode_per_s": round(n / t_jenc),
        "json_lines_decode_per_s": round(n / t_jdec),
        "ratio_encode_plus_decode": round((t_jenc + t_jdec) / (t_enc + t_dec), 2),
        "ours_bytes": len(ours_bytes),
        "json_lines_bytes": len(json_bytes),
        "size_ratio": round(len(json_bytes) / len(ours_bytes), 2),
        "target_ratio": 2.0,
    }


# --------------------------------------------------------------------------- stores


def make_reprs(pid: str, entries: list[JournalEntry], first_seq: int = 1) -> list[PersistentRepr]:
    return [
        PersistentRepr(pid, seq, encode_entry(entry), "bench", "bench")
        for seq, entry in enumerate(entries, start=first_seq)
    ]


class FreshStores:
    """A new store file per run (``fresh`` is a ``measure`` setup), in one folder."""

    def __init__(self, folder: Path, kind: type[SqliteJournal] | type[FileJournal]) -> None:
        self.folder, self.kind, self.count = folder, kind, 0
        self.stores: list[SqliteJournal | FileJournal] = []

    @property
    def current(self) -> SqliteJournal | FileJournal:
        return self.stores[-1]

    @property
    def path(self) -> Path:
        return self.folder / f"{self.kind.__name__}-{self.count}"

    def fresh(self) -> None:
        self.close()
        self.count += 1
        self.stores = [self.kind(self.path)]

    def close(self) -> None:
        for store in self.stores:
            store.close()


def write_batches(
    store: SqliteJournal | FileJournal, reprs: list[PersistentRepr], batch: int
) -> None:
    for offset in range(0, len(reprs), batch):
        store.write_messages(reprs[offset : offset + batch])


def bench_sqlite(
    folder: Path, reprs: list[PersistentRepr], batch: int, repeat: int
) -> dict[str, Any]:
    n = len(reprs)
    stores = FreshStores(folder, SqliteJournal)
    append = measure(
        lambda: write_batches(stores.current, reprs, batch), repeat, setup=stores.fresh
    )
    # Baseline: the same entries written through, one transaction per entry (what the
    # reference harness does), on a prefix (it is slow).
    through = reprs[: max(200, n // 100)]
    base_append = measure(
        lambda: write_batches(stores.current, through, 1), repeat, setup=stores.fresh
    )
    stores.fresh()
    write_batches(stores.current, reprs, batch)
    path = stores.path
    assert len(stores.current.replay_messages("bench")) == n
    replay = measure(lambda: stores.current.replay_messages("bench"), repeat)
    # Baseline: the raw rows from sqlite3 on the same file, no objects built.
    raw = sqlite3.connect(path)
    query = (
        "SELECT sequence_nr, payload, writer_ref, tags FROM journal_messages "
        "WHERE persistence_id = ? AND deleted = 0 ORDER BY sequence_nr"
    )
    base_replay = measure(lambda: raw.execute(query, ("bench",)).fetchall(), repeat)
    raw.close()
    stores.close()
    verdict(
        f"sqlite_append_per_s_batch_{batch}",
        n / append.wall,
        100_000,
        baseline=len(through) / base_append.wall,
    )
    verdict(
        "sqlite_append_slowest_run_per_s",
        n / append.wall_max,
        100_000,
        baseline=len(through) / base_append.wall_max,
    )
    verdict("sqlite_replay_per_s", n / replay.wall, 500_000, baseline=n / base_replay.wall)
    return {
        "entries": n,
        "batch": batch,
        "append": append.as_dict(n, "entries_per_s"),
        "baseline_write_through": base_append.as_dict(len(through), "entries_per_s"),
        "replay": replay.as_dict(n, "entries_per_s"),
        "baseline_raw_fetchall": base_replay.as_dict(n, "entries_per_s"),
    }


def bench_file(
    folder: Path, reprs: list[PersistentRepr], batch: int, repeat: int
) -> dict[str, Any]:
    n = len(reprs)
    stores = FreshStores(folder, FileJournal)
    append = measure(
        lambda: write_batches(stores.current, reprs, batch), repeat, setup=stores.fresh
    )
    stores.close()
    image = stores.path.read_bytes()
    batches = -(-n // batch)
    chunk = -(-len(image) // batches)
    raw_path = folder / "raw.bin"

    def raw_append() -> None:
        # Baseline: the same bytes in as many writes, each followed by an fsync.
        fd = os.open(raw_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        try:
            for offset in range(0, len(image), chunk):
                os.write(fd, image[offset : offset + chunk])
                os.fsync(fd)
        finally:
            os.close(fd)

    base = measure(raw_append, repeat)
    verdict(
        f"file_journal_append_fsync_per_{batch}_per_s",
        n / append.wall,
        300_000,
        baseline=n / base.wall,
    )
    return {
        "entries": n,
        "batch": batch,
        "bytes": len(image),
        "append": append.as_dict(n, "entries_per_s"),
        "baseline_raw_write_fsync": base.as_dict(n, "entries_per_s"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke run)")
    opts = parser.parse_args()
    if opts.quick:
        opts.records, opts.entries = 20_000, 5_000
    folder = Path(tempfile.mkdtemp(prefix="bench-journal-"))
    result: dict[str, Any] = {
        "repeat": opts.repeat,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
    }
    try:
        result["reducer"] = bench_reducer(opts.records, opts.repeat)
        result["codec"] = bench_codec(opts.entries, opts.repeat)
        reprs = make_reprs("bench", make_entries(opts.entries, realistic=True))
        sizes = [len(item.payload) for item in reprs]
        result["payload_bytes_min_median_max"] = [
            min(sizes),
            int(statistics.median(sizes)),
            max(sizes),
        ]
        result["sqlite_journal"] = bench_sqlite(folder, reprs, opts.batch, opts.repeat)
        result["file_journal"] = bench_file(folder, reprs, opts.batch, opts.repeat)
        result["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
