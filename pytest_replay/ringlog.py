"""The VRRL ring-replay log: a fixed-capacity circular log of published ring slots.

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

The file is memory-mapped: appends are single ``pack_into`` calls into the
mapping, batches and decodes are numpy copies. Only a header that has been
checked (magic, version, capacity bounds, file length) is ever mapped.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import mmap
import operator
import os
import struct
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import blake3
import numpy as np
import numpy.typing as npt

from pytest_replay._fs import NotRegularFile, open_regular
from pytest_replay.errors import ReplayError

__all__ = [
    "HEADER_BYTES",
    "LOG_MAGIC",
    "LOG_VERSION",
    "MAX_REPLAY_RECORDS",
    "RECORD_BYTES",
    "RECORD_MAGIC",
    "RECORD_STRUCT",
    "RING_RECORD_DTYPE",
    "BackendError",
    "CapacityOverflow",
    "HeaderMismatch",
    "ReadOnlyLog",
    "RecordValueError",
    "RecordedSlot",
    "ReplayFailureClass",
    "ReplayFailureEvidence",
    "ReplayLogError",
    "ReplayLogIoError",
    "ReplayRecord",
    "RingImage",
    "RingLog",
    "TruncatedLog",
    "ZeroCapacity",
    "check_capacity",
    "classify_backend_error",
    "create_log",
    "encode_ring_image",
    "output_digest",
    "read_ring_image",
    "records_from_array",
    "records_to_array",
]

LOG_MAGIC: Final = b"VRRL0001"
LOG_VERSION: Final = 1
RECORD_MAGIC: Final = 0xDEADBEEF
HEADER_BYTES: Final = 32
RECORD_BYTES: Final = 64
MAX_REPLAY_RECORDS: Final = 1_048_576

_HEADER = struct.Struct("<8sIIQQ")
_CURSOR = struct.Struct("<Q")
_CURSOR_OFFSET: Final = 24
# One record, packed field by field: the ring and megakernel recorders pack with it too.
RECORD_STRUCT: Final = struct.Struct("<IQIIIIIIIIIIIQ")
# The on-disk cursor is little-endian; a native store is only right on such a host.
_LITTLE_ENDIAN: Final = sys.byteorder == "little"
assert _HEADER.size == HEADER_BYTES and RECORD_STRUCT.size == RECORD_BYTES

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
_FIELDS_AFTER_MAGIC: Final = RING_RECORD_DTYPE.names[1:]  # type: ignore[index]
_U64_FIELDS: Final = frozenset({"timestamp_ns", "output_digest"})


# --------------------------------------------------------------------------- errors


class ReplayLogError(ReplayError):
    """Base of every ring-log error; messages end with a ``Fix:`` hint."""


class ReplayLogIoError(ReplayLogError):
    """An operating-system call on the log file failed."""

    def __init__(self, op: str, path: str | os.PathLike[str], cause: OSError) -> None:
        self.op = op
        self.path = os.fspath(path)
        self.cause = cause
        super().__init__(f"replay log {op} on '{self.path}' failed: {cause}. Fix: {_io_fix(cause)}")


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
            f"replay log '{self.path}': {detail}. "
            "Fix: regenerate the log; the VRRL format may have changed or the file is corrupted."
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
            f"replay log capacity must be > 0, got {capacity}{_where(self.path, requested)}. "
            "Fix: construct with at least one slot."
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
            f"replay log capacity {count} exceeds max {max}{_where(self.path, requested)}. "
            "Fix: shard replay into smaller logs."
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
        where = "" if self.path is None else f"replay log '{self.path}': "
        which = "" if index is None else f"record #{index}: "
        if field == "args":
            want = "four u32 argument words"
        elif field == "record":
            want = "a record the VRRL layout can hold"
        else:
            bits = 64 if field in _U64_FIELDS else 32
            want = f"an unsigned {bits}-bit integer (0..{(1 << bits) - 1})"
        super().__init__(
            f"{where}{which}{field}={value!r:.80} is not {want}, so it cannot be stored. "
            "Fix: build slots and failure evidence from integers that fit their record "
            "fields (see docs/formats.md)."
        )


class ReadOnlyLog(ReplayLogError):
    """A write to a log opened with ``read_only=True``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        super().__init__(
            f"replay log '{self.path}' was opened read_only and cannot be appended to. "
            "Fix: open it with RingLog.open(path) (without read_only=True) to write."
        )


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


# --------------------------------------------------------------------------- array codec


def check_capacity(
    capacity: int, path: str | os.PathLike[str] | None = None, *, requested: bool = False
) -> None:
    """Raise :class:`ZeroCapacity` or :class:`CapacityOverflow` unless ``capacity`` records
    fit a log (``requested``: the caller asked for that capacity, it was not read)."""
    if capacity <= 0:
        raise ZeroCapacity(path, requested=requested, capacity=capacity)
    if capacity > MAX_REPLAY_RECORDS:
        raise CapacityOverflow(capacity, MAX_REPLAY_RECORDS, path, requested=requested)


SlotsLike = Sequence[RecordedSlot] | Sequence[ReplayRecord] | RecordArray


def records_to_array(items: Iterable[RecordedSlot | ReplayRecord] | RecordArray) -> RecordArray:
    """Encode slots or records as a :data:`RING_RECORD_DTYPE` array with live magic.

    A structured array is accepted too: fields it shares with the record dtype
    are copied (``args`` as a (4,) sub-array), the rest stay zero.
    """
    if isinstance(items, np.ndarray):
        if items.dtype == RING_RECORD_DTYPE:
            out: RecordArray = items.copy()
        else:
            names = items.dtype.names
            if names is None:
                raise TypeError(
                    f"records_to_array needs a structured array, got dtype {items.dtype}. "
                    "Fix: pass RecordedSlot values or an array of RING_RECORD_DTYPE."
                )
            _check_foreign_array(items)
            out = np.zeros(len(items), RING_RECORD_DTYPE)
            for name in names:
                if name != "magic" and name in RING_RECORD_DTYPE.names:  # type: ignore[operator]
                    out[name] = items[name]
        out["magic"] = RECORD_MAGIC
        return out
    rows = []
    for item in items:
        if isinstance(item, ReplayRecord):
            rows.append(_row(item.slot, item.failure))
        else:
            assert isinstance(item, RecordedSlot)
            rows.append(_row(item, None))
    try:
        return np.array(rows, dtype=RING_RECORD_DTYPE)
    except (OverflowError, ValueError, TypeError):
        # Only now is each value looked at, so a valid batch pays nothing for it.
        index, field, value = _first_misfit(rows)
        raise RecordValueError(field, value, index) from None


def _check_foreign_array(items: RecordArray) -> None:
    """Refuse a structured array whose fields would not survive the cast to the record dtype."""
    for name in items.dtype.names or ():
        if name == "magic" or name not in RING_RECORD_DTYPE.names:  # type: ignore[operator]
            continue
        column = items[name]
        want = RING_RECORD_DTYPE[name]
        if column.shape[1:] != want.shape or column.dtype.base.kind not in "biu":
            raise RecordValueError(name, f"<{column.dtype.base} column of shape {column.shape}>")
        if column.dtype.base.kind == "b" or len(column) == 0:
            continue
        top = np.iinfo(want.base).max
        if column.min() < 0 or column.max() > top:
            flat = column.reshape(len(column), -1)
            bad = (flat < 0) | (flat > top)
            index, word = (int(i) for i in np.argwhere(bad)[0])
            field = f"{name}[{word}]" if column.ndim > 1 else name
            raise RecordValueError(field, flat[index, word].item(), index)


def _row(slot: RecordedSlot, failure: ReplayFailureEvidence | None) -> tuple[Any, ...]:
    """One record as the tuple ``np.array`` takes for :data:`RING_RECORD_DTYPE`."""
    if failure is None:
        return (RECORD_MAGIC, slot.timestamp_ns, slot.slot_idx, slot.tenant_id, slot.opcode,
                slot.args, slot.epoch, 0, 0, 0, 0)  # fmt: skip
    return (RECORD_MAGIC, slot.timestamp_ns, slot.slot_idx, slot.tenant_id, slot.opcode,
            slot.args, slot.epoch, failure.slot_status, failure.failure_class,
            failure.backend_error_code, failure.output_digest)  # fmt: skip


def _fits(value: object, bits: int) -> bool:
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        return False
    return 0 <= number < 1 << bits


def _first_misfit(rows: Sequence[tuple[Any, ...]]) -> tuple[int, str, object]:
    """``(index, field, value)`` of the first field in ``rows`` no record word can hold."""
    for index, row in enumerate(rows):
        for name, value in zip(_FIELDS_AFTER_MAGIC, row[1:], strict=True):
            if name != "args":
                if not _fits(value, 64 if name in _U64_FIELDS else 32):
                    return index, name, value
                continue
            try:
                words = list(value)
            except TypeError:
                return index, "args", value
            if len(words) != 4:
                return index, "args", value
            for k, word in enumerate(words):
                if not _fits(word, 32):
                    return index, f"args[{k}]", word
    # Unreachable for rows numpy refused; named as a whole rather than guessed.
    return 0, "record", rows[0] if rows else None


def records_from_array(array: RecordArray) -> list[ReplayRecord]:
    """Decode a record array into :class:`ReplayRecord` values."""
    from_words = ReplayFailureEvidence.from_words
    columns = [array[name].tolist() for name in _FIELDS_AFTER_MAGIC]
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


def _parse_header(buf: Any, size: int, path: str) -> tuple[int, int]:
    """Validate a header in ``buf``; return (capacity, stored cursor)."""
    if size < HEADER_BYTES:
        raise TruncatedLog(path, HEADER_BYTES, size)
    magic, version, _flags, capacity, cursor = _HEADER.unpack_from(buf, 0)
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


#: One record as opaque bytes, for copying records around.
_RECORD_BYTES_DTYPE: Final = np.dtype((np.void, RECORD_BYTES))


def _live_records(body: RecordArray, cursor: int, path: str) -> RecordArray:
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
    raw = body.view(_RECORD_BYTES_DTYPE)
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
    capacity, stored = _parse_header(view, view.nbytes, name)
    body = np.frombuffer(view, RING_RECORD_DTYPE, count=capacity, offset=HEADER_BYTES)
    cursor = stored % capacity
    return RingImage(capacity, cursor, stored, _live_records(body, cursor, name))


def encode_ring_image(capacity: int, items: SlotsLike) -> bytes:
    """The exact bytes a fresh log of ``capacity`` holds after appending ``items`` in order."""
    check_capacity(capacity)
    buf = bytearray(HEADER_BYTES + RECORD_BYTES * capacity)
    array = records_to_array(items)
    body = np.frombuffer(buf, RING_RECORD_DTYPE, count=capacity, offset=HEADER_BYTES)
    cursor = _scatter(body, array, 0, capacity)
    del body
    _HEADER.pack_into(buf, 0, LOG_MAGIC, LOG_VERSION, 0, capacity, cursor)
    return bytes(buf)


def _scatter(
    body: RecordArray, array: RecordArray, cursor: int, capacity: int, *, stamp: bool = False
) -> int:
    """Write ``array`` into the ring ``body`` from ``cursor``; return the new cursor.

    ``stamp`` sets the live magic on the written records (for an array whose
    own magic words are not trusted), in place, so the batch is copied once.
    """
    n = len(array)
    if n == 0:
        return cursor
    end = (cursor + n) % capacity
    # Copied as opaque bytes: numpy copies a packed structured dtype field by field.
    body, array = body.view(_RECORD_BYTES_DTYPE), array.view(_RECORD_BYTES_DTYPE)
    if n >= capacity:
        # Only the newest ``capacity`` records survive; they end just before ``end``.
        tail = array[n - capacity :]
        body[end:] = tail[: capacity - end]
        body[:end] = tail[capacity - end :]
        written = [body]
    elif cursor + n <= capacity:
        body[cursor : cursor + n] = array
        written = [body[cursor : cursor + n]]
    else:
        first = capacity - cursor
        body[cursor:] = array[:first]
        body[: n - first] = array[first:]
        written = [body[cursor:], body[: n - first]]
    if stamp:
        for part in written:
            part.view(RING_RECORD_DTYPE)["magic"] = RECORD_MAGIC
    return end


# --------------------------------------------------------------------------- the log


class RingLog:
    """A VRRL ring-replay log backed by a memory-mapped file.

    Use :meth:`open`; the log is a context manager. ``append`` writes one
    record and persists the advanced cursor, exactly as the reference does;
    ``sync`` makes both durable.
    """

    __slots__ = ("_body", "_capacity", "_cursor", "_cursor_word", "_file", "_mm", "_path", "_pos")

    def __init__(self, path: Path, file: Any, mm: mmap.mmap, capacity: int, cursor: int) -> None:
        self._path = path
        self._file = file
        self._mm: mmap.mmap | None = mm
        self._capacity = capacity
        self._cursor = cursor
        self._pos = HEADER_BYTES + RECORD_BYTES * cursor
        self._body: RecordArray | None = np.frombuffer(
            mm, RING_RECORD_DTYPE, count=capacity, offset=HEADER_BYTES
        )
        self._cursor_word: memoryview | None = memoryview(mm)[_CURSOR_OFFSET:HEADER_BYTES].cast("Q")

    # -- opening

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], capacity: int | None = None, *, read_only: bool = False
    ) -> RingLog:
        """Open the log at ``path``, creating a zeroed one of ``capacity`` records if absent.

        An existing file keeps its stored capacity (``capacity`` is then only
        checked for bounds, as the reference does) and its cursor modulo that
        capacity. ``read_only`` maps the file without write access.
        """
        if capacity is not None:
            check_capacity(capacity, path, requested=True)
        path = Path(path)
        if not path.exists():
            if read_only or capacity is None:
                raise ReplayLogIoError(
                    "open", path, FileNotFoundError(2, "no such replay log")
                ) from None
            create_log(path, capacity)
        try:
            # Never a FIFO or device: reading one would block or never end.
            file = open_regular(path, writable=not read_only)
        except OSError as exc:
            raise ReplayLogIoError("open", path, exc) from exc
        try:
            size = os.fstat(file.fileno()).st_size
            header = file.read(HEADER_BYTES)
            stored_capacity, stored_cursor = _parse_header(header, size, str(path))
            length = HEADER_BYTES + RECORD_BYTES * stored_capacity
            access = mmap.ACCESS_READ if read_only else mmap.ACCESS_WRITE
            mm = mmap.mmap(file.fileno(), length, access=access)
        except OSError as exc:
            file.close()
            raise ReplayLogIoError("mmap", path, exc) from exc
        except BaseException:
            file.close()
            raise
        return cls(path, file, mm, stored_capacity, stored_cursor % stored_capacity)

    # -- properties

    @property
    def capacity(self) -> int:
        """Number of record slots; appends past it overwrite the oldest record."""
        return self._capacity

    @property
    def cursor(self) -> int:
        """Index of the slot the next append overwrites."""
        return self._cursor

    @property
    def path(self) -> Path:
        """The file this log was opened on."""
        return self._path

    @property
    def closed(self) -> bool:
        return self._mm is None

    # -- writing

    def append(self, slot: RecordedSlot) -> None:
        """Append one slot with no failure evidence.

        A field that does not fit its word raises :class:`RecordValueError`;
        a log opened ``read_only`` raises :class:`ReadOnlyLog`.
        """
        mm = self._mm
        if mm is None:
            mm = self._live_map()  # raises: the log is closed
        pos = self._pos
        # pack does the range checks; its errors are translated, not pre-empted, so an
        # append that succeeds pays for no extra check. Packing to bytes first (faster
        # than pack_into on a map, too) means a refused record never touches the log.
        try:
            a0, a1, a2, a3 = slot.args
            mm[pos : pos + RECORD_BYTES] = RECORD_STRUCT.pack(
                RECORD_MAGIC, slot.timestamp_ns, slot.slot_idx, slot.tenant_id,
                slot.opcode, a0, a1, a2, a3, slot.epoch, 0, 0, 0, 0,
            )  # fmt: skip
        except (struct.error, ValueError, TypeError) as exc:
            raise self._write_error(exc, slot, None) from None
        # _advance(1) inlined: this is the per-record hot path.
        cursor = self._cursor + 1
        if cursor == self._capacity:
            cursor = 0
            self._pos = HEADER_BYTES
        else:
            self._pos = pos + RECORD_BYTES
        self._cursor = cursor
        word = self._cursor_word
        if _LITTLE_ENDIAN and word is not None:
            word[0] = cursor
        else:
            _CURSOR.pack_into(mm, _CURSOR_OFFSET, cursor)

    def append_with_failure(self, slot: RecordedSlot, failure: ReplayFailureEvidence) -> None:
        """Append one slot with its failure evidence (errors as for :meth:`append`)."""
        mm = self._live_map()
        pos = self._pos
        try:
            a0, a1, a2, a3 = slot.args
            mm[pos : pos + RECORD_BYTES] = RECORD_STRUCT.pack(
                RECORD_MAGIC, slot.timestamp_ns, slot.slot_idx, slot.tenant_id,
                slot.opcode, a0, a1, a2, a3, slot.epoch, failure.slot_status,
                int(failure.failure_class), failure.backend_error_code, failure.output_digest,
            )  # fmt: skip
        except (struct.error, ValueError, TypeError) as exc:
            raise self._write_error(exc, slot, failure) from None
        self._advance(1)

    def append_many(self, slots: SlotsLike) -> None:
        """Append a batch in one copy (wrap-around handled) and persist the cursor once.

        Errors as for :meth:`append`; a bad field names its index in the batch
        and nothing of the batch is written.
        """
        self._live_map()
        if self._file.mode == "rb":
            raise ReadOnlyLog(self._path)
        assert self._body is not None
        if isinstance(slots, np.ndarray) and slots.dtype == RING_RECORD_DTYPE:
            # Every field already fits: copied straight into the map, magic set there.
            if len(slots):
                end = _scatter(self._body, slots, self._cursor, self._capacity, stamp=True)
                self._set_cursor(end)
            return
        try:
            array = records_to_array(slots)
        except RecordValueError as exc:
            raise RecordValueError(exc.field, exc.value, exc.index, self._path) from None
        if len(array) == 0:
            return
        self._set_cursor(_scatter(self._body, array, self._cursor, self._capacity))

    def _write_error(
        self, exc: Exception, slot: RecordedSlot, failure: ReplayFailureEvidence | None
    ) -> ReplayLogError:
        if self._file.mode == "rb":
            return ReadOnlyLog(self._path)
        _index, field, value = _first_misfit([_row(slot, failure)])
        return RecordValueError(field, value, None, self._path)

    def _advance(self, n: int) -> None:
        cursor = self._cursor + n
        if cursor >= self._capacity:
            cursor %= self._capacity
        self._set_cursor(cursor)

    if _LITTLE_ENDIAN:  # chosen once: _set_cursor runs on every append

        def _set_cursor(self, cursor: int) -> None:
            self._cursor = cursor
            self._pos = HEADER_BYTES + RECORD_BYTES * cursor
            assert self._cursor_word is not None
            self._cursor_word[0] = cursor  # a native u64 store: the cheapest write there is

    else:

        def _set_cursor(self, cursor: int) -> None:
            self._cursor = cursor
            self._pos = HEADER_BYTES + RECORD_BYTES * cursor
            assert self._mm is not None
            _CURSOR.pack_into(self._mm, _CURSOR_OFFSET, cursor)

    # -- reading

    def records(self) -> RecordArray:
        """A copy of the live records, oldest first, as a :data:`RING_RECORD_DTYPE` array."""
        self._live_map()
        assert self._body is not None
        return _live_records(self._body, self._cursor, str(self._path))

    def slot_view(self) -> RecordArray:
        """Every record slot in slot order, as a read-only view of the mapped file (no copy,
        no check). Copy what you keep: the view dies with the log and sees later appends."""
        self._live_map()
        assert self._body is not None
        view = self._body[:]
        view.flags.writeable = False
        return view

    def replay_records(self) -> list[ReplayRecord]:
        """Live records in publish order, with their failure evidence."""
        return records_from_array(self.records())

    def replay_all(self) -> list[RecordedSlot]:
        """Live slots in publish order."""
        return [record.slot for record in self.replay_records()]

    def __len__(self) -> int:
        self._live_map()
        assert self._body is not None
        return int(np.count_nonzero(self._body["magic"]))

    # -- lifetime

    def sync(self) -> None:
        """Flush the mapping and fsync the file."""
        mm = self._live_map()
        try:
            if not mm.closed and self._file.mode != "rb":
                mm.flush()
                os.fsync(self._file.fileno())
        except OSError as exc:
            raise ReplayLogIoError("sync", self._path, exc) from exc

    def close(self) -> None:
        """Release the mapping and the file; closing twice is harmless."""
        mm = self._mm
        if mm is None:
            return
        # Views into the mapping must go before the mapping itself can close.
        self._body = None
        if self._cursor_word is not None:
            self._cursor_word.release()
            self._cursor_word = None
        self._mm = None
        try:
            mm.close()
        except BufferError:
            # A caller still holds a view of the mapping; it is unmapped when
            # the last view goes. Our own references are released already.
            pass
        finally:
            self._file.close()

    def _live_map(self) -> mmap.mmap:
        mm = self._mm
        if mm is None:
            raise ReplayLogError(
                f"replay log '{self._path}' is closed. Fix: reopen it with RingLog.open()."
            )
        return mm

    def __enter__(self) -> RingLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._mm is None else f"cursor={self._cursor}"
        return f"RingLog({str(self._path)!r}, capacity={self._capacity}, {state})"


def create_log(path: Path, capacity: int) -> None:
    """Create a zeroed log of ``capacity`` records atomically: temp file in the same folder,
    fsync, replace."""
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise ReplayLogIoError("create", path, exc) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.truncate(HEADER_BYTES + RECORD_BYTES * capacity)
            fh.write(_HEADER.pack(LOG_MAGIC, LOG_VERSION, 0, capacity, 0))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _unlink_quietly(tmp)
        raise ReplayLogIoError("create", path, exc) from exc
    except BaseException:
        _unlink_quietly(tmp)
        raise


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
