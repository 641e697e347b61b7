"""``pytest-replay store list|prune|check [DIR]``: the recording store from outside pytest.

* ``list``: every stored recording with its kind, record count and size.
* ``prune``: recordings whose test no longer exists. A test exists when its file
  does and the file (parsed, never imported) still defines its class and function;
  a parametrized test is kept while its function exists. Dry run unless ``--yes``.
* ``check``: every recording against the digest in its manifest
  (``ReplayStore.read_checked``); ``--deep`` also decodes it with its kind and
  compares the record count and kind version with the manifest.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_replay.cli.common import EXIT_DIFFERENT, EXIT_OK, CliError, Run

__all__ = ["run_store_check", "run_store_list", "run_store_prune", "test_exists"]


def _store_root(path: Path) -> Path:
    if not path.exists():
        raise CliError(
            f"store '{path}' does not exist",
            "pass the store folder (by default .replay next to your tests), or record first "
            "with pytest --replay-record",
        )
    if not path.is_dir():
        raise CliError(f"store '{path}' is not a folder", "pass the store folder, e.g. .replay")
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


def _defines(scope: list[ast.stmt], name: str) -> ast.stmt | None:
    for node in scope:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name == name:
                return node
        elif isinstance(node, ast.Assign):
            if any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                return node
        elif isinstance(node, ast.AnnAssign):
            if isinstance(node.target, ast.Name) and node.target.id == name:
                return node
        elif isinstance(node, (ast.If, ast.Try)):
            # Definitions under "if sys.version_info ..." or "try: ... except ImportError".
            inner = [*node.body, *node.orelse]
            if isinstance(node, ast.Try):
                for handler in node.handlers:
                    inner.extend(handler.body)
                inner.extend(node.finalbody)
            found = _defines(inner, name)
            if found is not None:
                return found
    return None


def test_exists(rootdir: Path, nodeid: str) -> tuple[bool | None, str]:
    """Whether the test ``nodeid`` still exists under ``rootdir``: (True, ...), (False, why)
    or (None, why) when it cannot be told without running the code."""
    file_part, sep, rest = nodeid.partition("::")
    file = rootdir / file_part
    if not file.is_file():
        return False, f"test file '{file_part}' no longer exists"
    if not sep:
        return True, "module-level recording and the module exists"
    try:
        tree = ast.parse(file.read_bytes(), filename=str(file))
    except (SyntaxError, ValueError, OSError, RecursionError, MemoryError) as exc:
        # Nesting too deep for the parser surfaces as RecursionError or MemoryError;
        # like a syntax error it says nothing about whether the test still exists.
        return None, f"'{file_part}' cannot be parsed ({type(exc).__name__}: {exc}); kept"
    parts = rest.split("::")
    function = parts[-1].split("[", 1)[0]
    scope: list[ast.stmt] = tree.body
    inherited = False
    for name in parts[:-1]:
        node = _defines(scope, name)
        if node is None:
            return False, f"class '{name}' no longer exists in '{file_part}'"
        if not isinstance(node, ast.ClassDef):
            return None, f"'{name}' in '{file_part}' is not a plain class; kept"
        inherited = inherited or bool(node.bases)
        scope = node.body
    if _defines(scope, function) is not None:
        return True, "defined"
    if inherited:
        return None, f"'{function}' may be inherited by '{parts[-2]}' in '{file_part}'; kept"
    return False, f"test function '{function}' no longer exists in '{file_part}'"


@dataclass(frozen=True, slots=True)
class _Verdict:
    folder: Path
    nodeid: str | None
    exists: bool | None
    reason: str


def run_store_prune(run: Run, path: Path, rootdir: Path | None, yes: bool) -> int:
    from pytest_replay.store import ReplayStore, StoreCorrupted

    root = _store_root(path)
    base = root.resolve().parent if rootdir is None else rootdir
    if not base.is_dir():
        raise CliError(f"rootdir '{base}' is not a folder", "pass the folder your tests live in")
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
        exists, reason = test_exists(base, manifest.nodeid)
        verdicts.append(_Verdict(folder, manifest.nodeid, exists, reason))
    gone = [v for v in verdicts if v.exists is False]
    unsure = [v for v in verdicts if v.exists is None]
    if yes:
        for verdict in gone:
            store.remove_test(verdict.folder)
    if run.json:
        run.emit_json(
            {
                "store": str(root),
                "rootdir": str(base),
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
    verb = "deleted" if yes else "would delete"
    summary = f"{verb} {len(gone)} test folder(s), kept {kept + len(unsure)}"
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

    root = _store_root(path)
    store = ReplayStore(root)
    problems: list[str] = []
    notes: list[str] = []
    checked = 0
    folders = [folder for folder, _quiet in store.iter_manifests()]
    registry = kind_registry() if deep else None
    with run.bar("checking recordings", len(folders)) as bar:
        for folder in folders:
            bar.advance()
            try:
                manifest = store.load_manifest(folder)
            except StoreCorrupted as exc:
                problems.append(str(exc))
                continue
            if manifest is None:
                continue
            listed = {entry.file for entry in manifest.recordings.values()} | {MANIFEST_NAME}
            for extra in sorted(p.name for p in folder.iterdir() if p.is_file()):
                if extra not in listed and not extra.startswith("."):
                    notes.append(
                        f"'{folder / extra}' is not listed in its manifest (left over; the next "
                        "record run of this test removes it)"
                    )
            for name, entry in sorted(manifest.recordings.items()):
                checked += 1
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


def _deep_check(kind: Any, entry: Any, data: bytes) -> str | None:
    from pytest_replay.errors import ReplayError

    if entry.version != kind.version:
        return (
            f"recorded with kind version {entry.version}, this pytest_replay reads version "
            f"{kind.version}. Fix: re-record it (pytest --replay-record)"
        )
    try:
        count = kind.count(data)
    except (ReplayError, ValueError) as exc:
        return f"does not decode as kind '{kind.name}': {exc}"
    if count != entry.records:
        return (
            f"holds {count} records but its manifest says {entry.records}. "
            "Fix: re-record it (pytest --replay-record)"
        )
    return None
