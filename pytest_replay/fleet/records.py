"""The values a fleet log holds: steps, messages with provenance, keyframes, lifecycle records."""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, overload

__all__ = [
    "MAX_CODE",
    "MAX_INSTANCE_ID",
    "MAX_U64",
    "ConfigSource",
    "Instantiated",
    "Keyframe",
    "LifecycleRecord",
    "Message",
    "MessageSource",
    "MissionStarted",
    "Origin",
    "StackInfo",
    "Step",
    "StepMessages",
    "Subsystem",
]

MAX_U64: Final = (1 << 64) - 1
MAX_INSTANCE_ID: Final = (1 << 32) - 1
MAX_CODE: Final = (1 << 16) - 1


@dataclass(frozen=True, slots=True, order=True)
class Origin:
    """Provenance of a message: the step of one subsystem instance that produced it."""

    instance_id: int
    subsystem_code: int
    step_id: int


@dataclass(frozen=True, slots=True)
class Message:
    """One message of a step: opaque payload bytes and, when it came from another step,
    that step's :class:`Origin`."""

    payload: bytes
    origin: Origin | None = None


class MessageSource(Protocol):
    """Where :class:`StepMessages` reads a step's messages from (the step section of a log,
    :class:`~pytest_replay.fleet.logformat.StepSection`, which builds on these records)."""

    def message_range(self, index: int) -> tuple[int, int]:
        """The half-open range of the messages of step ``index``."""
        ...

    def messages_between(self, lo: int, hi: int) -> tuple[Message, ...]:
        """Messages ``lo`` to ``hi`` (exclusive), decoded."""
        ...


class StepMessages(Sequence[Message]):
    """The messages of a step read from a log, built only when first looked at.

    Replaying a step whose messages the app never reads costs no per-message objects.
    Compares and hashes like the tuple of its messages.
    """

    # ``_items`` stays unset until first use: creating the view sets two slots only.
    __slots__ = ("_index", "_items", "_section")

    _items: tuple[Message, ...]

    def __init__(self, section: MessageSource, index: int) -> None:
        self._section = section
        self._index = index

    def _materialise(self) -> tuple[Message, ...]:
        try:
            return self._items
        except AttributeError:
            lo, hi = self._section.message_range(self._index)
            items = self._section.messages_between(lo, hi)
            self._items = items
            return items

    def __len__(self) -> int:
        lo, hi = self._section.message_range(self._index)
        return hi - lo

    @overload
    def __getitem__(self, index: int) -> Message: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Message, ...]: ...
    def __getitem__(self, index: int | slice) -> Message | tuple[Message, ...]:
        return self._materialise()[index]

    def __iter__(self) -> Iterator[Message]:
        return iter(self._materialise())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, StepMessages):
            return self._materialise() == other._materialise()
        if isinstance(other, tuple):
            return self._materialise() == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._materialise())

    def __repr__(self) -> str:
        return repr(self._materialise())


@dataclass(frozen=True, slots=True)
class Step:
    """One step of one subsystem instance (the reference's "CopperList").

    ``step_id`` is strictly increasing within a log; ``timestamp_ns`` is the mock-clock
    time the step ran at.
    """

    step_id: int
    timestamp_ns: int
    messages: Sequence[Message] = ()


@dataclass(frozen=True, slots=True)
class Keyframe:
    """Serialised app state taken at ``step_id``; replay can restart from it."""

    step_id: int
    timestamp_ns: int
    state: bytes = b""


class ConfigSource(enum.Enum):
    """Where the effective configuration of a recorded run came from."""

    BUNDLED_DEFAULT = "bundled_default"
    EXTERNAL_FILE = "external_file"
    PROGRAMMATIC_OVERRIDE = "programmatic_override"


@dataclass(frozen=True, slots=True)
class StackInfo:
    """Identity of the program that wrote a log."""

    app_name: str
    app_version: str
    subsystem_id: str | None
    subsystem_code: int
    instance_id: int
    git_commit: str | None = None
    git_dirty: bool | None = None


@dataclass(frozen=True, slots=True)
class Instantiated:
    """Lifecycle record: the runtime was built from ``effective_config``."""

    timestamp_ns: int
    config_source: ConfigSource
    effective_config: str
    stack: StackInfo


@dataclass(frozen=True, slots=True)
class MissionStarted:
    """Lifecycle record: the runtime started running ``mission``."""

    timestamp_ns: int
    mission: str


LifecycleRecord = Instantiated | MissionStarted


@dataclass(frozen=True, slots=True)
class Subsystem:
    """The subsystem an app type was written for: its topology id and numeric code.

    ``id`` is ``None`` for an app that is not part of a multi-subsystem topology; such an
    app cannot be registered for fleet replay.
    """

    id: str | None
    code: int
