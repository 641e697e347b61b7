"""Length-prefixed, CRC-checked frames: the container of journal and record files.

Layout (little-endian)::

    file header, 16 bytes
        0   magic        8 bytes (b"PRJOURNL" for journals, b"PRJRECS1" for record files)
        8   version      u32 = 1
        12  flags        u32 = 0
    frame, repeated
        0   body_len     u32, 1 .. MAX_FRAME_BYTES
        4   body_crc     u32, CRC-32 of the body
        8   header_crc   u32, CRC-32 of bytes 0..8 of this frame header
        12  body         body_len bytes (msgpack)

The header CRC makes a damaged length field detectable before it is used, so
a corrupted length can never be mistaken for a torn tail or size a read.
"""

from __future__ import annotations

import struct
import zlib
from typing import Final

from pytest_replay.journal.errors import JournalCorrupted

__all__ = [
    "FILE_HEADER_BYTES",
    "FILE_VERSION",
    "FRAME_HEADER_BYTES",
    "JOURNAL_MAGIC",
    "MAX_FRAME_BYTES",
    "RECORDS_MAGIC",
    "encode_file_header",
    "encode_frame",
    "scan_frames",
]

JOURNAL_MAGIC: Final = b"PRJOURNL"
RECORDS_MAGIC: Final = b"PRJRECS1"
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
FILE_HEADER_BYTES: Final = 16
FRAME_HEADER_BYTES: Final = 12
MAX_FRAME_BYTES: Final = 64 * 1024 * 1024

_FILE_HEADER = struct.Struct("<8sII")
_LEN_CRC = struct.Struct("<II")
_HEADER_CRC = struct.Struct("<I")


def encode_file_header(magic: bytes) -> bytes:
    return _FILE_HEADER.pack(magic, FILE_VERSION, 0)


def encode_frame(body: bytes) -> bytes:
    """One frame around ``body`` (the caller bounds its size)."""
    head = _LEN_CRC.pack(len(body), zlib.crc32(body))
    return head + _HEADER_CRC.pack(zlib.crc32(head)) + body


def scan_frames(
    data: bytes | bytearray | memoryview,
    magic: bytes,
    source: str,
    *,
    allow_torn_tail: bool,
    item: str = "frame",
) -> tuple[list[tuple[int, memoryview]], int, int | None]:
    """Split a file image into frames.

    Returns ``(frames, good_end, torn_offset)``. A final frame cut short by a
    crash (header or body running past the end, a body whose CRC fails and
    that ends exactly at the end of the file, or an all-zero tail) is a torn
    tail: with ``allow_torn_tail`` it is reported through ``torn_offset``,
    otherwise it raises. Any other damage raises :class:`JournalCorrupted`
    naming the byte offset.
    """
    view = memoryview(data)
    size = len(view)
    if size < FILE_HEADER_BYTES:
        raise JournalCorrupted(
            source, 0, f"file has {size} bytes, shorter than the {FILE_HEADER_BYTES}-byte header"
        )
    got_magic, version, _flags = _FILE_HEADER.unpack_from(view, 0)
    if got_magic != magic:
        other = _KNOWN_FILES.get(bytes(got_magic))
        if other is not None:
            what, reader = other
            raise JournalCorrupted(
                source,
                0,
                f"this is {what} (magic {got_magic!r}), not the expected {magic!r} file",
                fix=f"read it with {reader}",
            )
        raise JournalCorrupted(source, 0, f"wrong file magic {got_magic!r} (expected {magic!r})")
    if version != FILE_VERSION:
        raise JournalCorrupted(
            source, 8, f"unsupported format version {version} (this reader knows {FILE_VERSION})"
        )
    frames: list[tuple[int, memoryview]] = []
    offset = FILE_HEADER_BYTES
    crc32 = zlib.crc32
    while offset < size:
        torn = _torn_reason(view, offset, size)
        if torn is None:
            body_len, body_crc = _LEN_CRC.unpack_from(view, offset)
            (header_crc,) = _HEADER_CRC.unpack_from(view, offset + 8)
            if crc32(view[offset : offset + 8]) != header_crc:
                if not any(view[offset:size]):
                    torn = "all-zero tail"
                else:
                    raise JournalCorrupted(
                        source,
                        offset,
                        "frame header checksum mismatch",
                        index=len(frames),
                        item=item,
                    )
            elif body_len == 0 or body_len > MAX_FRAME_BYTES:
                raise JournalCorrupted(
                    source,
                    offset,
                    f"frame length {body_len} outside 1..{MAX_FRAME_BYTES}",
                    index=len(frames),
                    item=item,
                )
            else:
                start = offset + FRAME_HEADER_BYTES
                end = start + body_len
                if end > size:
                    torn = f"frame needs {end - offset} bytes, {size - offset} are left"
                else:
                    body = view[start:end]
                    if crc32(body) != body_crc:
                        if end == size:
                            torn = "final frame body checksum mismatch"
                        else:
                            raise JournalCorrupted(
                                source,
                                offset,
                                "frame body checksum mismatch",
                                index=len(frames),
                                item=item,
                            )
                    else:
                        frames.append((offset, body))
                        offset = end
                        continue
        if not allow_torn_tail:
            raise JournalCorrupted(
                source, offset, f"file ends inside a frame ({torn})", index=len(frames), item=item
            )
        return frames, offset, offset
    return frames, offset, None


def _torn_reason(view: memoryview, offset: int, size: int) -> str | None:
    if size - offset < FRAME_HEADER_BYTES:
        return f"{size - offset} bytes left, a frame header needs {FRAME_HEADER_BYTES}"
    return None
