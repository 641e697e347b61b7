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

import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import blake3

from pytest_replay._atomic import atomic_write_bytes
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
    name = rest.replace("::", ".") if rest else "__module__"
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
        try:
            body = json.loads(data)
            if body.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"unsupported manifest format {body.get('format')!r}")
            recordings = {
                name: ManifestEntry(
                    kind=str(e["kind"]),
                    file=str(e["file"]),
                    version=int(e["version"]),
                    records=int(e["records"]),
                    digest=str(e["digest"]),
                    meta=dict(e.get("meta", {})),
                )
                for name, e in body["recordings"].items()
            }
            return cls(str(body["nodeid"]), str(body["plugin_version"]), recordings)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StoreCorrupted(
                f"manifest '{path}' cannot be read: {exc}. "
                "Fix: re-record this test (pytest --replay-record) or restore the file."
            ) from exc


class ReplayStore:
    """The store rooted at ``root`` (normally ``<rootdir>/.replay``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def test_dir(self, nodeid: str) -> Path:
        """The folder that holds the recordings of the test ``nodeid``."""
        return self.root.joinpath(*(safe_component(part) for part in _test_parts(nodeid)))

    def load_manifest(self, folder: Path) -> Manifest | None:
        path = folder / MANIFEST_NAME
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreCorrupted(
                f"manifest '{path}' cannot be read: {exc}. Fix: check permissions."
            ) from exc
        return Manifest.decode(data, path)

    def read_checked(self, folder: Path, entry: ManifestEntry) -> bytes:
        """The bytes of a stored recording, after checking them against the manifest digest."""
        path = folder / entry.file
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise StoreCorrupted(
                f"recording file missing or unreadable: '{path}' ({exc}). "
                "Fix: re-record this test (pytest --replay-record) or restore the file."
            ) from exc
        if digest_bytes(data) != entry.digest:
            raise StoreCorrupted(
                f"recording file corrupted: '{path}' does not match the digest in its manifest "
                "(edited by hand, damaged, or an interrupted record run). "
                "Fix: restore it from version control, or re-record this test "
                "(pytest --replay-record) if the change is intended."
            )
        return data

    def write_test(self, folder: Path, manifest: Manifest, files: Mapping[str, bytes]) -> None:
        """Store a test's recordings: unchanged files are left untouched, changed ones are
        replaced atomically, then the manifest, then files no longer listed are removed."""
        old = self.load_manifest_quietly(folder)
        for name, data in sorted(files.items()):
            path = folder / name
            if not (path.is_file() and old is not None and _same_file(path, data)):
                atomic_write_bytes(path, data)
        encoded = manifest.encode()
        manifest_path = folder / MANIFEST_NAME
        if not (manifest_path.is_file() and manifest_path.read_bytes() == encoded):
            atomic_write_bytes(manifest_path, encoded)
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
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            if MANIFEST_NAME in filenames:
                folder = Path(dirpath)
                yield folder, self.load_manifest_quietly(folder)

    def remove_test(self, folder: Path) -> None:
        """Delete a test folder and the empty folders above it, up to the store root."""
        shutil.rmtree(folder)
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
