"""Plain values for the built-in kinds: :func:`plain` makes a recorded value msgpack-ready
(canonical dict order), :func:`pack_plain` packs it (``sequence_kind``).

The formats themselves (msgpack values, the ``data`` encoding, VRRL records) are
:mod:`pytest_replay.formats`; the kinds use their format objects directly.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

import msgpack
import numpy as np

from pytest_replay.formats.data import pack_plain as pack_msgpack

__all__ = ["pack_plain", "plain"]


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
    """``value`` made :func:`plain` and packed as msgpack (the data format's
    :func:`~pytest_replay.formats.data.pack_plain`, whose error names ``what``)."""
    return pack_msgpack(value, what, plain)
