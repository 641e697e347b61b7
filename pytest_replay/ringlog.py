"""The VRRL ring-replay log: a fixed-capacity circular log of published ring slots.

The file is memory-mapped: appends are single ``pack`` calls into the mapping, batches
and decodes are numpy copies. Only a header that has been checked (magic, version,
capacity bounds, file length) is ever mapped.

The byte layout, the record values and the checks are the VRRL format,
:mod:`pytest_replay.formats.vrrl`; batch encoding and in-memory images are
:mod:`pytest_replay.ringlog_io`. This module is the log, and the one place users import
the ring log's names from: it re-exports the public names of both.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import numpy as np

from pytest_replay._fs import open_regular
from pytest_replay.formats.vrrl import (
    CURSOR_OFFSET,
    CURSOR_STRUCT,
    HEADER_BYTES,
    HEADER_STRUCT,
    LOG_MAGIC,
    LOG_VERSION,
    MAX_REPLAY_RECORDS,
    RECORD_BYTES,
    RECORD_MAGIC,
    RECORD_STRUCT,
    RING_RECORD_DTYPE,
    BackendError,
    CapacityOverflow,
    HeaderMismatch,
    RecordedSlot,
    RecordValueError,
    ReplayFailureClass,
    ReplayFailureEvidence,
    ReplayLogError,
    ReplayLogIoError,
    ReplayRecord,
    RingImage,
    TruncatedLog,
    ZeroCapacity,
    check_capacity,
    classify_backend_error,
    live_records,
    output_digest,
    parse_header,
    read_ring_image,
    records_from_array,
)
from pytest_replay.formats.vrrl import RecordArray as RecordArray
from pytest_replay.ringlog_io import SlotsLike as SlotsLike
from pytest_replay.ringlog_io import (
    encode_ring_image,
    first_misfit,
    record_row,
    records_to_array,
    scatter,
)

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

# The on-disk cursor is little-endian; a native store is only right on such a host.
_LITTLE_ENDIAN: Final = sys.byteorder == "little"


class ReadOnlyLog(ReplayLogError):
    """A write to a log opened with ``read_only=True``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        super().__init__(
            f"replay log '{self.path}' was opened read_only and cannot be appended to",
            fix="open it with RingLog.open(path) (without read_only=True) to write.",
        )


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
        self._cursor_word: memoryview | None = memoryview(mm)[CURSOR_OFFSET:HEADER_BYTES].cast("Q")

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
            stored_capacity, stored_cursor = parse_header(header, size, str(path))
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
            CURSOR_STRUCT.pack_into(mm, CURSOR_OFFSET, cursor)

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
                end = scatter(self._body, slots, self._cursor, self._capacity, stamp=True)
                self._set_cursor(end)
            return
        try:
            array = records_to_array(slots)
        except RecordValueError as exc:
            raise RecordValueError(exc.field, exc.value, exc.index, self._path) from None
        if len(array) == 0:
            return
        self._set_cursor(scatter(self._body, array, self._cursor, self._capacity))

    def _write_error(
        self, exc: Exception, slot: RecordedSlot, failure: ReplayFailureEvidence | None
    ) -> ReplayLogError:
        if self._file.mode == "rb":
            return ReadOnlyLog(self._path)
        _index, field, value = first_misfit([record_row(slot, failure)])
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
            CURSOR_STRUCT.pack_into(self._mm, CURSOR_OFFSET, cursor)

    # -- reading

    def records(self) -> RecordArray:
        """A copy of the live records, oldest first, as a :data:`RING_RECORD_DTYPE` array."""
        self._live_map()
        assert self._body is not None
        return live_records(self._body, self._cursor, str(self._path))

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
                f"replay log '{self._path}' is closed", fix="reopen it with RingLog.open()."
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
            fh.write(HEADER_STRUCT.pack(LOG_MAGIC, LOG_VERSION, 0, capacity, 0))
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
