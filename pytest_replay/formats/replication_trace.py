"""The replication trace format (``.rpltrace``, magic ``RPLTRACE``).

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

An event is ``[time_ms, kind, node, peer, attrs]`` (``attrs`` a small ``str -> int |
str | bytes`` map). The end frame makes a trace cut at an event boundary (header count
and all) detectable, and nothing may follow it. A version-1 trace is read with an
``UnclosedFormatWarning``. What the schedule means is :mod:`pytest_replay.replication`'s.
"""

from __future__ import annotations

import os
import struct
import warnings
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import blake3
import msgpack

from pytest_replay._msgpack import unpack_bounded
from pytest_replay.errors import UnclosedFormatWarning, render_error
from pytest_replay.formats.base import Format, FormatError, Framing, laid_out

__all__ = [
    "END_FRAME",
    "END_MAGIC",
    "LEGACY_VERSION",
    "REPLICATION_TRACE",
    "TRACE_FORMAT_VERSION",
    "TRACE_HEADER",
    "TRACE_MAGIC",
    "ReplicationTraceFormat",
    "TraceDamaged",
    "TraceImage",
    "describe_event",
    "encode_trace_image",
    "read_trace_image",
    "render_event",
]

TRACE_MAGIC: Final = b"RPLTRACE"
TRACE_FORMAT_VERSION: Final = 2
LEGACY_VERSION: Final = 1
#: magic, version, flags, header length, event count.
TRACE_HEADER: Final = struct.Struct("<8sHHII")
#: end magic, event count, BLAKE3 digest of every byte before it.
END_FRAME: Final = struct.Struct("<8sI32s")
END_MAGIC: Final = b"RPLTEND1"
#: The smallest msgpack encoding of an event: fixarray, 4 one-byte scalars, empty fixmap.
_MIN_EVENT_BYTES: Final = 6
_REFIX: Final = "re-record it (pytest --replay-record)."

FRAMING: Final = Framing(
    magic=TRACE_MAGIC,
    header=laid_out(
        ("magic", 8), ("version", 2), ("flags", 2), ("header_len", 4), ("event_count", 4)
    ),
    trailer_size=END_FRAME.size,
    notes=(
        "header_len bytes of msgpack header map follow the 20-byte header",
        "then event_count msgpack events back to back, no per-event framing",
        "end frame: b'RPLTEND1', u32 event count, BLAKE3 of every byte before it",
    ),
)


class TraceDamaged(FormatError, ValueError):
    """A stored replication trace is truncated, corrupt or of an unknown version."""

    def __init__(self, source: str, offset: int, what: str, fix: str) -> None:
        self.source = source
        self.offset = offset
        self.detail = what
        super().__init__(f"{what} at byte offset {offset}", where=source, fix=fix)


@dataclass(frozen=True, slots=True)
class TraceImage:
    """A stored trace's header map and raw events, every check passed."""

    header: dict[str, Any]
    events: list[list[Any]]


def describe_event(event: Sequence[Any]) -> str:
    """An event without its index: ``t=300ms role node=1 peer=-1 from=REPLICA ...``."""
    time_ms, kind, node, peer, attrs = event
    words = " ".join(f"{k}={v!r}" if isinstance(v, bytes) else f"{k}={v}" for k, v in attrs.items())
    return f"t={time_ms}ms {kind} node={node} peer={peer} {words}".rstrip()


def render_event(index: int, event: Sequence[Any]) -> str:
    """One readable line: ``#12 t=300ms role node=1 peer=-1 from=REPLICA ...``."""
    return f"#{index} {describe_event(event)}"


def encode_trace_image(header: Mapping[str, Any], events: Iterable[list[Any]]) -> bytes:
    """The stored bytes of a trace with header map ``header`` (identical for identical
    input)."""
    packer = msgpack.Packer(use_bin_type=True)
    head_map: bytes = packer.pack(dict(header))
    body = bytearray()
    count = 0
    for event in events:
        body += packer.pack(event)
        count += 1
    head = TRACE_HEADER.pack(TRACE_MAGIC, TRACE_FORMAT_VERSION, 0, len(head_map), count)
    digest = blake3.blake3(head)
    digest.update(head_map)
    digest.update(body)
    return head + head_map + body + END_FRAME.pack(END_MAGIC, count, digest.digest())


TraceError = Callable[[str, int, str, str], Exception]


def read_trace_image(
    data: bytes,
    source: str = "trace",
    *,
    error: TraceError = TraceDamaged,
    check_header: Callable[[dict[str, Any]], None] | None = None,
    stacklevel: int = 2,
) -> TraceImage:
    """Parse stored trace bytes; every malformation raises ``error(source, offset, what,
    fix)``. ``check_header`` sees the header map before any event is read (and raises
    its own error for a header it refuses)."""
    size = len(data)
    header_size = TRACE_HEADER.size
    if size < header_size:
        raise error(
            source, 0, f"truncated: {size} bytes, the header alone needs {header_size}", _REFIX
        )
    magic, version, _flags, header_len, count = TRACE_HEADER.unpack_from(data, 0)
    if magic != TRACE_MAGIC:
        raise error(source, 0, f"bad magic {magic!r} (expected {TRACE_MAGIC!r})", _REFIX)
    if version not in (TRACE_FORMAT_VERSION, LEGACY_VERSION):
        raise error(
            source,
            8,
            f"unknown trace format version {version} (this build reads {LEGACY_VERSION} "
            f"and {TRACE_FORMAT_VERSION})",
            "re-record with this version of pytest_replay.",
        )
    closed = version == TRACE_FORMAT_VERSION
    if not closed:
        warnings.warn(
            UnclosedFormatWarning(
                render_error(
                    f"trace '{source}' was written before end frames (format version 1): a "
                    "copy cut at an event boundary cannot always be detected",
                    fix="re-record it",
                )
            ),
            stacklevel=stacklevel,
        )
    body_start = header_size + header_len
    if body_start > size:
        raise error(
            source, 12, f"header length {header_len} runs past the end ({size} bytes)", _REFIX
        )
    if count > (size - body_start) // _MIN_EVENT_BYTES:
        raise error(
            source,
            size,
            f"truncated: the event count {count} (byte 16) cannot fit in the "
            f"{size - body_start} bytes after the header",
            _REFIX,
        )
    try:
        header = unpack_bounded(data[header_size:body_start])
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise error(source, header_size, f"header is not msgpack ({exc})", _REFIX) from exc
    if not isinstance(header, dict) or not isinstance(header.get("schedule"), dict):
        raise error(source, header_size, "header has no schedule map", _REFIX)
    if check_header is not None:
        check_header(header)
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=max(size, 1), strict_map_key=True)
    unpacker.feed(data[body_start:])
    events: list[list[Any]] = []
    offset = body_start
    while len(events) < count:
        try:
            event = unpacker.unpack()
        except msgpack.OutOfData:
            raise error(
                source,
                offset,
                f"truncated: {len(events)} events of the {count} announced"
                + (", the last one cut short" if offset != size else ""),
                _REFIX,
            ) from None
        except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
            raise error(
                source, offset, f"event #{len(events)} is not msgpack ({exc})", _REFIX
            ) from exc
        if not _valid_event(event):
            raise error(
                source,
                offset,
                f"event #{len(events)} is not [time_ms, kind, node, peer, attrs]: {event!r:.120}",
                _REFIX,
            )
        events.append(event)
        offset = body_start + unpacker.tell()
    if closed:
        _check_end(data, offset, count, source, error)
        offset += END_FRAME.size
    if offset != size:
        raise error(
            source,
            offset,
            f"{size - offset} bytes follow the "
            + ("end frame" if closed else f"{count} announced events"),
            _REFIX,
        )
    return TraceImage(header, events)


def _check_end(data: bytes, offset: int, count: int, source: str, error: TraceError) -> None:
    if offset == len(data):
        raise error(
            source,
            offset,
            "truncated: the trace ends after its last event without its end frame",
            _REFIX,
        )
    if len(data) - offset < END_FRAME.size or data[offset : offset + 8] != END_MAGIC:
        raise error(source, offset, "no end frame after the last announced event", _REFIX)
    _magic, said, digest = END_FRAME.unpack_from(data, offset)
    if said != count:
        raise error(source, offset, f"end frame counts {said} events, the header {count}", _REFIX)
    if blake3.blake3(memoryview(data)[:offset]).digest() != digest:
        raise error(source, offset, "end frame digest differs from the trace before it", _REFIX)


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


class ReplicationTraceFormat(Format):
    """A replication simulation trace; its records are its events."""

    name = "replication-trace"
    label = "replication trace"
    extensions = (".rpltrace",)
    magic = TRACE_MAGIC
    framing = FRAMING

    def read(self, path: Path) -> TraceImage:
        with self.open(path) as fh:
            data = fh.read()
        return read_trace_image(data, os.fspath(path))

    def records(self, document: Any) -> Sequence[list[Any]]:
        events: list[list[Any]] = document.events
        return events

    def diff_key(self, index: int, record: Any) -> Hashable:
        """Events align by position: a trace is one ordered history."""
        return index

    def render(self, index: int, record: Any) -> str:
        return render_event(index, record)


REPLICATION_TRACE: Final = ReplicationTraceFormat()
