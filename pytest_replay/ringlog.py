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
import errno
import mmap
import os
import struct
import sys
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import numpy as np

from pytest_replay._fs import NotRegularFile, open_regular, open_regular_fd
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
    ring_spans,
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

#: Batches of at least this many records are written to the file with ``pwrite`` rather
#: than stored through the map: the kernel fills the page-cache pages directly, where the
#: first store to each 4 KiB page of a shared map takes a page fault (which zeroes the page
#: and enters the file system) before the copy. Smaller batches land in pages the map has
#: usually faulted in already, where a store is cheaper than a system call.
WRITE_THROUGH_MIN_RECORDS: Final = 1024

_PWRITE: Final = hasattr(os, "pwrite")
_FADVISE: Final = hasattr(os, "posix_fadvise")
#: A write-behind log syncs in the background each time this many bytes were appended
#: since the last background sync began (and none is still running).
WRITE_BEHIND_SYNC_BYTES: Final = 16 << 20
# fdatasync is what a log's data needs (its size never changes); not every OS has it.
_datasync: Final = getattr(os, "fdatasync", os.fsync)


class _WriteBehind:
    """What a write-behind log does after each batch: start the writeback of the pages
    the batch filled, and sync the file on a thread of its own, one sync at a time.

    The first sync after a lot of data was written waits for the device to make that
    data durable (about 45 ms for a 64 MiB capture on the machine the benchmarks ran
    on), however long ago the kernel wrote it out. Syncing in the background while the
    caller computes the next batches leaves :meth:`RingLog.sync` only the tail. An error
    a background sync meets is kept and raised by the next :meth:`wait`: Linux reports a
    write error to one sync of a file, so the final sync would not see it again.
    """

    __slots__ = ("_error", "_fd", "_pending", "_thread")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pending = 0
        self._thread: threading.Thread | None = None
        self._error: OSError | None = None

    def wrote(self, spans: list[tuple[int, int, int]]) -> None:
        """After a batch landed in ``spans`` (see :func:`ring_spans`)."""
        if _FADVISE:
            self._start_writeback(spans)
        self._pending += RECORD_BYTES * sum(count for _slot, _start, count in spans)
        if self._pending < WRITE_BEHIND_SYNC_BYTES:
            return
        if self._thread is not None:
            if self._thread.is_alive():
                return  # the next batch starts the next sync
            self._thread.join()
            self._thread = None
        self._pending = 0
        # The thread syncs a duplicate of the descriptor and closes it: a log dropped
        # without close() cannot leave it syncing a descriptor number reused meanwhile.
        try:
            fd = os.dup(self._fd)
        except OSError:
            return  # out of descriptors: the final sync does the work
        thread = threading.Thread(target=self._run, args=(fd,), name="vrrl-write-behind")
        try:
            thread.start()
        except RuntimeError:  # no thread can start (a thread limit, interpreter exit)
            self._run(fd)
            return
        self._thread = thread

    def _start_writeback(self, spans: list[tuple[int, int, int]]) -> None:
        """Ask the kernel to start writing the whole pages the spans filled.

        Linux's ``POSIX_FADV_DONTNEED`` starts writeback of the range's dirty pages
        without waiting for it (Python has no ``sync_file_range``); pages still dirty or
        being written stay cached, so nothing written is lost (a page already clean may
        be dropped from the cache and read again if the log is read). A page the
        batch only began is left for the next batch, and page 0 for :meth:`RingLog.sync`:
        it holds the cursor, which every batch rewrites.
        """
        for slot, _start, count in spans:
            first = HEADER_BYTES + RECORD_BYTES * slot
            begin = max(first - first % mmap.PAGESIZE, mmap.PAGESIZE)
            end = first + RECORD_BYTES * count
            end -= end % mmap.PAGESIZE
            if end > begin:
                # Advice only: if it fails, sync() still writes and waits for every page.
                with contextlib.suppress(OSError):
                    os.posix_fadvise(self._fd, begin, end - begin, os.POSIX_FADV_DONTNEED)

    def _run(self, fd: int) -> None:
        try:
            _datasync(fd)
        except OSError as exc:
            self._error = self._error or exc
        finally:
            os.close(fd)

    def wait(self) -> OSError | None:
        """Wait for the running sync; the first error any sync met (then forgotten)."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        error, self._error = self._error, None
        return error


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

    __slots__ = (
        "_behind",
        "_body",
        "_capacity",
        "_cursor",
        "_cursor_word",
        "_file",
        "_mm",
        "_path",
        "_pos",
    )

    def __init__(
        self,
        path: Path,
        file: Any,
        mm: mmap.mmap,
        capacity: int,
        cursor: int,
        *,
        write_behind: bool = False,
    ) -> None:
        self._path = path
        self._file = file
        self._behind = _WriteBehind(file.fileno()) if write_behind else None
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
        cls,
        path: str | os.PathLike[str],
        capacity: int | None = None,
        *,
        read_only: bool = False,
        write_behind: bool = False,
    ) -> RingLog:
        """Open the log at ``path``, creating a zeroed one of ``capacity`` records if absent.

        An existing file keeps its stored capacity (``capacity`` is then only
        checked for bounds, as the reference does) and its cursor modulo that
        capacity. ``read_only`` maps the file without write access.

        ``write_behind`` is for a log written once through and synced at the end (a
        capture): each :meth:`append_many` asks the kernel to start writing the pages
        it filled, and every ``WRITE_BEHIND_SYNC_BYTES`` appended start a sync on a
        background thread, so the disk works while the caller computes the next batch
        and :meth:`sync` only waits for the tail. An error a background sync meets is
        raised by the next :meth:`sync` or :meth:`close`. A ring that is overwritten again and
        again, or never synced, is better off without it (the default): its pages
        would be written for nothing.
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
        return cls(
            path,
            file,
            mm,
            stored_capacity,
            stored_cursor % stored_capacity,
            write_behind=write_behind and not read_only,
        )

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
            # Every field already fits: copied straight into the log, magic set there
            # (or found set already, for the write-through path, which cannot set it).
            if len(slots):
                self._store(slots, stamp=True)
            return
        try:
            array = records_to_array(slots)
        except RecordValueError as exc:
            raise RecordValueError(exc.field, exc.value, exc.index, self._path) from None
        if len(array) == 0:
            return
        self._store(array, stamp=False)

    def _store(self, array: RecordArray, *, stamp: bool) -> None:
        """Write the non-empty ``array`` at the cursor (wrapping) and advance the cursor."""
        assert self._body is not None
        cursor, capacity = self._cursor, self._capacity
        spans = ring_spans(cursor, len(array), capacity)
        if (
            _PWRITE
            and len(array) >= WRITE_THROUGH_MIN_RECORDS
            and array.flags.c_contiguous
            and not (stamp and not _all_live(array))
        ):
            self._write_through(array, spans)
        else:
            scatter(self._body, array, cursor, capacity, stamp=stamp)
        if self._behind is not None:
            self._behind.wrote(spans)
        self._set_cursor((cursor + len(array)) % capacity)

    def _write_through(self, array: RecordArray, spans: list[tuple[int, int, int]]) -> None:
        """``pwrite`` each span of ``array`` to its slots. The map shares the page cache with
        the file, so it sees the records at once. A full disk is a typed error here, where a
        store through the map into a sparse page would kill the process with SIGBUS. After
        an error the cursor stays where it was; records written before it may lie past
        the cursor, as a crash in the middle of a store would leave them."""
        data = array.view(np.uint8).data
        fd = self._file.fileno()
        try:
            for slot, start, count in spans:
                _pwrite_all(
                    fd,
                    data[RECORD_BYTES * start : RECORD_BYTES * (start + count)],
                    HEADER_BYTES + RECORD_BYTES * slot,
                )
        except OSError as exc:
            raise ReplayLogIoError("append", self._path, exc) from exc
        finally:
            data.release()

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
            if self._behind is not None and (error := self._behind.wait()) is not None:
                raise error
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
        # A background sync uses the descriptor: it ends before the file closes. What it
        # met is raised once everything is released, as a failed flush would be.
        error = None if self._behind is None else self._behind.wait()
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
        if error is not None:
            raise ReplayLogIoError("sync", self._path, error) from error

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


def _all_live(array: RecordArray) -> bool:
    """Every record of ``array`` carries the live magic (the first is looked at alone
    first: a batch whose magic is left to the log to set fails there, at no cost)."""
    magic = array["magic"]
    return bool(magic[0] == RECORD_MAGIC) and bool((magic == RECORD_MAGIC).all())


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    """Write all of ``data`` at ``offset``, continuing a short write."""
    while len(data):
        written = os.pwrite(fd, data, offset)
        if written <= 0:
            raise OSError(errno.EIO, "pwrite wrote nothing")
        data = data[written:]
        offset += written


def create_log(path: Path, capacity: int) -> None:
    """Create a zeroed log of ``capacity`` records atomically: temp file in the same folder,
    fsync, replace.

    A regular file the new log replaces is freed off the caller's path: freeing a large
    file's blocks waits on the disk (tens of milliseconds for a full log where the file
    system discards freed blocks), so a descriptor held across the rename keeps the old
    file alive and a background thread closes it, which frees it. The rename is as
    atomic as before: until it happens the old file is in place, untouched.
    """
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise ReplayLogIoError("create", path, exc) from exc
    replaced: int | None = None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.truncate(HEADER_BYTES + RECORD_BYTES * capacity)
            fh.write(HEADER_STRUCT.pack(LOG_MAGIC, LOG_VERSION, 0, capacity, 0))
            fh.flush()
            os.fsync(fh.fileno())
        replaced = _hold_replaced(path)
        os.replace(tmp, path)
    except OSError as exc:
        _unlink_quietly(tmp)
        _close_quietly(replaced)
        raise ReplayLogIoError("create", path, exc) from exc
    except BaseException:
        _unlink_quietly(tmp)
        _close_quietly(replaced)
        raise
    if replaced is not None:
        _close_in_background(replaced)


def _hold_replaced(path: Path) -> int | None:
    """A read-only descriptor of the regular file at ``path`` (never through a link), or
    None where there is none to hold: nothing there, a link or anything else (whose
    replacement frees nothing worth waiting for), or a file that cannot be opened. Not
    on Windows, where an open file cannot be replaced."""
    if os.name != "posix":
        return None
    try:
        fd, _size = open_regular_fd(path, follow=False)
    except (NotRegularFile, OSError):
        return None
    return fd


def _close_in_background(fd: int) -> None:
    """Close ``fd`` on a thread of its own: the last close of an unlinked file frees its
    blocks (``os.close`` releases the GIL meanwhile). The thread is not a daemon, so the
    interpreter's exit waits for it; a killed process has its descriptors closed by the
    kernel, and an unlinked file does not outlive its last descriptor."""
    try:
        threading.Thread(target=_close_quietly, args=(fd,), name="vrrl-free-replaced").start()
    except RuntimeError:  # no thread can start (interpreter shutting down): close it here
        _close_quietly(fd)


def _close_quietly(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
