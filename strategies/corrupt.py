"""Damaged log files, each labelled with what was done and how a correct reader reacts.

:func:`corrupted_logs` draws a valid log of one format (VRRL ring log, journal
recording, fleet log, journal record file, replication trace), damages it in exactly
one way, and returns a
:class:`Corrupted`: the damaged bytes, a :class:`Corruption` saying what was
done (kind, file, byte offset, detail) and ``expected_error``, the exception
type a correct reader must raise. ``expected_error is None`` marks damage the
format cannot detect (a payload bit flip in a format without checksums, a
torn append, a record rewritten with a valid checksum): a correct reader then
replays something that differs from :attr:`Corrupted.original`.

Every kind is built directly (no ``filter``), so generation never rejects and
a failing example shrinks to a tiny log and the first kind of its format.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Literal

import msgpack
import numpy as np
from hypothesis import strategies as st

from pytest_replay.errors import ReplayError
from pytest_replay.fleet.errors import FleetLogError
from pytest_replay.fleet.logformat import (
    END_FRAME_BYTES,
    FLAG_FINAL,
    FRAME_HEADER,
    SLAB_HEADER,
    SectionType,
    encode_end_frame,
    encode_frame,
)
from pytest_replay.journal.codec import DEFAULT_PERSISTENCE_ID, encode_entry, entry_to_repr
from pytest_replay.journal.entries import BatchSize, JournalEntry, RngSeed
from pytest_replay.journal.errors import (
    JournalCorrupted,
    JournalDecodeError,
    JournalTruncated,
    UnknownEntryTag,
)
from pytest_replay.journal.file_journal import encode_journal_image
from pytest_replay.journal.frames import (
    FILE_HEADER_BYTES,
    FRAME_HEADER_BYTES,
    JOURNAL_MAGIC,
    scan_frames,
)
from pytest_replay.journal.frames import (
    encode_end_frame as encode_records_end_frame,
)
from pytest_replay.journal.frames import (
    encode_frame as encode_journal_frame,
)
from pytest_replay.journal.record_file import encode_journal_records, encode_record
from pytest_replay.journal.records import JournalRecord
from pytest_replay.replication.errors import TraceFormatError
from pytest_replay.replication.schedule import NetworkSchedule
from pytest_replay.replication.trace import encode_trace
from pytest_replay.ringlog import (
    HEADER_BYTES,
    LOG_MAGIC,
    LOG_VERSION,
    MAX_REPLAY_RECORDS,
    RECORD_BYTES,
    RECORD_MAGIC,
    RING_RECORD_DTYPE,
    CapacityOverflow,
    HeaderMismatch,
    ReplayRecord,
    TruncatedLog,
    ZeroCapacity,
    encode_ring_image,
    read_ring_image,
    records_to_array,
)

from .errors import StrategyArgumentError
from .fleet import FleetLogCase, fleet_log_cases, slab_name
from .journal import journal_entries, journal_records
from .ring import replay_records, ring_logs

__all__ = [
    "CORRUPTION_KINDS",
    "Corrupted",
    "Corruption",
    "LogFormat",
    "corrupt_fleet_log",
    "corrupt_journal",
    "corrupt_ring",
    "corrupted_logs",
]

LogFormat = Literal["ring", "journal", "fleet", "records", "trace"]

_U32: Final = 2**32 - 1
_U64: Final = 2**64 - 1


@dataclass(frozen=True, slots=True)
class Corruption:
    """What was done to a log: ``kind`` (see :data:`CORRUPTION_KINDS`), the damaged
    ``file`` (a name inside :attr:`Corrupted.files`), the byte ``offset`` where the
    damage starts (``None`` when a whole file was added or removed) and a ``detail``."""

    kind: str
    file: str
    offset: int | None
    detail: str


@dataclass(frozen=True, slots=True)
class Corrupted:
    """A damaged log and what a correct reader must do with it.

    ``data`` is the damaged file's bytes (``b""`` when the damage removed it),
    ``files`` every file of the damaged log as ``(name, bytes)`` pairs (one file
    for ring logs and journals, the slabs of a fleet log), ``original`` what a
    correct reader replays from the undamaged log:

    * ``"ring"``: the :class:`~pytest_replay.ringlog.ReplayRecord` values, oldest first;
    * ``"journal"``: the :data:`~pytest_replay.journal.JournalEntry` values;
    * ``"fleet"``: the lifecycle records, then the steps (messages as tuples),
      then the keyframes of the log, as one tuple.
    """

    format: LogFormat
    data: bytes
    corruption: Corruption
    expected_error: type[ReplayError] | None
    original: tuple[Any, ...]
    files: tuple[tuple[str, bytes], ...]
    #: The name a reader opens: the file itself, or the base path of a fleet log.
    entry_name: str

    def write_to(self, folder: str | os.PathLike[str]) -> Path:
        """Write every file of the damaged log into ``folder``; return the path to open."""
        root = Path(folder)
        root.mkdir(parents=True, exist_ok=True)
        for name, data in self.files:
            (root / name).write_bytes(data)
        return root / self.entry_name


# --------------------------------------------------------------------------- helpers


def _flip_bit(data: bytes, offset: int, bit: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= 1 << bit
    return bytes(out)


def _put(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value) :]


def _other_bytes(drawn: bytes, forbidden: bytes) -> bytes:
    """``drawn`` unless it equals ``forbidden``; then ``drawn`` with its first bit flipped."""
    return _flip_bit(drawn, 0, 0) if drawn == forbidden else drawn


_Builder = Callable[[st.DrawFn, Any], Corrupted]


@dataclass(frozen=True, slots=True)
class _Kind:
    name: str
    applies: Callable[[Any], bool]
    build: _Builder
    #: How much log the kind needs (format-specific level, 0: any valid log); the base
    #: log is drawn large enough for the least demanding allowed kind.
    needs: int = 0


def _need(kinds: Sequence[_Kind], allowed: frozenset[str]) -> int:
    return min(kind.needs for kind in kinds if kind.name in allowed)


def _usable(kinds: Sequence[_Kind], info: Any, allowed: frozenset[str]) -> list[_Kind]:
    usable = [kind for kind in kinds if kind.name in allowed and kind.applies(info)]
    if not usable:
        raise StrategyArgumentError(
            f"none of the corruption kinds {sorted(allowed)} applies to this log. "
            "Fix: allow kinds that apply to every log (for example 'truncate_header')."
        )
    return usable


def _draw_kind(
    draw: st.DrawFn, kinds: Sequence[_Kind], info: Any, allowed: frozenset[str]
) -> Corrupted:
    return draw(st.sampled_from(_usable(kinds, info, allowed))).build(draw, info)


def _fixed(
    kinds: Sequence[_Kind], info: Any, allowed: frozenset[str]
) -> st.SearchStrategy[Corrupted]:
    """Corruptions of one given log; raises at once when no allowed kind applies to it."""
    usable = _usable(kinds, info, allowed)
    return st.sampled_from(usable).flatmap(
        lambda kind: st.composite(lambda draw: kind.build(draw, info))()
    )


# --------------------------------------------------------------------------- ring


@dataclass(frozen=True, slots=True)
class _RingInfo:
    data: bytes
    capacity: int
    cursor: int
    live: tuple[int, ...]  # slots holding a record, ascending
    expected: tuple[ReplayRecord, ...]


def _ring_info(data: bytes, expected: Sequence[ReplayRecord]) -> _RingInfo:
    image = read_ring_image(data)
    body = np.frombuffer(data, RING_RECORD_DTYPE, count=image.capacity, offset=HEADER_BYTES)
    live = tuple(int(i) for i in np.flatnonzero(body["magic"] != 0))
    return _RingInfo(data, image.capacity, image.cursor, live, tuple(expected))


def _ring(
    info: _RingInfo,
    data: bytes,
    kind: str,
    offset: int | None,
    detail: str,
    error: type[ReplayError] | None,
) -> Corrupted:
    return Corrupted(
        "ring",
        data,
        Corruption(kind, "log.vrrl", offset, detail),
        error,
        info.expected,
        (("log.vrrl", data),),
        "log.vrrl",
    )


def _ring_truncate_header(draw: st.DrawFn, info: _RingInfo) -> Corrupted:
    cut = draw(st.integers(0, HEADER_BYTES - 1))
    return _ring(info, info.data[:cut], "truncate_header", cut, f"cut to {cut} bytes", TruncatedLog)


def _ring_truncate_mid_record(draw: st.DrawFn, info: _RingInfo) -> Corrupted:
    slot = draw(st.integers(0, info.capacity - 1))
    inside = draw(st.integers(1, RECORD_BYTES - 1))
    cut = HEADER_BYTES + RECORD_BYTES * slot + inside
    return _ring(
        info,
        info.data[:cut],
        "truncate_mid_record",
        cut,
        f"cut {inside} bytes into record slot {slot}",
        TruncatedLog,
    )


def _ring_truncate_record_boundary(draw: st.DrawFn, info: _RingInfo) -> Corrupted:
    slot = draw(st.integers(0, info.capacity - 1))
    cut = HEADER_BYTES + RECORD_BYTES * slot
    return _ring(
        info,
        info.data[:cut],
        "truncate_record_boundary",
        cut,
        f"cut before record slot {slot}",
        TruncatedLog,
    )


def _ring_wrong_magic(draw: st.DrawFn, info: _RingInfo) -> Corrupted:
    magic = _other_bytes(draw(st.binary(min_size=8, max_size=8)), LOG_MAGIC)
    return _ring(
        info,
        _put(info.data, 0, magic),
        "wrong_file_magic",
        0,
        f"file magic set to {magic!r}",
        HeaderMismatch,
    )


def _ring_wrong_version(draw: st.DrawFn, info: _RingInfo) -> Corrupted:
    version = draw(st.integers(0, _U32).map(lambda v: v if v != LOG_VERSION else 0))
    return _ring(
        info,
        _put(info.data, 8, struct.pack("<I", version)),
        "wrong_version",
        8,
        f"version set to {version}",
        HeaderMismatch,
    )


def _ring_capacity_zero(draw: st.DrawFn, info: _RingInfo) -> Corrupted:
    return _ring(
        info,
        _put(info.data, 16, struct.pack("<Q", 0)),
        "capacity_zero",
        16,
        "stored capacity set to 0",
        ZeroCapacity,
    )


def _ring_capacity_above_max(draw: st.DrawFn, info: _RingInfo) -> Corrupted:
    capacity = draw(st.integers(MAX_REPLAY_RECORDS + 1, _U64))
    return _ring(
        info,
        _put(info.data, 16, struct.pack("<Q", capacity)),
        "capacity_above_max",
        16,
        f"stored capacity set to {capacity}",
        CapacityOverflow,
    )


def _ring_capacity_past_file(draw: st.DrawFn, info: _RingInfo) -> Corrupted:
    capacity = draw(st.integers(info.capacity + 1, MAX_REPLAY_RECORDS))
    return _ring(
        info,
        _put(info.data, 16, struct.pack("<Q", capacity)),
        "capacity_past_file",
        16,
        f"stored capacity {capacity} needs more bytes than the file has",
        TruncatedLog,
    )


def _ring_wrong_record_magic(draw: st.DrawFn, info: _RingInfo) -> Corrupted:
    slot = draw(st.integers(0, info.capacity - 1))
    magic = draw(st.integers(1, _U32).map(lambda v: v if v != RECORD_MAGIC else 1))
    offset = HEADER_BYTES + RECORD_BYTES * slot
    return _ring(
        info,
        _put(info.data, offset, struct.pack("<I", magic)),
        "wrong_record_magic",
        offset,
        f"record slot {slot} magic set to {magic:#010x}",
        HeaderMismatch,
    )


def _ring_erased_record(draw: st.DrawFn, info: _RingInfo) -> Corrupted:
    slot = draw(st.sampled_from(info.live))
    offset = HEADER_BYTES + RECORD_BYTES * slot
    return _ring(
        info,
        _put(info.data, offset, bytes(4)),
        "erased_record",
        offset,
        f"live record slot {slot} magic zeroed (record vanishes)",
        None,
    )


def _ring_payload_bit_flip(draw: st.DrawFn, info: _RingInfo) -> Corrupted:
    slot = draw(st.sampled_from(info.live))
    byte = draw(st.integers(4, RECORD_BYTES - 1))
    bit = draw(st.integers(0, 7))
    offset = HEADER_BYTES + RECORD_BYTES * slot + byte
    return _ring(
        info,
        _flip_bit(info.data, offset, bit),
        "payload_bit_flip",
        offset,
        f"bit {bit} of byte {byte} of live record slot {slot} flipped",
        None,
    )


def _rotations_that_differ(info: _RingInfo) -> list[int]:
    """Live slots where starting the replay gives different record bytes than now."""
    live = info.live
    if len(live) < 2:
        return []
    start = next((k for k, slot in enumerate(live) if slot >= info.cursor), 0)
    body = info.data[HEADER_BYTES:]
    rows = [body[RECORD_BYTES * slot : RECORD_BYTES * (slot + 1)] for slot in live]
    now = rows[start:] + rows[:start]
    out = []
    for shift in range(1, len(live)):
        k = (start + shift) % len(live)
        if rows[k:] + rows[:k] != now:
            out.append(live[k])
    return out


def _ring_cursor_out_of_range(draw: st.DrawFn, info: _RingInfo) -> Corrupted:
    slot = draw(st.sampled_from(_rotations_that_differ(info)))
    wraps = draw(st.integers(1, (_U64 - slot) // info.capacity))
    stored = slot + wraps * info.capacity
    return _ring(
        info,
        _put(info.data, 24, struct.pack("<Q", stored)),
        "cursor_out_of_range",
        24,
        f"stored cursor {stored} (capacity {info.capacity}) replays from slot {slot}",
        None,
    )


def _ring_torn_append(draw: st.DrawFn, info: _RingInfo) -> Corrupted:
    record = records_to_array([draw(replay_records())]).tobytes()
    offset = HEADER_BYTES + RECORD_BYTES * info.cursor
    if len(info.live) == info.capacity and record == info.data[offset : offset + RECORD_BYTES]:
        record = _flip_bit(record, 40, 0)  # equal to the record it overwrites: change its epoch
    return _ring(
        info,
        _put(info.data, offset, record),
        "torn_append",
        offset,
        f"record written at slot {info.cursor}, cursor not advanced",
        None,
    )


_RING_KINDS: Final = (
    _Kind("truncate_header", lambda i: True, _ring_truncate_header),
    _Kind("truncate_mid_record", lambda i: True, _ring_truncate_mid_record),
    _Kind("truncate_record_boundary", lambda i: True, _ring_truncate_record_boundary),
    _Kind("wrong_file_magic", lambda i: True, _ring_wrong_magic),
    _Kind("wrong_version", lambda i: True, _ring_wrong_version),
    _Kind("capacity_zero", lambda i: True, _ring_capacity_zero),
    _Kind("capacity_above_max", lambda i: True, _ring_capacity_above_max),
    _Kind(
        "capacity_past_file", lambda i: i.capacity < MAX_REPLAY_RECORDS, _ring_capacity_past_file
    ),
    _Kind("wrong_record_magic", lambda i: True, _ring_wrong_record_magic),
    _Kind("erased_record", lambda i: bool(i.live), _ring_erased_record, 1),
    _Kind("payload_bit_flip", lambda i: bool(i.live), _ring_payload_bit_flip, 1),
    _Kind(
        "cursor_out_of_range",
        lambda i: bool(_rotations_that_differ(i)),
        _ring_cursor_out_of_range,
        2,
    ),
    _Kind("torn_append", lambda i: True, _ring_torn_append),
)


def corrupt_ring(
    data: bytes, expected: Sequence[ReplayRecord], kinds: Iterable[str] | None = None
) -> st.SearchStrategy[Corrupted]:
    """One corruption of the valid VRRL image ``data`` whose replay is ``expected``.

    Only kinds that apply to this image are drawn (a payload bit flip needs a
    live record, a cursor change needs a rotation that replays differently)::

        >>> from pytest_replay.ringlog import encode_ring_image
        >>> from pytest_replay.strategies.ring import recorded_slots
        >>> records = [ReplayRecord(recorded_slots().example())]
        >>> image = encode_ring_image(4, records)
        >>> corrupt_ring(image, records, ["capacity_zero"]).example().expected_error
        <class 'pytest_replay.ringlog.ZeroCapacity'>
    """
    allowed = _allowed("ring", kinds)
    info = _ring_info(bytes(data), expected)
    return _fixed(_RING_KINDS, info, allowed)


@st.composite
def _ring_corrupted(draw: st.DrawFn, allowed: frozenset[str]) -> Corrupted:
    need = _need(_RING_KINDS, allowed)
    case = draw(ring_logs(capacity=st.integers(max(1, need), 8), min_appends=need, max_appends=12))
    # Capture timestamps never repeat, which also makes every live record distinct.
    first = case.appended[0].slot.timestamp_ns if case.appended else 0
    appended = [
        replace(record, slot=replace(record.slot, timestamp_ns=(first + k) % (_U64 + 1)))
        for k, record in enumerate(case.appended)
    ]
    data = encode_ring_image(case.capacity, appended)
    expected = appended[max(0, len(appended) - case.capacity) :]
    return _draw_kind(draw, _RING_KINDS, _ring_info(data, expected), allowed)


# --------------------------------------------------------------------------- journal


@dataclass(frozen=True, slots=True)
class _JournalInfo:
    data: bytes
    entries: tuple[JournalEntry, ...]
    batch_size: int
    frames: tuple[tuple[int, int], ...]  # (start, end) byte range of every frame


def _journal_image(entries: Sequence[JournalEntry | bytes], batch_size: int) -> bytes:
    """A journal recording image; ``bytes`` items are stored as raw entry payloads."""
    reprs = []
    for seq, entry in enumerate(entries, start=1):
        if isinstance(entry, bytes):
            base = entry_to_repr(BatchSize("x", 0), DEFAULT_PERSISTENCE_ID, seq)
            reprs.append(replace(base, payload=entry))
        else:
            reprs.append(entry_to_repr(entry, DEFAULT_PERSISTENCE_ID, seq))
    return encode_journal_image(reprs, batch_size=batch_size)


def _journal_info(entries: Sequence[JournalEntry], batch_size: int) -> _JournalInfo:
    data = _journal_image(entries, batch_size)
    frames = scan_frames(data, JOURNAL_MAGIC, "<strategy>").frames
    ranges = tuple((offset, offset + FRAME_HEADER_BYTES + len(body)) for offset, body in frames)
    return _JournalInfo(data, tuple(entries), batch_size, ranges)


_JOURNAL_FILE: Final = "journal.prj"


def _journal(
    info: _JournalInfo,
    data: bytes,
    kind: str,
    offset: int | None,
    detail: str,
    error: type[ReplayError] | None,
) -> Corrupted:
    return Corrupted(
        "journal",
        data,
        Corruption(kind, _JOURNAL_FILE, offset, detail),
        error,
        info.entries,
        ((_JOURNAL_FILE, data),),
        _JOURNAL_FILE,
    )


def _j_truncate_header(draw: st.DrawFn, info: _JournalInfo) -> Corrupted:
    cut = draw(st.integers(0, FILE_HEADER_BYTES - 1))
    return _journal(
        info, info.data[:cut], "truncate_header", cut, f"cut to {cut} bytes", JournalCorrupted
    )


def _j_truncate_mid_frame(draw: st.DrawFn, info: _JournalInfo) -> Corrupted:
    index = draw(st.integers(0, len(info.frames) - 1))
    start, end = info.frames[index]
    cut = draw(st.integers(start + 1, end - 1))
    return _journal(
        info,
        info.data[:cut],
        "truncate_mid_frame",
        cut,
        f"cut {cut - start} bytes into frame #{index}",
        JournalCorrupted,
    )


def _j_truncate_frame_boundary(draw: st.DrawFn, info: _JournalInfo) -> Corrupted:
    index = draw(st.integers(0, len(info.frames) - 1))
    cut = info.frames[index][0]
    return _journal(
        info,
        info.data[:cut],
        "truncate_frame_boundary",
        cut,
        f"frames #{index}.. dropped at a frame boundary",
        None,
    )


def _j_wrong_magic(draw: st.DrawFn, info: _JournalInfo) -> Corrupted:
    magic = _other_bytes(draw(st.binary(min_size=8, max_size=8)), JOURNAL_MAGIC)
    return _journal(
        info,
        _put(info.data, 0, magic),
        "wrong_file_magic",
        0,
        f"file magic set to {magic!r}",
        JournalCorrupted,
    )


def _j_wrong_version(draw: st.DrawFn, info: _JournalInfo) -> Corrupted:
    version = draw(st.integers(0, _U32).map(lambda v: v if v != 1 else 0))
    return _journal(
        info,
        _put(info.data, 8, struct.pack("<I", version)),
        "wrong_version",
        8,
        f"version set to {version}",
        JournalCorrupted,
    )


def _j_crc_mismatch(draw: st.DrawFn, info: _JournalInfo) -> Corrupted:
    index = draw(st.integers(0, len(info.frames) - 1))
    start, end = info.frames[index]
    offset = draw(st.integers(start + FRAME_HEADER_BYTES, end - 1))
    bit = draw(st.integers(0, 7))
    return _journal(
        info,
        _flip_bit(info.data, offset, bit),
        "crc_mismatch",
        offset,
        f"bit {bit} flipped in the body of frame #{index}",
        JournalCorrupted,
    )


def _j_frame_header_damage(draw: st.DrawFn, info: _JournalInfo) -> Corrupted:
    index = draw(st.integers(0, len(info.frames) - 1))
    start = info.frames[index][0]
    offset = start + draw(st.integers(0, FRAME_HEADER_BYTES - 1))
    bit = draw(st.integers(0, 7))
    return _journal(
        info,
        _flip_bit(info.data, offset, bit),
        "frame_header_damage",
        offset,
        f"bit {bit} flipped in the header of frame #{index}",
        JournalCorrupted,
    )


def _packb(value: object) -> bytes:
    out: bytes = msgpack.packb(value, use_bin_type=True)
    return out


def _j_unknown_frame_op(draw: st.DrawFn, info: _JournalInfo) -> Corrupted:
    op = draw(st.integers(2, 127))
    frame = encode_journal_frame(_packb([op, DEFAULT_PERSISTENCE_ID]))
    index = draw(st.integers(0, len(info.frames)))
    at = info.frames[index][0] if index < len(info.frames) else len(info.data)
    data = info.data[:at] + frame + info.data[at:]
    return _journal(
        info,
        data,
        "unknown_frame_op",
        at,
        f"frame with unknown op {op} inserted before frame #{index}",
        JournalCorrupted,
    )


def _replace_entry(info: _JournalInfo, index: int, payload: JournalEntry | bytes) -> bytes:
    items: list[JournalEntry | bytes] = list(info.entries)
    items[index] = payload
    return _journal_image(items, info.batch_size)


def _entry_offset(info: _JournalInfo, index: int) -> int:
    return info.frames[index // info.batch_size][0]


def _j_unknown_entry_tag(draw: st.DrawFn, info: _JournalInfo) -> Corrupted:
    index = draw(st.integers(0, len(info.entries) - 1))
    tag = draw(st.integers(5, 127))
    data = _replace_entry(info, index, _packb([tag, "?", 0]))
    return _journal(
        info,
        data,
        "unknown_entry_tag",
        _entry_offset(info, index),
        f"entry #{index} (sequence nr {index + 1}) has tag {tag}",
        UnknownEntryTag,
    )


_MALFORMED: Final = (
    ("not msgpack", b"\xc1"),
    ("DeviceCmd with a text timestamp", _packb([1, "soon", "dev", ""])),
    ("RngSeed with a negative seed", _packb([3, "actor", -1])),
    ("untagged map", _packb({"kind": "DeviceCmd"})),
)


def _j_malformed_entry(draw: st.DrawFn, info: _JournalInfo) -> Corrupted:
    index = draw(st.integers(0, len(info.entries) - 1))
    what, payload = draw(st.sampled_from(_MALFORMED))
    data = _replace_entry(info, index, payload)
    return _journal(
        info,
        data,
        "malformed_entry",
        _entry_offset(info, index),
        f"entry #{index} payload is {what}",
        JournalDecodeError,
    )


def _j_zero_tail(draw: st.DrawFn, info: _JournalInfo) -> Corrupted:
    size = draw(st.integers(1, 64))
    return _journal(
        info,
        info.data + bytes(size),
        "zero_tail",
        len(info.data),
        f"{size} zero bytes appended (preallocated tail)",
        JournalCorrupted,
    )


def _j_torn_append(draw: st.DrawFn, info: _JournalInfo) -> Corrupted:
    entry = draw(journal_entries())
    seq = len(info.entries) + 1
    body = _packb(
        [
            0,
            [
                [
                    DEFAULT_PERSISTENCE_ID,
                    seq,
                    encode_entry(entry),
                    "pytest_replay.journal.JournalEntry/1",
                    "pytest-replay",
                    False,
                    [],
                ]
            ],
        ]
    )
    frame = encode_journal_frame(body)
    keep = draw(st.integers(1, len(frame) - 1))
    return _journal(
        info,
        info.data + frame[:keep],
        "torn_append",
        len(info.data),
        f"first {keep} of {len(frame)} bytes of a new frame appended",
        JournalCorrupted,
    )


def _j_dropped_frame(draw: st.DrawFn, info: _JournalInfo) -> Corrupted:
    index = draw(st.integers(0, len(info.frames) - 2))
    start, end = info.frames[index]
    return _journal(
        info,
        info.data[:start] + info.data[end:],
        "dropped_frame",
        start,
        f"frame #{index} removed (a sequence gap follows)",
        JournalCorrupted,
    )


def _j_duplicated_frame(draw: st.DrawFn, info: _JournalInfo) -> Corrupted:
    index = draw(st.integers(0, len(info.frames) - 1))
    start, end = info.frames[index]
    data = info.data[:end] + info.data[start:end] + info.data[end:]
    return _journal(
        info,
        data,
        "duplicated_frame",
        end,
        f"frame #{index} written twice (duplicate sequence nrs)",
        JournalCorrupted,
    )


def _j_rewritten_entry(draw: st.DrawFn, info: _JournalInfo) -> Corrupted:
    index = draw(st.integers(0, len(info.entries) - 1))
    entry = draw(journal_entries())
    if entry == info.entries[index]:
        entry = BatchSize("rewritten", 1) if entry != BatchSize("rewritten", 1) else RngSeed("", 0)
    data = _replace_entry(info, index, entry)
    return _journal(
        info,
        data,
        "rewritten_entry",
        _entry_offset(info, index),
        f"entry #{index} replaced by {entry!r} with valid checksums",
        None,
    )


def _j_delete_marker(draw: st.DrawFn, info: _JournalInfo) -> Corrupted:
    upto = draw(st.integers(1, len(info.entries)))
    frame = encode_journal_frame(_packb([1, DEFAULT_PERSISTENCE_ID, upto]))
    return _journal(
        info,
        info.data + frame,
        "delete_marker",
        len(info.data),
        f"delete marker up to sequence nr {upto} appended",
        None,
    )


_JOURNAL_KINDS: Final = (
    _Kind("truncate_header", lambda i: True, _j_truncate_header),
    _Kind("truncate_mid_frame", lambda i: bool(i.frames), _j_truncate_mid_frame, 1),
    _Kind("truncate_frame_boundary", lambda i: bool(i.frames), _j_truncate_frame_boundary, 1),
    _Kind("wrong_file_magic", lambda i: True, _j_wrong_magic),
    _Kind("wrong_version", lambda i: True, _j_wrong_version),
    _Kind("crc_mismatch", lambda i: bool(i.frames), _j_crc_mismatch, 1),
    _Kind("frame_header_damage", lambda i: bool(i.frames), _j_frame_header_damage, 1),
    _Kind("unknown_frame_op", lambda i: True, _j_unknown_frame_op),
    _Kind("unknown_entry_tag", lambda i: bool(i.entries), _j_unknown_entry_tag, 1),
    _Kind("malformed_entry", lambda i: bool(i.entries), _j_malformed_entry, 1),
    _Kind("zero_tail", lambda i: True, _j_zero_tail),
    _Kind("torn_append", lambda i: True, _j_torn_append),
    _Kind("dropped_frame", lambda i: len(i.frames) >= 2, _j_dropped_frame, 2),
    _Kind("duplicated_frame", lambda i: bool(i.frames), _j_duplicated_frame, 1),
    _Kind("rewritten_entry", lambda i: bool(i.entries), _j_rewritten_entry, 1),
    _Kind("delete_marker", lambda i: bool(i.entries), _j_delete_marker, 1),
)


def corrupt_journal(
    entries: Sequence[JournalEntry], batch_size: int = 4096, kinds: Iterable[str] | None = None
) -> st.SearchStrategy[Corrupted]:
    """One corruption of the journal recording of ``entries`` (``batch_size`` per frame).

    >>> case = corrupt_journal([RngSeed("actor", 7)], kinds=["unknown_entry_tag"]).example()
    >>> case.expected_error.__name__
    'UnknownEntryTag'
    """
    if batch_size < 1:
        raise StrategyArgumentError(
            f"batch_size={batch_size} must be >= 1. Fix: pass a positive size."
        )
    allowed = _allowed("journal", kinds)
    info = _journal_info(list(entries), batch_size)
    return _fixed(_JOURNAL_KINDS, info, allowed)


@st.composite
def _journal_corrupted(draw: st.DrawFn, allowed: frozenset[str]) -> Corrupted:
    need = _need(_JOURNAL_KINDS, allowed)
    entries = draw(st.lists(journal_entries(), min_size=need, max_size=10))
    batch_size = 1 if need >= 2 else draw(st.integers(1, 4))
    return _draw_kind(draw, _JOURNAL_KINDS, _journal_info(entries, batch_size), allowed)


# --------------------------------------------------------------------------- fleet


def _fleet(
    case: FleetLogCase,
    slabs: Sequence[bytes | None],
    damaged: int,
    kind: str,
    offset: int | None,
    detail: str,
    error: type[ReplayError] | None,
    extra: Sequence[tuple[str, bytes]] = (),
) -> Corrupted:
    files = [(slab_name(index), data) for index, data in enumerate(slabs) if data is not None]
    files.extend(extra)
    data = slabs[damaged] if damaged < len(slabs) else dict(extra).get(slab_name(damaged))
    return Corrupted(
        "fleet",
        data or b"",
        Corruption(kind, slab_name(damaged), offset, detail),
        error,
        case.original,
        tuple(files),
        case.base_name,
    )


def _with_slab(case: FleetLogCase, index: int, data: bytes | None) -> list[bytes | None]:
    slabs: list[bytes | None] = list(case.slabs)
    slabs[index] = data
    return slabs


def _frame_ranges(slab: bytes) -> list[tuple[int, int, int]]:
    """(start, end, section type) of every data frame of a valid slab (not its end frame)."""
    out = []
    offset = SLAB_HEADER.size
    stop = len(slab) - END_FRAME_BYTES
    while offset < stop:
        kind, _reserved, length, _crc = FRAME_HEADER.unpack_from(slab, offset)
        end = offset + FRAME_HEADER.size + length
        out.append((offset, end, kind))
        offset = end
    return out


def _reclosed(slab: bytes) -> bytes:
    """``slab`` (data frames changed, old end frame still last) with a matching end frame:
    damage made with valid checksums throughout, as a writer bug would leave it."""
    body = slab[:-END_FRAME_BYTES]
    return body + encode_end_frame(body[SLAB_HEADER.size :], len(_frame_ranges(slab)))


def _draw_frame(draw: st.DrawFn, case: FleetLogCase) -> tuple[int, int, int, int]:
    """(slab, start, end, type) of a drawn frame (every slab holds at least one)."""
    slab = draw(st.integers(0, len(case.slabs) - 1))
    start, end, kind = draw(st.sampled_from(_frame_ranges(case.slabs[slab])))
    return slab, start, end, kind


def _f_truncate_header(draw: st.DrawFn, case: FleetLogCase) -> Corrupted:
    slab = draw(st.integers(0, len(case.slabs) - 1))
    cut = draw(st.integers(0, SLAB_HEADER.size - 1))
    return _fleet(
        case,
        _with_slab(case, slab, case.slabs[slab][:cut]),
        slab,
        "truncate_header",
        cut,
        f"slab {slab} cut to {cut} bytes",
        FleetLogError,
    )


def _f_truncate_mid_frame(draw: st.DrawFn, case: FleetLogCase) -> Corrupted:
    slab, start, end, _kind = _draw_frame(draw, case)
    cut = draw(st.integers(start + 1, end - 1))
    return _fleet(
        case,
        _with_slab(case, slab, case.slabs[slab][:cut]),
        slab,
        "truncate_mid_frame",
        cut,
        f"slab {slab} cut {cut - start} bytes into a frame",
        FleetLogError,
    )


def _f_truncate_frame_boundary(draw: st.DrawFn, case: FleetLogCase) -> Corrupted:
    # Any boundary of any slab, the one before the end frame included: the slab's end
    # frame is gone either way, so the reader reports the slab as truncated.
    slab = draw(st.integers(0, len(case.slabs) - 1))
    data = case.slabs[slab]
    start = draw(st.sampled_from([start for start, _end, _kind in _frame_ranges(data)]))
    cut = draw(st.sampled_from([start, len(data) - END_FRAME_BYTES]))
    return _fleet(
        case,
        _with_slab(case, slab, data[:cut]),
        slab,
        "truncate_frame_boundary",
        cut,
        f"slab {slab} cut at a frame boundary (its end frame and later frames dropped)",
        FleetLogError,
    )


def _f_frame_after_end(draw: st.DrawFn, case: FleetLogCase) -> Corrupted:
    slab, start, end, _kind = _draw_frame(draw, case)
    data = case.slabs[slab]
    return _fleet(
        case,
        _with_slab(case, slab, data + data[start:end]),
        slab,
        "frame_after_end",
        len(data),
        f"a copy of a valid frame appended after the end frame of slab {slab}",
        FleetLogError,
    )


def _f_end_frame_mismatch(draw: st.DrawFn, case: FleetLogCase) -> Corrupted:
    slab = draw(st.integers(0, len(case.slabs) - 1))
    data = case.slabs[slab]
    count = len(_frame_ranges(data))
    wrong = (count + draw(st.integers(1, _U64))) % 2**64  # never equal to count
    at = len(data) - END_FRAME_BYTES
    end = encode_end_frame(data[SLAB_HEADER.size : at], wrong)
    return _fleet(
        case,
        _with_slab(case, slab, data[:at] + end),
        slab,
        "end_frame_mismatch",
        at,
        f"end frame of slab {slab} counts {wrong} frames (valid CRC), the slab holds {count}",
        FleetLogError,
    )


def _f_wrong_magic(draw: st.DrawFn, case: FleetLogCase) -> Corrupted:
    slab = draw(st.integers(0, len(case.slabs) - 1))
    magic = _other_bytes(draw(st.binary(min_size=8, max_size=8)), b"PRFLOG01")
    return _fleet(
        case,
        _with_slab(case, slab, _put(case.slabs[slab], 0, magic)),
        slab,
        "wrong_file_magic",
        0,
        f"slab {slab} magic set to {magic!r}",
        FleetLogError,
    )


def _f_wrong_version(draw: st.DrawFn, case: FleetLogCase) -> Corrupted:
    slab = draw(st.integers(0, len(case.slabs) - 1))
    version = draw(st.integers(0, 0xFFFF).map(lambda v: v if v not in (1, 2) else 0))
    data = _put(case.slabs[slab], 8, struct.pack("<H", version))
    return _fleet(
        case,
        _with_slab(case, slab, data),
        slab,
        "wrong_version",
        8,
        f"slab {slab} version set to {version}",
        FleetLogError,
    )


def _f_unknown_flags(draw: st.DrawFn, case: FleetLogCase) -> Corrupted:
    slab = draw(st.integers(0, len(case.slabs) - 1))
    bit = draw(st.integers(1, 15))
    data = _flip_bit(case.slabs[slab], 10 + bit // 8, bit % 8)
    return _fleet(
        case,
        _with_slab(case, slab, data),
        slab,
        "unknown_flags",
        10,
        f"slab {slab} flag bit {bit} set",
        FleetLogError,
    )


def _f_slab_index_mismatch(draw: st.DrawFn, case: FleetLogCase) -> Corrupted:
    slab = draw(st.integers(0, len(case.slabs) - 1))
    index = draw(st.integers(0, _U32).map(lambda v: v if v != slab else slab + 1))
    data = _put(case.slabs[slab], 12, struct.pack("<I", index))
    return _fleet(
        case,
        _with_slab(case, slab, data),
        slab,
        "slab_index_mismatch",
        12,
        f"slab {slab} header says slab {index}",
        FleetLogError,
    )


def _f_crc_mismatch(draw: st.DrawFn, case: FleetLogCase) -> Corrupted:
    slab, start, end, _kind = _draw_frame(draw, case)
    offset = draw(st.integers(start + FRAME_HEADER.size, end - 1))
    bit = draw(st.integers(0, 7))
    data = _flip_bit(case.slabs[slab], offset, bit)
    return _fleet(
        case,
        _with_slab(case, slab, data),
        slab,
        "crc_mismatch",
        offset,
        f"bit {bit} of a frame payload flipped in slab {slab}",
        FleetLogError,
    )


def _f_frame_header_damage(draw: st.DrawFn, case: FleetLogCase) -> Corrupted:
    slab, start, _end, _kind = _draw_frame(draw, case)
    offset = start + draw(st.integers(0, FRAME_HEADER.size - 1))
    bit = draw(st.integers(0, 7))
    data = _flip_bit(case.slabs[slab], offset, bit)
    return _fleet(
        case,
        _with_slab(case, slab, data),
        slab,
        "frame_header_damage",
        offset,
        f"bit {bit} of a frame header flipped in slab {slab}",
        FleetLogError,
    )


def _f_unknown_section(draw: st.DrawFn, case: FleetLogCase) -> Corrupted:
    slab, start, _end, _kind = _draw_frame(draw, case)
    section = draw(st.integers(5, 0xFFFF))  # 4 is the end frame
    payload = draw(st.binary(max_size=16))
    head = struct.pack("<HHI", section, 0, len(payload))
    frame = head + struct.pack("<I", zlib.crc32(payload, zlib.crc32(head))) + payload
    data = case.slabs[slab][:start] + frame + case.slabs[slab][start:]
    return _fleet(
        case,
        _with_slab(case, slab, data),
        slab,
        "unknown_section",
        start,
        f"frame of unknown section type {section} inserted in slab {slab}",
        FleetLogError,
    )


def _f_malformed_section(draw: st.DrawFn, case: FleetLogCase) -> Corrupted:
    slab, start, end, kind = _draw_frame(draw, case)
    frame = encode_frame(SectionType(kind), b"\xc1")
    data = case.slabs[slab][:start] + frame + case.slabs[slab][end:]
    return _fleet(
        case,
        _with_slab(case, slab, data),
        slab,
        "malformed_section",
        start,
        f"a {SectionType(kind).name.lower()} payload replaced by bytes that are not "
        "msgpack (valid CRC)",
        FleetLogError,
    )


def _f_missing_slab(draw: st.DrawFn, case: FleetLogCase) -> Corrupted:
    slab = draw(st.integers(0, len(case.slabs) - 1))
    return _fleet(
        case,
        _with_slab(case, slab, None),
        slab,
        "missing_slab",
        None,
        f"slab {slab} of {len(case.slabs)} removed",
        FleetLogError,
    )


def _f_stray_slab(draw: st.DrawFn, case: FleetLogCase) -> Corrupted:
    index = len(case.slabs)
    stray = _put(case.slabs[0], 12, struct.pack("<I", index))
    return _fleet(
        case,
        list(case.slabs),
        index,
        "stray_slab",
        None,
        f"slab {index} left after the final slab",
        FleetLogError,
        [(slab_name(index), stray)],
    )


def _set_final(slab: bytes, final: bool) -> bytes:
    (flags,) = struct.unpack_from("<H", slab, 10)
    flags = flags | FLAG_FINAL if final else flags & ~FLAG_FINAL
    return _put(slab, 10, struct.pack("<H", flags))


def _f_final_flag_cleared(draw: st.DrawFn, case: FleetLogCase) -> Corrupted:
    last = len(case.slabs) - 1
    data = _set_final(case.slabs[last], False)
    return _fleet(
        case,
        _with_slab(case, last, data),
        last,
        "final_flag_cleared",
        10,
        f"last slab {last} no longer marked final",
        FleetLogError,
    )


def _f_final_flag_early(draw: st.DrawFn, case: FleetLogCase) -> Corrupted:
    slab = draw(st.integers(0, len(case.slabs) - 2))
    data = _set_final(case.slabs[slab], True)
    return _fleet(
        case,
        _with_slab(case, slab, data),
        slab,
        "final_flag_early",
        10,
        f"slab {slab} of {len(case.slabs)} marked final",
        FleetLogError,
    )


def _f_rewritten_step(draw: st.DrawFn, case: FleetLogCase) -> Corrupted:
    sections = [
        (slab, start, end)
        for slab, data in enumerate(case.slabs)
        for start, end, kind in _frame_ranges(data)
        if kind == SectionType.STEPS
    ]
    slab, start, end = draw(st.sampled_from(sections))
    fields = msgpack.unpackb(case.slabs[slab][start + FRAME_HEADER.size : end], raw=False)
    ids = np.frombuffer(fields[4], "<u8")
    stamps = np.frombuffer(fields[5], "<u8").copy()
    index = draw(st.integers(0, len(ids) - 1))
    stamps[index] ^= np.uint64(1 + draw(st.integers(0, 62)))
    fields[5] = stamps.tobytes()
    frame = encode_frame(SectionType.STEPS, _packb(fields))
    data = _reclosed(case.slabs[slab][:start] + frame + case.slabs[slab][end:])
    return _fleet(
        case,
        _with_slab(case, slab, data),
        slab,
        "rewritten_step",
        start,
        f"timestamp of step {int(ids[index])} changed with a valid CRC",
        None,
    )


_FLEET_KINDS: Final = (
    _Kind("truncate_header", lambda c: True, _f_truncate_header),
    _Kind("truncate_mid_frame", lambda c: True, _f_truncate_mid_frame),
    _Kind("truncate_frame_boundary", lambda c: True, _f_truncate_frame_boundary),
    _Kind("frame_after_end", lambda c: True, _f_frame_after_end),
    _Kind("end_frame_mismatch", lambda c: True, _f_end_frame_mismatch),
    _Kind("wrong_file_magic", lambda c: True, _f_wrong_magic),
    _Kind("wrong_version", lambda c: True, _f_wrong_version),
    _Kind("unknown_flags", lambda c: True, _f_unknown_flags),
    _Kind("slab_index_mismatch", lambda c: True, _f_slab_index_mismatch),
    _Kind("crc_mismatch", lambda c: True, _f_crc_mismatch),
    _Kind("frame_header_damage", lambda c: True, _f_frame_header_damage),
    _Kind("unknown_section", lambda c: True, _f_unknown_section),
    _Kind("malformed_section", lambda c: True, _f_malformed_section),
    _Kind("missing_slab", lambda c: True, _f_missing_slab),
    _Kind("stray_slab", lambda c: True, _f_stray_slab),
    _Kind("final_flag_cleared", lambda c: True, _f_final_flag_cleared),
    _Kind("final_flag_early", lambda c: len(c.slabs) >= 2, _f_final_flag_early, 1),
    _Kind("rewritten_step", lambda c: True, _f_rewritten_step),
)


def corrupt_fleet_log(
    case: FleetLogCase, kinds: Iterable[str] | None = None
) -> st.SearchStrategy[Corrupted]:
    """One corruption of the fleet log ``case`` (see
    :func:`~pytest_replay.strategies.fleet.fleet_log_cases`).

    >>> from pytest_replay.strategies.fleet import fleet_log_cases
    >>> log = fleet_log_cases().example()
    >>> corrupt_fleet_log(log, ["missing_slab"]).example().corruption.kind
    'missing_slab'
    """
    allowed = _allowed("fleet", kinds)
    return _fixed(_FLEET_KINDS, case, allowed)


@st.composite
def _fleet_corrupted(draw: st.DrawFn, allowed: frozenset[str]) -> Corrupted:
    slab_size = 64 if _need(_FLEET_KINDS, allowed) else None  # 64 bytes: one frame a slab
    return _draw_kind(draw, _FLEET_KINDS, draw(fleet_log_cases(slab_size=slab_size)), allowed)


# --------------------------------------------------------------------------- closed files

# Journal record files and replication traces are written whole and closed by an end
# frame, so every cut is detectable; both get the same kinds, built over their units
# (record frames / msgpack events) and end frame.


@dataclass(frozen=True, slots=True)
class _ClosedInfo:
    format: LogFormat
    file: str
    data: bytes
    items: tuple[Any, ...]
    units: tuple[tuple[int, int], ...]  # (start, end) of every unit, in file order
    end: tuple[int, int]  # the end frame's byte range
    corrupt: type[ReplayError]
    truncated: type[ReplayError]
    rebuild: Callable[[Sequence[Any]], bytes]
    #: The file's bytes with the end frame claiming ``count`` units (all else valid).
    recount: Callable[[int], bytes]
    other_item: st.SearchStrategy[Any]
    #: A valid item that differs from the given one.
    changed: Callable[[Any], Any]


def _closed(
    info: _ClosedInfo,
    data: bytes,
    kind: str,
    offset: int,
    detail: str,
    error: type[ReplayError] | None,
) -> Corrupted:
    return Corrupted(
        info.format,
        data,
        Corruption(kind, info.file, offset, detail),
        error,
        info.items,
        ((info.file, data),),
        info.file,
    )


def _all_frames(info: _ClosedInfo) -> list[tuple[int, int]]:
    return [*info.units, info.end]


def _c_truncate_header(draw: st.DrawFn, info: _ClosedInfo) -> Corrupted:
    cut = draw(st.integers(0, (info.units[0][0] if info.units else info.end[0]) - 1))
    return _closed(
        info, info.data[:cut], "truncate_header", cut, f"cut to {cut} bytes", info.corrupt
    )


def _c_truncate_frame_boundary(draw: st.DrawFn, info: _ClosedInfo) -> Corrupted:
    cut = draw(st.sampled_from([start for start, _end in _all_frames(info)]))
    return _closed(
        info,
        info.data[:cut],
        "truncate_frame_boundary",
        cut,
        "cut at a frame boundary: the end frame (and any frame after the cut) dropped",
        info.truncated,
    )


def _c_truncate_mid_frame(draw: st.DrawFn, info: _ClosedInfo) -> Corrupted:
    start, end = draw(st.sampled_from([r for r in _all_frames(info) if r[1] - r[0] > 1]))
    cut = draw(st.integers(start + 1, end - 1))
    return _closed(
        info,
        info.data[:cut],
        "truncate_mid_frame",
        cut,
        f"cut {cut - start} bytes into the frame at byte {start}",
        info.corrupt,
    )


def _c_bit_flip(draw: st.DrawFn, info: _ClosedInfo) -> Corrupted:
    start, end = draw(st.sampled_from(_all_frames(info)))
    offset = draw(st.integers(start, end - 1))
    bit = draw(st.integers(0, 7))
    return _closed(
        info,
        _flip_bit(info.data, offset, bit),
        "bit_flip",
        offset,
        f"bit {bit} flipped in the frame at byte {start}",
        info.corrupt,
    )


def _c_frame_after_end(draw: st.DrawFn, info: _ClosedInfo) -> Corrupted:
    start, end = draw(st.sampled_from(_all_frames(info)))
    return _closed(
        info,
        info.data + info.data[start:end],
        "frame_after_end",
        len(info.data),
        f"a copy of the frame at byte {start} appended after the end frame",
        info.corrupt,
    )


def _c_end_frame_mismatch(draw: st.DrawFn, info: _ClosedInfo) -> Corrupted:
    count = len(info.units)
    wrong = (count + draw(st.integers(1, _U32))) % 2**32  # never equal to count
    return _closed(
        info,
        info.recount(wrong),
        "end_frame_mismatch",
        info.end[0],
        f"end frame counts {wrong} frames (valid checksum), the file holds {count}",
        info.corrupt,
    )


def _c_rewritten(draw: st.DrawFn, info: _ClosedInfo) -> Corrupted:
    index = draw(st.integers(0, len(info.items) - 1))
    item = draw(info.other_item)
    if item == info.items[index]:
        item = info.changed(item)
    items = list(info.items)
    items[index] = item
    return _closed(
        info,
        info.rebuild(items),
        "rewritten_frame",
        info.units[index][0],
        f"item #{index} replaced by a valid one, checksums and end frame rewritten to match",
        None,
    )


_CLOSED_KINDS: Final = (
    _Kind("truncate_header", lambda i: True, _c_truncate_header),
    _Kind("truncate_frame_boundary", lambda i: True, _c_truncate_frame_boundary),
    _Kind("truncate_mid_frame", lambda i: True, _c_truncate_mid_frame),
    _Kind("bit_flip", lambda i: True, _c_bit_flip),
    _Kind("frame_after_end", lambda i: True, _c_frame_after_end),
    _Kind("end_frame_mismatch", lambda i: True, _c_end_frame_mismatch),
    _Kind("rewritten_frame", lambda i: bool(i.items), _c_rewritten, 1),
)


def _records_info(records: Sequence[JournalRecord]) -> _ClosedInfo:
    data = encode_journal_records(records)
    units, offset = [], FILE_HEADER_BYTES
    for record in records:
        end = offset + FRAME_HEADER_BYTES + len(encode_record(record))
        units.append((offset, end))
        offset = end

    def recount(count: int) -> bytes:
        frames = data[FILE_HEADER_BYTES:offset]
        return data[:offset] + encode_records_end_frame(frames, count)

    return _ClosedInfo(
        "records",
        "run.jrecs",
        data,
        tuple(records),
        tuple(units),
        (offset, len(data)),
        JournalCorrupted,
        JournalTruncated,
        encode_journal_records,
        recount,
        journal_records(),
        lambda record: replace(record, record_id=record.record_id + "'"),
    )


@st.composite
def _records_corrupted(draw: st.DrawFn, allowed: frozenset[str]) -> Corrupted:
    need = _need(_CLOSED_KINDS, allowed)
    records = draw(st.lists(journal_records(), min_size=need, max_size=6))
    return _draw_kind(draw, _CLOSED_KINDS, _records_info(records), allowed)


_TRACE_SCHEDULE: Final = NetworkSchedule(1, (1, 2), 100)
_TRACE_EVENT: Final = st.tuples(
    st.integers(0, 100),
    st.sampled_from(["deliver", "drop", "role"]),
    st.integers(-1, 2),
    st.integers(-1, 2),
    st.dictionaries(st.sampled_from(["seq", "term"]), st.integers(0, 2**32)),
).map(list)


def _trace_info(events: Sequence[list[Any]]) -> _ClosedInfo:
    data = encode_trace(_TRACE_SCHEDULE, events)
    offset = 20 + struct.unpack_from("<I", data, 12)[0]
    units = []
    for event in events:
        units.append((offset, offset + len(_packb(event))))
        offset = units[-1][1]

    def recount(count: int) -> bytes:
        return _put(data, offset + 8, struct.pack("<I", count))  # the digest then differs too

    return _ClosedInfo(
        "trace",
        "run.rpltrace",
        data,
        tuple(events),
        tuple(units),
        (offset, len(data)),
        TraceFormatError,
        TraceFormatError,
        lambda items: encode_trace(_TRACE_SCHEDULE, items),
        recount,
        _TRACE_EVENT,
        lambda event: [event[0] + 1, *event[1:]],
    )


@st.composite
def _trace_corrupted(draw: st.DrawFn, allowed: frozenset[str]) -> Corrupted:
    need = _need(_CLOSED_KINDS, allowed)
    events = draw(st.lists(_TRACE_EVENT, min_size=need, max_size=6))
    return _draw_kind(draw, _CLOSED_KINDS, _trace_info(events), allowed)


# --------------------------------------------------------------------------- entry point

#: Every corruption kind of every format, in the order generation prefers them.
CORRUPTION_KINDS: Final[dict[str, tuple[str, ...]]] = {
    "ring": tuple(kind.name for kind in _RING_KINDS),
    "journal": tuple(kind.name for kind in _JOURNAL_KINDS),
    "fleet": tuple(kind.name for kind in _FLEET_KINDS),
    "records": tuple(kind.name for kind in _CLOSED_KINDS),
    "trace": tuple(kind.name for kind in _CLOSED_KINDS),
}

_BUILDERS: Final[dict[str, Callable[[frozenset[str]], st.SearchStrategy[Corrupted]]]] = {
    "ring": _ring_corrupted,
    "journal": _journal_corrupted,
    "fleet": _fleet_corrupted,
    "records": _records_corrupted,
    "trace": _trace_corrupted,
}


def _allowed(kind: str, corruptions: Iterable[str] | None) -> frozenset[str]:
    if kind not in CORRUPTION_KINDS:
        raise StrategyArgumentError(
            f"unknown log format {kind!r}. Fix: use one of {', '.join(CORRUPTION_KINDS)}."
        )
    known = CORRUPTION_KINDS[kind]
    if corruptions is None:
        return frozenset(known)
    chosen = frozenset([corruptions] if isinstance(corruptions, str) else corruptions)
    unknown = sorted(chosen - set(known))
    if unknown or not chosen:
        raise StrategyArgumentError(
            f"corruption kinds {unknown or '(none)'} are not {kind} corruptions. "
            f"Fix: pick from {', '.join(known)}."
        )
    return chosen


def corrupted_logs(
    kind: LogFormat = "ring", *, corruptions: Iterable[str] | None = None
) -> st.SearchStrategy[Corrupted]:
    """A damaged log of format ``kind`` with its :class:`Corruption` and expected error.

    ``corruptions`` narrows the kinds drawn (default: every kind in
    :data:`CORRUPTION_KINDS`; kinds that do not apply to a drawn log are
    skipped). A reader under test must raise exactly ``expected_error``, or,
    when it is ``None``, replay something other than ``original``::

        >>> from hypothesis import given
        >>> from pytest_replay.ringlog import ReplayLogError, read_ring_image
        >>> @given(corrupted_logs("ring"))
        ... def test_reader(case):
        ...     try:
        ...         image = read_ring_image(case.data)
        ...     except ReplayLogError as exc:
        ...         assert type(exc) is case.expected_error
        ...     else:
        ...         assert case.expected_error is None
        ...         assert image.records.tobytes() != records_to_array(case.original).tobytes()
        >>> test_reader()
    """
    allowed = _allowed(kind, corruptions)
    return _BUILDERS[kind](allowed)
