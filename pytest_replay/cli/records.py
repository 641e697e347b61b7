"""Record-level text shared by the ``inspect``, ``diff`` and ``textconv`` verbs: one record
on one line, a reducer result loaded from either encoding, the records of a journal record
file, a decoding error reworded to name the file, and the manifest entry of a stored file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pytest_replay.cli.common import CorruptInput, jsonable, read_bounded

__all__ = [
    "count_checked",
    "journal_records_file",
    "load_result",
    "manifest_entry",
    "record_line",
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


def journal_records_file(path: Path) -> list[Any]:
    """The records of a journal record file: its frames read and checked by the format
    (:mod:`pytest_replay.formats.journal_records`), each record decoded by the journal."""
    from pytest_replay.formats import format_named
    from pytest_replay.journal.record_file import decode_record

    fmt = format_named("journal-records")
    return [
        decode_record(frame.data, str(path), frame.index, frame.offset)
        for frame in fmt.records(fmt.read(path))
    ]
