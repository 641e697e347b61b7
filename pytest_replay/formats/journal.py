"""The journal frame container and the journal file format (``PRJOURNL``).

Journal files and journal record files share one container: a 16-byte file header,
then length-prefixed, CRC-checked frames. Layout (little-endian)::

    file header, 16 bytes
        0   magic        8 bytes (b"PRJOURNL" for journals, b"PRJRECS1" for record files)
        8   version      u32 = 1
        12  flags        u32   bit 0 FLAG_END_FRAME: the file ends with an end frame
    frame, repeated
        0   body_len     u32, 1 .. MAX_FRAME_BYTES
        4   body_crc     u32, CRC-32 of the body
        8   header_crc   u32, CRC-32 of bytes 0..8 of this frame header
        12  body         body_len bytes (msgpack)
    end frame (only with FLAG_END_FRAME), a frame whose 44-byte body is
        0   marker       b"\\xc1END" (0xc1 never starts msgpack, so no data frame looks like it)
        4   count        u64, data frames before it
        12  digest       32 bytes, BLAKE3 of every byte from offset 16 to the end frame

The header CRC makes a damaged length field detectable before it is used, so
a corrupted length can never be mistaken for a torn tail or size a read. The
end frame makes a file cut exactly at a frame boundary detectable: record files
(written whole, atomically) carry it; a live ``FileJournal`` does not (a crash
legitimately ends it anywhere) and relies on its recovery mode instead.

A journal file's frame bodies are msgpack arrays: ``[0, [message, ...]]`` appends a
batch (a message is ``[persistence_id, sequence_nr, payload, manifest, writer_uuid,
deleted, [tags]]``), ``[1, persistence_id, to_sequence_nr]`` marks messages deleted.
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final, Literal

import blake3

from pytest_replay._msgpack import unpack_bounded
from pytest_replay.errors import UnclosedFormatWarning, render_error
from pytest_replay.formats.base import Format, FormatError, Framing, laid_out

__all__ = [
    "END_FRAME_BYTES",
    "FILE_HEADER_BYTES",
    "FILE_VERSION",
    "FLAG_END_FRAME",
    "FRAME_HEADER_BYTES",
    "JOURNAL_FILE",
    "JOURNAL_MAGIC",
    "MAX_FRAME_BYTES",
    "RECORDS_MAGIC",
    "RECOVERY_MODES",
    "UNDECODABLE",
    "ContainerFormat",
    "Frame",
    "FrameCorrupted",
    "FrameScan",
    "FrameTruncated",
    "FramedFile",
    "JournalFileFormat",
    "RecoveryMode",
    "container_framing",
    "encode_end_frame",
    "encode_file_header",
    "encode_frame",
    "hashable_key",
    "read_framed_file",
    "scan_frames",
    "shown_body",
]

JOURNAL_MAGIC: Final = b"PRJOURNL"
RECORDS_MAGIC: Final = b"PRJRECS1"
#: What :attr:`Frame.body` is for a body that does not decode as msgpack.
UNDECODABLE: Final = object()
# Files a user may hand to the wrong reader: named instead of reported as damage.
_KNOWN_FILES: Final = {
    JOURNAL_MAGIC: ("a FileJournal file", "FileJournal(path)"),
    RECORDS_MAGIC: (
        "a journal record file",
        "load_journal_records(path) or pytest-replay reduce",
    ),
    b"SQLite f": ("an SQLite database", "SqliteJournal(path)"),
    b"VRRL0001": ("a VRRL ring log", "RingLog.open(path) or pytest-replay inspect"),
}
FILE_VERSION: Final = 1
FLAG_END_FRAME: Final = 1
FILE_HEADER_BYTES: Final = 16
FRAME_HEADER_BYTES: Final = 12
MAX_FRAME_BYTES: Final = 64 * 1024 * 1024

#: What a reader does with a damaged file (RocksDB's WAL recovery modes):
#: ``tolerate_torn_tail`` drops only an incomplete last frame (and reports it),
#: ``absolute`` raises on any anomaly, ``point_in_time`` stops at the first bad frame,
#: reports it and keeps what precedes. A complete frame failing its CRC is never torn.
RecoveryMode = Literal["tolerate_torn_tail", "absolute", "point_in_time"]
RECOVERY_MODES: Final[tuple[RecoveryMode, ...]] = (
    "tolerate_torn_tail",
    "absolute",
    "point_in_time",
)

_FILE_HEADER = struct.Struct("<8sII")
_LEN_CRC = struct.Struct("<II")
_HEADER_CRC = struct.Struct("<I")
_END_MARKER: Final = b"\xc1END"
_END_BODY = struct.Struct("<4sQ32s")
#: Size of the end frame, header included.
END_FRAME_BYTES: Final = FRAME_HEADER_BYTES + _END_BODY.size


def container_framing(magic: bytes, *, end_frame: bool) -> Framing:
    """The framing of a frame container file of ``magic`` (with or without an end frame)."""
    return Framing(
        magic=magic,
        header=laid_out(("magic", 8), ("version", 4), ("flags", 4)),
        frame_header=laid_out(("body_len", 4), ("body_crc", 4), ("header_crc", 4)),
        trailer_size=END_FRAME_BYTES if end_frame else 0,
        notes=(
            f"version u32 = {FILE_VERSION}; flags bit 0: the file ends with an end frame",
            "body_crc: CRC-32 of the body; header_crc: CRC-32 of frame bytes 0..8",
            "end frame body: b'\\xc1END', u64 frame count, BLAKE3 of bytes 16..end frame",
        ),
    )


class FrameCorrupted(FormatError):
    """A journal or record file is damaged before its tail (never skipped silently).

    ``path`` is the file, ``offset`` the byte offset of the damage and ``index`` the
    damaged frame (in record files: record), when known.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        offset: int,
        detail: str,
        *,
        index: int | None = None,
        item: str = "frame",
        fix: str | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.offset = offset
        self.detail = detail
        #: Index of the damaged frame (in record files: of the damaged record).
        self.index = index
        located = "" if index is None else f" ({item} #{index})"
        if fix is None:
            fix = "restore the file from a backup" + (
                ", or truncate it to this offset by hand if losing everything after it is "
                "acceptable"
                if offset > 0
                else ""  # truncating at 0 would erase the whole file
            )
        super().__init__(
            f"journal file '{self.path}' is corrupted at byte offset {offset}{located}: {detail}",
            # The sentence ends with the fix (the journal's messages always did).
            fix=f"{fix}.",
        )


class FrameTruncated(FrameCorrupted):
    """A file that promises an end frame ends on a frame boundary without it: cut short."""


@dataclass(frozen=True, slots=True)
class FrameScan:
    """The frames of one file image and how the file ends.

    ``good_end`` is where the last kept data frame ends. ``torn_offset`` is set when an
    incomplete last frame was dropped; ``stopped_at`` (``point_in_time`` only) is the
    damage the scan stopped at, every frame after it dropped. ``closed`` says an end
    frame was found and matched the frames before it.
    """

    frames: list[tuple[int, memoryview]]
    good_end: int
    torn_offset: int | None
    stopped_at: FrameCorrupted | None
    closed: bool


@dataclass(frozen=True, slots=True)
class Frame:
    """One data frame: its position, byte offset and body bytes (every checksum checked;
    what the body means is the reader's business)."""

    index: int
    offset: int
    data: bytes

    @property
    def body(self) -> Any:
        """The body decoded as msgpack, or :data:`UNDECODABLE` when it is not msgpack."""
        try:
            return unpack_bounded(self.data)
        except ValueError:
            return UNDECODABLE


@dataclass(frozen=True, slots=True)
class FramedFile:
    """A frame container read whole: its frames, whether an end frame closed it, and
    where a torn tail was dropped (``None`` when the file ends cleanly)."""

    frames: tuple[Frame, ...]
    closed: bool
    torn_offset: int | None
    size: int


def encode_file_header(magic: bytes, *, end_frame: bool = False) -> bytes:
    return _FILE_HEADER.pack(magic, FILE_VERSION, FLAG_END_FRAME if end_frame else 0)


def encode_frame(body: bytes) -> bytes:
    """One frame around ``body`` (the caller bounds its size)."""
    head = _LEN_CRC.pack(len(body), zlib.crc32(body))
    return head + _HEADER_CRC.pack(zlib.crc32(head)) + body


def encode_end_frame(frames: bytes | bytearray | memoryview, count: int) -> bytes:
    """The end frame closing ``count`` data frames whose bytes (after the header) are ``frames``."""
    return encode_frame(_END_BODY.pack(_END_MARKER, count, blake3.blake3(frames).digest()))


def scan_frames(
    data: bytes | bytearray | memoryview,
    magic: bytes,
    source: str,
    *,
    recovery: RecoveryMode = "absolute",
    item: str = "frame",
    closed_format: bool = False,
    corrupted: type[FrameCorrupted] = FrameCorrupted,
    truncated: type[FrameCorrupted] = FrameTruncated,
    stacklevel: int = 3,
) -> FrameScan:
    """Split a file image into frames, checking every one.

    A final frame cut short by a crash (a header or body running past the end, or an
    all-zero tail) is torn: dropped and reported unless ``recovery`` is ``absolute``.
    Any other damage (a complete frame failing a CRC, a bad length, a frame after the
    end frame, an end frame whose count or digest differs, a file promising an end
    frame that ends without it) raises ``corrupted`` (a file cut at a frame boundary:
    ``truncated``) naming the byte offset, except that ``point_in_time`` stops there and
    returns it in ``stopped_at``. ``closed_format``: files of this magic are written
    with an end frame, so one without the flag predates end frames and is read with an
    :class:`UnclosedFormatWarning` (``stacklevel`` frames up).
    """
    view = memoryview(data)
    size = len(view)
    if size < FILE_HEADER_BYTES:
        raise corrupted(
            source, 0, f"file has {size} bytes, shorter than the {FILE_HEADER_BYTES}-byte header"
        )
    got_magic, version, flags = _FILE_HEADER.unpack_from(view, 0)
    if got_magic != magic:
        other = _KNOWN_FILES.get(bytes(got_magic))
        if other is not None:
            what, reader = other
            raise corrupted(
                source,
                0,
                f"this is {what} (magic {got_magic!r}), not the expected {magic!r} file",
                fix=f"read it with {reader}",
            )
        raise corrupted(source, 0, f"wrong file magic {got_magic!r} (expected {magic!r})")
    if version != FILE_VERSION:
        raise corrupted(
            source, 8, f"unsupported format version {version} (this reader knows {FILE_VERSION})"
        )
    if flags & ~FLAG_END_FRAME:
        raise corrupted(source, 12, f"unknown header flags {flags:#x}")
    has_end = bool(flags & FLAG_END_FRAME)
    if closed_format and not has_end:
        warnings.warn(
            UnclosedFormatWarning(
                render_error(
                    f"'{source}' was written before end frames: a copy cut at a frame "
                    "boundary cannot be detected",
                    fix="write it again with this version to get the check",
                )
            ),
            stacklevel=stacklevel,
        )
    frames: list[tuple[int, memoryview]] = []
    offset = good_end = FILE_HEADER_BYTES
    closed = False

    def damage(
        at: int, detail: str, error: type[FrameCorrupted] = corrupted, *, end_frame: bool = False
    ) -> FrameScan:
        if end_frame:
            exc = error(source, at, f"end frame: {detail}")
        else:
            exc = error(source, at, detail, index=len(frames), item=item)
        if recovery != "point_in_time":
            raise exc
        return FrameScan(frames, at, None, exc, False)

    crc32 = zlib.crc32
    while offset < size:
        if closed:
            return damage(offset, "a frame follows the end frame")
        torn: str | None = None
        if size - offset < FRAME_HEADER_BYTES:
            torn = f"{size - offset} bytes left, a frame header needs {FRAME_HEADER_BYTES}"
        else:
            body_len, body_crc = _LEN_CRC.unpack_from(view, offset)
            (header_crc,) = _HEADER_CRC.unpack_from(view, offset + 8)
            if crc32(view[offset : offset + 8]) != header_crc:
                if any(view[offset:size]):
                    return damage(offset, "frame header checksum mismatch")
                torn = "all-zero tail"
            elif body_len == 0 or body_len > MAX_FRAME_BYTES:
                return damage(offset, f"frame length {body_len} outside 1..{MAX_FRAME_BYTES}")
            else:
                start = offset + FRAME_HEADER_BYTES
                end = start + body_len
                if end > size:
                    torn = f"frame needs {end - offset} bytes, {size - offset} are left"
                elif crc32(view[start:end]) != body_crc:
                    # The frame is complete, so this is damage, not an interrupted write.
                    return damage(offset, "frame body checksum mismatch")
                elif body_len == _END_BODY.size and view[start] == _END_MARKER[0]:
                    # 0xc1 never starts msgpack: this can only be an end frame.
                    problem = _end_frame_problem(view, offset, start, len(frames), has_end)
                    if problem is not None:
                        return damage(offset, problem, end_frame=True)
                    closed = True
                    good_end, offset = offset, end
                    continue
                else:
                    frames.append((offset, view[start:end]))
                    offset = good_end = end
                    continue
        if recovery == "absolute":
            raise corrupted(
                source, offset, f"file ends inside a frame ({torn})", index=len(frames), item=item
            )
        return FrameScan(frames, offset, offset, None, False)
    if has_end and not closed:
        return damage(
            offset,
            "the file ends on a frame boundary without the end frame its header promises: "
            "it was truncated",
            truncated,
        )
    return FrameScan(frames, good_end, None, None, closed)


def _end_frame_problem(
    view: memoryview, offset: int, start: int, count: int, has_end: bool
) -> str | None:
    if not has_end:
        return "an end frame in a file whose header does not announce one"
    marker, said_count, digest = _END_BODY.unpack_from(view, start)
    if marker != _END_MARKER:
        return f"frame body starts with {marker!r}: neither msgpack nor an end frame"
    if said_count != count:
        return f"end frame counts {said_count} frames, the file holds {count}"
    if blake3.blake3(view[FILE_HEADER_BYTES:offset]).digest() != digest:
        return "end frame digest differs from the frames before it"
    return None


# --------------------------------------------------------------------------- reading


def read_framed_file(
    fmt: Format,
    path: Path,
    *,
    recovery: RecoveryMode,
    item: str,
    closed_format: bool,
) -> FramedFile:
    """Every frame of the container file ``path`` of ``fmt``, checked; damage raises
    :class:`FrameCorrupted` (a file cut at a frame boundary: :class:`FrameTruncated`)."""
    assert fmt.magic is not None
    with fmt.open(path) as fh:
        data = fh.read()
    scan = scan_frames(
        data, fmt.magic, os.fspath(path), recovery=recovery, item=item, closed_format=closed_format
    )
    frames = tuple(
        Frame(index, offset, bytes(body)) for index, (offset, body) in enumerate(scan.frames)
    )
    return FramedFile(frames, scan.closed, scan.torn_offset, len(data))


class ContainerFormat(Format):
    """A file of the frame container; subclasses say how a damaged file is read:
    ``recovery`` (a live file may end in a torn frame), ``frame_item`` (what a frame holds, in
    messages) and ``closed_format`` (written with an end frame)."""

    recovery: ClassVar[RecoveryMode] = "absolute"
    frame_item: ClassVar[str] = "frame"
    closed_format: ClassVar[bool] = False

    def read(self, path: Path) -> FramedFile:
        return read_framed_file(
            self,
            path,
            recovery=self.recovery,
            item=self.frame_item,
            closed_format=self.closed_format,
        )

    def records(self, document: Any) -> Sequence[Frame]:
        frames: tuple[Frame, ...] = document.frames
        return frames


def hashable_key(index: int, *parts: Any) -> Hashable:
    """``parts`` as a diff key when every part is hashable, else the position ``index``."""
    return parts if all(isinstance(part, Hashable) for part in parts) else index


def shown_body(frame: Frame) -> str:
    """A frame body that is not what its format expects, on one line."""
    body = frame.body
    if body is UNDECODABLE:
        return f"undecodable {len(frame.data)} bytes"
    return f"malformed {body!r:.120}"


class JournalFileFormat(ContainerFormat):
    """A ``FileJournal`` file: one frame per write batch, no end frame (a live journal
    may end anywhere; a torn last frame is dropped and reported, as on open)."""

    name = "journal"
    label = "journal file"
    extensions = (".jrnl", ".prj")
    magic = JOURNAL_MAGIC
    framing = container_framing(JOURNAL_MAGIC, end_frame=False)
    recovery = "tolerate_torn_tail"

    def diff_key(self, index: int, record: Any) -> Hashable:
        """A batch is keyed by its first message's (persistence id, sequence nr), a delete
        marker by its persistence id and bound; anything else by its position."""
        body = record.body
        if _is_append(body) and body[1]:
            return hashable_key(index, "append", *body[1][0][:2])
        if _is_delete(body):
            return hashable_key(index, "delete", *body[1:])
        return index

    def render(self, index: int, record: Any) -> str:
        body = record.body
        if _is_append(body):
            messages = " ".join(f"{message[0]}:{message[1]}" for message in body[1])
            return f"#{index} offset={record.offset} append {len(body[1])} [{messages}]"
        if _is_delete(body):
            return f"#{index} offset={record.offset} delete {body[1]} to {body[2]}"
        return f"#{index} offset={record.offset} {shown_body(record)}"


def _is_append(body: Any) -> bool:
    """``[0, [[persistence_id, sequence_nr, ...], ...]]``."""
    return (
        isinstance(body, list)
        and len(body) == 2
        and body[0] == 0
        and isinstance(body[1], list)
        and all(isinstance(message, list) and len(message) >= 2 for message in body[1])
    )


def _is_delete(body: Any) -> bool:
    """``[1, persistence_id, to_sequence_nr]``."""
    return isinstance(body, list) and len(body) == 3 and body[0] == 1


JOURNAL_FILE: Final = JournalFileFormat()
