"""The store manifest format: ``manifest.json`` beside a test's recordings, one entry per
recording (its kind, file, kind version, record count, size, BLAKE3 digest and meta).

The manifest's fields and their checks are :class:`pytest_replay.store.Manifest`'s, next
to the commit that writes them; this module is the format object the CLI looks up, and
it reads a manifest file on its own (``pytest-replay inspect/diff path/manifest.json``).
Its records are the entries, sorted by recording name, which diffs align on.
"""

from __future__ import annotations

import os
from collections.abc import Hashable
from pathlib import Path
from typing import Any, ClassVar, Final

from pytest_replay.formats.base import Format, Framing
from pytest_replay.store import (
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    Manifest,
    ManifestEntry,
)

__all__ = ["MANIFEST", "MANIFEST_FRAMING", "ManifestFormat"]

MANIFEST_FRAMING: Final = Framing(
    magic=b"",
    notes=(
        f"UTF-8 JSON object, keys sorted, indent 1, a final newline; at most "
        f"{MAX_MANIFEST_BYTES} bytes",
        f'"format": {MANIFEST_FORMAT}, "nodeid", "plugin_version", "recordings": '
        '{name: {"kind", "file", "version", "records", "size", "digest", "meta"}}',
        "digest is the BLAKE3 hex digest of the file, size its length in bytes",
    ),
)


class ManifestFormat(Format):
    """A store manifest (``manifest.json``): :meth:`read` gives the checked
    :class:`~pytest_replay.store.Manifest`; its records are ``(name, entry)`` pairs."""

    name: ClassVar[str] = "manifest"
    label: ClassVar[str] = "store manifest"
    extensions: ClassVar[tuple[str, ...]] = (MANIFEST_NAME,)
    framing: ClassVar[Framing | None] = MANIFEST_FRAMING

    def matches(self, path: Path, head: bytes) -> bool:
        """Only a file named exactly ``manifest.json`` (``old-manifest.json`` is not one)."""
        return path.name == MANIFEST_NAME

    def decode(self, data: bytes, source: str) -> Manifest:
        """The checked manifest in ``data``; damage is a
        :class:`~pytest_replay.store.StoreCorrupted` naming the field."""
        return Manifest.decode(data, Path(source))

    def read(self, path: Path) -> Manifest:
        """The manifest in ``path``, never through a link and at most
        ``MAX_MANIFEST_BYTES`` long (as the store reads it)."""
        data = self.read_bytes(path, MAX_MANIFEST_BYTES)
        return self.decode(data, os.fspath(path))

    def records(self, document: Manifest) -> list[tuple[str, ManifestEntry]]:
        return sorted(document.recordings.items())

    def diff_key(self, index: int, record: Any) -> Hashable:
        """An entry's recording name: the same recording in two manifests."""
        name: str = record[0]
        return name

    def render(self, index: int, record: Any) -> str:
        name, entry = record
        return (
            f"#{index} {name}: kind={entry.kind} file={entry.file} version={entry.version} "
            f"records={entry.records} size={entry.size} digest={entry.digest[:16]}"
        )

    def item(self, index: int, record: Any) -> dict[str, Any]:
        name, entry = record
        return {"index": index, "name": name, **entry.to_json()}


#: The one manifest format object.
MANIFEST: Final = ManifestFormat()
