"""What the record/replay harness records: four kinds of journal entry, and the harness mode."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

__all__ = [
    "ENTRY_KINDS",
    "BatchSize",
    "DeviceCmd",
    "JournalEntry",
    "KernelCmd",
    "ReplayMode",
    "RngSeed",
]


class ReplayMode(enum.Enum):
    """OFF drops records, RECORD keeps them, REPLAY feeds a loaded journal to a sink."""

    OFF = "off"
    RECORD = "record"
    REPLAY = "replay"


@dataclass(frozen=True, slots=True)
class DeviceCmd:
    """A command sent to a device; ``ts_micros`` is stamped by the harness on record."""

    ts_micros: int
    name: str
    payload: str


@dataclass(frozen=True, slots=True)
class KernelCmd:
    """A kernel launch or kernel-level command; ``ts_micros`` is stamped on record."""

    ts_micros: int
    kind: str
    payload: str


@dataclass(frozen=True, slots=True)
class RngSeed:
    """The seed an actor's random generator was created with."""

    actor_path: str
    seed: int


@dataclass(frozen=True, slots=True)
class BatchSize:
    """The batch size an actor chose."""

    actor_path: str
    size: int


JournalEntry = DeviceCmd | KernelCmd | RngSeed | BatchSize

#: Entry classes by the kind name used in reports and divergences.
ENTRY_KINDS: Final[dict[str, type[DeviceCmd | KernelCmd | RngSeed | BatchSize]]] = {
    "DeviceCmd": DeviceCmd,
    "KernelCmd": KernelCmd,
    "RngSeed": RngSeed,
    "BatchSize": BatchSize,
}
