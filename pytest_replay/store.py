"""The recording store: where each test's recordings live, and their manifests.

Layout::

    <replay_dir>/<test file path relative to rootdir>/<test name>[<param id>]/<name>.<ext>
    <replay_dir>/<...same test folder...>/manifest.json

Every path component is made safe by :func:`safe_component`: nothing escapes
``replay_dir``, two different names never share a folder (also on
case-insensitive file systems), and the mapping depends on nothing but the
name. Every write goes through :mod:`pytest_replay._atomic`.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import blake3

from pytest_replay import _fs
from pytest_replay._atomic import atomic_write_many
from pytest_replay.errors import ReplayError

__all__ = [
    "MANIFEST_FORMAT",
    "MANIFEST_NAME",
    "Manifest",
    "ManifestEntry",
    "ReplayStore",
    "StoreCorrupted",
    "digest_bytes",
    "safe_component",
]

MANIFEST_NAME: Final = "manifest.json"
MANIFEST_FORMAT: Final = 1
_PLAIN = re.compile(r"[a-z0-9_\-\[\]][a-z0-9_.\-\[\]]*")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-\[\]]")
_MAX_PLAIN: Final = 96
_PREFIX: Final = 48
_WINDOWS_RESERVED: Final = frozenset(
    ["con", "prn", "aux", "nul"] + [f"com{i}" for i in range(10)] + [f"lpt{i}" for i in range(10)]
)


class StoreCorrupted(ReplayError, AssertionError):
    """A stored recording or manifest does not match its digest or cannot be read."""


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


def _test_parts(nodeid: str) -> list[str]:
    """Folder components of a test: its file path parts, then the test name."""
    path, _, rest = nodeid.partition("::")
    # A class-based test is "Class.test"; identifiers hold no dots, so this is injective.
    # Only the names are joined: a parameter id may hold "::" and "." of its own
    # ("test[std::string]" and "test[std.string]" must stay two folders).
    names, bracket, params = rest.partition("[")
    name = names.replace("::", ".") + bracket + params if rest else "__module__"
    return [*(part for part in path.split("/") if part), name]


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One stored recording as the manifest describes it."""

    kind: str
    file: str
    version: int
    records: int
    digest: str
    meta: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "file": self.file,
            "version": self.version,
            "records": self.records,
            "digest": self.digest,
            "meta": dict(self.meta),
        }


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
            body = json.loads(data)
            if type(body) is not dict or body.get("format") != MANIFEST_FORMAT:
                found = body.get("format") if type(body) is dict else type(body).__name__
                raise ValueError(f"unsupported manifest format {found!r}")
            raw = body["recordings"]
            if type(raw) is not dict:
                raise ValueError("'recordings' is not an object")
            recordings = {name: _decode_entry(name, e) for name, e in raw.items()}
            return cls(_text(body, "nodeid"), _text(body, "plugin_version"), recordings)
        # RecursionError: JSON nested past the parser's depth.
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise StoreCorrupted(
                f"manifest '{path}' cannot be read: {exc}. "
                "Fix: re-record this test (pytest --replay-record) or restore the file."
            ) from None


def _text(body: dict[str, Any], key: str) -> str:
    value = body[key]
    if type(value) is not str:
        raise ValueError(f"{key!r} is {type(value).__name__}, not a string")
    return value


def _count(body: dict[str, Any], key: str) -> int:
    value = body[key]
    if type(value) is not int or value < 0:
        raise ValueError(f"{key!r} is {value!r}, not a non-negative integer")
    return value


def _decode_entry(name: str, body: Any) -> ManifestEntry:
    if type(body) is not dict:
        raise ValueError(f"recording {name!r} is not an object")
    file = _text(body, "file")
    # The file is read, replaced and pruned next to the manifest: never anywhere else.
    if file in ("", ".", "..", MANIFEST_NAME) or "/" in file or "\\" in file or "\0" in file:
        raise ValueError(f"recording {name!r} names the file {file!r}, not a plain file name")
    meta = body.get("meta", {})
    if type(meta) is not dict:
        raise ValueError(f"recording {name!r} has meta of type {type(meta).__name__}")
    return ManifestEntry(
        kind=_text(body, "kind"),
        file=file,
        version=_count(body, "version"),
        records=_count(body, "records"),
        digest=_text(body, "digest"),
        meta=meta,
    )


class ReplayStore:
    """The store rooted at ``root`` (normally ``<rootdir>/.replay``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def test_dir(self, nodeid: str) -> Path:
        """The folder that holds the recordings of the test ``nodeid``."""
        return self.root.joinpath(*(safe_component(part) for part in _test_parts(nodeid)))

    def load_manifest(self, folder: Path) -> Manifest | None:
        __tracebackhide__ = True
        path = folder / MANIFEST_NAME
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreCorrupted(
                f"manifest '{path}' cannot be read: {exc}. Fix: check permissions."
            ) from None
        return Manifest.decode(data, path)

    def read_checked(self, folder: Path, entry: ManifestEntry) -> bytes:
        """The bytes of a stored recording, after checking them against the manifest digest."""
        __tracebackhide__ = True
        path = folder / entry.file
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise StoreCorrupted(
                f"recording file missing or unreadable: '{path}' ({exc}). "
                "Fix: re-record this test (pytest --replay-record) or restore the file."
            ) from None
        if digest_bytes(data) != entry.digest:
            raise StoreCorrupted(
                f"recording file corrupted: '{path}' does not match the digest in its manifest "
                "(edited by hand, damaged, or an interrupted record run). "
                "Fix: restore it from version control, or re-record this test "
                "(pytest --replay-record) if the change is intended."
            )
        return data

    def write_test(self, folder: Path, manifest: Manifest, files: Mapping[str, bytes]) -> None:
        """Store a test's recordings: unchanged files are left untouched, changed ones and
        then the manifest are replaced together, then files no longer listed are removed.

        A failure (a full disk) leaves the test's previous recordings as they were.
        """
        if not files and not manifest.recordings:
            # A test that recorded nothing keeps no folder (and loses any it had).
            if folder.is_dir():
                self._clear(folder)
            return
        old = self.load_manifest_quietly(folder)
        changed = {
            folder / name: data
            for name, data in sorted(files.items())
            if not (old is not None and _same_file(folder / name, data))
        }
        encoded = manifest.encode()
        manifest_path = folder / MANIFEST_NAME
        if not _same_file(manifest_path, encoded):
            changed[manifest_path] = encoded  # last: it commits the files before it
        if changed:
            atomic_write_many(changed)
        keep = set(files) | {MANIFEST_NAME}
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.name not in keep and not path.name.startswith("."):
                path.unlink()

    def load_manifest_quietly(self, folder: Path) -> Manifest | None:
        try:
            return self.load_manifest(folder)
        except StoreCorrupted:
            return None

    def iter_manifests(self) -> Iterator[tuple[Path, Manifest | None]]:
        """Every test folder under the store (sorted), with its manifest (None if unreadable)."""
        if not self.root.is_dir():
            return
        for folder, entries in _fs.walk_sorted(self.root):
            if any(e.name == MANIFEST_NAME and not e.is_dir() for e in entries):
                yield Path(folder), self.load_manifest_quietly(Path(folder))

    def remove_test(self, folder: Path) -> None:
        """Delete a test folder and the empty folders above it, up to the store root."""
        shutil.rmtree(folder)
        self._remove_empty_parents(folder)

    def _clear(self, folder: Path) -> None:
        """Delete a test folder's recordings and manifest; the folder too once it is empty."""
        for path in sorted(folder.iterdir()):
            if path.is_file() and not path.name.startswith("."):
                path.unlink()
        with contextlib.suppress(OSError):
            folder.rmdir()
            self._remove_empty_parents(folder)

    def _remove_empty_parents(self, folder: Path) -> None:
        parent = folder.parent
        while parent != self.root and self.root in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent


def _same_file(path: Path, data: bytes) -> bool:
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False
