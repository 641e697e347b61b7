"""``pytest-replay inspect PATH``: what a recording holds, and its first records.

Each format has one function that returns an :class:`Inspection`: a summary
(a flat-ish mapping, printed as ``key: value`` lines or as JSON) and a way to
fetch any range of its records. A format's package is imported only by its
own function.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_replay.cli import detect as formats
from pytest_replay.cli.common import (
    EXIT_OK,
    CliError,
    Run,
    did_you_mean,
    jsonable,
    parse_range,
    read_bounded,
)
from pytest_replay.cli.records import (
    count_checked,
    journal_records_file,
    load_result,
    manifest_entry,
    record_line,
    show,
)

__all__ = [
    "Inspection",
    "inspect_detected",
    "inspect_fleet_log",
    "inspect_kind_file",
    "run_inspect",
    "store_rows",
]

Fetch = Callable[[int, int], list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Inspection:
    """A summary, how many records there are, and how to fetch a range of them."""

    summary: dict[str, Any]
    total: int
    fetch: Fetch
    unit: str = "records"


def run_inspect(
    run: Run, path: Path, limit: int, records: str | None, test: str | None = None
) -> int:
    detected = formats.detect(path)
    found = inspect_detected(detected, run)
    if test is not None:
        found = only_test(detected, found, test)
    if records is not None:
        start, stop = parse_range(records, found.total)
    else:
        if limit < 0:
            raise CliError(f"--limit {limit} is negative", "pass 0 or more")
        start, stop = 0, min(limit, found.total)
    items = found.fetch(start, stop) if stop > start else []
    if run.json:
        run.emit_json(
            {
                "path": str(detected.path),
                "format": detected.format,
                "kind": detected.kind,
                "label": detected.label,
                "summary": found.summary,
                found.unit: {"total": found.total, "start": start, "stop": stop, "items": items},
            }
        )
        return EXIT_OK
    run.print(f"{detected.path}: {detected.label}")
    for key, value in found.summary.items():
        run.print(f"  {key}: {show(value)}")
    if found.total:
        if stop > start:
            run.print(f"{found.unit} {start}..{stop - 1} of {found.total}:")
            for item in items:
                run.print("  " + record_line(item))
        elif records is None:
            run.print(f"{found.total} {found.unit} (show them with --limit N or --records A:B)")
        else:
            run.print(f"no {found.unit} in the range {records} (there are {found.total})")
    return EXIT_OK


def only_test(detected: formats.Detected, found: Inspection, test: str) -> Inspection:
    """The recordings of one test of a store (``--test NODEID``)."""
    if detected.format != formats.STORE:
        raise CliError(
            f"--test selects the recordings of a test in a store, and '{detected.path}' is a "
            f"{detected.label}",
            "pass a store folder (.replay), or drop --test",
        )
    rows = found.fetch(0, found.total)
    kept = [
        {**row, "index": index}
        for index, row in enumerate(row for row in rows if row["nodeid"] == test)
    ]
    if not kept:
        ids = [row["nodeid"] for row in rows]
        raise CliError(
            f"no test {test!r} in the store '{detected.path}'{did_you_mean(test, ids)}",
            "pass a test id as 'pytest-replay inspect STORE' lists it",
        )
    summary = {**found.summary, "test": test, "test_recordings": len(kept)}
    return Inspection(summary, len(kept), lambda a, b: kept[a:b], found.unit)


def inspect_detected(detected: formats.Detected, run: Run) -> Inspection:
    handlers: dict[str, Callable[[Path, Run], Inspection]] = {
        formats.VRRL: inspect_ring,
        formats.FLEET_LOG: inspect_fleet_log,
        formats.FLEET_FOLDER: inspect_fleet_folder,
        formats.FLEET_RECORDING: inspect_fleet_recording,
        formats.MANIFEST: inspect_manifest,
        formats.JOURNAL: inspect_journal,
        formats.RECORDS: inspect_records,
        formats.REDUCE: inspect_result,
        formats.STORE: inspect_store,
    }
    if detected.format == formats.RECORDING:
        assert detected.kind is not None
        return inspect_kind_file(detected.path, detected.kind)
    return handlers[detected.format](detected.path, run)


def _counts(values: Iterable[Any]) -> dict[str, int]:
    """Occurrences per value, sorted by value (as text for mixed keys)."""
    counter = collections.Counter(values)
    return {str(key): counter[key] for key in sorted(counter, key=lambda k: (str(type(k)), k))}


# --------------------------------------------------------------------------- VRRL


def inspect_ring(path: Path, run: Run) -> Inspection:
    """A VRRL ring log, or a megakernel capture (the same bytes), read as the VRRL format."""
    import numpy as np

    from pytest_replay.formats.vrrl import VRRL, ReplayFailureClass

    image = VRRL.read(path)
    capacity, cursor, stored_cursor = image.capacity, image.cursor, image.stored_cursor
    records = VRRL.records(image)
    live = len(records)
    if live == 0:
        wrap = "empty"
    elif live < capacity:
        wrap = "partial (never wrapped)"
    elif cursor == 0:
        wrap = "full (the next append overwrites the oldest record)"
    else:
        wrap = "wrapped (older records were overwritten)"
    summary: dict[str, Any] = {
        "capacity": capacity,
        "cursor": cursor,
        "stored_cursor": int(stored_cursor),
        "records": live,
        "wrap_state": wrap,
    }
    if live:
        stamps = records["timestamp_ns"]
        summary["time_range_ns"] = [int(stamps.min()), int(stamps.max())]
        summary["first_timestamp_ns"] = int(stamps[0])
        summary["last_timestamp_ns"] = int(stamps[-1])
        summary["epochs"] = [int(records["epoch"].min()), int(records["epoch"].max())]
        summary["last_epoch"] = int(records["epoch"][-1])
        tail = (
            (records["slot_status"] != 0)
            | (records["failure_class"] != 0)
            | (records["backend_code"] != 0)
            | (records["output_digest"] != 0)
        )
        classes = records["failure_class"][tail].tolist()
        summary["failure_evidence"] = int(np.count_nonzero(tail))
        summary["failure_classes"] = _counts(
            ReplayFailureClass.decode(code).name.lower() for code in classes
        )
        summary["tenants"] = _counts(records["tenant_id"].tolist())
        summary["opcodes"] = _counts(records["opcode"].tolist())
        summary["distinct_slots"] = len(np.unique(records["slot_idx"]))

    def fetch(start: int, stop: int) -> list[dict[str, Any]]:
        return [VRRL.item(start + i, row) for i, row in enumerate(records[start:stop])]

    return Inspection(summary, live, fetch)


# --------------------------------------------------------------------------- fleet


def _log_stats(reader: Any) -> dict[str, Any]:
    """Steps, step ids, time range and message counts of one indexed fleet log."""
    total = reader.total_steps
    messages = 0
    with_origin = 0
    first_ts: int | None = None
    last_ts: int | None = None
    low_ts: int | None = None
    high_ts: int | None = None
    for position in range(len(reader.sections)):
        section = reader.section(position)
        starts = section.message_starts
        messages += int(starts[-1]) - int(starts[0]) if len(starts) else 0
        with_origin += int(section.origin_flags.sum())
        if len(section):
            stamps = section.timestamps
            first_ts = int(stamps[0]) if first_ts is None else first_ts
            last_ts = int(stamps[-1])
            low = int(stamps.min())
            high = int(stamps.max())
            low_ts = low if low_ts is None else min(low_ts, low)
            high_ts = high if high_ts is None else max(high_ts, high)
    ids = reader.step_table().step_ids
    return {
        "steps": total,
        "first_step_id": int(ids[0]) if total else None,
        "last_step_id": int(ids[-1]) if total else None,
        "time_range_ns": None if low_ts is None else [low_ts, high_ts],
        "first_timestamp_ns": first_ts,
        "last_timestamp_ns": last_ts,
        "messages": messages,
        "messages_with_origin": with_origin,
        "keyframes": len(reader.keyframes),
        "sections": len(reader.sections),
        "slabs": len(reader.slab_paths),
    }


def _identity(record: Any, mission: str | None) -> dict[str, Any]:
    stack = record.stack
    return {
        "instance_id": stack.instance_id,
        "subsystem_id": stack.subsystem_id,
        "subsystem_code": stack.subsystem_code,
        "app": f"{stack.app_name} {stack.app_version}",
        "mission": mission,
        "config_source": record.config_source.value,
    }


def inspect_fleet_log(path: Path, run: Run) -> Inspection:
    import blake3

    from pytest_replay.fleet import FleetLogReader, read_identity

    identity = read_identity(path)
    reader = FleetLogReader(path)
    mission = None if identity.mission is None else identity.mission.mission
    summary = {**_identity(identity.instantiated, mission), **_log_stats(reader)}
    summary["lifecycle_records"] = len(reader.lifecycle)
    keyframe_ids = {kf.step_id for kf in reader.keyframes}

    def fetch(start: int, stop: int) -> list[dict[str, Any]]:
        out = []
        for index in range(start, stop):
            step = reader.step_at(index)
            messages = [
                {
                    "bytes": len(message.payload),
                    # A payload change must show in a diff of the text (textconv).
                    "digest": blake3.blake3(message.payload).hexdigest()[:16],
                    "origin": None
                    if message.origin is None
                    else [
                        message.origin.instance_id,
                        message.origin.subsystem_code,
                        message.origin.step_id,
                    ],
                }
                for message in step.messages
            ]
            out.append(
                {
                    "index": index,
                    "step_id": step.step_id,
                    "timestamp_ns": step.timestamp_ns,
                    "keyframe": step.step_id in keyframe_ids,
                    "messages": messages,
                }
            )
        return out

    return Inspection(summary, reader.total_steps, fetch, "steps")


def inspect_fleet_folder(path: Path, run: Run) -> Inspection:
    from pytest_replay.fleet import FleetLogReader, ReplayCatalog

    catalog = ReplayCatalog.discover([path])
    rows: list[dict[str, Any]] = []
    failures = [str(failure) for failure in catalog.failures]
    with run.bar("reading fleet logs", len(catalog.logs)) as bar:
        for log in catalog.logs:
            try:
                stats = _log_stats(FleetLogReader(log.base_path))
            except Exception as exc:
                from pytest_replay.fleet import FleetError

                if not isinstance(exc, FleetError):
                    raise
                failures.append(f"{log.base_path}: {exc}")
                bar.advance()
                continue
            rows.append(
                {
                    "instance_id": log.instance_id,
                    "subsystem_id": log.subsystem_id,
                    "subsystem_code": log.subsystem_code,
                    "mission": log.mission,
                    "path": str(log.base_path),
                    **stats,
                }
            )
            bar.advance()
    lows = [row["time_range_ns"][0] for row in rows if row["time_range_ns"]]
    highs = [row["time_range_ns"][1] for row in rows if row["time_range_ns"]]
    summary: dict[str, Any] = {
        "logs": len(catalog.logs),
        "instances": sorted({log.instance_id for log in catalog.logs}),
        "subsystems": {
            str(key[0]): key[1]
            for key in sorted(
                {(log.subsystem_id, log.subsystem_code) for log in catalog.logs},
                key=lambda k: (k[1], str(k[0])),
            )
        },
        "missions": sorted({log.mission for log in catalog.logs if log.mission is not None}),
        "steps": sum(row["steps"] for row in rows),
        "messages": sum(row["messages"] for row in rows),
        "keyframes": sum(row["keyframes"] for row in rows),
        "time_range_ns": [min(lows), max(highs)] if lows else None,
        "failures": failures,
    }
    for index, row in enumerate(rows):
        row["index"] = index
    indexed = [{"index": row.pop("index"), **row} for row in rows]

    def fetch(start: int, stop: int) -> list[dict[str, Any]]:
        return indexed[start:stop]

    return Inspection(summary, len(indexed), fetch, "logs")


def inspect_fleet_recording(path: Path, run: Run) -> Inspection:
    from pytest_replay.fleet import load_fleet_recording
    from pytest_replay.fleet.recording import count_recording_steps

    recording = load_fleet_recording(path)
    summary = {
        "topology": recording.topology_name,
        "logs": len(recording.logs),
        "instances": sorted({log.instance_id for log in recording.logs}),
        "subsystems": sorted({log.subsystem_id for log in recording.logs}),
        "configs": [name for name, _data in recording.configs],
        "steps": count_recording_steps(recording),
    }
    rows = [
        {
            "index": index,
            "instance_id": log.instance_id,
            "subsystem_id": log.subsystem_id,
            "slabs": len(log.slabs),
            "bytes": sum(len(slab) for slab in log.slabs),
        }
        for index, log in enumerate(recording.logs)
    ]
    return Inspection(summary, len(rows), lambda a, b: rows[a:b], "logs")


# --------------------------------------------------------------------------- journals


def inspect_journal(path: Path, run: Run) -> Inspection:
    from pytest_replay.journal import ENTRY_MANIFEST, JournalDecodeError, decode_entry
    from pytest_replay.journal.file_journal import parse_journal_image

    data = read_bounded(path, "journal file")
    streams, scan = parse_journal_image(data, str(path), recovery="tolerate_torn_tail")
    flat = [item for pid in sorted(streams) for item in streams[pid]]
    rows: list[dict[str, Any]] = []
    entry_types: collections.Counter[str] = collections.Counter()
    stamps: list[int] = []
    undecodable = 0
    with run.bar("decoding journal entries", len(flat)) as bar:
        for index, item in enumerate(flat):
            row: dict[str, Any] = {
                "index": index,
                "persistence_id": item.persistence_id,
                "sequence_nr": item.sequence_nr,
                "manifest": item.manifest,
                "deleted": item.deleted,
                "bytes": len(item.payload),
            }
            if item.tags:
                row["tags"] = list(item.tags)
            if item.manifest == ENTRY_MANIFEST:
                try:
                    entry = decode_entry(
                        item.payload, source=str(path), sequence_nr=item.sequence_nr
                    )
                except JournalDecodeError as exc:
                    undecodable += 1
                    row["error"] = str(exc)
                else:
                    entry_types[type(entry).__name__] += 1
                    stamp = getattr(entry, "ts_micros", None)
                    if isinstance(stamp, int):
                        stamps.append(stamp)
                    row["entry"] = {"type": type(entry).__name__} | {
                        name: getattr(entry, name) for name in entry.__slots__
                    }
            rows.append(row)
            bar.advance()
    summary: dict[str, Any] = {
        "persistence_ids": {
            pid: {
                "messages": len(items),
                "deleted": sum(1 for item in items if item.deleted),
                "last_sequence_nr": items[-1].sequence_nr if items else 0,
            }
            for pid, items in sorted(streams.items())
        },
        "messages": len(flat),
        "entry_types": dict(sorted(entry_types.items())),
        "undecodable_entries": undecodable,
        "time_range_us": [min(stamps), max(stamps)] if stamps else None,
        "bytes": len(data),
        "torn_tail": None
        if scan.torn_offset is None
        else {"offset": scan.torn_offset, "dropped_bytes": len(data) - scan.good_end},
    }
    return Inspection(summary, len(rows), lambda a, b: rows[a:b], "messages")


def inspect_records(path: Path, run: Run) -> Inspection:
    records = journal_records_file(path)
    seqs = [record.journal_seq for record in records]
    summary: dict[str, Any] = {
        "records": len(records),
        "record_kinds": _counts(record.record_kind.value for record in records),
        "payload_types": _counts(type(record.payload).__name__ for record in records),
        "journal_seq_range": [min(seqs), max(seqs)] if seqs else None,
        "last_journal_seq": seqs[-1] if seqs else None,
        "schema_versions": _counts(record.journal_schema_version for record in records),
        "content_refs": sum(len(record.content_refs) for record in records),
    }

    def fetch(start: int, stop: int) -> list[dict[str, Any]]:
        out = []
        for offset, record in enumerate(records[start:stop]):
            plain = jsonable(record)
            plain["payload"] = {"type": type(record.payload).__name__, **jsonable(record.payload)}
            out.append({"index": start + offset, **plain})
        return out

    return Inspection(summary, len(records), fetch)


def inspect_result(path: Path, run: Run) -> Inspection:
    result = load_result(path)
    summary: dict[str, Any] = {
        "mode": result.mode.value,
        "status": result.status.value,
        "resume_allowed": result.resume_allowed,
        "latest_journal_seq": result.latest_journal_seq,
        "terminal_status": result.terminal_status,
        "next_loop_state": result.next_loop_state,
        "repairs_needed": _counts(repair.kind.value for repair in result.repair_needed),
        "unsafe_pending_side_effects": len(result.unsafe_pending_side_effects),
        "missing_content_refs": list(result.missing_content_refs),
        "output_delivery_repairs": len(result.output_delivery_repairs),
        "latest_checkpoint": None
        if result.latest_checkpoint is None
        else result.latest_checkpoint.checkpoint_id,
    }
    rows = [
        {"index": index, **jsonable(repair)} for index, repair in enumerate(result.repair_needed)
    ]
    return Inspection(summary, len(rows), lambda a, b: rows[a:b], "repairs")


# --------------------------------------------------------------------------- store


def store_rows(root: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Every stored recording under ``root`` (sorted by folder, then name), and the
    folders whose manifest cannot be read."""
    from pytest_replay.store import MANIFEST_NAME, ReplayStore, StoreCorrupted

    store = ReplayStore(root)
    rows: list[dict[str, Any]] = []
    unreadable: list[str] = []
    for folder, _quiet in store.iter_manifests():
        try:
            manifest = store.load_manifest(folder)
        except StoreCorrupted as exc:
            unreadable.append(str(exc))
            continue
        if manifest is None:  # removed between the walk and the read
            unreadable.append(f"'{folder / MANIFEST_NAME}' disappeared while reading")
            continue
        for name, entry in sorted(manifest.recordings.items()):
            file = store.live_folder(folder) / entry.file
            try:
                size: int | None = file.stat().st_size
            except OSError:
                size = None
            rows.append(
                {
                    "nodeid": manifest.nodeid,
                    "name": name,
                    "kind": entry.kind,
                    "records": entry.records,
                    "bytes": size,
                    "file": str(file.relative_to(root)) if file.is_relative_to(root) else str(file),
                }
            )
    return rows, unreadable


def inspect_store(path: Path, run: Run) -> Inspection:
    rows, unreadable = store_rows(path)
    summary: dict[str, Any] = {
        "tests": len({row["nodeid"] for row in rows}),
        "recordings": len(rows),
        "kinds": _counts(row["kind"] for row in rows),
        "bytes": sum(row["bytes"] or 0 for row in rows),
        "missing_files": sum(1 for row in rows if row["bytes"] is None),
        "unreadable_manifests": unreadable,
    }
    indexed = [{"index": index, **row} for index, row in enumerate(rows)]
    return Inspection(summary, len(indexed), lambda a, b: indexed[a:b], "recordings")


def inspect_manifest(path: Path, run: Run) -> Inspection:
    """One ``manifest.json``: its test and each recording it lists."""
    from pytest_replay.formats.manifest import MANIFEST

    manifest = MANIFEST.read(path)
    entries = MANIFEST.records(manifest)
    summary: dict[str, Any] = {
        "nodeid": manifest.nodeid,
        "plugin_version": manifest.plugin_version,
        "recordings": len(entries),
        "kinds": _counts(entry.kind for _name, entry in entries),
        "bytes": sum(max(entry.size, 0) for _name, entry in entries),
    }
    rows = [MANIFEST.item(index, entry) for index, entry in enumerate(entries)]
    return Inspection(summary, len(rows), lambda a, b: rows[a:b], "recordings")


def inspect_kind_file(path: Path, kind_name: str, manifest: bool = True) -> Inspection:
    """A stored recording of a kind without a magic number of its own: ``data`` values
    (one record per leaf, with its key path), replication traces (one record per event),
    any other kind its size and record count. ``manifest=False`` reads the file's bytes
    alone (textconv), not the manifest beside it."""
    kind = formats.kind_registry().get(kind_name)
    data = read_bounded(path, f"{kind_name} recording")
    count = count_checked(path, kind, data)
    summary: dict[str, Any] = {
        "kind": kind.name,
        "kind_version": kind.version,
        "bytes": len(data),
        "records": count,
    }
    entry = manifest_entry(path) if manifest else None
    if entry is not None:
        summary["manifest"] = {
            "nodeid": entry[0],
            "records": entry[1].records,
            "version": entry[1].version,
            "digest": entry[1].digest,
        }
    if kind.name == "data":
        from pytest_replay.formats.data import DATA

        leaves = DATA.records(DATA.decode(data, str(path)))
        rows = [DATA.item(index, leaf) for index, leaf in enumerate(leaves)]
        summary["leaves"] = len(rows)
        return Inspection(summary, len(rows), lambda a, b: rows[a:b], "leaves")
    if kind.name == "replication":
        from pytest_replay.formats import format_named

        # The kind checked the trace (schedule included) above; the format gives its events.
        trace = format_named("replication-trace")
        events = trace.records(trace.read(path))
        summary["events"] = len(events)
        names = ("time_ms", "kind", "node", "peer", "attrs")

        def fetch(start: int, stop: int) -> list[dict[str, Any]]:
            return [
                {"index": start + i, **dict(zip(names, event, strict=True))}
                for i, event in enumerate(events[start:stop])
            ]

        return Inspection(summary, len(events), fetch, "events")
    return Inspection(summary, 0, lambda a, b: [])
