"""Errors of the fleet package; every message names what was read and ends with a ``Fix:`` hint."""

from __future__ import annotations

import os
from collections.abc import Sequence

from pytest_replay.errors import ReplayError
from pytest_replay.formats.fleet_log import SlabCorrupted
from pytest_replay.formats.fleet_recording import RecordingDamaged

__all__ = [
    "FleetError",
    "FleetLogError",
    "FleetLogWriteError",
    "FleetRecordingError",
    "RegistrationError",
    "ReplayGraphError",
    "ReplaySessionError",
    "ReplayValidationError",
    "TopologyError",
]


class FleetError(ReplayError):
    """Base class of every error raised by :mod:`pytest_replay.fleet`."""


class FleetLogError(FleetError, SlabCorrupted):
    """A fleet log is unreadable: bad magic, CRC mismatch, truncated frame, unknown
    section type, missing or stray slab, or a section whose content is inconsistent.

    ``path`` is the slab file (or the base path when no slab could be opened) and
    ``offset`` the byte offset of the frame at fault (``None`` when it is the file as a
    whole); the message is built by the slab format's
    :class:`~pytest_replay.formats.fleet_log.SlabCorrupted`.
    """


class FleetLogWriteError(FleetError):
    """A :class:`~pytest_replay.fleet.writer.FleetLogWriter` was used against its contract."""

    def __init__(self, path: str | os.PathLike[str], detail: str, fix: str) -> None:
        self.path = os.fspath(path)
        self.detail = detail
        super().__init__(detail, where=f"fleet log writer '{self.path}'", fix=f"{fix}.")


class TopologyError(FleetError):
    """The topology file is not valid TOML or breaks the strict schema."""

    def __init__(
        self, path: str | os.PathLike[str], key: str | None, detail: str, fix: str
    ) -> None:
        self.path = os.fspath(path)
        self.key = key
        self.detail = detail
        where = f"'{self.path}'" if key is None else f"'{self.path}', key {key}"
        super().__init__(detail, where=f"topology {where}", fix=f"{fix}.")


class RegistrationError(FleetError):
    """An app type cannot be registered for a subsystem of the topology."""

    def __init__(self, detail: str, fix: str) -> None:
        self.detail = detail
        super().__init__(detail, fix=f"{fix}.")


class ReplayValidationError(FleetError):
    """Every problem found while building a replay plan, reported together."""

    def __init__(self, topology_path: str | os.PathLike[str], issues: Sequence[str]) -> None:
        self.topology_path = os.fspath(topology_path)
        self.issues = tuple(issues)
        lines = [
            f"fleet replay validation failed for topology '{self.topology_path}' "
            f"({len(self.issues)} problem{'s' if len(self.issues) != 1 else ''}):"
        ]
        lines.extend(f" - {issue}" for issue in self.issues)
        super().__init__(
            "\n".join(lines) + "\n",
            fix="record the missing logs, register an app type for every subsystem, "
            "and select instances whose logs agree with the topology.",
        )


class ReplayGraphError(FleetError):
    """The causal graph of the recorded steps cannot be built or cannot make progress."""

    def __init__(self, detail: str, fix: str) -> None:
        self.detail = detail
        super().__init__(detail, fix=f"{fix}.")


class ReplaySessionError(FleetError):
    """One session cannot seek to the requested step."""

    def __init__(self, detail: str, fix: str) -> None:
        self.detail = detail
        super().__init__(detail, fix=f"{fix}.")


class FleetRecordingError(FleetError, RecordingDamaged):
    """A stored fleet recording (logs + topology bundle) is unreadable or inconsistent;
    the message is built by the format's
    :class:`~pytest_replay.formats.fleet_recording.RecordingDamaged`."""
