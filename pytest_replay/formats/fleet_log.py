"""The fleet log slab format (``.flog``, magic ``PRFLOG01``): headers, frames, end frames.

A log is addressed by its base path ``name.flog`` and stored as slab files
``name_0.flog``, ``name_1.flog``, ... Each slab (little-endian)::

    slab header, 16 bytes
        0   magic        b"PRFLOG01"
        8   version      u16 = 2 (1: written before end frames, still read)
        10  flags        u16   bit 0: FINAL, this is the last slab of the log
        12  slab_index   u32   equals the N of name_N.flog
    frames, back to back up to the end of the file
        0   section_type u16   1 lifecycle, 2 steps, 3 keyframes, 4 end (version 2)
        2   reserved     u16 = 0
        4   length       u32   payload bytes, at most MAX_SECTION_BYTES
        8   crc32        u32   zlib.crc32 over frame bytes [0, 8) then the payload
        12  payload      msgpack; the end frame's is binary (below)
    end frame, last in every version-2 slab: payload u64 count of the frames before it,
        then the 32-byte BLAKE3 digest of every byte from offset 16 to the end frame

The end frame makes a slab cut exactly at a frame boundary detectable: a version-2 slab
without it is truncated. A version-1 slab is read with an :class:`UnclosedFormatWarning`.
What the sections hold (columnar steps, keyframes, lifecycle records) is decoded by
:mod:`pytest_replay.fleet.logformat`; this module owns the bytes around them.
"""

from __future__ import annotations

import enum
import os
import re
import struct
import warnings
import zlib
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import blake3

from pytest_replay._msgpack import unpack_bounded
from pytest_replay.errors import UnclosedFormatWarning, render_error
from pytest_replay.formats.base import Format, FormatError, Framing, laid_out

__all__ = [
    "END_FRAME_BYTES",
    "END_SECTION_TYPE",
    "FLAG_FINAL",
    "FLEET_LOG",
    "FORMAT_VERSION",
    "FRAME_HEADER",
    "LEGACY_VERSION",
    "LOG_EXTENSION",
    "MAX_SECTION_BYTES",
    "MAX_SLABS",
    "SLAB_CORRUPT_FIX",
    "SLAB_HEADER",
    "SLAB_MAGIC",
    "FleetLogFormat",
    "Section",
    "SectionType",
    "Slab",
    "SlabCorrupted",
    "encode_empty_slab",
    "encode_end_frame",
    "encode_frame",
    "encode_slab_header",
    "iter_frames",
    "parse_slab_header",
    "slab_index_of",
    "slab_path",
]

#: The fix of damage a reader cannot explain otherwise.
SLAB_CORRUPT_FIX: Final = (
    "the log is corrupted or was not written by FleetLogWriter; record it again"
)


class SlabCorrupted(FormatError):
    """A fleet log slab is unreadable: bad magic, CRC mismatch, truncated frame, unknown
    section type, or a section whose content is inconsistent.

    ``path`` is the slab file (or the base path when no slab could be opened) and
    ``offset`` the byte offset of the frame at fault (``None`` when it is the file as a
    whole).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        offset: int | None,
        detail: str,
        fix: str = SLAB_CORRUPT_FIX,
    ) -> None:
        self.path = os.fspath(path)
        self.offset = offset
        self.detail = detail
        at = "" if offset is None else f" at byte {offset}"
        # The sentence ends with the fix (the fleet's messages always did).
        super().__init__(detail, where=f"fleet log '{self.path}'{at}", fix=f"{fix}.")


SLAB_MAGIC: Final = b"PRFLOG01"
#: Most slabs one log may have; bounds the scan for slab files.
MAX_SLABS: Final = 1 << 20
FORMAT_VERSION: Final = 2
#: Slabs written before end frames: read, with a warning that a cut cannot be detected.
LEGACY_VERSION: Final = 1
FLAG_FINAL: Final = 1
SLAB_HEADER: Final = struct.Struct("<8sHHI")
FRAME_HEADER: Final = struct.Struct("<HHII")
# A frame header in its two parts: the CRC covers the first (and the payload).
_FRAME_HEAD: Final = struct.Struct("<HHI")
_FRAME_CRC: Final = struct.Struct("<I")
#: Upper bound on one section's payload; checked before anything is allocated.
MAX_SECTION_BYTES: Final = 64 * 1024 * 1024
LOG_EXTENSION: Final = ".flog"


class SectionType(enum.IntEnum):
    LIFECYCLE = 1
    STEPS = 2
    KEYFRAMES = 3


_SECTION_TYPES: Final = {int(member): member for member in SectionType}
#: The end frame's section type (not a SectionType: it is never yielded as a section).
END_SECTION_TYPE: Final = 4
_END_PAYLOAD: Final = struct.Struct("<Q32s")
#: Size of a slab's end frame, header included.
END_FRAME_BYTES: Final = FRAME_HEADER.size + _END_PAYLOAD.size


# --------------------------------------------------------------------------- slab naming

_SLAB_STEM = re.compile(r"^(?P<base>.*)_(?P<index>[0-9]+)$")


def slab_path(base_path: Path, index: int) -> Path:
    """``name.flog`` -> ``name_<index>.flog``, in the same folder."""
    return base_path.with_name(f"{base_path.stem}_{index}{base_path.suffix}")


def slab_index_of(path: Path) -> tuple[Path, int] | None:
    """``name_3.flog`` -> (``name.flog``, 3); ``None`` when the stem has no ``_<digits>``."""
    match = _SLAB_STEM.match(path.stem)
    if match is None:
        return None
    return path.with_name(f"{match['base']}{path.suffix}"), int(match["index"])


# --------------------------------------------------------------------------- framing


def encode_slab_header(index: int, *, final: bool) -> bytes:
    return SLAB_HEADER.pack(SLAB_MAGIC, FORMAT_VERSION, FLAG_FINAL if final else 0, index)


def parse_slab_header(
    path: Path,
    data: bytes | memoryview,
    expected_index: int,
    *,
    error: type[SlabCorrupted] = SlabCorrupted,
    stacklevel: int = 2,
) -> bool:
    """Check a slab header (damage raises ``error``); return its FINAL flag."""
    if len(data) < SLAB_HEADER.size:
        raise error(
            path, 0, f"slab is {len(data)} bytes, shorter than its {SLAB_HEADER.size}-byte header"
        )
    magic, version, flags, index = SLAB_HEADER.unpack_from(data, 0)
    if magic != SLAB_MAGIC:
        raise error(
            path, 0, f"bad slab magic {bytes(magic)!r} (expected {SLAB_MAGIC!r})", SLAB_CORRUPT_FIX
        )
    if version == LEGACY_VERSION:
        warnings.warn(
            UnclosedFormatWarning(
                render_error(
                    f"slab '{path}' was written before end frames (format version 1): a copy "
                    "cut at a frame boundary cannot be detected",
                    fix="record the log again",
                )
            ),
            stacklevel=stacklevel,
        )
    elif version != FORMAT_VERSION:
        raise error(
            path,
            8,
            f"unsupported format version {version} (this reader reads {LEGACY_VERSION} "
            f"and {FORMAT_VERSION})",
            "record the log again with this version of pytest_replay",
        )
    if flags & ~FLAG_FINAL:
        raise error(path, 10, f"unknown slab flags {flags:#06x}")
    if index != expected_index:
        raise error(
            path,
            12,
            f"slab header says slab {index} but the file name says slab {expected_index}",
            "do not rename slab files; record the log again",
        )
    return bool(flags & FLAG_FINAL)


def encode_frame(section_type: SectionType | int, payload: bytes) -> bytes:
    head = _FRAME_HEAD.pack(int(section_type), 0, len(payload))
    crc = zlib.crc32(payload, zlib.crc32(head))
    return head + _FRAME_CRC.pack(crc) + payload


def encode_end_frame(frames: bytes | bytearray | memoryview, count: int) -> bytes:
    """The end frame closing a slab whose ``count`` frames (after the header) are ``frames``."""
    return encode_frame(END_SECTION_TYPE, _END_PAYLOAD.pack(count, blake3.blake3(frames).digest()))


def encode_empty_slab(index: int, *, final: bool) -> bytes:
    """A closed slab holding no frames."""
    return encode_slab_header(index, final=final) + encode_end_frame(b"", 0)


def iter_frames(
    path: Path,
    data: bytes | memoryview,
    *,
    verify_only: SectionType | None = None,
    error: type[SlabCorrupted] = SlabCorrupted,
) -> Iterator[tuple[int, SectionType, memoryview]]:
    """Yield (offset, type, payload) of every frame of one slab's bytes.

    Every frame's CRC is checked, or only the CRC of ``verify_only`` frames (discovery
    reads lifecycle records and skips step data unchecked; the end frame's digest over
    the whole slab is then skipped too, its frame count still checked). A version-2
    slab must end with its end frame, which is checked and not yielded.
    """
    view = memoryview(data)
    offset = SLAB_HEADER.size
    end = len(view)
    closing = SLAB_HEADER.unpack_from(view, 0)[1] != LEGACY_VERSION
    count = 0
    while offset < end:
        if end - offset < FRAME_HEADER.size:
            raise error(
                path,
                offset,
                f"truncated frame: {end - offset} bytes left, a frame header needs "
                f"{FRAME_HEADER.size}",
            )
        kind, reserved, length, crc = FRAME_HEADER.unpack_from(view, offset)
        if length > MAX_SECTION_BYTES:
            raise error(
                path, offset, f"frame length {length} exceeds the limit of {MAX_SECTION_BYTES}"
            )
        body = offset + FRAME_HEADER.size
        if length > end - body:
            raise error(
                path,
                offset,
                f"truncated frame: header says {length} payload bytes, {end - body} remain",
            )
        payload = view[body : body + length]
        if (verify_only is None or kind in (verify_only, END_SECTION_TYPE)) and zlib.crc32(
            payload, zlib.crc32(view[offset : offset + 8])
        ) != crc:
            raise error(path, offset, f"CRC32 mismatch in a {length}-byte frame")
        if reserved != 0:
            raise error(path, offset, f"reserved frame field is {reserved}, not 0")
        if kind == END_SECTION_TYPE and closing:
            _check_end_frame(path, view, offset, payload, count, verify_only is None, error)
            return
        section_type = _SECTION_TYPES.get(kind)
        if section_type is None:
            raise error(path, offset, f"unknown section type {kind}")
        yield offset, section_type, payload
        count += 1
        offset = body + length
    if closing:
        raise error(
            path,
            offset,
            f"slab ends after {count} frames on a frame boundary without its end frame: "
            "it was truncated",
            "copy the whole slab again, or record the log again",
        )


def _check_end_frame(
    path: Path,
    view: memoryview,
    offset: int,
    payload: memoryview,
    count: int,
    digest: bool,
    error: type[SlabCorrupted],
) -> None:
    after = offset + FRAME_HEADER.size + len(payload)
    if after != len(view):
        raise error(path, after, "a frame follows the slab's end frame")
    if len(payload) != _END_PAYLOAD.size:
        raise error(
            path, offset, f"end frame payload is {len(payload)} bytes, expected {_END_PAYLOAD.size}"
        )
    said, stored = _END_PAYLOAD.unpack_from(payload, 0)
    if said != count:
        raise error(path, offset, f"end frame counts {said} frames, the slab holds {count}")
    if digest and blake3.blake3(view[SLAB_HEADER.size : offset]).digest() != stored:
        raise error(path, offset, "end frame digest differs from the slab's frames")


# --------------------------------------------------------------------------- the format

FRAMING: Final = Framing(
    magic=SLAB_MAGIC,
    header=laid_out(("magic", 8), ("version", 2), ("flags", 2), ("slab_index", 4)),
    frame_header=laid_out(("section_type", 2), ("reserved", 2), ("length", 4), ("crc32", 4)),
    trailer_size=END_FRAME_BYTES,
    notes=(
        f"version u16 = {FORMAT_VERSION} ({LEGACY_VERSION}: no end frame); flags bit 0: FINAL",
        "crc32: zlib.crc32 over frame bytes [0, 8) then the payload",
        f"end frame: section type {END_SECTION_TYPE}, u64 frame count, BLAKE3 of bytes 16..",
    ),
)


@dataclass(frozen=True, slots=True)
class Section:
    """One frame of a slab: its position, byte offset, section type and msgpack payload."""

    index: int
    offset: int
    section_type: SectionType
    payload: Any


@dataclass(frozen=True, slots=True)
class Slab:
    """One slab file read whole: its header fields and its sections, every CRC checked."""

    slab_index: int
    final: bool
    sections: tuple[Section, ...]


class FleetLogFormat(Format):
    """One slab file of a fleet log (the reader in :mod:`pytest_replay.fleet` reads a
    whole log, slab by slab, and decodes the sections' steps)."""

    name = "fleet-log"
    label = "fleet log"
    extensions = (LOG_EXTENSION,)
    magic = SLAB_MAGIC
    framing = FRAMING

    def read(self, path: Path) -> Slab:
        with self.open(path) as fh:
            data = fh.read()
        expected = slab_index_of(path)
        index = SLAB_HEADER.unpack_from(data, 0)[3] if len(data) >= SLAB_HEADER.size else 0
        final = parse_slab_header(path, data, index if expected is None else expected[1])
        sections = []
        for position, (offset, kind, payload) in enumerate(iter_frames(path, data)):
            try:
                decoded = unpack_bounded(payload)
            except ValueError as exc:
                raise SlabCorrupted(
                    path, offset, f"section payload is not valid msgpack ({exc})"
                ) from None
            sections.append(Section(position, offset, kind, decoded))
        return Slab(index, final, tuple(sections))

    def records(self, document: Any) -> Sequence[Section]:
        sections: tuple[Section, ...] = document.sections
        return sections

    def diff_key(self, index: int, record: Any) -> Hashable:
        """A step section is keyed by its first and last step id (payload items 0 and 1),
        any other section by its type and position."""
        payload = record.payload
        if record.section_type is SectionType.STEPS and isinstance(payload, list):
            return ("steps", *payload[:2])
        return (record.section_type.name.lower(), index)

    def render(self, index: int, record: Any) -> str:
        kind = record.section_type.name.lower()
        payload = record.payload
        if (
            record.section_type is SectionType.STEPS
            and isinstance(payload, list)
            and len(payload) >= 4
        ):
            first, last, steps, messages = payload[:4]
            return (
                f"#{index} offset={record.offset} steps first_step_id={first} "
                f"last_step_id={last} steps={steps} messages={messages}"
            )
        size = len(payload) if isinstance(payload, list) else None
        return f"#{index} offset={record.offset} {kind} items={size}"


FLEET_LOG: Final = FleetLogFormat()
