"""The VRRL ring-replay log format: its bytes, its record values, and reading it back.

Byte layout (little-endian), compatible with the reference VRRL writer::

    header, 32 bytes
        0   magic          b"VRRL0001"
        8   version        u32 = 1
        12  flags          u32 = 0
        16  capacity       u64   number of record slots
        24  next_slot      u64   write cursor (taken modulo capacity on open)
    record i at 32 + 64 * i, 64 bytes
        0   magic          u32 = 0xDEADBEEF (0 means "never written")
        4   timestamp_ns   u64
        12  slot_idx       u32
        16  tenant_id      u32
        20  opcode         u32
        24  args           4 x u32
        40  epoch          u32
        44  slot_status    u32 \
        48  failure_class  u32  | failure evidence; all four zero means none
        52  backend_code   u32  |
        56  output_digest  u64 /

This module owns those facts once: the header and record structs, the record dtype, the
header and record checks with their typed errors, the record values a log holds, and the
:class:`VrrlFormat` object (:data:`VRRL`) the CLI, the kinds and the corruption strategies
look up. The memory-mapped log itself is :mod:`pytest_replay.ringlog`; batch encoding and
image writing are :mod:`pytest_replay.ringlog_io`.
"""

from __future__ import annotations

import enum
import errno
import os
import struct
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final

import blake3
import numpy as np
import numpy.typing as npt

from pytest_replay._fs import NotRegularFile
from pytest_replay.formats.base import FieldSpan, Format, FormatError, Framing

__all__ = [
    "CURSOR_OFFSET",
    "CURSOR_STRUCT",
    "FIELDS_AFTER_MAGIC",
    "HEADER_BYTES",
    "HEADER_STRUCT",
    "LOG_MAGIC",
    "LOG_VERSION",
    "MAX_REPLAY_RECORDS",
    "RECORD_BYTES",
    "RECORD_BYTES_DTYPE",
    "RECORD_MAGIC",
    "RECORD_STRUCT",
    "RING_RECORD_DTYPE",
    "U64_FIELDS",
    "VRRL",
    "VRRL_FRAMING",
    "BackendError",
    "CapacityOverflow",
    "HeaderMismatch",
    "RecordArray",
    "RecordValueError",
    "RecordedSlot",
    "ReplayFailureClass",
    "ReplayFailureEvidence",
    "ReplayLogError",
    "ReplayLogIoError",
    "ReplayRecord",
    "RingImage",
    "TruncatedLog",
    "VrrlFormat",
    "ZeroCapacity",
    "check_capacity",
    "classify_backend_error",
    "live_records",
    "output_digest",
    "parse_header",
    "read_ring_image",
    "records_from_array",
]

LOG_MAGIC: Final = b"VRRL0001"
LOG_VERSION: Final = 1
RECORD_MAGIC: Final = 0xDEADBEEF
HEADER_BYTES: Final = 32
RECORD_BYTES: Final = 64
MAX_REPLAY_RECORDS: Final = 1_048_576

#: The header: magic, version, flags, capacity, next_slot.
HEADER_STRUCT: Final = struct.Struct("<8sIIQQ")
#: The write cursor (``next_slot``), rewritten on every append.
CURSOR_STRUCT: Final = struct.Struct("<Q")
CURSOR_OFFSET: Final = 24
# One record, packed field by field: the ring and megakernel recorders pack with it too.
RECORD_STRUCT: Final = struct.Struct("<IQIIIIIIIIIIIQ")
assert HEADER_STRUCT.size == HEADER_BYTES and RECORD_STRUCT.size == RECORD_BYTES

#: numpy dtype of one on-disk record; ``args`` is a (4,) u32 sub-array.
RING_RECORD_DTYPE: Final = np.dtype(
    {
        "names": [
            "magic",
            "timestamp_ns",
            "slot_idx",
            "tenant_id",
            "opcode",
            "args",
            "epoch",
            "slot_status",
            "failure_class",
            "backend_code",
            "output_digest",
        ],
        "formats": [
            "<u4",
            "<u8",
            "<u4",
            "<u4",
            "<u4",
            ("<u4", (4,)),
            "<u4",
            "<u4",
            "<u4",
            "<u4",
            "<u8",
        ],
        "offsets": [0, 4, 12, 16, 20, 24, 40, 44, 48, 52, 56],
        "itemsize": RECORD_BYTES,
    }
)


RecordArray = npt.NDArray[np.void]
#: One record as opaque bytes, for copying records around: numpy copies a packed
#: structured dtype field by field, several times slower than the bytes themselves.
RECORD_BYTES_DTYPE: Final = np.dtype((np.void, RECORD_BYTES))
#: The record fields after the magic word, in file order.
FIELDS_AFTER_MAGIC: Final[tuple[str, ...]] = tuple(RING_RECORD_DTYPE.names or ())[1:]
#: The record fields stored in 64 bits; every other word is 32 bits.
U64_FIELDS: Final = frozenset({"timestamp_ns", "output_digest"})


# --------------------------------------------------------------------------- errors


class ReplayLogError(FormatError):
    """Base of every ring-log error; each names the log and says how to fix it."""


class ReplayLogIoError(ReplayLogError):
    """An operating-system call on the log file failed."""

    def __init__(self, op: str, path: str | os.PathLike[str], cause: OSError) -> None:
        self.op = op
        self.path = os.fspath(path)
        self.cause = cause
        super().__init__(f"replay log {op} on '{self.path}' failed: {cause}", fix=_io_fix(cause))


def _io_fix(cause: OSError) -> str:
    """The hint for an OS error, by what it says went wrong."""
    if isinstance(cause, NotRegularFile) and not cause.is_dir:
        return "pass the path of a VRRL file; a FIFO or device is never read."
    if isinstance(cause, IsADirectoryError | NotRegularFile):
        return "the path is a folder; pass a file path inside it, such as <folder>/run.vrrl."
    if isinstance(cause, PermissionError):
        return "check the permissions of the file and its folder."
    if isinstance(cause, FileNotFoundError):
        return "create the folder first, or check the path."
    if cause.errno == errno.ENOSPC:
        return "free disk space, or use a smaller capacity."
    return "check disk space and permissions."


class HeaderMismatch(ReplayLogError):
    """The file is not a VRRL log of a version we read, or a record is corrupted."""

    def __init__(self, path: str | os.PathLike[str], detail: str = "header mismatch") -> None:
        self.path = os.fspath(path)
        self.detail = detail
        super().__init__(
            detail,
            where=f"replay log '{self.path}'",
            fix="regenerate the log; the VRRL format may have changed or the file is corrupted.",
        )


class TruncatedLog(HeaderMismatch):
    """The file is shorter than its header says (truncated copy, torn preallocation)."""

    def __init__(self, path: str | os.PathLike[str], expected: int, actual: int) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(
            path,
            f"file is truncated: the header needs {expected} bytes but the file has {actual}",
        )


def _where(path: str | None, requested: bool) -> str:
    if path is None:
        return ""
    return f" (requested for '{path}')" if requested else f" (stored in '{path}')"


class ZeroCapacity(ReplayLogError):
    """A capacity of 0 (or less) was requested or stored: such a log never accepts writes."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        requested: bool = False,
        capacity: int = 0,
    ) -> None:
        self.path = None if path is None else os.fspath(path)
        self.capacity = capacity
        super().__init__(
            f"replay log capacity must be > 0, got {capacity}{_where(self.path, requested)}",
            fix="construct with at least one slot.",
        )


class CapacityOverflow(ReplayLogError):
    """A capacity above :data:`MAX_REPLAY_RECORDS` was requested or stored."""

    def __init__(
        self,
        count: int,
        max: int,
        path: str | os.PathLike[str] | None = None,
        *,
        requested: bool = False,
    ) -> None:
        self.count = count
        self.max = max
        self.path = None if path is None else os.fspath(path)
        super().__init__(
            f"replay log capacity {count} exceeds max {max}{_where(self.path, requested)}",
            fix="shard replay into smaller logs.",
        )


class RecordValueError(ReplayLogError, ValueError):
    """A slot or failure-evidence field does not fit its on-disk word.

    ``field`` is the record field (``args[2]`` for one argument word, ``args``
    when there are not four), ``value`` what was given, ``index`` the record's
    position in the batch (``None`` for a single append).
    """

    def __init__(
        self,
        field: str,
        value: object,
        index: int | None = None,
        path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.field = field
        self.value = value
        self.index = index
        self.path = None if path is None else os.fspath(path)
        which = "" if index is None else f"record #{index}: "
        if field == "args":
            want = "four u32 argument words"
        elif field == "record":
            want = "a record the VRRL layout can hold"
        else:
            bits = 64 if field in U64_FIELDS else 32
            want = f"an unsigned {bits}-bit integer (0..{(1 << bits) - 1})"
        super().__init__(
            f"{which}{field}={value!r:.80} is not {want}, so it cannot be stored",
            where=None if self.path is None else f"replay log '{self.path}'",
            fix="build slots and failure evidence from integers that fit their record "
            "fields (see docs/formats.md).",
        )


# Users catch these from pytest_replay.ringlog (and pytest_replay), where they were defined
# before the format moved here: tracebacks, reprs and pickles keep naming that module.
for _error in (
    ReplayLogError,
    ReplayLogIoError,
    HeaderMismatch,
    TruncatedLog,
    ZeroCapacity,
    CapacityOverflow,
    RecordValueError,
):
    _error.__module__ = "pytest_replay.ringlog"


def check_capacity(
    capacity: int, path: str | os.PathLike[str] | None = None, *, requested: bool = False
) -> None:
    """Raise :class:`ZeroCapacity` or :class:`CapacityOverflow` unless ``capacity`` records
    fit a log (``requested``: the caller asked for that capacity, it was not read)."""
    if capacity <= 0:
        raise ZeroCapacity(path, requested=requested, capacity=capacity)
    if capacity > MAX_REPLAY_RECORDS:
        raise CapacityOverflow(capacity, MAX_REPLAY_RECORDS, path, requested=requested)


# --------------------------------------------------------------------------- values


class ReplayFailureClass(enum.IntEnum):
    """Recovery-oriented class of a backend failure, as stored on disk."""

    NONE = 0
    DEVICE_LOSS = 1
    TRANSIENT_QUEUE = 2
    PROGRAM_BUG = 3
    UNCLASSIFIED = 4

    @classmethod
    def decode(cls, raw: int) -> ReplayFailureClass:
        """Decode a stored word; unknown codes decode as ``UNCLASSIFIED``."""
        try:
            return cls(raw)
        except ValueError:
            return cls.UNCLASSIFIED


class BackendError(Exception):
    """A backend failure with a stable numeric code, as the capture path sees it.

    ``failure_class`` may be given when the backend knows it; otherwise
    :func:`classify_backend_error` derives it from the message.
    """

    def __init__(
        self, message: str, code: int = 0, failure_class: ReplayFailureClass | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.failure_class = failure_class


_CLASS_KEYWORDS: Final = (
    (ReplayFailureClass.DEVICE_LOSS, ("devicelost", "device lost", "device loss", "context lost")),
    (
        ReplayFailureClass.TRANSIENT_QUEUE,
        ("queue full", "timeout", "timed out", "out of memory", "busy", "try again"),
    ),
    (
        ReplayFailureClass.PROGRAM_BUG,
        ("compile", "lowering", "invalid opcode", "kernel source", "illegal", "validation"),
    ),
)


def classify_backend_error(error: BaseException) -> ReplayFailureClass:
    """The recovery class of ``error``.

    An explicit ``failure_class`` attribute wins; otherwise the message is
    matched against known phrases (``"DeviceLost"`` -> DEVICE_LOSS, ``"timeout"``
    -> TRANSIENT_QUEUE, ``"compile"`` -> PROGRAM_BUG); anything else is
    UNCLASSIFIED.
    """
    explicit = getattr(error, "failure_class", None)
    if explicit is not None:
        return ReplayFailureClass(explicit)
    text = str(error).lower()
    for failure_class, phrases in _CLASS_KEYWORDS:
        if any(phrase in text for phrase in phrases):
            return failure_class
    return ReplayFailureClass.UNCLASSIFIED


def output_digest(data: bytes | bytearray | memoryview) -> int:
    """First 8 bytes of BLAKE3(``data``) as a little-endian u64."""
    return int.from_bytes(blake3.blake3(bytes(data)).digest(8), "little")


@dataclass(frozen=True, slots=True)
class RecordedSlot:
    """One published ring slot as captured by the log."""

    timestamp_ns: int
    slot_idx: int
    tenant_id: int
    opcode: int
    args: tuple[int, int, int, int]
    epoch: int


@dataclass(frozen=True, slots=True)
class ReplayFailureEvidence:
    """Failure evidence stored in a record's tail."""

    slot_status: int
    failure_class: ReplayFailureClass
    backend_error_code: int
    output_digest: int

    @classmethod
    def from_backend_error(
        cls, slot_status: int, error: BaseException, output_bytes: bytes | bytearray | memoryview
    ) -> ReplayFailureEvidence:
        """Evidence for a slot that failed with ``error`` after producing ``output_bytes``."""
        code = getattr(error, "code", 0)
        return cls(
            slot_status=slot_status,
            failure_class=classify_backend_error(error),
            backend_error_code=code if isinstance(code, int) else 0,
            output_digest=output_digest(output_bytes),
        )

    @classmethod
    def from_words(
        cls, slot_status: int, failure_class: int, backend_error_code: int, digest: int
    ) -> ReplayFailureEvidence | None:
        """Decode the four stored words; all zero means no evidence."""
        if slot_status == 0 and failure_class == 0 and backend_error_code == 0 and digest == 0:
            return None
        return cls(
            int(slot_status),
            ReplayFailureClass.decode(int(failure_class)),
            int(backend_error_code),
            int(digest),
        )


@dataclass(frozen=True, slots=True)
class ReplayRecord:
    """A recorded slot with its optional failure evidence."""

    slot: RecordedSlot
    failure: ReplayFailureEvidence | None = None


# --------------------------------------------------------------------------- reading


def records_from_array(array: RecordArray) -> list[ReplayRecord]:
    """Decode a record array into :class:`ReplayRecord` values."""
    from_words = ReplayFailureEvidence.from_words
    columns = [array[name].tolist() for name in FIELDS_AFTER_MAGIC]
    out: list[ReplayRecord] = []
    for row in zip(*columns, strict=True):
        ts, slot_idx, tenant, opcode, args, epoch, status, fclass, code, digest = row
        slot = RecordedSlot(ts, slot_idx, tenant, opcode, tuple(args), epoch)
        out.append(ReplayRecord(slot, from_words(status, fclass, code, digest)))
    return out


@dataclass(frozen=True, slots=True)
class RingImage:
    """A decoded VRRL image: its header fields and live records in publish order."""

    capacity: int
    cursor: int
    stored_cursor: int
    records: RecordArray


def parse_header(buf: Any, size: int, path: str) -> tuple[int, int]:
    """Validate a header in ``buf``; return (capacity, stored cursor)."""
    if size < HEADER_BYTES:
        raise TruncatedLog(path, HEADER_BYTES, size)
    magic, version, _flags, capacity, cursor = HEADER_STRUCT.unpack_from(buf, 0)
    if magic != LOG_MAGIC:
        raise HeaderMismatch(path, f"wrong file magic {magic!r} (expected {LOG_MAGIC!r})")
    if version != LOG_VERSION:
        raise HeaderMismatch(path, f"unsupported version {version} (expected {LOG_VERSION})")
    # Bounds are checked before the capacity is used as a divisor or a size.
    check_capacity(capacity, path)
    needed = HEADER_BYTES + RECORD_BYTES * capacity
    if size < needed:
        raise TruncatedLog(path, needed, size)
    return int(capacity), int(cursor)


def live_records(body: RecordArray, cursor: int, path: str) -> RecordArray:
    """Live records of a ring body in publish order (oldest first)."""
    # One strided pass over the mapped records; the checks then run on 4 bytes a record.
    magic = np.ascontiguousarray(body["magic"])
    live = magic != 0
    bad = live & (magic != RECORD_MAGIC)
    if bad.any():
        index = int(np.argmax(bad))
        found = int(magic[index])
        # Views into a mapped file must not ride along in the traceback, or the
        # log could not be closed while the exception is alive.
        del body, magic, live, bad
        raise HeaderMismatch(
            path,
            f"record {index} at byte offset {HEADER_BYTES + RECORD_BYTES * index} has magic "
            f"{found:#010x} (expected {RECORD_MAGIC:#010x})",
        )
    # Copies go through a plain-bytes view: numpy copies a packed structured dtype
    # field by field, several times slower than the bytes themselves.
    raw = body.view(RECORD_BYTES_DTYPE)
    if cursor:
        ordered = np.concatenate((raw[cursor:], raw[:cursor]))
        live = np.concatenate((live[cursor:], live[:cursor]))
    else:
        ordered = raw.copy()
    if not live.all():
        ordered = ordered[live]
    return ordered.view(RING_RECORD_DTYPE)


def read_ring_image(data: bytes | bytearray | memoryview, name: str = "<memory>") -> RingImage:
    """Decode a whole VRRL file image held in memory, with the same checks as a file."""
    view = memoryview(data)
    capacity, stored = parse_header(view, view.nbytes, name)
    body = np.frombuffer(view, RING_RECORD_DTYPE, count=capacity, offset=HEADER_BYTES)
    cursor = stored % capacity
    return RingImage(capacity, cursor, stored, live_records(body, cursor, name))


# --------------------------------------------------------------------------- the format


def _record_spans() -> tuple[FieldSpan, ...]:
    fields = RING_RECORD_DTYPE.fields
    assert fields is not None
    return tuple(
        FieldSpan(name, int(fields[name][1]), int(fields[name][0].itemsize))
        for name in RING_RECORD_DTYPE.names or ()
    )


#: Where every header and record field lies (``strategies.corrupt`` damages them by name).
VRRL_FRAMING: Final = Framing(
    magic=LOG_MAGIC,
    header=(
        FieldSpan("magic", 0, 8),
        FieldSpan("version", 8, 4),
        FieldSpan("flags", 12, 4),
        FieldSpan("capacity", 16, 8),
        FieldSpan("next_slot", CURSOR_OFFSET, CURSOR_STRUCT.size),
    ),
    record_size=RECORD_BYTES,
    record_fields=_record_spans(),
    notes=(
        f"capacity record slots follow the header; a slot whose magic word is 0 was never "
        f"written, a live one holds {RECORD_MAGIC:#010x}",
        "next_slot is the write cursor, taken modulo capacity: the live records replay "
        "from it, oldest first",
        "slot_status, failure_class, backend_code and output_digest are failure evidence; "
        "all four zero means none",
    ),
)
assert VRRL_FRAMING.header_size == HEADER_BYTES


class VrrlFormat(Format):
    """The VRRL ring log (``.vrrl``): :meth:`read` gives a checked :class:`RingImage`, its
    records are a :data:`RING_RECORD_DTYPE` array in publish order, aligned by position."""

    name: ClassVar[str] = "vrrl"
    label: ClassVar[str] = "VRRL ring log"
    extensions: ClassVar[tuple[str, ...]] = (".vrrl",)
    magic: ClassVar[bytes | None] = LOG_MAGIC
    framing: ClassVar[Framing | None] = VRRL_FRAMING
    kind: ClassVar[str | None] = "ring"
    #: Fields the recorders store as zero unless told otherwise (wall-clock time).
    volatile: ClassVar[tuple[str, ...]] = ("timestamp_ns",)

    def read(self, path: Path) -> RingImage:
        """The checked image in ``path``: header, capacity and file length, then every
        record's magic word. Damage raises :class:`HeaderMismatch` (or a subclass)."""
        try:
            with self.open(path) as fh:
                size = os.fstat(fh.fileno()).st_size
                header = fh.read(HEADER_BYTES)
                capacity, _cursor = parse_header(header, size, str(path))
                # Only what the header describes is read: a longer file keeps its tail.
                data = header + fh.read(RECORD_BYTES * capacity)
        except OSError as exc:
            raise ReplayLogIoError("read", path, exc) from None
        return read_ring_image(data, str(path))

    def decode(self, data: bytes, source: str) -> RingImage:
        return read_ring_image(data, source)

    def records(self, document: RingImage) -> RecordArray:
        return document.records

    def diff_key(self, index: int, record: Any) -> Hashable:
        """Records align by publish position: a ring has no other identity for a slot."""
        return index

    def render(self, index: int, record: Any) -> str:
        """``#index timestamp_ns=... args[0]=... output_digest=...``: every field but the
        magic word, as the divergence report's context lines show it."""
        words = []
        for name in FIELDS_AFTER_MAGIC:
            if name == "args":
                words += [f"args[{k}]={v}" for k, v in enumerate(record["args"].tolist())]
            else:
                words.append(f"{name}={int(record[name])}")
        return f"#{index} " + " ".join(words)

    def item(self, index: int, record: Any) -> dict[str, Any]:
        """One record as a mapping (``inspect``, ``textconv``): failure evidence, when the
        record has any, under ``failure`` with its class named."""
        item: dict[str, Any] = {
            "index": index,
            "timestamp_ns": int(record["timestamp_ns"]),
            "slot_idx": int(record["slot_idx"]),
            "tenant_id": int(record["tenant_id"]),
            "opcode": int(record["opcode"]),
            "args": [int(v) for v in record["args"].tolist()],
            "epoch": int(record["epoch"]),
        }
        words = [int(record[name]) for name in _EVIDENCE_FIELDS]
        if any(words):
            item["failure"] = {
                "slot_status": words[0],
                "failure_class": ReplayFailureClass.decode(words[1]).name.lower(),
                "backend_code": words[2],
                "output_digest": f"{words[3]:016x}",
            }
        return item


_EVIDENCE_FIELDS: Final = ("slot_status", "failure_class", "backend_code", "output_digest")

#: The one VRRL format object.
VRRL: Final = VrrlFormat()
