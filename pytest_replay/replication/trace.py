"""The simulation trace: every delivered or dropped message, every role change, every
runtime decision, in the order they happened; and its stored byte format.

An event is ``[time_ms, kind, node, peer, attrs]``: ``node`` is where it
happened, ``peer`` the other node involved (``-1`` when none), ``attrs`` a
small ``str -> int | str | bytes`` map. Events are built as plain lists so a
live event compares with a stored one (decoded by msgpack) by ``==``.

Stored form (little-endian)::

    offset  size  field
    0       8     magic b"RPLTRACE"
    8       2     format version (2; 1 was written before end frames and is still read)
    10      2     flags (0)
    12      4     header length H in bytes
    16      4     event count N
    20      H     msgpack map: {"schedule": <schedule_to_plain>}
    20+H    ...   N msgpack arrays, one per event, back to back
    E       44    end frame (version 2): b"RPLTEND1", u32 N, then the BLAKE3 digest
                  (32 bytes) of every byte before the end frame

The end frame makes a trace cut at an event boundary (header count and all) detectable,
and nothing may follow it. A version-1 trace is read with an ``UnclosedFormatWarning``.

The schedule travels with the trace, so a stored trace can be re-simulated
and compared (:func:`pytest_replay.replication.sim.verify_trace`).
"""

from __future__ import annotations

import struct
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import blake3
import msgpack

from pytest_replay._msgpack import unpack_bounded
from pytest_replay.errors import UnclosedFormatWarning
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

TRACE_MAGIC: Final = b"RPLTRACE"
TRACE_FORMAT_VERSION: Final = 2
_LEGACY_VERSION: Final = 1
_HEADER = struct.Struct("<8sHHII")
_END = struct.Struct("<8sI32s")
_END_MAGIC: Final = b"RPLTEND1"
#: The smallest msgpack encoding of an event: fixarray, 4 one-byte scalars, empty fixmap.
_MIN_EVENT_BYTES: Final = 6
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


def describe_event(event: Sequence[Any]) -> str:
    """An event without its index: ``t=300ms role node=1 peer=-1 from=REPLICA ...``."""
    time_ms, kind, node, peer, attrs = event
    words = " ".join(f"{k}={v!r}" if isinstance(v, bytes) else f"{k}={v}" for k, v in attrs.items())
    return f"t={time_ms}ms {kind} node={node} peer={peer} {words}".rstrip()


def render_event(index: int, event: Sequence[Any]) -> str:
    """One readable line: ``#12 t=300ms role node=1 peer=-1 from=REPLICA ...``."""
    return f"#{index} {describe_event(event)}"


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
    packer = msgpack.Packer(use_bin_type=True)
    header: bytes = packer.pack({"schedule": schedule_to_plain(schedule)})
    body = bytearray()
    count = 0
    for event in events:
        body += packer.pack(event)
        count += 1
    head = _HEADER.pack(TRACE_MAGIC, TRACE_FORMAT_VERSION, 0, len(header), count)
    digest = blake3.blake3(head)
    digest.update(header)
    digest.update(body)
    return head + header + body + _END.pack(_END_MAGIC, count, digest.digest())


@dataclass(frozen=True, slots=True)
class DecodedTrace:
    """A stored trace: the schedule that produced it and its raw events."""

    schedule: NetworkSchedule
    events: list[RawEvent]

    def decoded(self) -> list[TraceEvent]:
        return [TraceEvent.from_raw(e) for e in self.events]


def _fail(source: str, offset: int, what: str, fix: str) -> TraceFormatError:
    return TraceFormatError(f"{source}: {what} at byte offset {offset}. Fix: {fix}")


_REFIX = "re-record it (pytest --replay-record)."


def decode_trace(data: bytes, source: str = "trace") -> DecodedTrace:
    """Parse stored trace bytes; every malformation raises :class:`TraceFormatError`."""
    size = len(data)
    if size < _HEADER.size:
        raise _fail(
            source, 0, f"truncated: {size} bytes, the header alone needs {_HEADER.size}", _REFIX
        )
    magic, version, _flags, header_len, count = _HEADER.unpack_from(data, 0)
    if magic != TRACE_MAGIC:
        raise _fail(source, 0, f"bad magic {magic!r} (expected {TRACE_MAGIC!r})", _REFIX)
    if version not in (TRACE_FORMAT_VERSION, _LEGACY_VERSION):
        raise _fail(
            source,
            8,
            f"unknown trace format version {version} (this build reads {_LEGACY_VERSION} "
            f"and {TRACE_FORMAT_VERSION})",
            "re-record with this version of pytest_replay.",
        )
    closed = version == TRACE_FORMAT_VERSION
    if not closed:
        warnings.warn(
            UnclosedFormatWarning(
                f"trace '{source}' was written before end frames (format version 1): a copy "
                "cut at an event boundary cannot always be detected. Fix: re-record it"
            ),
            stacklevel=2,
        )
    body_start = _HEADER.size + header_len
    if body_start > size:
        raise _fail(
            source, 12, f"header length {header_len} runs past the end ({size} bytes)", _REFIX
        )
    if count > (size - body_start) // _MIN_EVENT_BYTES:
        raise _fail(
            source,
            size,
            f"truncated: the event count {count} (byte 16) cannot fit in the "
            f"{size - body_start} bytes after the header",
            _REFIX,
        )
    try:
        header = unpack_bounded(data[_HEADER.size : body_start])
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise _fail(source, _HEADER.size, f"header is not msgpack ({exc})", _REFIX) from exc
    if not isinstance(header, dict) or not isinstance(header.get("schedule"), dict):
        raise _fail(source, _HEADER.size, "header has no schedule map", _REFIX)
    try:
        schedule = schedule_from_plain(header["schedule"], source)
    except ScheduleError as exc:
        raise _fail(source, _HEADER.size, f"stored schedule is invalid ({exc})", _REFIX) from exc
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=max(size, 1), strict_map_key=True)
    unpacker.feed(data[body_start:])
    events: list[RawEvent] = []
    offset = body_start
    while len(events) < count:
        try:
            event = unpacker.unpack()
        except msgpack.OutOfData:
            raise _fail(
                source,
                offset,
                f"truncated: {len(events)} events of the {count} announced"
                + (", the last one cut short" if offset != size else ""),
                _REFIX,
            ) from None
        except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
            raise _fail(
                source, offset, f"event #{len(events)} is not msgpack ({exc})", _REFIX
            ) from exc
        if not _valid_event(event):
            raise _fail(
                source,
                offset,
                f"event #{len(events)} is not [time_ms, kind, node, peer, attrs]: {event!r:.120}",
                _REFIX,
            )
        events.append(event)
        offset = body_start + unpacker.tell()
    if closed:
        _check_end(data, offset, count, source)
        offset += _END.size
    if offset != size:
        raise _fail(
            source,
            offset,
            f"{size - offset} bytes follow the "
            + ("end frame" if closed else f"{count} announced events"),
            _REFIX,
        )
    return DecodedTrace(schedule, events)


def _check_end(data: bytes, offset: int, count: int, source: str) -> None:
    if offset == len(data):
        raise _fail(
            source,
            offset,
            "truncated: the trace ends after its last event without its end frame",
            _REFIX,
        )
    if len(data) - offset < _END.size or data[offset : offset + 8] != _END_MAGIC:
        raise _fail(source, offset, "no end frame after the last announced event", _REFIX)
    _magic, said, digest = _END.unpack_from(data, offset)
    if said != count:
        raise _fail(source, offset, f"end frame counts {said} events, the header {count}", _REFIX)
    if blake3.blake3(memoryview(data)[:offset]).digest() != digest:
        raise _fail(source, offset, "end frame digest differs from the trace before it", _REFIX)


def _valid_event(event: Any) -> bool:
    return (
        isinstance(event, list)
        and len(event) == 5
        and type(event[0]) is int
        and isinstance(event[1], str)
        and type(event[2]) is int
        and type(event[3]) is int
        and isinstance(event[4], dict)
        and all(
            isinstance(k, str) and (type(v) is int or isinstance(v, str | bytes))
            for k, v in event[4].items()
        )
    )
