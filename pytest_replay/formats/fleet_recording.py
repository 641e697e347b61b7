"""The fleet recording format (``.fleet``, magic ``PRFLREC1``): a fleet run's logs and
topology in one file.

Layout (little-endian): ``b"PRFLREC1"``, u32 CRC32 of the body, u64 body length, then
the msgpack body ``{"version": 1, "topology_name": str, "topology": str,
"configs": [[relative path, bytes], ...], "logs": [[instance id, subsystem id,
[slab bytes, ...]], ...]}`` with logs sorted by (instance id, subsystem id). Each slab
is a fleet log slab (:mod:`pytest_replay.formats.fleet_log`).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any, Final

from pytest_replay._msgpack import unpack_bounded
from pytest_replay.formats.base import Format, FormatError, Framing, laid_out

__all__ = [
    "BODY_KEYS",
    "FLEET_RECORDING",
    "MAX_RECORDING_BYTES",
    "RECORDING_HEADER",
    "RECORDING_MAGIC",
    "RECORDING_VERSION",
    "FleetRecordingFormat",
    "RecordingDamaged",
    "encode_recording_body",
    "read_recording_body",
]

RECORDING_MAGIC: Final = b"PRFLREC1"
RECORDING_VERSION: Final = 1
#: magic, CRC32 of the body, body length.
RECORDING_HEADER: Final = struct.Struct("<8sIQ")
#: Largest recording body read back; checked before it is read.
MAX_RECORDING_BYTES: Final = 4 << 30
#: The keys of the body map, all required.
BODY_KEYS: Final = frozenset({"version", "topology_name", "topology", "configs", "logs"})
_RECORD_FIX: Final = "record the fleet again (pytest --replay-record)"

FRAMING: Final = Framing(
    magic=RECORDING_MAGIC,
    header=laid_out(("magic", 8), ("body_crc", 4), ("body_len", 8)),
    notes=(
        "body_crc: CRC32 of the body; body_len: its length, the rest of the file",
        f"body: msgpack map of {', '.join(sorted(BODY_KEYS))}",
    ),
)


class RecordingDamaged(FormatError):
    """A stored fleet recording is unreadable or inconsistent; ``path`` may be ``None``
    (bytes from memory)."""

    def __init__(self, path: str | os.PathLike[str] | None, detail: str, fix: str) -> None:
        self.path = None if path is None else os.fspath(path)
        self.detail = detail
        where = "fleet recording" if self.path is None else f"fleet recording '{self.path}'"
        # The sentence ends with the fix (the fleet's messages always did).
        super().__init__(detail, where=where, fix=f"{fix}.")


def encode_recording_body(body: bytes) -> bytes:
    """The header in front of a msgpack ``body``."""
    return RECORDING_HEADER.pack(RECORDING_MAGIC, zlib.crc32(body), len(body)) + body


def read_recording_body(
    data: bytes,
    path: str | os.PathLike[str] | None = None,
    *,
    error: Callable[[str | os.PathLike[str] | None, str, str], Exception] = RecordingDamaged,
) -> dict[str, Any]:
    """The body map of a recording's bytes, header, CRC, keys and version checked; damage
    raises ``error(path, detail, fix)``."""

    def bad(detail: str) -> Exception:
        return error(path, detail, _RECORD_FIX)

    header = RECORDING_HEADER.size
    if len(data) < header:
        raise bad(f"{len(data)} bytes, shorter than the {header}-byte header")
    magic, crc, length = RECORDING_HEADER.unpack_from(data, 0)
    if magic != RECORDING_MAGIC:
        raise bad(f"bad magic {bytes(magic)!r} at byte 0 (expected {RECORDING_MAGIC!r})")
    if length != len(data) - header:
        raise bad(f"header says {length} body bytes at byte 12, file has {len(data) - header}")
    body = memoryview(data)[header:]
    if zlib.crc32(body) != crc:
        raise bad(f"CRC32 mismatch in the body at byte {header}")
    try:
        raw: Any = unpack_bounded(body)
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise bad(f"body is not valid msgpack ({exc})") from None
    if type(raw) is not dict or set(raw) != BODY_KEYS:
        raise bad(f"body must be a map with exactly the keys {sorted(BODY_KEYS)}")
    if raw["version"] != RECORDING_VERSION:
        raise bad(f"unsupported recording version {raw['version']!r}")
    return raw


class FleetRecordingFormat(Format):
    """A fleet recording; its records are its logs, one ``[instance id, subsystem id,
    [slab bytes, ...]]`` each."""

    name = "fleet-recording"
    label = "fleet recording"
    extensions = (".fleet",)
    magic = RECORDING_MAGIC
    framing = FRAMING

    def read(self, path: Path) -> dict[str, Any]:
        with self.open(path) as fh:
            data = fh.read(MAX_RECORDING_BYTES + RECORDING_HEADER.size + 1)
        if len(data) > MAX_RECORDING_BYTES + RECORDING_HEADER.size:
            raise RecordingDamaged(
                path, f"larger than {MAX_RECORDING_BYTES} bytes", "pass a fleet recording"
            )
        return read_recording_body(data, path)

    def records(self, document: Any) -> Sequence[Any]:
        logs = document["logs"]
        return list(logs) if isinstance(logs, list) else []

    def diff_key(self, index: int, record: Any) -> Hashable:
        """A log is keyed by its (instance id, subsystem id)."""
        if isinstance(record, list) and len(record) == 3:
            key = (record[0], record[1])
            if all(isinstance(part, Hashable) for part in key):
                return key
        return index

    def render(self, index: int, record: Any) -> str:
        if not (isinstance(record, list) and len(record) == 3 and isinstance(record[2], list)):
            return f"#{index} malformed log {record!r:.120}"
        instance, subsystem, slabs = record
        size = sum(len(slab) for slab in slabs if isinstance(slab, bytes))
        return (
            f"#{index} instance_id={instance} subsystem_id={subsystem} "
            f"slabs={len(slabs)} bytes={size}"
        )


FLEET_RECORDING: Final = FleetRecordingFormat()
