"""The recording store: where each test's recordings live, their manifests, and how a
test's recordings are committed, read back and recovered.

Layout (docs/plugin.md): by default a store sits beside each test module's folder, one
folder per module stem and test::

    <test dir>/__replay__/<module stem>/<test name>[<param id>]/<name>.<ext>
    <test dir>/__replay__/<module stem>/<test name>[<param id>]/manifest.json

A central store (ini ``replay_dir``, ``--replay-dir``) mirrors the test file paths
relative to rootdir instead: ``<replay_dir>/<path/to/test_x.py>/<test name>/``.
Every path component is made safe by :func:`safe_component`: nothing escapes the store,
two different names never share a folder (also on case-insensitive file systems), and
the mapping depends on nothing but the name.

Nothing below a store root is followed through a symbolic link or opened unless it is a
regular file. A test's recordings are committed as one folder: written and fsynced
under ``.<test>.tmp`` beside the live folder, then swapped in with two renames (the old
folder is kept as ``.<test>.old`` until the new one is in place), all under the store's
lock (:mod:`pytest_replay._lock`). Whenever the process dies, a reader finds the old
recording or the new one, and the next writer finishes or undoes the swap.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import blake3

from pytest_replay import _fs
from pytest_replay._lock import DEFAULT_TIMEOUT, LOCK_NAME, StoreLocked, store_lock
from pytest_replay.errors import ReplayError, StoreError

__all__ = [
    "COMMIT_FAULT_ENV",
    "MANIFEST_FORMAT",
    "MANIFEST_NAME",
    "STORE_DIR_NAME",
    "InvalidRecordingName",
    "Manifest",
    "ManifestEntry",
    "ReplayStore",
    "StoreCorrupted",
    "StoreError",
    "StoreLocked",
    "StoreUnsafe",
    "check_extension",
    "digest_bytes",
    "leftover_of",
    "part_name",
    "safe_component",
]

MANIFEST_NAME: Final = "manifest.json"
#: 2 added each part's size (checked before the part is read).
MANIFEST_FORMAT: Final = 2
#: The folder that holds the recordings of the test modules beside it.
STORE_DIR_NAME: Final = "__replay__"
MAX_MANIFEST_BYTES: Final = 16 * 1024 * 1024
#: Test-only fault injection: "die:<step>" kills the process (SIGKILL) right after that
#: step of a commit, "trace:<file>" appends every step's name to <file>.
COMMIT_FAULT_ENV: Final = "PYTEST_REPLAY_COMMIT_FAULT"
_TMP: Final = ".tmp"
_OLD: Final = ".old"
_LEFTOVER = re.compile(r"\.(.+)\.(tmp|old)")
_PLAIN = re.compile(r"[a-z0-9_\-\[\]][a-z0-9_.\-\[\]]*")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-\[\]]")
# What safe_component(name) + extension can produce: the only part names a store holds.
_PART = re.compile(r"[A-Za-z0-9_\-\[\]][A-Za-z0-9_.\-\[\]~]{0,199}")
_EXTENSION = re.compile(r"\.[a-z0-9][a-z0-9_\-]{0,15}")
_DIGEST = re.compile(r"[0-9a-f]{64}")
_RESERVED_SUFFIXES: Final = (_TMP, _OLD, LOCK_NAME)
_MAX_PLAIN: Final = 96
_PREFIX: Final = 48
_WINDOWS_RESERVED: Final = frozenset(
    ["con", "prn", "aux", "nul"] + [f"com{i}" for i in range(10)] + [f"lpt{i}" for i in range(10)]
)


class StoreCorrupted(StoreError, AssertionError):
    """A stored recording or manifest does not match its digest or cannot be read."""


class StoreUnsafe(StoreCorrupted):
    """A symbolic link, FIFO, device or socket stands where the store expects a folder or
    a regular file: it is never followed, read, written through or deleted."""


class InvalidRecordingName(StoreError, ValueError):
    """A recording name or kind extension that would not map to a part file of its own."""


def digest_bytes(data: bytes | bytearray | memoryview) -> str:
    """The BLAKE3 hex digest the manifest keeps for each file."""
    return blake3.blake3(bytes(data)).hexdigest()


def safe_component(name: str) -> str:
    """A file-system-safe, injective, platform-stable form of one path component.

    Plain names (lowercase letters, digits, ``_ - . [ ]``, not starting with a
    dot, at most 96 characters, not a Windows device name) are kept as they
    are. Anything else becomes a readable prefix plus ``~`` plus a hash of the
    whole name; ``~`` never occurs in a plain name, so the two families never
    collide, and uppercase forces the hashed form so that names differing only
    in case stay apart on case-insensitive file systems.

    >>> safe_component("test_add[1-2]")
    'test_add[1-2]'
    >>> safe_component("test_path[a/../b]")
    'test_path[a_.._b]~55aab8989541a643'
    """
    if (
        _PLAIN.fullmatch(name)
        and len(name) <= _MAX_PLAIN
        and not name.endswith(".")
        and name.split(".")[0] not in _WINDOWS_RESERVED
    ):
        return name
    prefix = _UNSAFE.sub("_", name)[:_PREFIX].lstrip(".").rstrip(".") or "_"
    return f"{prefix}~{blake3.blake3(name.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}"


# --------------------------------------------------------------------------- names


def check_extension(extension: str) -> None:
    """Refuse a kind extension other than one dot and 1-16 lowercase letters, digits,
    ``_`` or ``-``, or one a store reserves (``.tmp``, ``.old``, ``.lock``)."""
    if not _EXTENSION.fullmatch(extension) or extension in _RESERVED_SUFFIXES:
        raise InvalidRecordingName(
            f"extension {extension!r} is not a plain extension (a dot, then 1-16 lowercase "
            "letters, digits, '_' or '-'; not .tmp, .old or .lock)",
            fix="pass e.g. extension='.jrnl'.",
        )


def check_part_file(file: str) -> None:
    """Refuse a part file name a store could not hold next to its manifest."""
    stem = file.split(".", 1)[0].lower()
    if not _PART.fullmatch(file) or stem == "manifest" or file.endswith(_RESERVED_SUFFIXES):
        raise InvalidRecordingName(
            f"{file!r} is not a recording file name (reserved, or outside the fixed pattern "
            "of safe_component(name) + extension)",
            fix="name the recording something other than 'manifest'.",
        )


def part_name(name: str, extension: str) -> str:
    """The file that holds recording ``name`` of a kind with ``extension``."""
    check_extension(extension)
    lowered = name.lower()
    if (
        lowered == "manifest"
        or lowered.startswith("manifest.")
        or name.endswith(_RESERVED_SUFFIXES)
    ):
        raise InvalidRecordingName(
            f"recording name {name!r} is reserved by the store (manifest, .tmp, .old, .lock)",
            fix="give the recording another name.",
        )
    file = safe_component(name) + extension
    check_part_file(file)
    return file


def leftover_of(name: str) -> str | None:
    """The test folder a ``.<test>.tmp`` / ``.<test>.old`` leftover belongs to, else None."""
    found = _LEFTOVER.fullmatch(name)
    return found.group(1) if found else None


def _folder_parts(nodeid: str, beside_module: bool) -> list[str]:
    """Folder components of a test (made safe): its file path parts, then the test name.

    Beside the module (``__replay__``) the file is named by its stem.
    """
    path, _, rest = nodeid.partition("::")
    # A class-based test is "Class.test"; identifiers hold no dots, so this is injective.
    # Only the names are joined: a parameter id may hold "::" and "." of its own
    # ("test[std::string]" and "test[std.string]" must stay two folders).
    names, bracket, params = rest.partition("[")
    name = names.replace("::", ".") + bracket + params if rest else "__module__"
    files = [part for part in path.split("/") if part]
    if beside_module and len(files) == 1 and files[0].endswith(".py"):
        files = [files[0][: -len(".py")]]
    return [safe_component(part) for part in (*files, name)]


# --------------------------------------------------------------------------- manifest


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One stored recording as the manifest describes it. ``size`` is filled in by
    :meth:`ReplayStore.write_test` from the bytes it stores."""

    kind: str
    file: str
    version: int
    records: int
    digest: str
    meta: Mapping[str, Any] = field(default_factory=dict)
    size: int = -1

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "file": self.file,
            "version": self.version,
            "records": self.records,
            "digest": self.digest,
            "size": self.size,
            "meta": dict(self.meta),
        }


class _Bad(ValueError):
    """One field of a manifest is wrong (internal: becomes a StoreCorrupted)."""

    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(f"field '{field_name}' {problem}")


@dataclass(frozen=True, slots=True)
class Manifest:
    """The manifest of one test folder."""

    nodeid: str
    plugin_version: str
    recordings: Mapping[str, ManifestEntry]

    def encode(self) -> bytes:
        body = {
            "format": MANIFEST_FORMAT,
            "nodeid": self.nodeid,
            "plugin_version": self.plugin_version,
            "recordings": {name: e.to_json() for name, e in sorted(self.recordings.items())},
        }
        return (json.dumps(body, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()

    @classmethod
    def decode(cls, data: bytes, path: Path) -> Manifest:
        __tracebackhide__ = True
        try:
            return cls._decode(data)
        except _Bad as exc:
            problem = str(exc)
        # RecursionError: JSON nested past the parser's depth.
        except (ValueError, RecursionError) as exc:
            problem = f"is not JSON ({exc})"
        raise StoreCorrupted(
            f"manifest '{path}' cannot be read: {problem}",
            fix="re-record this test (pytest --replay-record) or restore the file.",
        )

    @classmethod
    def _decode(cls, data: bytes) -> Manifest:
        body = json.loads(data)
        if type(body) is not dict:
            raise _Bad("(top level)", f"is {type(body).__name__}, not an object")
        found = body.get("format")
        if found != MANIFEST_FORMAT:
            older = " (written by an earlier pytest_replay)" if found == 1 else ""
            raise _Bad("format", f"is {found!r}, not {MANIFEST_FORMAT}{older}")
        raw = body.get("recordings")
        if type(raw) is not dict:
            raise _Bad("recordings", "is missing or not an object")
        recordings = {name: _decode_entry(name, e) for name, e in raw.items()}
        files = [entry.file for entry in recordings.values()]
        if len(set(files)) != len(files):
            raise _Bad("recordings", "lists one file for two recordings")
        return cls(_text(body, "nodeid"), _text(body, "plugin_version"), recordings)


def _text(body: dict[str, Any], key: str, where: str = "") -> str:
    value = body.get(key)
    if type(value) is not str:
        raise _Bad(where + key, f"is {type(value).__name__}, not a string")
    return value


def _count(body: dict[str, Any], key: str, where: str) -> int:
    value = body.get(key)
    if type(value) is not int or value < 0:
        raise _Bad(where + key, f"is {value!r}, not a non-negative integer")
    return value


def _decode_entry(name: str, body: Any) -> ManifestEntry:
    where = f"recordings.{name}."
    if type(body) is not dict or not name:
        raise _Bad(where.rstrip("."), "is not a named object")
    file = _text(body, "file", where)
    # The file is read, replaced and pruned next to the manifest: never anywhere else.
    try:
        check_part_file(file)
    except InvalidRecordingName:
        raise _Bad(where + "file", f"is {file!r}, not a recording file name") from None
    if not file.startswith(safe_component(name) + "."):
        raise _Bad(where + "file", f"is {file!r}, not a file of recording {name!r}")
    digest = _text(body, "digest", where)
    if not _DIGEST.fullmatch(digest):
        raise _Bad(where + "digest", f"is {digest[:80]!r}, not a BLAKE3 hex digest")
    meta = body.get("meta", {})
    if type(meta) is not dict:
        raise _Bad(where + "meta", f"is {type(meta).__name__}, not an object")
    # The meta keys every kind reads: a wrong type would surface as a raw TypeError later.
    volatile = meta.get("volatile", [])
    if type(volatile) is not list or not all(type(name) is str for name in volatile):
        raise _Bad(where + "meta.volatile", f"is {volatile!r}, not a list of field names")
    if "appended" in meta:
        _count(meta, "appended", where + "meta.")
    return ManifestEntry(
        kind=_text(body, "kind", where),
        file=file,
        version=_count(body, "version", where),
        records=_count(body, "records", where),
        digest=digest,
        meta=meta,
        size=_count(body, "size", where),
    )


# --------------------------------------------------------------------------- the store


def _step(name: str) -> None:
    """A commit step: the fault-injection tests die or trace here."""
    fault = os.environ.get(COMMIT_FAULT_ENV)
    if not fault:
        return
    action, _, where = fault.partition(":")
    if action == "trace":
        with open(where, "a", encoding="utf-8") as fh:
            fh.write(name + "\n")
    elif action == "die" and where == name:
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


def _unsafe(exc: _fs.NotRegularFile) -> StoreUnsafe:
    return StoreUnsafe(
        f"{exc}, inside a recording store, which holds only real folders and regular files: "
        "pytest_replay never follows, reads, writes through or deletes anything else",
        fix="replace it with the real folder or file (restore it from version control), "
        "or remove it and re-record (pytest --replay-record).",
    )


def _sibling(folder: Path, suffix: str) -> Path:
    return folder.with_name(f".{folder.name}{suffix}")


class ReplayStore:
    """The store rooted at ``root``: ``<test dir>/__replay__`` or a central ``replay_dir``.

    Writers (:meth:`write_test`, :meth:`remove_test`, :meth:`recover`) hold the store's
    lock, waiting up to ``lock_timeout`` seconds; readers take none.
    """

    def __init__(self, root: Path, lock_timeout: float = DEFAULT_TIMEOUT) -> None:
        self.root = root
        self.lock_timeout = lock_timeout
        #: Test folders whose interrupted commit a writer of this object finished or undid.
        self.recovered: list[Path] = []
        # Once the lock timed out, later writes fail at once instead of waiting again each.
        self._locked_out: str | None = None

    @property
    def beside_module(self) -> bool:
        return self.root.name == STORE_DIR_NAME

    def test_dir(self, nodeid: str) -> Path:
        """The folder that holds the recordings of the test ``nodeid``."""
        return self.root.joinpath(*_folder_parts(nodeid, self.beside_module))

    # -- reading

    def _check_chain(self, folder: Path) -> bool:
        """Whether ``folder`` exists, every component below the root a real folder."""
        try:
            relative = folder.relative_to(self.root)
        except ValueError:
            relative, current = Path(), folder  # a folder outside the root: itself only
        else:
            current = self.root
        try:
            if not os.path.isdir(current):
                return False
            for part in relative.parts:
                current = current / part
                if not _fs.real_dir(current):
                    return False
        except _fs.NotRegularFile as exc:
            raise _unsafe(exc) from None
        return True

    def _live(self, folder: Path) -> Path | None:
        """The folder that holds ``folder``'s recording: itself, or the ``.old`` copy a
        killed commit left (read as the recording until a writer restores it)."""
        __tracebackhide__ = True
        if not self._check_chain(folder.parent):
            return None
        try:
            if _fs.real_dir(folder):
                return folder
            old = _sibling(folder, _OLD)
            return old if _fs.real_dir(old) else None
        except _fs.NotRegularFile as exc:
            raise _unsafe(exc) from None

    def live_folder(self, folder: Path) -> Path:
        """Where the recording of the test folder ``folder`` is read from: the folder, or
        the ``.old`` copy an interrupted commit left (``folder`` itself when neither exists)."""
        return self._live(folder) or folder

    def load_manifest(self, folder: Path) -> Manifest | None:
        """The manifest of the test folder ``folder``, checked (None when there is none)."""
        __tracebackhide__ = True
        live = self._live(folder)
        if live is None:
            return None
        path = live / MANIFEST_NAME
        try:
            data = _fs.read_regular(path, MAX_MANIFEST_BYTES)
        except FileNotFoundError:
            return None
        except _fs.NotRegularFile as exc:
            raise _unsafe(exc) from None
        except (ValueError, OSError) as exc:
            raise StoreCorrupted(
                f"manifest '{path}' cannot be read: {exc}",
                fix="check its permissions, or restore it from version control.",
            ) from None
        manifest = Manifest.decode(data, path)
        beside = folder.parent.parent.name == STORE_DIR_NAME
        expected = _folder_parts(manifest.nodeid, beside)
        if list(folder.parts[-len(expected) :]) != expected:
            other = _folder_parts(manifest.nodeid, not beside)
            if not beside and list(folder.parts[-len(other) :]) == other:
                # The layout is read from the store folder's name: a renamed copy of a
                # default store (`cp -r __replay__ backup`) is laid out as one.
                root = folder.parents[len(other) - 1]
                raise StoreCorrupted(
                    f"its folder is laid out as a '{STORE_DIR_NAME}' store "
                    f"(beside the test modules), but the store folder is named '{root.name}', "
                    f"not '{STORE_DIR_NAME}'",
                    where=f"manifest '{path}'",
                    fix=f"keep a copy's folder name '{STORE_DIR_NAME}' "
                    f"(e.g. old/{STORE_DIR_NAME}), or record into a central replay_dir.",
                )
            raise StoreCorrupted(
                f"manifest '{path}' cannot be read: field 'nodeid' is {manifest.nodeid!r}, a "
                f"test whose recordings belong in '{Path(*expected)}', not in this folder "
                "(copied or moved by hand?)",
                fix="move the folder back, or re-record (pytest --replay-record) and delete "
                "this one.",
            )
        return manifest

    def load_manifest_quietly(self, folder: Path) -> Manifest | None:
        try:
            return self.load_manifest(folder)
        except StoreCorrupted:
            return None

    def read_checked(
        self, folder: Path, entry: ManifestEntry, count: Callable[[bytes], int] | None = None
    ) -> bytes:
        """The bytes of a stored recording, after checking their size (before reading), their
        digest and, given the kind's ``count``, their record count against the manifest."""
        __tracebackhide__ = True
        path = self.live_folder(folder) / entry.file
        try:
            data = _fs.read_regular(path, entry.size)
        except _fs.NotRegularFile as exc:
            raise _unsafe(exc) from None
        except ValueError as exc:
            raise StoreCorrupted(
                f"recording file '{path}' is larger than its manifest says ({exc}; field "
                f"'size' is {entry.size}); refused before reading it",
                fix="restore it from version control, or re-record this test.",
            ) from None
        except OSError as exc:
            raise StoreCorrupted(
                f"recording file missing or unreadable: '{path}' ({exc})",
                fix="re-record this test (pytest --replay-record) or restore the file.",
            ) from None
        if len(data) != entry.size or digest_bytes(data) != entry.digest:
            raise StoreCorrupted(
                f"recording file corrupted: '{path}' does not match the "
                f"{'digest' if len(data) == entry.size else 'size'} in its manifest "
                "(edited by hand, damaged, or an interrupted record run)",
                fix="restore it from version control, or re-record this test "
                "(pytest --replay-record) if the change is intended.",
            )
        if count is not None:
            try:
                found: int | None = count(data)
            except (ReplayError, ValueError):
                found = None
            if found != entry.records:
                raise StoreCorrupted(
                    f"recording file '{path}' holds {found} records, but field 'records' of "
                    f"its manifest says {entry.records}",
                    fix="restore the manifest from version control, or re-record this test "
                    "(pytest --replay-record).",
                )
        return data

    def iter_manifests(self) -> Iterator[tuple[Path, Manifest | None]]:
        """Every test folder under the store (sorted), with its manifest (None if
        unreadable); a folder whose commit was interrupted is named by its live name."""
        if not os.path.isdir(self.root):
            return
        for folder, entries in _fs.walk_sorted(self.root):
            name = os.path.basename(folder)
            if name.startswith(".") and folder != os.fspath(self.root):
                owner = leftover_of(name)
                if owner is None or not name.endswith(_OLD):
                    continue
                live = Path(os.path.dirname(folder), owner)
                if os.path.lexists(live):
                    continue
            else:
                live = Path(folder)
            if any(e.name == MANIFEST_NAME for e in entries):
                yield live, self.load_manifest_quietly(live)

    # -- writing

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """The store's writer lock (the store root is created if needed; the root itself may
        be a link, e.g. to another disk, but nothing below it)."""
        if self._locked_out is not None:
            raise StoreLocked(self._locked_out)
        if not os.path.isdir(self.root):
            try:
                _fs.make_dirs(self.root.parent, self.root)
            except _fs.NotRegularFile as exc:
                raise _unsafe(exc) from None
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(store_lock(self.root, self.lock_timeout))
            except StoreLocked as exc:
                self._locked_out = str(exc)
                raise
            yield

    def write_test(self, folder: Path, manifest: Manifest, files: Mapping[str, bytes]) -> None:
        """Commit a test's recordings as one unit (see the module docstring).

        Nothing changes when the stored folder already holds these bytes. A failure (a
        full disk) leaves the test's previous recordings as they were. A test that
        recorded nothing keeps no folder (and loses any it had).
        """
        for file in files:
            check_part_file(file)
        listed = {entry.file for entry in manifest.recordings.values()}
        if listed != set(files):
            raise StoreError(
                f"the manifest of '{folder}' lists {sorted(listed)} but the files are "
                f"{sorted(files)}",
                fix="report this as a pytest_replay bug.",
            )
        sized = {
            name: dataclasses.replace(entry, size=len(files[entry.file]))
            for name, entry in manifest.recordings.items()
        }
        encoded = dataclasses.replace(manifest, recordings=sized).encode()
        with self.locked():
            try:
                _fs.make_dirs(self.root, folder.parent)
            except _fs.NotRegularFile as exc:
                raise _unsafe(exc) from None
            self._recover_folder(folder)
            ours = self._owned_files(folder)
            if ours is not None and _holds(folder, ours, encoded, files):
                return
            if files:
                self._commit(folder, ours, {**files, MANIFEST_NAME: encoded})
            elif ours is not None:
                self._retire(folder, ours)
                self._remove_empty_parents(folder)

    def remove_test(self, folder: Path) -> None:
        """Delete a test folder (only what the store wrote) and the empty folders above
        it, up to the store root."""
        with self.locked():
            self._recover_folder(folder)
            ours = self._owned_files(folder)
            if ours is not None:
                self._retire(folder, ours)
            self._remove_empty_parents(folder)

    def recover(self) -> list[Path]:
        """Finish or undo every interrupted commit in the store; the test folders concerned."""
        if not os.path.isdir(self.root):
            return []
        owners: set[Path] = set()
        for folder, entries in _fs.walk_sorted(self.root):
            for entry in entries:
                live = leftover_of(entry.name)
                if live is not None and entry.is_dir(follow_symlinks=False):
                    owners.add(Path(folder, live))
        if not owners:
            return []
        before = len(self.recovered)
        with self.locked():
            for owner in sorted(owners):
                self._recover_folder(owner)
        return self.recovered[before:]

    def _recover_folder(self, folder: Path) -> None:
        """Under the lock: put back a ``.old`` a killed commit left without a live folder,
        drop it when the new folder is in place, and drop a half-written ``.tmp``."""
        old, tmp = _sibling(folder, _OLD), _sibling(folder, _TMP)
        try:
            found = False
            if _fs.real_dir(old):
                found = True
                if _fs.real_dir(folder) or _fs.entry_kind(old / MANIFEST_NAME) is None:
                    _drop(old)  # the new folder is in; or the old one was half dropped
                else:
                    os.rename(old, folder)
                    _fs.fsync_dir(folder.parent)
            if _fs.real_dir(tmp):
                found = True
                _drop(tmp)
        except _fs.NotRegularFile as exc:
            raise _unsafe(exc) from None
        if found:
            self.recovered.append(folder)

    def _owned_files(self, folder: Path) -> set[str] | None:
        """The files of ``folder`` the store wrote (None when there is no folder); refuses
        a folder holding anything else, which it must neither delete nor leave behind."""
        try:
            if not _fs.real_dir(folder):
                return None
        except _fs.NotRegularFile as exc:
            raise _unsafe(exc) from None
        manifest = self.load_manifest_quietly(folder)
        names = sorted(os.listdir(folder))
        if manifest is not None:
            known = {entry.file for entry in manifest.recordings.values()} | {MANIFEST_NAME}
        else:  # a damaged manifest: the names a store writes are still ours
            known = {name for name in names if name == MANIFEST_NAME or _is_part(name)}
        ours: set[str] = set()
        for name in names:
            kind = _fs.entry_kind(folder / name)
            if kind == "a regular file" and name in known:
                ours.add(name)
            elif kind is not None:
                error = StoreError if kind in ("a regular file", "a folder") else StoreUnsafe
                raise error(
                    f"'{folder / name}' is {kind} the store did not write, in the recording "
                    "folder of a test; pytest_replay neither deletes it nor leaves it behind",
                    fix="move it out of the folder, then record again.",
                )
        return ours

    def _commit(self, folder: Path, ours: set[str] | None, files: Mapping[str, bytes]) -> None:
        tmp = _sibling(folder, _TMP)
        os.mkdir(tmp)
        try:
            for name, data in files.items():  # the manifest last
                _write_new(tmp / name, data)
                _step(f"stage {name}")
            _fs.fsync_dir(tmp)
            _step("staged")
            if ours is not None:
                os.rename(folder, _sibling(folder, _OLD))
                _fs.fsync_dir(folder.parent)
                _step("retired")
        except BaseException:
            with contextlib.suppress(OSError):
                _drop(tmp)
            raise
        try:
            os.rename(tmp, folder)
        except BaseException:
            with contextlib.suppress(OSError):
                if ours is not None:
                    os.rename(_sibling(folder, _OLD), folder)
                _drop(tmp)
            raise
        _fs.fsync_dir(folder.parent)
        _step("swapped")
        if ours is not None:
            _drop(_sibling(folder, _OLD), ours)

    def _retire(self, folder: Path, ours: set[str]) -> None:
        old = _sibling(folder, _OLD)
        os.rename(folder, old)
        _fs.fsync_dir(folder.parent)
        _step("retired")
        _drop(old, ours)

    def _remove_empty_parents(self, folder: Path) -> None:
        parent = folder.parent
        while parent != self.root and self.root in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent


def _is_part(name: str) -> bool:
    try:
        check_part_file(name)
    except InvalidRecordingName:
        return False
    return True


def _write_new(path: Path, data: bytes) -> None:
    # O_EXCL | O_NOFOLLOW: a file of a fresh folder, never something already there.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags | getattr(os, "O_BINARY", 0), 0o666)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _drop(leftover: Path, names: set[str] | None = None) -> None:
    """Delete a folder the store wrote: ``names`` in it (every regular file when None,
    for a ``.tmp``/``.old`` folder only a store makes), then the folder. The manifest goes
    first: a folder killed half-deleted holds no recording a reader could take."""
    present = sorted(os.listdir(leftover), key=lambda name: name != MANIFEST_NAME)
    for name in present:
        path = leftover / name
        kind = _fs.entry_kind(path)
        if names is not None and name not in names:
            continue
        if kind != "a regular file":
            raise _fs.NotRegularFile(path, kind == "a folder", kind or "gone")
        os.unlink(path)
        _step(f"drop {name}")
    with contextlib.suppress(OSError):  # not empty: something appeared that is not ours
        os.rmdir(leftover)
        _step("dropped")


def _holds(folder: Path, ours: set[str], manifest: bytes, files: Mapping[str, bytes]) -> bool:
    """Whether ``folder`` already holds exactly these bytes (then nothing is rewritten)."""
    if ours != set(files) | {MANIFEST_NAME}:
        return False
    for name, data in ((MANIFEST_NAME, manifest), *files.items()):
        try:
            if _fs.read_regular(folder / name, len(data)) != data:
                return False
        except (OSError, ValueError):
            return False
    return True
