"""The record formats of the built-in kinds: plain msgpack values (``sequence_kind``),
the ``data`` value encoding, and a VRRL ring record as one line of a report.

Each helper is written once here and used by the kind that owns the format.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

import msgpack
import numpy as np

from pytest_replay._msgpack import MAX_DEPTH, unpack_bounded
from pytest_replay.diff import record_fields
from pytest_replay.report import ReplayUsageError
from pytest_replay.values import ValueDecodeError, decode_value

__all__ = ["decode_data", "pack_plain", "plain", "render_ring_record", "unpack_plain"]


def plain(value: Any) -> Any:
    """A msgpack-ready form of ``value``: dataclasses become dicts, enums their values,
    tuples lists, numpy scalars/arrays Python values, and dicts are sorted by key.

    Sorting makes the stored bytes canonical: a dict built by iterating a set of
    strings has a different insertion order under every ``PYTHONHASHSEED``, but
    it is the same value, so it must be the same recording.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, dict):
        items = [(plain(k), v) for k, v in value.items()]
        try:
            items.sort(key=_key_of)
        except TypeError:
            # Keys of types that do not compare (str and int): order by their encoding.
            items.sort(key=_packed_key)
        return {k: plain(v) for k, v in items}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic | np.ndarray):
        return plain(value.tolist())
    return value


def _key_of(item: tuple[Any, Any]) -> Any:
    return item[0]


def _packed_key(item: tuple[Any, Any]) -> bytes:
    packed: bytes = msgpack.packb(item[0], use_bin_type=True)
    return packed


def pack_plain(value: Any, what: str) -> bytes:
    try:
        packed: bytes = msgpack.packb(plain(value), use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ReplayUsageError(
            f"{what} is not msgpack-serialisable: {exc}. "
            "Fix: record dicts, lists, str, bytes, int, float, bool, None or dataclasses of them."
        ) from exc
    return packed


def unpack_plain(data: bytes, what: str) -> Any:
    try:
        return unpack_bounded(data, strict_map_key=False, max_depth=MAX_DEPTH)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise ReplayUsageError(
            f"{what} is not valid msgpack: {exc}. Fix: re-record it (pytest --replay-record)."
        ) from exc


def decode_data(data: bytes, what: str) -> Any:
    try:
        return decode_value(data, what, resolve=False)
    except ValueDecodeError as exc:
        raise ReplayUsageError(str(exc)) from None


def render_ring_record(index: int, record: np.void) -> str:
    fields = record_fields(record)
    fields.pop("magic", None)
    return f"#{index} " + " ".join(f"{k}={v}" for k, v in fields.items())
