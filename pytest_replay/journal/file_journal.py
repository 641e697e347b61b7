"""A journal store in one append-only file of CRC-checked msgpack frames.

Each ``write_messages`` call appends exactly one frame holding the whole
batch, then fsyncs: a batch is on disk entirely or not at all. Frame bodies
(msgpack arrays)::

    [0, [[persistence_id, sequence_nr, payload, manifest, writer_uuid, deleted, [tags]], ...]]
    [1, persistence_id, to_sequence_nr]          # delete_messages_to marker

On open, the whole file is checked, under one of RocksDB's WAL recovery modes:
``tolerate_torn_tail`` (default) drops a final frame cut short by a crash,
reporting it (:attr:`FileJournal.torn_tail`, a :class:`TornTailWarning`);
``absolute`` raises on that too; ``point_in_time`` stops at the first bad
frame, saves the bytes from there beside the journal, reports them
(:attr:`FileJournal.dropped`, a :class:`PointInTimeRecoveryWarning`) and keeps
what precedes. Any other damage raises :class:`JournalCorrupted` naming the
byte offset; a complete frame failing its CRC is damage, never a torn tail.
"""

from __future__ import annotations

import contextlib
import operator
import os
import stat
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgpack

from pytest_replay._atomic import atomic_write_bytes
from pytest_replay._gc import paused_collector
from pytest_replay._msgpack import unpack_bounded
from pytest_replay.formats.journal import (
    JOURNAL_MAGIC,
    MAX_FRAME_BYTES,
    RECOVERY_MODES,
    FrameScan,
    RecoveryMode,
    encode_file_header,
    encode_frame,
)
from pytest_replay.journal.errors import (
    FrameTooLarge,
    JournalCorrupted,
    JournalIoError,
    JournalUsageError,
    PointInTimeRecoveryWarning,
    SequenceNrConflict,
    TornTailWarning,
)
from pytest_replay.journal.frames import scan_frames
from pytest_replay.journal.memory_journal import InMemoryJournal, Streams, mark_deleted
from pytest_replay.journal.persistent import (
    MAX_SEQUENCE_NR,
    PersistentRepr,
    check_continuity,
    group_batch,
)

_flock: Callable[[int, int], None] | None
try:
    import fcntl

    _flock = fcntl.flock
    _LOCK_FLAGS = fcntl.LOCK_EX | fcntl.LOCK_NB
except ImportError:  # pragma: no cover - Windows has no fcntl
    _flock = None
    _LOCK_FLAGS = 0

__all__ = [
    "DroppedFrames",
    "FileJournal",
    "TornTail",
    "encode_journal_image",
    "parse_journal_image",
]

#: msgpack.packb, typed.
_packb: Callable[..., bytes] = msgpack.packb

_OP_WRITE: Final = 0
_OP_DELETE: Final = 1


@dataclass(frozen=True, slots=True)
class TornTail:
    """A torn final frame found on open: where it started and how many bytes were dropped."""

    path: str
    offset: int
    dropped_bytes: int


@dataclass(frozen=True, slots=True)
class DroppedFrames:
    """What ``point_in_time`` recovery dropped: the damage it stopped at and where the
    dropped bytes were saved (``saved_to``, beside the journal) before truncation."""

    path: str
    offset: int
    dropped_bytes: int
    reason: str
    saved_to: str


#: The stored row of a message, as a tuple built in C (msgpack packs tuples as arrays).
_repr_row: Callable[[PersistentRepr], tuple[Any, ...]] = operator.attrgetter(
    "persistence_id", "sequence_nr", "payload", "manifest", "writer_uuid", "deleted", "tags"
)


def encode_batch_body(items: Sequence[PersistentRepr]) -> bytes:
    return _packb([_OP_WRITE, list(map(_repr_row, items))], use_bin_type=True)


def _encode_delete_body(persistence_id: str, to_seq: int) -> bytes:
    return _packb([_OP_DELETE, persistence_id, to_seq], use_bin_type=True)


def _bad(source: str, offset: int, detail: str, frame: int | None = None) -> JournalCorrupted:
    return JournalCorrupted(source, offset, detail, index=frame)


def _decode_row(row: Any, source: str, offset: int, index: int, frame: int) -> PersistentRepr:
    if type(row) is not list or len(row) != 7:
        raise _bad(source, offset, f"message #{index} of the batch is not a 7-field array", frame)
    pid, seq, payload, manifest, writer, deleted, tags = row
    if (
        type(pid) is not str
        or not pid
        or type(seq) is not int
        or not 1 <= seq <= MAX_SEQUENCE_NR
        or type(payload) is not bytes
        or type(manifest) is not str
        or type(writer) is not str
        or type(deleted) is not bool
        or type(tags) is not list
        or not all(type(tag) is str for tag in tags)
    ):
        raise _bad(
            source, offset, f"message #{index} of the batch has a field of the wrong type", frame
        )
    return PersistentRepr(pid, seq, payload, manifest, writer, deleted, tuple(tags))


def _apply_frame(streams: Streams, body: memoryview, source: str, offset: int, frame: int) -> None:
    try:
        op = unpack_bounded(body)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise _bad(source, offset, f"frame body is not valid msgpack ({exc})", frame) from exc
    if type(op) is not list or not op or type(op[0]) is not int:
        raise _bad(source, offset, "frame body is not a tagged array", frame)
    if op[0] == _OP_WRITE and len(op) == 2 and type(op[1]) is list:
        items = [_decode_row(row, source, offset, i, frame) for i, row in enumerate(op[1])]
        groups: dict[str, list[PersistentRepr]] = {}
        for item in items:
            groups.setdefault(item.persistence_id, []).append(item)
        # Every group is checked before any is applied: a refused frame changes nothing.
        for pid, group in groups.items():
            try:
                check_continuity(pid, len(streams.get(pid, ())), group)
            except SequenceNrConflict as exc:
                raise _bad(
                    source, offset, f"stored batch breaks the sequence ({exc})", frame
                ) from exc
        for pid, group in groups.items():
            streams.setdefault(pid, []).extend(group)
        return
    if op[0] == _OP_DELETE and len(op) == 3:
        pid, to_seq = op[1], op[2]
        if type(pid) is not str or type(to_seq) is not int or to_seq < 0:
            raise _bad(source, offset, "delete marker has a field of the wrong type", frame)
        mark_deleted(streams.get(pid, []), to_seq)
        return
    raise _bad(source, offset, f"unknown frame op {op[0]!r}", frame)


def parse_journal_image(
    data: bytes | bytearray | memoryview,
    source: str,
    *,
    recovery: RecoveryMode = "absolute",
) -> tuple[Streams, FrameScan]:
    """Decode a journal file image into per-persistence-id message lists.

    Returns the streams and the :class:`FrameScan` saying how the file ends. Under
    ``point_in_time`` a frame that passes its CRC but does not decode (or breaks its
    streams' sequence) also stops the scan: it and every later frame are dropped.
    """
    scan = scan_frames(data, JOURNAL_MAGIC, source, recovery=recovery)
    streams: Streams = {}
    for frame, (offset, body) in enumerate(scan.frames):
        try:
            _apply_frame(streams, body, source, offset, frame)
        except JournalCorrupted as exc:
            if recovery != "point_in_time":
                raise
            return streams, FrameScan(scan.frames[:frame], offset, None, exc, False)
    return streams, scan


def encode_journal_image(reprs: Iterable[PersistentRepr], batch_size: int = 4096) -> bytes:
    """A complete journal file holding ``reprs`` (validated), ``batch_size`` messages a frame."""
    if type(batch_size) is not int or batch_size < 1:
        # A step of 0 or less would write a file holding none of the messages.
        raise JournalUsageError(
            f"batch_size must be an int >= 1, got {batch_size!r}",
            "pass batch_size=1 or more (messages per frame)",
        )
    items = list(reprs)
    group_batch(items, {})
    parts = [encode_file_header(JOURNAL_MAGIC)]
    for start in range(0, len(items), batch_size):
        body = encode_batch_body(items[start : start + batch_size])
        if len(body) > MAX_FRAME_BYTES:
            raise FrameTooLarge("<image>", len(body), MAX_FRAME_BYTES)
        parts.append(encode_frame(body))
    return b"".join(parts)


class FileJournal(InMemoryJournal):
    """The :class:`~pytest_replay.journal.persistent.Journal` contract over one file.

    Reads are served from the in-memory index of :class:`InMemoryJournal`,
    loaded from the file on open; every write and delete is appended to the
    file (one frame) before it reaches the index, so a failed append changes
    nothing. The file is locked (``flock``) while open, so two processes never
    append to it at once. ``fsync=False`` skips the per-batch fsync (a process
    kill still loses nothing written; a power cut may).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync: bool = True,
        recovery: RecoveryMode = "tolerate_torn_tail",
    ) -> None:
        if recovery not in RECOVERY_MODES:
            raise JournalUsageError(
                f"unknown recovery mode {recovery!r}", f"pass one of {', '.join(RECOVERY_MODES)}"
            )
        super().__init__()
        self.path = Path(path)
        self._source = os.fspath(self.path)
        self._sync = fsync
        self._recovery: RecoveryMode = recovery
        #: The torn final frame removed on open, if a crash left one.
        self.torn_tail: TornTail | None = None
        #: What ``point_in_time`` recovery dropped on open, if the file was damaged.
        self.dropped: DroppedFrames | None = None
        if not self.path.exists():
            atomic_write_bytes(self.path, encode_file_header(JOURNAL_MAGIC))
        try:
            self._fd = os.open(
                self.path, os.O_RDWR | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
            )
        except OSError as exc:
            raise JournalIoError("open", self.path, exc) from exc
        try:
            if not stat.S_ISREG(os.fstat(self._fd).st_mode):
                raise JournalUsageError(
                    f"'{self._source}' is not a regular file",
                    "pass the path of a FileJournal file (or of one to create)",
                )
            self._take_lock()
            self._streams, self._size = self._load()
        except BaseException:
            os.close(self._fd)
            raise

    def _take_lock(self) -> None:
        if _flock is None:  # pragma: no cover
            return
        try:
            _flock(self._fd, _LOCK_FLAGS)
        except OSError as exc:
            raise JournalIoError("lock", self.path, exc) from exc

    def _load(self) -> tuple[Streams, int]:
        try:
            size = os.fstat(self._fd).st_size
            data = os.pread(self._fd, size, 0) if size else b""
        except OSError as exc:
            raise JournalIoError("read", self.path, exc) from exc
        with paused_collector():
            streams, scan = parse_journal_image(data, self._source, recovery=self._recovery)
        if scan.closed:
            # An end frame would sit before every later append: a "frame after the end".
            raise JournalUsageError(
                f"'{self._source}' is a closed journal image (it ends with an end frame)",
                "open a journal written by FileJournal, or copy its messages into a new one",
            )
        good_end = scan.good_end
        if scan.stopped_at is not None:
            saved = self._save_dropped(data, good_end)
            self.dropped = DroppedFrames(
                self._source, good_end, size - good_end, scan.stopped_at.detail, saved
            )
            warnings.warn(
                PointInTimeRecoveryWarning(
                    f"journal file '{self._source}': point_in_time recovery stopped at byte "
                    f"offset {good_end} ({scan.stopped_at.detail}); the {size - good_end} bytes "
                    f"from there were saved to '{saved}' and dropped, every frame before is kept"
                ),
                stacklevel=3,
            )
        elif scan.torn_offset is not None:
            self.torn_tail = TornTail(self._source, scan.torn_offset, size - good_end)
            warnings.warn(
                TornTailWarning(
                    f"journal file '{self._source}': dropped a torn final frame of "
                    f"{size - good_end} bytes at byte offset {scan.torn_offset} (a crash "
                    "mid-write); every acknowledged batch before it is intact"
                ),
                stacklevel=3,
            )
        if good_end != size:
            try:
                os.ftruncate(self._fd, good_end)
                os.fsync(self._fd)
            except OSError as exc:
                raise JournalIoError("truncate", self.path, exc) from exc
        return streams, good_end

    def _save_dropped(self, data: bytes, offset: int) -> str:
        # Damage is dropped only once its bytes are safe beside the journal.
        saved = self.path.with_name(f"{self.path.name}.dropped-{offset}")
        try:
            atomic_write_bytes(saved, data[offset:])
        except OSError as exc:
            raise JournalIoError("save the dropped frames of", saved, exc) from exc
        return os.fspath(saved)

    def _append(self, frame: bytes) -> None:
        start = self._size
        try:
            view = memoryview(frame)
            written = 0
            while written < len(view):
                written += os.pwrite(self._fd, view[written:], start + written)
            if self._sync:
                os.fsync(self._fd)
        except OSError as exc:
            # Leave no half frame behind for the next append to build on.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, start)
            raise JournalIoError("append", self.path, exc) from exc
        self._size = start + len(frame)

    def _persist_batch(self, batch: list[PersistentRepr]) -> None:
        body = encode_batch_body(batch)
        if len(body) > MAX_FRAME_BYTES:
            raise FrameTooLarge(self.path, len(body), MAX_FRAME_BYTES)
        self._append(encode_frame(body))

    def _persist_delete(self, persistence_id: str, to_seq: int) -> None:
        self._append(encode_frame(_encode_delete_body(persistence_id, to_seq)))

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            os.close(self._fd)
