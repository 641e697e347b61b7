"""What a path holds: one look at the magic bytes (or the folder's contents) decides.

Files are detected through the format registry (:func:`pytest_replay.formats.format_for`:
magic bytes first, then extensions); only the registry's format objects are loaded, never
a system's package. The kind registry is built (and a kind's module imported) only when
no format claims the file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from pytest_replay import _fs
from pytest_replay.cli.common import CliError, open_regular, read_bounded
from pytest_replay.formats import Format, format_for, head_size

if TYPE_CHECKING:
    from pytest_replay.kinds import KindRegistry

__all__ = [
    "FLEET_FOLDER",
    "FLEET_LOG",
    "FLEET_RECORDING",
    "JOURNAL",
    "MANIFEST",
    "RECORDING",
    "RECORDS",
    "REDUCE",
    "STORE",
    "VRRL",
    "Detected",
    "detect",
    "kind_registry",
]

VRRL: Final = "vrrl"
FLEET_LOG: Final = "fleet-log"
FLEET_FOLDER: Final = "fleet-folder"
FLEET_RECORDING: Final = "fleet-recording"
JOURNAL: Final = "journal"
RECORDS: Final = "journal-records"
REDUCE: Final = "reduce-result"
STORE: Final = "store"
RECORDING: Final = "recording"
MANIFEST: Final = "manifest"

LABELS: Final = {
    VRRL: "VRRL ring log",
    FLEET_LOG: "fleet log",
    FLEET_FOLDER: "folder of fleet logs",
    FLEET_RECORDING: "fleet recording",
    JOURNAL: "journal file",
    RECORDS: "journal record file",
    REDUCE: "reducer result",
    STORE: "recording store",
    RECORDING: "stored recording",
    MANIFEST: "store manifest",
}

#: What ``Detected.format`` says for a file a format object claims, where that is not the
#: format's own name: a megakernel capture reads as the VRRL log it is.
_DETECTED_AS: Final = {"capture": VRRL}
#: The recording kind that stores each format, for diffs through ``RecordingKind.diff``.
STORE_KIND_OF: Final = {JOURNAL: "journal", REDUCE: "reduce", FLEET_RECORDING: "fleet"}
_FLEET_SUFFIX: Final = ".flog"
_REDUCE_SUFFIX: Final = ".jreduce"

_KNOWN = (
    "pass a VRRL ring log, a fleet log or folder of them, a journal file, a journal record "
    "file, a reducer result (.jreduce or .json), a store manifest (manifest.json) or a store "
    "folder (.replay)"
)


@dataclass(frozen=True, slots=True)
class Detected:
    """A path and what it holds; ``kind`` names the recording kind for ``RECORDING``, and
    ``file_format`` the format object that claimed the file (None for folders and the
    formats detected otherwise)."""

    format: str
    path: Path
    kind: str | None = None
    file_format: Format | None = None

    @property
    def label(self) -> str:
        if self.format == RECORDING and self.kind is not None:
            return f"stored recording of kind '{self.kind}'"
        if self.file_format is not None and self.file_format.name != self.format:
            return self.file_format.label  # read as another format (a capture as its VRRL log)
        return LABELS[self.format]


def kind_registry() -> KindRegistry:
    """Every recording kind the plugin knows (packaged kinds load on first use)."""
    from pytest_replay.kinds import KindRegistry, builtin_kinds
    from pytest_replay.packaged import PACKAGED_KINDS

    registry = KindRegistry(builtin_kinds())
    for module, names in PACKAGED_KINDS.items():
        registry.register_module(module, names)
    return registry


def _holds_file(folder: Path, wanted: Callable[[str], bool]) -> bool:
    """Whether a file anywhere under ``folder`` has a name ``wanted`` accepts."""
    return any(
        _is_file(entry) and wanted(entry.name)
        for _folder, entries in _fs.walk_sorted(folder)
        for entry in entries
    )


def _is_file(entry: os.DirEntry[str]) -> bool:
    try:
        return not entry.is_dir()
    except OSError:
        return False


def _has_manifest(folder: Path) -> bool:
    from pytest_replay.formats.manifest import MANIFEST as MANIFEST_FORMAT

    return _holds_file(folder, lambda name: MANIFEST_FORMAT.matches(Path(name), b""))


def _has_fleet_log(folder: Path) -> bool:
    return _holds_file(folder, lambda name: name.endswith(_FLEET_SUFFIX))


def _fleet_base(path: Path) -> Path:
    """The base path of the log a slab file (``name_3.flog``) belongs to."""
    from pytest_replay.fleet.catalog import normalize_candidate

    return normalize_candidate(path)


def _claimed(fmt: Format, path: Path) -> Detected | None:
    """What a file the format object ``fmt`` claims is to the CLI: a format it shows on its
    own, else a stored recording of the format's kind; None leaves it to the kinds."""
    shown = _DETECTED_AS.get(fmt.name, fmt.name)
    if shown == FLEET_LOG:
        return Detected(FLEET_LOG, _fleet_base(path), file_format=fmt)
    if shown in LABELS:
        return Detected(shown, path, file_format=fmt)
    if fmt.kind is not None:
        return Detected(RECORDING, path, fmt.kind, fmt)
    return None


def detect(path: Path) -> Detected:
    """What ``path`` holds, or a :class:`CliError` saying why it is none of the known kinds."""
    if path.is_dir():
        if _has_manifest(path):
            return Detected(STORE, path)
        if _has_fleet_log(path):
            return Detected(FLEET_FOLDER, path)
        raise CliError(
            f"folder '{path}' holds no store manifests (manifest.json) and no fleet logs "
            f"({_FLEET_SUFFIX})",
            _KNOWN,
        )
    if not path.exists():
        if path.suffix == _FLEET_SUFFIX:
            first = path.with_name(f"{path.stem}_0{path.suffix}")
            if first.exists():
                return Detected(FLEET_LOG, path)
        raise CliError(f"'{path}' does not exist", "check the path")
    try:
        with open_regular(path, "path") as fh:
            head = fh.read(head_size())
    except OSError as exc:
        raise CliError(
            f"cannot read '{path}' ({exc.strerror or exc})", "check the path and permissions"
        ) from None
    claimed = format_for(path, head)
    by_magic = claimed is not None and claimed.magic is not None and head.startswith(claimed.magic)
    if claimed is not None and by_magic:
        detected = _claimed(claimed, path)
        if detected is not None:
            return detected
    if path.suffix == _REDUCE_SUFFIX or (
        path.suffix == ".json" and head.lstrip()[:1] == b"{" and _looks_like_result(path)
    ):
        return Detected(REDUCE, path)
    if path.suffix == _FLEET_SUFFIX:
        return Detected(FLEET_LOG, _fleet_base(path))
    if claimed is not None and not by_magic:
        detected = _claimed(claimed, path)
        if detected is not None:
            return detected
    kind = kind_registry().for_path(path)
    if kind is not None:
        return Detected(RECORDING, path, kind.name)
    shown = head.hex() if head else "nothing (the file is empty)"
    raise CliError(
        f"'{path}' is not a recording pytest-replay knows (it starts with {shown})", _KNOWN
    )


def _looks_like_result(path: Path) -> bool:
    """A JSON file whose top-level keys are those of a ReplayResult."""
    import json

    try:
        body = json.loads(read_bounded(path, "reducer result", 64 << 20))
    except (CliError, ValueError, RecursionError):
        # Too large, unreadable, not JSON or nested too deeply: not a result.
        return False
    return isinstance(body, dict) and {"mode", "status", "resume_allowed"} <= set(body)
