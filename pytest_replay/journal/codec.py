"""The stable tagged msgpack encoding of journal entries, and whole-journal recordings.

One entry is a msgpack array whose first item is a small integer tag::

    [1, ts_micros, name, payload]      DeviceCmd
    [2, ts_micros, kind, payload]      KernelCmd
    [3, actor_path, seed]              RngSeed
    [4, actor_path, size]              BatchSize

Integers are unsigned 64-bit, strings UTF-8. Tags are never reused; an
unknown tag fails with :class:`UnknownEntryTag` naming the sequence number.

A *recording* (:func:`encode_journal`) is a complete FileJournal image: the
entries as messages 1..n of one persistence id, payloads in the entry
encoding above.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import msgpack

from pytest_replay._gc import paused_collector
from pytest_replay._msgpack import unpack_bounded
from pytest_replay.journal.entries import (
    ENTRY_KINDS,
    BatchSize,
    DeviceCmd,
    JournalEntry,
    KernelCmd,
    RngSeed,
)
from pytest_replay.journal.errors import JournalDecodeError, JournalUsageError, UnknownEntryTag
from pytest_replay.journal.file_journal import encode_journal_image, parse_journal_image
from pytest_replay.journal.persistent import PersistentRepr

__all__ = [
    "DEFAULT_PERSISTENCE_ID",
    "ENTRY_MANIFEST",
    "TAG_BATCH_SIZE",
    "TAG_DEVICE_CMD",
    "TAG_KERNEL_CMD",
    "TAG_RNG_SEED",
    "WRITER_UUID",
    "decode_entries",
    "decode_entry",
    "decode_journal",
    "encode_entries",
    "encode_entry",
    "encode_journal",
    "entry_from_dict",
    "entry_to_dict",
    "entry_to_repr",
]

#: msgpack.packb, typed.
_packb: Callable[..., bytes] = msgpack.packb

TAG_DEVICE_CMD: Final = 1
TAG_KERNEL_CMD: Final = 2
TAG_RNG_SEED: Final = 3
TAG_BATCH_SIZE: Final = 4

#: ``manifest`` of every PersistentRepr holding an entry.
ENTRY_MANIFEST: Final = "pytest_replay.journal.JournalEntry/1"
#: ``writer_uuid`` the harness writes; fixed so recordings are byte-for-byte reproducible.
WRITER_UUID: Final = "pytest-replay"
#: Persistence id of a recording made by :func:`encode_journal`.
DEFAULT_PERSISTENCE_ID: Final = "journal"

_U64_MAX: Final = 2**64 - 1


class _BadEntry(Exception):
    """Internal: an entry array that does not match its tag's shape."""


def _u64(value: object) -> bool:
    return type(value) is int and 0 <= value <= _U64_MAX


def _as_row(entry: JournalEntry) -> tuple[Any, ...]:
    cls = type(entry)
    if cls is DeviceCmd:
        row: tuple[Any, ...] = (TAG_DEVICE_CMD, entry.ts_micros, entry.name, entry.payload)  # type: ignore[union-attr]
        ok = _u64(row[1]) and type(row[2]) is str and type(row[3]) is str
    elif cls is KernelCmd:
        row = (TAG_KERNEL_CMD, entry.ts_micros, entry.kind, entry.payload)  # type: ignore[union-attr]
        ok = _u64(row[1]) and type(row[2]) is str and type(row[3]) is str
    elif cls is RngSeed:
        row = (TAG_RNG_SEED, entry.actor_path, entry.seed)  # type: ignore[union-attr]
        ok = type(row[1]) is str and _u64(row[2])
    elif cls is BatchSize:
        row = (TAG_BATCH_SIZE, entry.actor_path, entry.size)  # type: ignore[union-attr]
        ok = type(row[1]) is str and _u64(row[2])
    else:
        raise JournalUsageError(
            f"{type(entry).__name__} is not a journal entry",
            "record DeviceCmd, KernelCmd, RngSeed or BatchSize values",
        )
    if not ok:
        raise JournalUsageError(
            f"cannot encode {entry!r}: integers must be in 0..2**64-1 and text fields str",
            "build the entry from unsigned integers and strings",
        )
    return row


def _device(row: Sequence[Any]) -> JournalEntry:
    if len(row) == 4 and _u64(row[1]) and type(row[2]) is str and type(row[3]) is str:
        return DeviceCmd(row[1], row[2], row[3])
    raise _BadEntry("DeviceCmd needs [1, u64 ts_micros, str name, str payload]")


def _kernel(row: Sequence[Any]) -> JournalEntry:
    if len(row) == 4 and _u64(row[1]) and type(row[2]) is str and type(row[3]) is str:
        return KernelCmd(row[1], row[2], row[3])
    raise _BadEntry("KernelCmd needs [2, u64 ts_micros, str kind, str payload]")


def _rng(row: Sequence[Any]) -> JournalEntry:
    if len(row) == 3 and type(row[1]) is str and _u64(row[2]):
        return RngSeed(row[1], row[2])
    raise _BadEntry("RngSeed needs [3, str actor_path, u64 seed]")


def _batch(row: Sequence[Any]) -> JournalEntry:
    if len(row) == 3 and type(row[1]) is str and _u64(row[2]):
        return BatchSize(row[1], row[2])
    raise _BadEntry("BatchSize needs [4, str actor_path, u64 size]")


_DECODERS: Final[dict[int, Callable[[Sequence[Any]], JournalEntry]]] = {
    TAG_DEVICE_CMD: _device,
    TAG_KERNEL_CMD: _kernel,
    TAG_RNG_SEED: _rng,
    TAG_BATCH_SIZE: _batch,
}


def _from_row(
    row: object, source: str, sequence_nr: int | None, offset: int | None = None
) -> JournalEntry:
    if type(row) is not list or not row:
        raise JournalDecodeError(
            source,
            "an entry must be a non-empty tagged array",
            sequence_nr=sequence_nr,
            offset=offset,
        )
    tag = row[0]
    decoder = _DECODERS.get(tag) if type(tag) is int else None
    if decoder is None:
        raise UnknownEntryTag(source, tag, sequence_nr=sequence_nr, offset=offset)
    try:
        return decoder(row)
    except _BadEntry as exc:
        raise JournalDecodeError(source, str(exc), sequence_nr=sequence_nr, offset=offset) from None


def encode_entry(entry: JournalEntry) -> bytes:
    """The msgpack bytes of one entry."""
    return _packb(_as_row(entry))


def decode_entry(
    data: bytes | bytearray | memoryview, *, source: str = "<entry>", sequence_nr: int | None = None
) -> JournalEntry:
    """Decode :func:`encode_entry` output; errors name ``source`` and ``sequence_nr``."""
    try:
        row = unpack_bounded(data)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise JournalDecodeError(
            source, f"payload is not a msgpack entry ({exc})", sequence_nr=sequence_nr
        ) from exc
    return _from_row(row, source, sequence_nr)


def encode_entries(entries: Iterable[JournalEntry]) -> bytes:
    """Entries as one concatenated msgpack stream (no framing, no sequence numbers)."""
    packer = msgpack.Packer(autoreset=False)
    pack = packer.pack
    for entry in entries:
        pack(_as_row(entry))
    out: bytes = packer.bytes()
    return out


def decode_entries(
    data: bytes | bytearray | memoryview, source: str = "<entries>"
) -> list[JournalEntry]:
    """Decode an :func:`encode_entries` stream; errors name the entry index as sequence nr.

    The cyclic garbage collector is paused meanwhile (see
    :func:`~pytest_replay._gc.paused_collector`).
    """
    with paused_collector():
        return _decode_stream(data, source)


def _decode_stream(data: bytes | bytearray | memoryview, source: str) -> list[JournalEntry]:
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=max(len(data), 1024))
    unpacker.feed(data)
    out: list[JournalEntry] = []
    append = out.append
    decoders = _DECODERS
    # The unpacker stops quietly on a partial object and its tell() then
    # counts the partial bytes too, so the end of the last whole entry is
    # the only way to tell a torn tail from a clean end.
    tell = unpacker.tell
    end = 0
    try:
        for index, row in enumerate(unpacker, start=1):
            end = tell()
            try:
                if type(row[0]) is not int:
                    raise TypeError
                append(decoders[row[0]](row))
            except (KeyError, IndexError, TypeError, _BadEntry):
                append(_from_row(row, source, index))
    except (ValueError, msgpack.FormatError, msgpack.StackError) as exc:
        raise JournalDecodeError(
            source, f"stream is not valid msgpack ({exc})", sequence_nr=len(out) + 1
        ) from exc
    if end != len(data):
        raise JournalDecodeError(
            source,
            f"the last entry is truncated: the stream ends {len(data) - end} bytes into it",
            sequence_nr=len(out) + 1,
            offset=end,
            fix="the stream was cut short; re-record it or restore the complete bytes",
        )
    return out


def entry_to_repr(
    entry: JournalEntry, persistence_id: str, sequence_nr: int, writer_uuid: str = WRITER_UUID
) -> PersistentRepr:
    """The stored message for one entry."""
    return PersistentRepr(
        persistence_id, sequence_nr, encode_entry(entry), ENTRY_MANIFEST, writer_uuid
    )


def encode_journal(
    entries: Iterable[JournalEntry], persistence_id: str = DEFAULT_PERSISTENCE_ID
) -> bytes:
    """A recording: a FileJournal image with ``entries`` as messages 1..n of ``persistence_id``.

    Deterministic: equal entries give equal bytes.
    """
    return encode_journal_image(
        entry_to_repr(entry, persistence_id, seq) for seq, entry in enumerate(entries, start=1)
    )


def decode_journal(
    data: bytes | bytearray | memoryview, name: str, persistence_id: str | None = None
) -> list[JournalEntry]:
    """The entries of a recording (or any FileJournal image), in sequence order.

    ``persistence_id=None`` accepts an image holding at most one persistence
    id. A torn or corrupted frame raises :class:`JournalCorrupted` with the
    byte offset; a bad payload raises :class:`JournalDecodeError` with the
    sequence number. Deleted messages are skipped.
    """
    streams, _scan = parse_journal_image(data, name)
    if persistence_id is None:
        if len(streams) > 1:
            raise JournalUsageError(
                f"journal '{name}' holds {len(streams)} persistence ids "
                f"({', '.join(sorted(streams))})",
                "pass persistence_id= to choose one",
            )
        messages = next(iter(streams.values()), [])
    else:
        messages = streams.get(persistence_id, [])
    with paused_collector():
        return [
            decode_entry(item.payload, source=name, sequence_nr=item.sequence_nr)
            for item in messages
            if not item.deleted
        ]


def entry_to_dict(entry: JournalEntry) -> dict[str, Any]:
    """A plain mapping of an entry, ``type`` (the class name) first, then its fields.

    The class goes under ``type``, not ``kind``: :class:`KernelCmd` has a field
    called ``kind``.
    """
    out: dict[str, Any] = {"type": type(entry).__name__}
    for name in entry.__slots__:
        out[name] = getattr(entry, name)
    return out


def entry_from_dict(data: dict[str, Any]) -> JournalEntry:
    """Inverse of :func:`entry_to_dict`."""
    kind = data.get("type")
    cls = ENTRY_KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise JournalUsageError(
            f"unknown entry kind {kind!r}", f"use one of {', '.join(sorted(ENTRY_KINDS))}"
        )
    fields = {key: value for key, value in data.items() if key != "type"}
    try:
        entry = cls(**fields)
    except TypeError as exc:
        raise JournalUsageError(f"bad fields for {kind}: {exc}", "pass exactly its fields") from exc
    _as_row(entry)
    return entry
