"""Discovery of fleet logs: find them on disk and read who wrote each one."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pytest_replay.fleet.errors import FleetError, FleetLogError
from pytest_replay.fleet.logformat import LOG_EXTENSION, slab_index_of, slab_path
from pytest_replay.fleet.reader import read_identity
from pytest_replay.fleet.records import ConfigSource, StackInfo

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
    candidate = Path(path)
    parsed = slab_index_of(candidate)
    if parsed is None or not candidate.suffix:
        return candidate
    base = parsed[0]
    return base if slab_path(base, 0).exists() else candidate


def _identity_at(base_path: Path) -> FleetLogInfo:
    identity = read_identity(base_path)
    record = identity.instantiated
    return FleetLogInfo(
        base_path=base_path,
        stack=record.stack,
        config_source=record.config_source,
        effective_config=record.effective_config,
        mission=None if identity.mission is None else identity.mission.mission,
    )


def discover_log(path: str | os.PathLike[str]) -> FleetLogInfo:
    """Identity of one log given its base path or any of its slab paths."""
    requested = Path(path)
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
    # An explicit stack, so the depth of a folder tree is not bounded by the recursion
    # limit; entries go on it in reverse so they are visited in sorted order.
    stack = [root]
    while stack:
        path = stack.pop()
        try:
            info = path.stat()
        except (OSError, ValueError):
            info = None
        if info is None or not stat.S_ISDIR(info.st_mode):
            if path.suffix == extension:
                out.add(normalize_candidate(path))
            continue
        # Folders are told apart by device and inode: resolving each path instead costs
        # one lstat per component, quadratic in the depth of the tree.
        folder = (info.st_dev, info.st_ino)
        if folder in visited:
            continue  # a symlink loop or a folder reached twice
        visited.add(folder)
        try:
            entries = sorted(path.iterdir())
        except OSError as exc:
            failures.append(DiscoveryFailure(path, f"cannot list folder ({exc})"))
            continue
        stack.extend(reversed(entries))


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
        for candidate in sorted(candidates):
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
