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

The damage operations (cut, set a header field, flip a bit, append a copy) are written
once, over a :class:`_File`: one file's bytes, the :class:`~pytest_replay.formats.Framing`
its format describes (looked up with :func:`~pytest_replay.formats.format_named`) and the
byte ranges of its frames. Each format contributes only how to build that view, the
errors its reader raises and the kinds peculiar to it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Literal

import msgpack
import numpy as np
from hypothesis import strategies as st

from pytest_replay.errors import ReplayError
from pytest_replay.fleet.errors import FleetLogError
from pytest_replay.formats import FieldSpan, Framing, format_named, laid_out
from pytest_replay.formats.fleet_log import (
    END_FRAME_BYTES,
    FLAG_FINAL,
    FRAME_HEADER,
    SLAB_HEADER,
    SectionType,
    encode_end_frame,
    encode_frame,
    iter_frames,
)
from pytest_replay.formats.journal import FILE_HEADER_BYTES, JOURNAL_MAGIC, scan_frames
from pytest_replay.formats.journal import encode_end_frame as encode_records_end_frame
from pytest_replay.formats.journal import encode_frame as encode_journal_frame
from pytest_replay.formats.replication_trace import END_FRAME as TRACE_END_FRAME
from pytest_replay.journal.codec import DEFAULT_PERSISTENCE_ID, encode_entry, entry_to_repr
from pytest_replay.journal.entries import BatchSize, JournalEntry, RngSeed
from pytest_replay.journal.errors import (
    JournalCorrupted,
    JournalDecodeError,
    JournalTruncated,
    UnknownEntryTag,
)
from pytest_replay.journal.file_journal import encode_journal_image
from pytest_replay.journal.record_file import encode_journal_records, encode_record
from pytest_replay.journal.records import JournalRecord
from pytest_replay.replication.errors import TraceFormatError
from pytest_replay.replication.schedule import NetworkSchedule
from pytest_replay.replication.trace import encode_trace
from pytest_replay.ringlog import (
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


def _packb(value: object) -> bytes:
    out: bytes = msgpack.packb(value, use_bin_type=True)
    return out


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
            f"none of the corruption kinds {sorted(allowed)} applies to this log",
            fix="allow kinds that apply to every log (for example 'truncate_header').",
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


# ------------------------------------------------------------------ one file, by its framing


def _framing(name: str) -> Framing:
    """The framing of the registered format ``name``."""
    framing = format_named(name).framing
    assert framing is not None, name
    return framing


def _span(spans: Sequence[FieldSpan], name: str) -> FieldSpan:
    return next(span for span in spans if span.name == name)


def _frame_header_size(framing: Framing) -> int:
    return max(span.offset + span.size for span in framing.frame_header)


@dataclass(frozen=True, slots=True)
class _File:
    """One file of a log as the damage operations see it.

    ``frames`` are the byte ranges of its data frames (records, events, record slots) in
    file order; ``end_frame`` the range of the frame that closes it, if any. ``log`` is
    every file of the log (``None``: removed) and ``position`` this file's place in it
    (``len(log)``: a file the damage adds). ``about`` prefixes details (``"slab 2 "``).
    """

    format: LogFormat
    name: str
    data: bytes
    framing: Framing
    frames: tuple[tuple[int, int], ...]
    original: tuple[Any, ...]
    entry_name: str
    log: tuple[tuple[str, bytes | None], ...]
    position: int = 0
    end_frame: tuple[int, int] | None = None
    unit: str = "frame"
    about: str = ""

    @property
    def body_start(self) -> int:
        """Where the header ends: the first frame, else the end frame, else the header size."""
        first = self.frames[0] if self.frames else self.end_frame
        return self.framing.header_size if first is None else first[0]

    def with_end_frame(self) -> _File:
        """This file with its end frame counted among its frames (for closed files)."""
        assert self.end_frame is not None
        return replace(self, frames=(*self.frames, self.end_frame))


def _single(
    format: LogFormat,
    name: str,
    data: bytes,
    framing: Framing,
    frames: Iterable[tuple[int, int]],
    original: Iterable[Any],
    **more: Any,
) -> _File:
    """A log that is one file."""
    return _File(
        format, name, data, framing, tuple(frames), tuple(original), name, ((name, data),), **more
    )


def _damaged(
    file: _File,
    data: bytes | None,
    kind: str,
    offset: int | None,
    detail: str,
    error: type[ReplayError] | None,
) -> Corrupted:
    """``file`` replaced by ``data`` (``None``: removed) in its log, labelled."""
    log = list(file.log)
    if file.position < len(log):
        log[file.position] = (file.name, data)
    else:
        log.append((file.name, data))
    return Corrupted(
        file.format,
        data or b"",
        Corruption(kind, file.name, offset, file.about + detail),
        error,
        file.original,
        tuple((name, body) for name, body in log if body is not None),
        file.entry_name,
    )


def _set_field(
    file: _File,
    field: FieldSpan,
    value: int,
    kind: str,
    detail: str,
    error: type[ReplayError] | None,
    at: int = 0,
) -> Corrupted:
    """``field`` (of the header, or of the frame starting at ``at``) set to ``value``."""
    order: Literal["little", "big"] = "little" if file.framing.byte_order == "<" else "big"
    offset = at + field.offset
    data = _put(file.data, offset, value.to_bytes(field.size, order))
    return _damaged(file, data, kind, offset, detail, error)


def _header_field(file: _File, name: str) -> FieldSpan:
    return _span(file.framing.header, name)


def _cut_header(draw: st.DrawFn, file: _File, error: type[ReplayError]) -> Corrupted:
    cut = draw(st.integers(0, file.body_start - 1))
    return _damaged(file, file.data[:cut], "truncate_header", cut, f"cut to {cut} bytes", error)


def _wrong_magic(draw: st.DrawFn, file: _File, error: type[ReplayError]) -> Corrupted:
    field = _header_field(file, "magic")
    magic = _other_bytes(
        draw(st.binary(min_size=field.size, max_size=field.size)), file.framing.magic
    )
    return _damaged(
        file,
        _put(file.data, field.offset, magic),
        "wrong_file_magic",
        field.offset,
        f"{'' if file.about else 'file '}magic set to {magic!r}",
        error,
    )


def _wrong_version(
    draw: st.DrawFn, file: _File, known: Collection[int], error: type[ReplayError]
) -> Corrupted:
    field = _header_field(file, "version")
    top = 2 ** (8 * field.size) - 1
    version = draw(st.integers(0, top).map(lambda v: v if v not in known else 0))
    return _set_field(file, field, version, "wrong_version", f"version set to {version}", error)


def _draw_frame(draw: st.DrawFn, file: _File) -> tuple[int, int, int]:
    """(index, start, end) of a drawn frame of ``file``."""
    index = draw(st.integers(0, len(file.frames) - 1))
    start, end = file.frames[index]
    return index, start, end


def _cut_mid_frame(
    draw: st.DrawFn, file: _File, kind: str, error: type[ReplayError] | None
) -> Corrupted:
    index, start, end = _draw_frame(draw, file)
    cut = draw(st.integers(start + 1, end - 1))
    detail = f"cut {cut - start} bytes into {file.unit} #{index} (at byte {start})"
    return _damaged(file, file.data[:cut], kind, cut, detail, error)


def _cut_at_frame(
    draw: st.DrawFn, file: _File, kind: str, error: type[ReplayError] | None
) -> Corrupted:
    index, start, _end = _draw_frame(draw, file)
    detail = f"cut before {file.unit} #{index}: it and everything after it dropped"
    return _damaged(file, file.data[:start], kind, start, detail, error)


def _flip_in_frame(
    draw: st.DrawFn,
    file: _File,
    kind: str,
    error: type[ReplayError] | None,
    *,
    skip: int = 0,
    upto: int | None = None,
) -> Corrupted:
    """One bit flipped in a drawn frame, in its bytes ``skip`` .. ``upto`` (default: all)."""
    index, start, end = _draw_frame(draw, file)
    last = end - 1 if upto is None else start + upto - 1
    offset = draw(st.integers(start + skip, last))
    bit = draw(st.integers(0, 7))
    detail = f"bit {bit} of byte {offset - start} of {file.unit} #{index} flipped"
    return _damaged(file, _flip_bit(file.data, offset, bit), kind, offset, detail, error)


def _body_bit_flip(draw: st.DrawFn, file: _File, error: type[ReplayError]) -> Corrupted:
    """A bit of a frame body flipped: its checksum no longer matches."""
    skip = _frame_header_size(file.framing)
    return _flip_in_frame(draw, file, "crc_mismatch", error, skip=skip)


def _frame_header_bit_flip(draw: st.DrawFn, file: _File, error: type[ReplayError]) -> Corrupted:
    upto = _frame_header_size(file.framing)
    return _flip_in_frame(draw, file, "frame_header_damage", error, upto=upto)


def _frame_after_end(draw: st.DrawFn, file: _File, error: type[ReplayError]) -> Corrupted:
    index, start, end = _draw_frame(draw, file)
    return _damaged(
        file,
        file.data + file.data[start:end],
        "frame_after_end",
        len(file.data),
        f"a copy of {file.unit} #{index} appended after the end frame",
        error,
    )


def _end_frame_mismatch(
    draw: st.DrawFn,
    file: _File,
    recount: Callable[[int], bytes],
    top: int,
    error: type[ReplayError],
) -> Corrupted:
    """The end frame rewritten (valid checksum) to count a number of frames the file
    does not hold; ``top`` is the largest count the field stores."""
    assert file.end_frame is not None
    count = len(file.frames)
    wrong = (count + draw(st.integers(1, top))) % (top + 1)  # never equal to count
    return _damaged(
        file,
        recount(wrong),
        "end_frame_mismatch",
        file.end_frame[0],
        f"end frame counts {wrong} frames (valid checksum), the file holds {count}",
        error,
    )


# --------------------------------------------------------------------------- ring

#: The VRRL framing, until :mod:`pytest_replay.formats` registers the ring's format
#: (then this is ``_framing("vrrl")``).
_RING_FRAMING: Final = Framing(
    magic=LOG_MAGIC,
    header=laid_out(("magic", 8), ("version", 4), ("flags", 4), ("capacity", 8), ("cursor", 8)),
    record_size=RECORD_BYTES,
    record_fields=laid_out(("magic", 4)),
)
_RING_FILE: Final = "log.vrrl"


@dataclass(frozen=True, slots=True)
class _RingInfo:
    file: _File  # its frames are every record slot
    capacity: int
    cursor: int
    live: tuple[int, ...]  # slots holding a record, ascending

    @property
    def data(self) -> bytes:
        return self.file.data

    def live_slots(self) -> _File:
        """The file with only its live record slots as frames."""
        return replace(self.file, frames=tuple(self.file.frames[slot] for slot in self.live))


def _ring_info(data: bytes, expected: Sequence[ReplayRecord]) -> _RingInfo:
    image = read_ring_image(data)
    start = _RING_FRAMING.header_size
    size = _RING_FRAMING.record_size
    assert size is not None
    body = np.frombuffer(data, RING_RECORD_DTYPE, count=image.capacity, offset=start)
    live = tuple(int(i) for i in np.flatnonzero(body["magic"] != 0))
    slots = [(start + size * slot, start + size * (slot + 1)) for slot in range(image.capacity)]
    file = _single("ring", _RING_FILE, data, _RING_FRAMING, slots, expected, unit="record slot")
    return _RingInfo(file, image.capacity, image.cursor, live)


def _ring_capacity(
    info: _RingInfo, capacity: int, kind: str, detail: str, error: type[ReplayError]
) -> Corrupted:
    field = _header_field(info.file, "capacity")
    return _set_field(info.file, field, capacity, kind, detail, error)


def _ring_capacity_zero(draw: st.DrawFn, info: _RingInfo) -> Corrupted:
    return _ring_capacity(info, 0, "capacity_zero", "stored capacity set to 0", ZeroCapacity)


def _ring_capacity_above_max(draw: st.DrawFn, info: _RingInfo) -> Corrupted:
    capacity = draw(st.integers(MAX_REPLAY_RECORDS + 1, _U64))
    return _ring_capacity(
        info,
        capacity,
        "capacity_above_max",
        f"stored capacity set to {capacity}",
        CapacityOverflow,
    )


def _ring_capacity_past_file(draw: st.DrawFn, info: _RingInfo) -> Corrupted:
    capacity = draw(st.integers(info.capacity + 1, MAX_REPLAY_RECORDS))
    return _ring_capacity(
        info,
        capacity,
        "capacity_past_file",
        f"stored capacity {capacity} needs more bytes than the file has",
        TruncatedLog,
    )


def _ring_wrong_record_magic(draw: st.DrawFn, info: _RingInfo) -> Corrupted:
    slot = draw(st.integers(0, info.capacity - 1))
    magic = draw(st.integers(1, _U32).map(lambda v: v if v != RECORD_MAGIC else 1))
    return _set_field(
        info.file,
        _span(_RING_FRAMING.record_fields, "magic"),
        magic,
        "wrong_record_magic",
        f"record slot {slot} magic set to {magic:#010x}",
        HeaderMismatch,
        at=info.file.frames[slot][0],
    )


def _ring_erased_record(draw: st.DrawFn, info: _RingInfo) -> Corrupted:
    slot = draw(st.sampled_from(info.live))
    return _set_field(
        info.file,
        _span(_RING_FRAMING.record_fields, "magic"),
        0,
        "erased_record",
        f"live record slot {slot} magic zeroed (record vanishes)",
        None,
        at=info.file.frames[slot][0],
    )


def _ring_payload_bit_flip(draw: st.DrawFn, info: _RingInfo) -> Corrupted:
    # Past the record magic: the format has no checksum, so the flip goes unseen.
    skip = _span(_RING_FRAMING.record_fields, "magic").size
    return _flip_in_frame(draw, info.live_slots(), "payload_bit_flip", None, skip=skip)


def _rotations_that_differ(info: _RingInfo) -> list[int]:
    """Live slots where starting the replay gives different record bytes than now."""
    live = info.live
    if len(live) < 2:
        return []
    start = next((k for k, slot in enumerate(live) if slot >= info.cursor), 0)
    rows = [info.data[a:b] for a, b in info.live_slots().frames]
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
    return _set_field(
        info.file,
        _header_field(info.file, "cursor"),
        stored,
        "cursor_out_of_range",
        f"stored cursor {stored} (capacity {info.capacity}) replays from slot {slot}",
        None,
    )


def _ring_torn_append(draw: st.DrawFn, info: _RingInfo) -> Corrupted:
    record = records_to_array([draw(replay_records())]).tobytes()
    offset = info.file.frames[info.cursor][0]
    if len(info.live) == info.capacity and record == info.data[offset : offset + len(record)]:
        record = _flip_bit(record, 40, 0)  # equal to the record it overwrites: change its epoch
    return _damaged(
        info.file,
        _put(info.data, offset, record),
        "torn_append",
        offset,
        f"record written at slot {info.cursor}, cursor not advanced",
        None,
    )


_RING_KINDS: Final = (
    _Kind("truncate_header", lambda i: True, lambda d, i: _cut_header(d, i.file, TruncatedLog)),
    _Kind(
        "truncate_mid_record",
        lambda i: True,
        lambda d, i: _cut_mid_frame(d, i.file, "truncate_mid_record", TruncatedLog),
    ),
    _Kind(
        "truncate_record_boundary",
        lambda i: True,
        lambda d, i: _cut_at_frame(d, i.file, "truncate_record_boundary", TruncatedLog),
    ),
    _Kind("wrong_file_magic", lambda i: True, lambda d, i: _wrong_magic(d, i.file, HeaderMismatch)),
    _Kind(
        "wrong_version",
        lambda i: True,
        lambda d, i: _wrong_version(d, i.file, {LOG_VERSION}, HeaderMismatch),
    ),
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
    file: _File
    entries: tuple[JournalEntry, ...]
    batch_size: int

    @property
    def data(self) -> bytes:
        return self.file.data

    @property
    def frames(self) -> tuple[tuple[int, int], ...]:
        return self.file.frames


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


_JOURNAL_FILE: Final = "journal.prj"


def _journal_info(entries: Sequence[JournalEntry], batch_size: int) -> _JournalInfo:
    data = _journal_image(entries, batch_size)
    framing = _framing("journal")
    head = _frame_header_size(framing)
    frames = scan_frames(data, JOURNAL_MAGIC, "<strategy>").frames
    ranges = [(offset, offset + head + len(body)) for offset, body in frames]
    file = _single("journal", _JOURNAL_FILE, data, framing, ranges, entries)
    return _JournalInfo(file, tuple(entries), batch_size)


def _journal(
    info: _JournalInfo,
    data: bytes,
    kind: str,
    offset: int | None,
    detail: str,
    error: type[ReplayError] | None,
) -> Corrupted:
    return _damaged(info.file, data, kind, offset, detail, error)


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
    _Kind("truncate_header", lambda i: True, lambda d, i: _cut_header(d, i.file, JournalCorrupted)),
    _Kind(
        "truncate_mid_frame",
        lambda i: bool(i.frames),
        lambda d, i: _cut_mid_frame(d, i.file, "truncate_mid_frame", JournalCorrupted),
        1,
    ),
    _Kind(
        "truncate_frame_boundary",
        lambda i: bool(i.frames),
        lambda d, i: _cut_at_frame(d, i.file, "truncate_frame_boundary", None),
        1,
    ),
    _Kind(
        "wrong_file_magic", lambda i: True, lambda d, i: _wrong_magic(d, i.file, JournalCorrupted)
    ),
    _Kind(
        "wrong_version",
        lambda i: True,
        lambda d, i: _wrong_version(d, i.file, {1}, JournalCorrupted),
    ),
    _Kind(
        "crc_mismatch",
        lambda i: bool(i.frames),
        lambda d, i: _body_bit_flip(d, i.file, JournalCorrupted),
        1,
    ),
    _Kind(
        "frame_header_damage",
        lambda i: bool(i.frames),
        lambda d, i: _frame_header_bit_flip(d, i.file, JournalCorrupted),
        1,
    ),
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
            f"batch_size={batch_size} must be >= 1", fix="pass a positive size."
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


def _frame_ranges(slab: bytes) -> list[tuple[int, int, int]]:
    """(start, end, section type) of every data frame of a valid slab (not its end frame)."""
    return [
        (offset, offset + FRAME_HEADER.size + len(payload), int(kind))
        for offset, kind, payload in iter_frames(Path(slab_name(0)), slab)
    ]


def _slab_file(case: FleetLogCase, slab: int) -> _File:
    """Slab ``slab`` of the fleet log ``case``, its data frames and end frame."""
    data = case.slabs[slab] if slab < len(case.slabs) else b""
    return _File(
        "fleet",
        slab_name(slab),
        data,
        _framing("fleet-log"),
        tuple((start, end) for start, end, _kind in _frame_ranges(data)) if data else (),
        case.original,
        case.base_name,
        tuple((slab_name(index), body) for index, body in enumerate(case.slabs)),
        slab,
        (len(data) - END_FRAME_BYTES, len(data)) if data else None,
        about=f"slab {slab} ",
    )


def _draw_slab(draw: st.DrawFn, case: FleetLogCase) -> _File:
    return _slab_file(case, draw(st.integers(0, len(case.slabs) - 1)))


def _recount_slab(data: bytes, count: int) -> bytes:
    """The slab ``data`` (its last frame an end frame) with a new end frame, valid CRC and
    digest, counting ``count`` frames: damage with valid checksums throughout, as a writer
    bug would leave it."""
    at = len(data) - END_FRAME_BYTES
    return data[:at] + encode_end_frame(data[SLAB_HEADER.size : at], count)


def _f_end_frame_mismatch(draw: st.DrawFn, case: FleetLogCase) -> Corrupted:
    file = _draw_slab(draw, case)
    recount = functools.partial(_recount_slab, file.data)
    return _end_frame_mismatch(draw, file, recount, _U64, FleetLogError)


def _f_unknown_flags(draw: st.DrawFn, case: FleetLogCase) -> Corrupted:
    file = _draw_slab(draw, case)
    field = _header_field(file, "flags")
    bit = draw(st.integers(1, 8 * field.size - 1))  # bit 0 is FINAL
    data = _flip_bit(file.data, field.offset + bit // 8, bit % 8)
    return _damaged(file, data, "unknown_flags", field.offset, f"flag bit {bit} set", FleetLogError)


def _f_slab_index_mismatch(draw: st.DrawFn, case: FleetLogCase) -> Corrupted:
    file = _draw_slab(draw, case)
    slab = file.position
    index = draw(st.integers(0, _U32).map(lambda v: v if v != slab else slab + 1))
    field = _header_field(file, "slab_index")
    detail = f"header says slab {index}"
    return _set_field(file, field, index, "slab_index_mismatch", detail, FleetLogError)


def _f_unknown_section(draw: st.DrawFn, case: FleetLogCase) -> Corrupted:
    file = _draw_slab(draw, case)
    _index, start, _end = _draw_frame(draw, file)
    section = draw(st.integers(5, 0xFFFF))  # 4 is the end frame
    frame = encode_frame(section, draw(st.binary(max_size=16)))
    return _damaged(
        file,
        file.data[:start] + frame + file.data[start:],
        "unknown_section",
        start,
        f"frame of unknown section type {section} inserted",
        FleetLogError,
    )


def _f_malformed_section(draw: st.DrawFn, case: FleetLogCase) -> Corrupted:
    file = _draw_slab(draw, case)
    start, end, kind = draw(st.sampled_from(_frame_ranges(file.data)))
    frame = encode_frame(SectionType(kind), b"\xc1")
    return _damaged(
        file,
        file.data[:start] + frame + file.data[end:],
        "malformed_section",
        start,
        f"a {SectionType(kind).name.lower()} payload replaced by bytes that are not "
        "msgpack (valid CRC)",
        FleetLogError,
    )


def _f_missing_slab(draw: st.DrawFn, case: FleetLogCase) -> Corrupted:
    file = _draw_slab(draw, case)
    detail = f"removed ({len(case.slabs)} slabs)"
    return _damaged(file, None, "missing_slab", None, detail, FleetLogError)


def _f_stray_slab(draw: st.DrawFn, case: FleetLogCase) -> Corrupted:
    file = _slab_file(case, len(case.slabs))
    field = _header_field(file, "slab_index")
    stray = _put(case.slabs[0], field.offset, file.position.to_bytes(field.size, "little"))
    detail = "left after the final slab"
    return _damaged(file, stray, "stray_slab", None, detail, FleetLogError)


def _set_final(file: _File, final: bool, kind: str, detail: str) -> Corrupted:
    field = _header_field(file, "flags")
    flags = int.from_bytes(file.data[field.offset : field.offset + field.size], "little")
    flags = flags | FLAG_FINAL if final else flags & ~FLAG_FINAL
    return _set_field(file, field, flags, kind, detail, FleetLogError)


def _f_final_flag_cleared(draw: st.DrawFn, case: FleetLogCase) -> Corrupted:
    file = _slab_file(case, len(case.slabs) - 1)
    return _set_final(file, False, "final_flag_cleared", "(the last) no longer marked final")


def _f_final_flag_early(draw: st.DrawFn, case: FleetLogCase) -> Corrupted:
    file = _slab_file(case, draw(st.integers(0, len(case.slabs) - 2)))
    return _set_final(file, True, "final_flag_early", f"of {len(case.slabs)} marked final")


def _f_rewritten_step(draw: st.DrawFn, case: FleetLogCase) -> Corrupted:
    sections = [
        (slab, start, end)
        for slab, data in enumerate(case.slabs)
        for start, end, kind in _frame_ranges(data)
        if kind == SectionType.STEPS
    ]
    slab, start, end = draw(st.sampled_from(sections))
    file = _slab_file(case, slab)
    fields = msgpack.unpackb(file.data[start + FRAME_HEADER.size : end], raw=False)
    ids = np.frombuffer(fields[4], "<u8")
    stamps = np.frombuffer(fields[5], "<u8").copy()
    index = draw(st.integers(0, len(ids) - 1))
    stamps[index] ^= np.uint64(1 + draw(st.integers(0, 62)))
    fields[5] = stamps.tobytes()
    frame = encode_frame(SectionType.STEPS, _packb(fields))
    data = _recount_slab(file.data[:start] + frame + file.data[end:], len(file.frames))
    return _damaged(
        file,
        data,
        "rewritten_step",
        start,
        f"timestamp of step {int(ids[index])} changed with a valid CRC",
        None,
    )


def _fleet_kind(name: str, damage: Callable[[st.DrawFn, _File], Corrupted]) -> _Kind:
    """A kind that damages one drawn slab the same way any framed file is damaged."""
    return _Kind(name, lambda c: True, lambda d, c: damage(d, _draw_slab(d, c)))


_FLEET_KINDS: Final = (
    _fleet_kind("truncate_header", lambda d, f: _cut_header(d, f, FleetLogError)),
    _fleet_kind(
        "truncate_mid_frame",
        lambda d, f: _cut_mid_frame(d, f, "truncate_mid_frame", FleetLogError),
    ),
    # Any boundary of any slab, the one before the end frame included: the slab's end
    # frame is gone either way, so the reader reports the slab as truncated.
    _fleet_kind(
        "truncate_frame_boundary",
        lambda d, f: _cut_at_frame(d, f.with_end_frame(), "truncate_frame_boundary", FleetLogError),
    ),
    _fleet_kind("frame_after_end", lambda d, f: _frame_after_end(d, f, FleetLogError)),
    _Kind("end_frame_mismatch", lambda c: True, _f_end_frame_mismatch),
    _fleet_kind("wrong_file_magic", lambda d, f: _wrong_magic(d, f, FleetLogError)),
    _fleet_kind("wrong_version", lambda d, f: _wrong_version(d, f, {1, 2}, FleetLogError)),
    _Kind("unknown_flags", lambda c: True, _f_unknown_flags),
    _Kind("slab_index_mismatch", lambda c: True, _f_slab_index_mismatch),
    _fleet_kind("crc_mismatch", lambda d, f: _body_bit_flip(d, f, FleetLogError)),
    _fleet_kind("frame_header_damage", lambda d, f: _frame_header_bit_flip(d, f, FleetLogError)),
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
    file: _File  # frames: the units; end_frame: the end frame
    items: tuple[Any, ...]
    corrupt: type[ReplayError]
    truncated: type[ReplayError]
    rebuild: Callable[[Sequence[Any]], bytes]
    #: The file's bytes with the end frame claiming ``count`` units (all else valid).
    recount: Callable[[int], bytes]
    other_item: st.SearchStrategy[Any]
    #: A valid item that differs from the given one.
    changed: Callable[[Any], Any]

    @property
    def closed(self) -> _File:
        """The file with its end frame among its frames."""
        return self.file.with_end_frame()


def _c_rewritten(draw: st.DrawFn, info: _ClosedInfo) -> Corrupted:
    index = draw(st.integers(0, len(info.items) - 1))
    item = draw(info.other_item)
    if item == info.items[index]:
        item = info.changed(item)
    items = list(info.items)
    items[index] = item
    return _damaged(
        info.file,
        info.rebuild(items),
        "rewritten_frame",
        info.file.frames[index][0],
        f"item #{index} replaced by a valid one, checksums and end frame rewritten to match",
        None,
    )


_CLOSED_KINDS: Final = (
    _Kind("truncate_header", lambda i: True, lambda d, i: _cut_header(d, i.file, i.corrupt)),
    _Kind(
        "truncate_frame_boundary",
        lambda i: True,
        lambda d, i: _cut_at_frame(d, i.closed, "truncate_frame_boundary", i.truncated),
    ),
    _Kind(
        "truncate_mid_frame",
        lambda i: True,
        lambda d, i: _cut_mid_frame(d, i.closed, "truncate_mid_frame", i.corrupt),
    ),
    _Kind(
        "bit_flip", lambda i: True, lambda d, i: _flip_in_frame(d, i.closed, "bit_flip", i.corrupt)
    ),
    _Kind("frame_after_end", lambda i: True, lambda d, i: _frame_after_end(d, i.closed, i.corrupt)),
    _Kind(
        "end_frame_mismatch",
        lambda i: True,
        lambda d, i: _end_frame_mismatch(d, i.file, i.recount, _U32, i.corrupt),
    ),
    _Kind("rewritten_frame", lambda i: bool(i.items), _c_rewritten, 1),
)


def _records_info(records: Sequence[JournalRecord]) -> _ClosedInfo:
    data = encode_journal_records(records)
    framing = _framing("journal-records")
    head = _frame_header_size(framing)
    units, offset = [], framing.header_size
    for record in records:
        end = offset + head + len(encode_record(record))
        units.append((offset, end))
        offset = end

    def recount(count: int) -> bytes:
        frames = data[FILE_HEADER_BYTES:offset]
        return data[:offset] + encode_records_end_frame(frames, count)

    file = _single(
        "records", "run.jrecs", data, framing, units, records, end_frame=(offset, len(data))
    )
    return _ClosedInfo(
        file,
        tuple(records),
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
    framing = _framing("replication-trace")
    header_len = _span(framing.header, "header_len")
    offset = framing.header_size + int.from_bytes(
        data[header_len.offset : header_len.offset + header_len.size], "little"
    )
    units = []
    for event in events:
        units.append((offset, offset + len(_packb(event))))
        offset = units[-1][1]

    def recount(count: int) -> bytes:
        # The count changes and the digest stays: it then differs too.
        magic, _count, digest = TRACE_END_FRAME.unpack_from(data, offset)
        return data[:offset] + TRACE_END_FRAME.pack(magic, count, digest)

    file = _single(
        "trace", "run.rpltrace", data, framing, units, events, end_frame=(offset, len(data))
    )
    return _ClosedInfo(
        file,
        tuple(events),
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
            f"unknown log format {kind!r}", fix=f"use one of {', '.join(CORRUPTION_KINDS)}."
        )
    known = CORRUPTION_KINDS[kind]
    if corruptions is None:
        return frozenset(known)
    chosen = frozenset([corruptions] if isinstance(corruptions, str) else corruptions)
    unknown = sorted(chosen - set(known))
    if unknown or not chosen:
        raise StrategyArgumentError(
            f"corruption kinds {unknown or '(none)'} are not {kind} corruptions",
            fix=f"pick from {', '.join(known)}.",
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
