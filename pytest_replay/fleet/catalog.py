"""Discovery of fleet logs: find them on disk and read who wrote each one."""

from __future__ import annotations

import functools
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pytest_replay._gc import paused_collector
from pytest_replay.fleet.errors import FleetError, FleetLogError
from pytest_replay.fleet.reader import (
    LogIdentity,
    LogIndex,
    as_path,
    identify_logs,
    read_identity,
)
from pytest_replay.fleet.records import ConfigSource, StackInfo
from pytest_replay.formats.fleet_log import LOG_EXTENSION, slab_index_of, slab_path

__all__ = [
    "DiscoveryFailure",
    "FleetLogInfo",
    "ReplayCatalog",
    "discover_log",
    "normalize_candidate",
]


@dataclass(frozen=True, slots=True)
class FleetLogInfo:
    """A discovered log and the identity read from its lifecycle records."""

    base_path: Path
    stack: StackInfo
    config_source: ConfigSource
    effective_config: str
    mission: str | None
    #: The log's index when discovery read all of it and every check passed: a replay
    #: of this log (:meth:`ReplayPlan.start`) uses it instead of reading the log again,
    #: while its slabs are unchanged (:func:`~pytest_replay.fleet.reader.index_is_current`).
    index: LogIndex | None = field(default=None, compare=False, repr=False)

    @property
    def instance_id(self) -> int:
        return self.stack.instance_id

    @property
    def subsystem_code(self) -> int:
        return self.stack.subsystem_code

    @property
    def subsystem_id(self) -> str | None:
        return self.stack.subsystem_id

    @classmethod
    def discover(cls, path: str | os.PathLike[str]) -> FleetLogInfo:
        return discover_log(path)


@dataclass(frozen=True, slots=True)
class DiscoveryFailure:
    """A candidate that could not be read as a fleet log, and why."""

    candidate_path: Path
    error: str

    def __str__(self) -> str:
        return f"{self.candidate_path}: {self.error}"


def normalize_candidate(path: str | os.PathLike[str]) -> Path:
    """``foo_3.flog`` -> ``foo.flog`` when ``foo_0.flog`` exists; otherwise unchanged."""
    candidate = as_path(path)
    names = _slab_names(candidate.name)
    if names is None or not candidate.suffix:
        return candidate
    base_name, first_name = names
    return candidate.with_name(base_name) if candidate.with_name(first_name).exists() else candidate


def _identity_at(base_path: Path) -> FleetLogInfo:
    return _info(base_path, read_identity(base_path), None)


def _info(base_path: Path, identity: LogIdentity, index: LogIndex | None) -> FleetLogInfo:
    record = identity.instantiated
    return FleetLogInfo(
        base_path=base_path,
        stack=record.stack,
        config_source=record.config_source,
        effective_config=record.effective_config,
        mission=None if identity.mission is None else identity.mission.mission,
        index=index,
    )


def discover_log(path: str | os.PathLike[str]) -> FleetLogInfo:
    """Identity of one log given its base path or any of its slab paths."""
    requested = as_path(path)
    normalized = normalize_candidate(requested)
    try:
        return _identity_at(requested)
    except FleetLogError:
        if normalized == requested:
            raise
    return _identity_at(normalized)


def _log_sort_key(log: FleetLogInfo) -> tuple[int, int, bool, str, str]:
    subsystem_id = log.subsystem_id
    return (
        log.instance_id,
        log.subsystem_code,
        subsystem_id is not None,
        subsystem_id or "",
        str(log.base_path),
    )


def _walk(
    root: Path,
    extension: str,
    out: set[Path],
    failures: list[DiscoveryFailure],
    visited: set[tuple[int, int]],
) -> None:
    try:
        info = root.stat()
    except (OSError, ValueError):
        info = None
    if info is None or not stat.S_ISDIR(info.st_mode):
        if root.suffix == extension:
            out.add(normalize_candidate(root))
        return
    # An explicit stack, so the depth of a folder tree is not bounded by the recursion
    # limit; folders go on it in reverse so they are visited in sorted order. Folders
    # are told apart by device and inode: resolving each path instead costs one lstat
    # per component, quadratic in the depth of the tree.
    visited.add((info.st_dev, info.st_ino))
    stack = [root]
    while stack:
        path = stack.pop()
        try:
            with os.scandir(path) as listing:
                entries = sorted(listing, key=_entry_name)
        except OSError as exc:
            failures.append(DiscoveryFailure(path, f"cannot list folder ({exc})"))
            continue
        names = {entry.name: entry for entry in entries}
        below = []
        for entry in entries:
            try:
                # Follows symlinks like Path.stat; the file type comes from the listing.
                is_dir = entry.is_dir()
                folder = entry.stat() if is_dir else None
            except OSError:
                is_dir, folder = False, None
            if folder is not None:
                key = (folder.st_dev, folder.st_ino)
                if key not in visited:  # else a symlink loop or a folder reached twice
                    visited.add(key)
                    below.append(path / entry.name)
            elif os.path.splitext(entry.name)[1] == extension:
                out.add(_normalized_in(path, entry.name, names))
        stack.extend(reversed(below))


def _entry_name(entry: os.DirEntry[str]) -> str:
    return entry.name


@functools.lru_cache(maxsize=4096)
def _slab_names(name: str) -> tuple[str, str] | None:
    """(base name, slab 0 name) of a slab's file name (``plan_3.flog`` -> ``plan.flog``,
    ``plan_0.flog``), ``None`` when ``name`` is not a slab's.

    Every instance folder of a fleet holds the same few names: each is parsed (by
    :func:`slab_index_of`, whose answer depends on the name alone) once, not once per
    file, which in a big fleet is most of a scan's time.
    """
    parsed = slab_index_of(Path(name))
    if parsed is None:
        return None
    base = parsed[0]
    return base.name, slab_path(base, 0).name


def _normalized_in(folder: Path, name: str, names: dict[str, os.DirEntry[str]]) -> Path:
    """:func:`normalize_candidate` for a file of a folder just listed: whether slab 0
    exists is read from the listing (a symlink is still followed)."""
    parsed = _slab_names(name)
    if parsed is None:
        return folder / name
    base_name, first_name = parsed
    first = names.get(first_name)
    if first is None:
        return folder / name
    if first.is_symlink() and not os.path.exists(first.path):
        return folder / name
    return folder / base_name


@dataclass(frozen=True, slots=True)
class ReplayCatalog:
    """Logs found by a scan, sorted by (instance id, subsystem code, subsystem id, path),
    and the candidates that failed, sorted by path. A failure never stops the scan."""

    logs: tuple[FleetLogInfo, ...] = ()
    failures: tuple[DiscoveryFailure, ...] = ()

    @classmethod
    def discover(
        cls, paths: Iterable[str | os.PathLike[str]], *, extension: str = LOG_EXTENSION
    ) -> ReplayCatalog:
        """Scan files and folders (recursively, in sorted order) for logs.

        A slab path is normalised to its log's base path, so each log is read once
        however many of its slabs the scan meets.
        """
        with paused_collector():
            return cls._discover(paths, extension)

    @classmethod
    def _discover(cls, paths: Iterable[str | os.PathLike[str]], extension: str) -> ReplayCatalog:
        candidates: set[Path] = set()
        failures: list[DiscoveryFailure] = []
        visited: set[tuple[int, int]] = set()
        for raw in paths:
            path = Path(raw)
            if not path.exists() and path.suffix != extension:
                failures.append(DiscoveryFailure(path, "path does not exist"))
                continue
            _walk(path, extension, candidates, failures, visited)
        logs: list[FleetLogInfo] = []
        # Any fixed order will do (the result is sorted below); strings sort fastest.
        ordered = sorted(candidates, key=os.fspath)
        # Each log is read once, in full: its identity now, its index for the replay.
        for candidate, found in zip(ordered, identify_logs(ordered), strict=True):
            if found is not None:
                logs.append(_info(candidate, found.identity, found.index))
                continue
            # Not a clean read: the identity alone, with what discovery always reported.
            try:
                logs.append(discover_log(candidate))
            except FleetError as exc:
                failures.append(DiscoveryFailure(candidate, str(exc)))
        logs.sort(key=_log_sort_key)
        failures.sort(key=lambda failure: failure.candidate_path)
        return cls(tuple(logs), tuple(failures))

    @classmethod
    def discover_under(
        cls, root: str | os.PathLike[str], *, extension: str = LOG_EXTENSION
    ) -> ReplayCatalog:
        return cls.discover([root], extension=extension)
