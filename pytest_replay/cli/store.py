"""``pytest-replay store list|prune|check [DIR]``: the recording store from outside pytest.

* ``list``: every stored recording with its kind, record count and size.
* ``prune``: recordings no collected test produces. The decision comes from pytest's
  own collection, run in-process (:mod:`pytest_replay.cli.collect`); a dry run unless
  ``--yes``, which takes the store's lock.
* ``check``: every recording against its manifest (size, digest, node id;
  ``ReplayStore.read_checked``), and the tree for links, FIFOs, devices, files the store
  did not write and interrupted commits; ``--deep`` also decodes each recording with its
  kind and compares the record count and kind version with the manifest. Exit 2 when
  there is no recording at all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_replay.cli.common import EXIT_DIFFERENT, EXIT_OK, CliError, Run
from pytest_replay.errors import render_error

__all__ = ["run_store_check", "run_store_list", "run_store_prune"]


def _store_root(path: Path) -> Path:
    if not path.exists():
        raise CliError(
            f"store '{path}' does not exist",
            "pass the store folder (by default __replay__ beside your tests), or record first "
            "with pytest --replay-record",
        )
    if not path.is_dir():
        raise CliError(f"store '{path}' is not a folder", "pass the store folder, e.g. __replay__")
    return path


def _size(n: int | None) -> str:
    return "missing" if n is None else f"{n:,} bytes"


# --------------------------------------------------------------------------- list


def run_store_list(run: Run, path: Path) -> int:
    from pytest_replay.cli.inspect import store_rows

    root = _store_root(path)
    rows, unreadable = store_rows(root)
    total = sum(row["bytes"] or 0 for row in rows)
    tests = sorted({row["nodeid"] for row in rows})
    if run.json:
        run.emit_json(
            {
                "store": str(root),
                "tests": len(tests),
                "recordings": rows,
                "bytes": total,
                "unreadable_manifests": unreadable,
            }
        )
        return EXIT_OK
    current = None
    for row in rows:
        if row["nodeid"] != current:
            current = row["nodeid"]
            run.print(current)
        run.print(
            f"  {row['name']}  kind={row['kind']}  records={row['records']}  "
            f"{_size(row['bytes'])}  ({row['file']})"
        )
    for line in unreadable:
        run.print(f"unreadable manifest: {line}")
    run.print(f"{len(rows)} recording(s) of {len(tests)} test(s) in '{root}', {total:,} bytes")
    return EXIT_OK


# --------------------------------------------------------------------------- prune


@dataclass(frozen=True, slots=True)
class _Verdict:
    folder: Path
    nodeid: str | None
    exists: bool | None
    reason: str


def run_store_prune(run: Run, path: Path, rootdir: Path | None, yes: bool) -> int:
    from pytest_replay.cli.collect import collect_store_tests
    from pytest_replay.store import ReplayStore, StoreCorrupted

    root = _store_root(path)
    tests = rootdir if rootdir is not None else root.resolve().parent
    if not tests.is_dir():
        raise CliError(f"rootdir '{tests}' is not a folder", "pass the folder your tests live in")
    found = collect_store_tests(root, tests)
    store = ReplayStore(root)
    verdicts: list[_Verdict] = []
    for folder, _quiet in store.iter_manifests():
        try:
            manifest = store.load_manifest(folder)
        except StoreCorrupted as exc:
            verdicts.append(_Verdict(folder, None, None, f"unreadable manifest, kept ({exc})"))
            continue
        if manifest is None:
            continue
        exists, reason = found.verdict(folder, manifest.nodeid)
        verdicts.append(_Verdict(folder, manifest.nodeid, exists, reason))
    gone = [v for v in verdicts if v.exists is False]
    unsure = [v for v in verdicts if v.exists is None]
    if yes and gone:
        store.recover()
        for verdict in gone:
            store.remove_test(verdict.folder)
    if run.json:
        run.emit_json(
            {
                "store": str(root),
                "rootdir": str(tests),
                "deleted": yes,
                "prune": [_verdict_json(v, root) for v in gone],
                "kept_unsure": [_verdict_json(v, root) for v in unsure],
                "kept": sum(1 for v in verdicts if v.exists),
            }
        )
        return EXIT_OK
    action = "deleted" if yes else "would delete"
    for verdict in gone:
        run.print(f"{action}: {_rel(verdict.folder, root)}  ({verdict.nodeid}: {verdict.reason})")
    for verdict in unsure:
        shown = verdict.nodeid or _rel(verdict.folder, root)
        run.print(f"kept: {shown}  ({verdict.reason})")
    kept = sum(1 for v in verdicts if v.exists)
    summary = f"{action} {len(gone)} test folder(s), kept {kept + len(unsure)}"
    if gone and not yes:
        summary += "; run again with --yes to delete them"
    run.print(summary)
    return EXIT_OK


def _rel(folder: Path, root: Path) -> str:
    try:
        return folder.relative_to(root).as_posix()
    except ValueError:
        return str(folder)


def _verdict_json(verdict: _Verdict, root: Path) -> dict[str, Any]:
    return {
        "folder": _rel(verdict.folder, root),
        "nodeid": verdict.nodeid,
        "reason": verdict.reason,
    }


# --------------------------------------------------------------------------- check


def run_store_check(run: Run, path: Path, deep: bool) -> int:
    from pytest_replay.cli.detect import kind_registry
    from pytest_replay.store import MANIFEST_NAME, ReplayStore, StoreCorrupted

    if not path.is_dir():
        raise CliError(
            f"no recordings found under '{path}' (it is not a folder)",
            "pass a store folder (__replay__ beside your tests, or your replay_dir), or record "
            "first with pytest --replay-record",
        )
    root = path
    store = ReplayStore(root)
    problems, notes, unsafe = _tree_findings(root)
    checked = 0
    folders = [folder for folder, _quiet in store.iter_manifests()]
    if not folders and not problems:
        raise CliError(
            f"no recordings found under '{path}'",
            "pass a store folder (__replay__ beside your tests, or your replay_dir), or record "
            "first with pytest --replay-record",
        )
    registry = kind_registry() if deep else None
    with run.bar("checking recordings", len(folders)) as bar:
        for folder in folders:
            bar.advance()
            live = store.live_folder(folder)
            if live / MANIFEST_NAME in unsafe:
                continue  # reported by the tree walk; reading it would report it again
            try:
                manifest = store.load_manifest(folder)
            except StoreCorrupted as exc:
                problems.append(str(exc))
                continue
            if manifest is None:
                continue
            problems.extend(_unlisted(live, manifest))
            for name, entry in sorted(manifest.recordings.items()):
                checked += 1
                if live / entry.file in unsafe:
                    continue  # a link, FIFO or device the tree walk reported
                try:
                    data = store.read_checked(folder, entry)
                except StoreCorrupted as exc:
                    problems.append(f"{manifest.nodeid} recording '{name}': {exc}")
                    continue
                if registry is None:
                    continue
                if entry.kind not in registry:
                    notes.append(
                        f"{manifest.nodeid} recording '{name}': kind '{entry.kind}' is not "
                        "known outside pytest (registered by a conftest hook?); digest checked only"
                    )
                    continue
                problem = _deep_check(registry.get(entry.kind), entry, data)
                if problem is not None:
                    problems.append(f"{manifest.nodeid} recording '{name}': {problem}")
    if run.json:
        run.emit_json(
            {
                "store": str(root),
                "recordings": checked,
                "ok": not problems,
                "problems": problems,
                "notes": notes,
            }
        )
    else:
        for line in problems:
            run.print(f"problem: {line}")
        for line in notes:
            run.print(f"note: {line}")
        verdict = "ok" if not problems else f"{len(problems)} problem(s)"
        depth = "digest and contents" if deep else "digest"
        run.print(f"checked {checked} recording(s) in '{root}' ({depth}): {verdict}")
    return EXIT_OK if not problems else EXIT_DIFFERENT


def _tree_findings(root: Path) -> tuple[list[str], list[str], set[Path]]:
    """Links, non-regular files and interrupted commits anywhere under ``root`` (problems),
    files outside any test folder (notes), and the links and non-regular files found (so
    that each is reported once, not again when its recording is read)."""
    from pytest_replay import _fs
    from pytest_replay._lock import LOCK_NAME
    from pytest_replay.store import MANIFEST_NAME, leftover_of

    problems: list[str] = []
    notes: list[str] = []
    unsafe: set[Path] = set()
    for folder, entries in _fs.walk_sorted(root):
        in_test = any(entry.name == MANIFEST_NAME for entry in entries)
        for entry in entries:
            path = Path(folder, entry.name)
            kind = _fs.entry_kind(path)
            if kind == "a folder":
                if leftover_of(entry.name) is not None:
                    problems.append(
                        f"'{path}' is left over from an interrupted record run (a reader takes "
                        "a stranded .old as the recording); the next record run of this store "
                        "restores or removes it"
                    )
            elif kind not in (None, "a regular file"):
                unsafe.add(path)
                problems.append(
                    render_error(
                        f"'{path}' is {kind}: pytest_replay never follows, reads or deletes it",
                        fix="replace it with the real file or folder, or remove it and re-record",
                    )
                )
            elif kind == "a regular file" and not in_test and entry.name != LOCK_NAME:
                notes.append(f"'{path}' is not part of any recording (not written by the store)")
    return problems, notes, unsafe


def _unlisted(folder: Path, manifest: Any) -> list[str]:
    from pytest_replay import _fs
    from pytest_replay.store import MANIFEST_NAME

    listed = {entry.file for entry in manifest.recordings.values()} | {MANIFEST_NAME}
    return [
        render_error(
            f"'{folder / name}' is not listed in its manifest (not written by the store: a "
            "record run of this test refuses until it is moved out)",
            fix="move it out of the folder",
        )
        for name in sorted(os.listdir(folder))
        if name not in listed and _fs.entry_kind(folder / name) == "a regular file"
    ]


def _deep_check(kind: Any, entry: Any, data: bytes) -> str | None:
    from pytest_replay.errors import ReplayError

    if entry.version != kind.version:
        return render_error(
            f"recorded with kind version {entry.version}, this pytest_replay reads version "
            f"{kind.version}",
            fix="re-record it (pytest --replay-record)",
        )
    try:
        count = kind.count(data)
    except (ReplayError, ValueError) as exc:
        return f"does not decode as kind '{kind.name}': {exc}"
    if count != entry.records:
        return render_error(
            f"holds {count} records but its manifest says {entry.records}",
            fix="re-record it (pytest --replay-record)",
        )
    return None
