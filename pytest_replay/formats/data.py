"""The ``replay.data`` format: one value in the :mod:`pytest_replay.values` encoding
(msgpack with extension types), stored as ``<name>.msgpack``; and the plain msgpack array
the default :func:`pytest_replay.kinds.sequence_kind` stores.

A data file has no magic bytes: it is known by its extension. Its records, for
``inspect``, ``textconv`` and diffs, are the value's leaves: each is a key path
(``["steps"][3].epoch``) and the rendered value there, and diffs align on the key path.
Decoding never imports a user module (recorded objects come back as
:class:`~pytest_replay.values.Tagged`), so reading a file runs none of its code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, ClassVar, Final

import msgpack

from pytest_replay._msgpack import MAX_DEPTH, unpack_bounded
from pytest_replay.formats.base import Format, FormatError, Framing
from pytest_replay.report import ReplayUsageError
from pytest_replay.values import Tagged, ValueDecodeError, decode_value, render_value

__all__ = [
    "DATA",
    "DATA_EXTENSION",
    "DATA_FRAMING",
    "UNSET_VALUE",
    "DataFormat",
    "DataFormatError",
    "pack_plain",
    "unpack_plain",
    "value_leaves",
]

DATA_EXTENSION: Final = ".msgpack"
#: What a data recorder that was never given a value stores: msgpack ``nil``.
UNSET_VALUE: Final = b"\xc0"
_RERECORD: Final = "re-record it (pytest --replay-record)."
# As much as the command line reads of any file: a value is held in memory whole.
_READ_LIMIT: Final = 4 << 30

DATA_FRAMING: Final = Framing(
    magic=b"",
    notes=(
        "one msgpack value, no header: plain values as msgpack itself, dict items sorted "
        "by key; every other type as an msgpack extension type 1..16 whose payload is "
        "itself an encoded value (the table in pytest_replay.values)",
        "a recorder that was never set stores msgpack nil (0xc0)",
    ),
)


class DataFormatError(FormatError, ReplayUsageError):
    """Bytes that are not a recorded value, or a value msgpack cannot hold. A usage error
    too: the ``replay`` fixture reports it as the recording it was asked to make or read."""


def pack_plain(value: Any, what: str, convert: Callable[[Any], Any] | None = None) -> bytes:
    """``value`` as msgpack, made plain (lists, dicts, scalars) by ``convert`` first when
    given; ``what`` names it in the :class:`DataFormatError` a value msgpack cannot hold
    (or ``convert`` refuses with a ``TypeError``) raises."""
    try:
        packed: bytes = msgpack.packb(
            value if convert is None else convert(value), use_bin_type=True
        )
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataFormatError(
            f"{what} is not msgpack-serialisable: {exc}",
            fix="record dicts, lists, str, bytes, int, float, bool, None or dataclasses of them.",
        ) from exc
    return packed


def unpack_plain(data: bytes, what: str) -> Any:
    """The msgpack value in ``data``, every length bounded by its size; damage is a
    :class:`DataFormatError` naming ``what``."""
    try:
        return unpack_bounded(data, strict_map_key=False, max_depth=MAX_DEPTH)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise DataFormatError(f"{what} is not valid msgpack: {exc}", fix=_RERECORD) from exc


def _key_text(key: Any) -> str:
    return json.dumps(key, ensure_ascii=False) if isinstance(key, str) else render_value(key)


def value_leaves(value: Any, path: str = "") -> list[tuple[str, str]]:
    """A decoded value as ``(key path, rendered leaf)`` pairs in stored order: dicts, lists
    and recorded objects are opened (an object also gives a line naming its type),
    everything else is one leaf."""
    if isinstance(value, dict) and value:
        return [
            pair for key, item in value.items()
            for pair in value_leaves(item, f"{path}[{_key_text(key)}]")
        ]  # fmt: skip
    if isinstance(value, list) and value:
        return [pair for i, item in enumerate(value) for pair in value_leaves(item, f"{path}[{i}]")]
    if isinstance(value, Tagged) and value.form != "enum":
        head = [(path or "<value>", f"{value.type} ({value.form})")]
        return head + [
            pair for name, item in value.fields.items()
            for pair in value_leaves(item, f"{path}.{name}")
        ]  # fmt: skip
    return [(path or "<value>", render_value(value))]


class DataFormat(Format):
    """A ``replay.data`` value (``.msgpack``): :meth:`read` gives the decoded value, its
    records are its leaves ``(key path, rendered value)``, aligned by key path."""

    name: ClassVar[str] = "data"
    label: ClassVar[str] = "recorded value (replay.data)"
    extensions: ClassVar[tuple[str, ...]] = (DATA_EXTENSION,)
    framing: ClassVar[Framing | None] = DATA_FRAMING
    kind: ClassVar[str | None] = "data"

    def decode(self, data: bytes, source: str) -> Any:
        """The value in ``data`` (no user module imported); ``source`` names the bytes in
        the :class:`DataFormatError` damage raises."""
        try:
            return decode_value(data, source, resolve=False)
        except ValueDecodeError as exc:
            raise DataFormatError(exc.what, where=exc.where, fix=exc.fix) from None

    def read(self, path: Path) -> Any:
        data = self.read_bytes(path, _READ_LIMIT)
        return self.decode(data, os.fspath(path))

    def records(self, document: Any) -> list[tuple[str, str]]:
        return value_leaves(document)

    def diff_key(self, index: int, record: Any) -> Hashable:
        """A leaf's key path: a value whose list grew still aligns the keys after it."""
        path: str = record[0]
        return path

    def render(self, index: int, record: Any) -> str:
        """``<key path> = <rendered value>``, the line ``textconv`` shows."""
        return f"{record[0]} = {record[1]}"

    def item(self, index: int, record: Any) -> dict[str, Any]:
        return {"index": index, "path": record[0], "value": record[1]}


#: The one data format object.
DATA: Final = DataFormat()
