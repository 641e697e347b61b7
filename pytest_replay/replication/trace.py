"""The simulation trace: every delivered or dropped message, every role change, every
runtime decision, in the order they happened; and its stored byte format.

An event is ``[time_ms, kind, node, peer, attrs]``: ``node`` is where it
happened, ``peer`` the other node involved (``-1`` when none), ``attrs`` a
small ``str -> int | str | bytes`` map. Events are built as plain lists so a
live event compares with a stored one (decoded by msgpack) by ``==``.

The stored byte form is :mod:`pytest_replay.formats.replication_trace`. The schedule
travels with the trace, so a stored trace can be re-simulated and compared
(:func:`pytest_replay.replication.sim.verify_trace`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from pytest_replay.formats.replication_trace import (
    TRACE_FORMAT_VERSION,
    TRACE_HEADER,
    TRACE_MAGIC,
    describe_event,
    encode_trace_image,
    read_trace_image,
    render_event,
)
from pytest_replay.replication.errors import ScheduleError, TraceFormatError
from pytest_replay.replication.schedule import (
    NetworkSchedule,
    schedule_from_plain,
    schedule_to_plain,
)

__all__ = [
    "NO_NODE",
    "TRACE_FORMAT_VERSION",
    "TRACE_MAGIC",
    "DecodedTrace",
    "TraceBuffer",
    "TraceEvent",
    "TraceSink",
    "decode_trace",
    "describe_event",
    "encode_trace",
    "event_fields",
    "render_event",
]

_REFIX: Final = "re-record it (pytest --replay-record)."
#: ``node`` / ``peer`` of an event that involves no node (e.g. a partition starting).
NO_NODE: Final = -1

AttrValue = int | str | bytes
RawEvent = list[Any]
#: Receives each event as it is produced (the recorder compares it live).
TraceSink = Callable[[RawEvent], None]


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One decoded trace event."""

    time_ms: int
    kind: str
    node: int
    peer: int
    attrs: Mapping[str, AttrValue]

    @classmethod
    def from_raw(cls, raw: Sequence[Any]) -> TraceEvent:
        return cls(raw[0], raw[1], raw[2], raw[3], raw[4])

    def raw(self) -> RawEvent:
        return [self.time_ms, self.kind, self.node, self.peer, dict(self.attrs)]


class TraceBuffer:
    """A sink that keeps every event in memory."""

    __slots__ = ("events",)

    def __init__(self) -> None:
        self.events: list[RawEvent] = []

    def __call__(self, event: RawEvent) -> None:
        self.events.append(event)

    def __len__(self) -> int:
        return len(self.events)

    def decoded(self) -> list[TraceEvent]:
        return [TraceEvent.from_raw(e) for e in self.events]


def event_fields(expected: Sequence[Any], actual: Sequence[Any]) -> tuple[str, Any, Any] | None:
    """The first field where two raw events differ, as ``(name, expected, actual)``."""
    for name, want, got in zip(
        ("time_ms", "kind", "node", "peer"), expected[:4], actual[:4], strict=True
    ):
        if want != got:
            return name, want, got
    want_attrs: Mapping[str, Any] = expected[4]
    got_attrs: Mapping[str, Any] = actual[4]
    for key in list(want_attrs) + [k for k in got_attrs if k not in want_attrs]:
        want, got = want_attrs.get(key), got_attrs.get(key)
        if want != got:
            return f"attrs.{key}", want, got
    return None


def encode_trace(schedule: NetworkSchedule, events: Iterable[RawEvent]) -> bytes:
    """The stored bytes of a trace (identical for identical runs)."""
    return encode_trace_image({"schedule": schedule_to_plain(schedule)}, events)


@dataclass(frozen=True, slots=True)
class DecodedTrace:
    """A stored trace: the schedule that produced it and its raw events."""

    schedule: NetworkSchedule
    events: list[RawEvent]

    def decoded(self) -> list[TraceEvent]:
        return [TraceEvent.from_raw(e) for e in self.events]


def decode_trace(data: bytes, source: str = "trace") -> DecodedTrace:
    """Parse stored trace bytes; every malformation raises :class:`TraceFormatError`."""
    schedules: list[NetworkSchedule] = []

    def check_header(header: dict[str, Any]) -> None:
        try:
            schedules.append(schedule_from_plain(header["schedule"], source))
        except ScheduleError as exc:
            raise TraceFormatError(
                source, TRACE_HEADER.size, f"stored schedule is invalid ({exc})", _REFIX
            ) from exc

    image = read_trace_image(
        data, source, error=TraceFormatError, check_header=check_header, stacklevel=3
    )
    return DecodedTrace(schedules[0], image.events)
