"""Journal throughput: reducer, entry codec, SqliteJournal and FileJournal, side by side.

* reducer: apply + finish over a synthetic journal (default 1,000,000 records);
  the baseline is the same fold written the obvious way (records as dicts,
  one if/elif chain on a string kind, a list scan for duplicates avoided by a
  dict; no per-record dataclasses), so the ratio shows what the typed model costs.
* codec: our tagged msgpack entry codec vs a JSON-lines codec of the same
  entries in the reference's serde_json shape (``{"DeviceCmd": {...}}``).
* SqliteJournal / FileJournal: batched writes (one ``write_messages`` per
  batch) vs write-through (one message per call, what the reference harness
  does), and ``replay_messages``.

Prints one JSON object; every figure is a median over ``--repeat`` runs in
this process.

    python benchmarks/bench_journal.py [--repeat 3] [--records 1000000] [--entries 200000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median wall-clock seconds of ``fn``."""
    return timed_both(fn, repeat)[0]


def timed_both(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median wall-clock and median process CPU seconds of ``fn``.

    CPU time is reported next to wall time because the machines this runs on
    are often shared: it shows what the code costs when it has a core to itself.
    """
    walls, cpus = [], []
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


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

    t_ours, c_ours = timed_both(ours, repeat)
    plain = as_dicts(records)
    t_base = timed(lambda: baseline_reduce(plain), repeat)
    return {
        "records": n,
        "ours_records_per_s": round(n / t_ours),
        "ours_records_per_cpu_s": round(n / c_ours),
        "baseline_dict_fold_records_per_s": round(n / t_base),
        "ratio_vs_baseline": round(t_base / t_ours, 2),
        "target_records_per_s": 200_000,
    }


# --------------------------------------------------------------------------- codec


def make_entries(n: int) -> list[JournalEntry]:
    out: list[JournalEntry] = []
    for i in range(n):
        phase = i % 4
        if phase == 0:
            out.append(DeviceCmd(i * 13, "memcpy_h2d", f"bytes={i * 4096}"))
        elif phase == 1:
            out.append(KernelCmd(i * 13 + 7, "launch", f"grid=({i % 64},1,1) block=(256,1,1)"))
        elif phase == 2:
            out.append(RngSeed(f"/user/worker-{i % 16}/rng", (i * 2654435761) % 2**64))
        else:
            out.append(BatchSize(f"/user/worker-{i % 16}", 32 + i % 512))
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
    t_enc = timed(lambda: encode_entries(entries), repeat)
    t_dec = timed(lambda: decode_entries(ours_bytes), repeat)
    t_jenc = timed(lambda: json_encode(entries), repeat)
    t_jdec = timed(lambda: json_decode(json_bytes), repeat)
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


def bench_store(
    kind: str, folder: Path, n: int, batch: int, through_n: int, repeat: int
) -> dict[str, Any]:
    entries = make_entries(n)
    counter = iter(range(10**9))

    def open_store() -> SqliteJournal | FileJournal:
        path = folder / f"{kind}-{next(counter)}"
        return SqliteJournal(path) if kind == "sqlite" else FileJournal(path)

    reprs = make_reprs("bench", entries)
    write_samples = []
    for _ in range(repeat):
        store = open_store()
        start = time.perf_counter()
        for offset in range(0, n, batch):
            store.write_messages(reprs[offset : offset + batch])
        write_samples.append(time.perf_counter() - start)
        store.close()
    t_write = statistics.median(write_samples)

    store = open_store()
    for offset in range(0, n, batch):
        store.write_messages(reprs[offset : offset + batch])
    assert len(store.replay_messages("bench")) == n
    t_replay, c_replay = timed_both(lambda: store.replay_messages("bench"), repeat)
    store.close()

    through = open_store()
    small = reprs[:through_n]
    start = time.perf_counter()
    for item in small:
        through.write_messages([item])
    t_through = time.perf_counter() - start
    through.close()
    return {
        "entries": n,
        "batch": batch,
        "ours_batched_write_per_s": round(n / t_write),
        "baseline_write_through_per_s": round(through_n / t_through),
        "ratio_vs_write_through": round((t_through / through_n) / (t_write / n), 1),
        "replay_messages_per_s": round(n / t_replay),
        "replay_messages_per_cpu_s": round(n / c_replay),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--write-through", type=int, default=300)
    opts = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-journal-"))
    result: dict[str, Any] = {
        "repeat": opts.repeat,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
    }
    result["reducer"] = bench_reducer(opts.records, opts.repeat)
    result["codec"] = bench_codec(opts.entries, opts.repeat)
    sqlite = bench_store(
        "sqlite", folder, opts.entries, opts.batch, opts.write_through, opts.repeat
    )
    sqlite["target_write_per_s"] = 100_000
    sqlite["target_replay_per_s"] = 500_000
    result["sqlite_journal"] = sqlite
    file_store = bench_store(
        "file", folder, opts.entries, opts.batch, opts.write_through, opts.repeat
    )
    file_store["target_write_per_s"] = 300_000
    result["file_journal"] = file_store
    result["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    for path in sorted(folder.iterdir()):
        os.unlink(path)
    folder.rmdir()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
