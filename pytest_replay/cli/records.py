"""Record-level text shared by the ``inspect``, ``diff`` and ``textconv`` verbs: one record
on one line, a VRRL record as a mapping, a reducer result loaded from either encoding,
a decoding error reworded to name the file, and the manifest entry of a stored file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pytest_replay.cli.common import CorruptInput, jsonable, read_bounded

__all__ = [
    "count_checked",
    "load_result",
    "manifest_entry",
    "record_line",
    "ring_record",
    "show",
]


def show(value: Any) -> str:
    """A summary value on one line: nested values as compact JSON, ``None`` as ``none``."""
    plain = jsonable(value)
    if isinstance(plain, (dict, list)):
        return json.dumps(plain, ensure_ascii=False, separators=(", ", ": "))
    return "none" if plain is None else str(plain)


def record_line(item: dict[str, Any]) -> str:
    """One record on one line: ``#index key=value ...`` (nested values as compact JSON)."""
    parts = []
    for key, value in item.items():
        if key == "index":
            continue
        plain = jsonable(value)
        if isinstance(plain, (dict, list)) or (
            isinstance(plain, str) and (not plain or any(c.isspace() for c in plain))
        ):
            shown = json.dumps(plain, ensure_ascii=False, separators=(",", ":"))
        else:
            shown = "none" if plain is None else str(plain)
        parts.append(f"{key}={shown}")
    prefix = f"#{item['index']} " if "index" in item else ""
    return prefix + " ".join(parts)


def ring_record(index: int, row: Any) -> dict[str, Any]:
    """One VRRL record as a mapping (failure evidence under ``failure`` when present)."""
    from pytest_replay.ringlog import ReplayFailureClass

    item: dict[str, Any] = {
        "index": index,
        "timestamp_ns": int(row["timestamp_ns"]),
        "slot_idx": int(row["slot_idx"]),
        "tenant_id": int(row["tenant_id"]),
        "opcode": int(row["opcode"]),
        "args": [int(v) for v in row["args"].tolist()],
        "epoch": int(row["epoch"]),
    }
    words = (
        int(row["slot_status"]),
        int(row["failure_class"]),
        int(row["backend_code"]),
        int(row["output_digest"]),
    )
    if any(words):
        item["failure"] = {
            "slot_status": words[0],
            "failure_class": ReplayFailureClass.decode(words[1]).name.lower(),
            "backend_code": words[2],
            "output_digest": f"{words[3]:016x}",
        }
    return item


def load_result(path: Path) -> Any:
    """A reducer result from ``.jreduce`` (msgpack) or JSON."""
    from pytest_replay.journal import result_from_json, result_from_msgpack

    data = read_bounded(path, "reducer result")
    if data.lstrip()[:1] == b"{":
        return result_from_json(data, str(path))
    return result_from_msgpack(data, str(path))


def count_checked(path: Path, kind: Any, data: bytes) -> int:
    """``kind.count(data)``, with a decoding error reworded to name ``path``."""
    from pytest_replay.errors import ReplayError, split_fix

    try:
        count: int = kind.count(data)
    except (ReplayError, ValueError) as exc:
        detail, fix = split_fix(str(exc))
        # The kind's decoder knew the bytes only as "recording": the path is said once, above.
        detail = detail.replace(" 'recording'", "").removeprefix("recording: ")
        detail = detail.replace("recording is not", "it is not")
        raise CorruptInput(
            f"'{path}' does not decode as a recording of kind '{kind.name}' "
            f"({kind.extension}): {detail}",
            (fix or "").rstrip(".") or "re-record it (pytest --replay-record)",
        ) from None
    return count


def manifest_entry(path: Path) -> tuple[str, Any] | None:
    """(node id, manifest entry) of ``path`` when its folder's manifest lists it."""
    from pytest_replay.store import ReplayStore

    manifest = ReplayStore(path.parent).load_manifest_quietly(path.parent)
    if manifest is None:
        return None
    for entry in manifest.recordings.values():
        if entry.file == path.name:
            return manifest.nodeid, entry
    return None
