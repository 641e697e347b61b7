"""First divergence between two ring-record sequences, vectorised.

Records are compared as 16 little-endian u32 words each; words that belong
to ignored (volatile) fields are masked out, so the scan is one numpy
comparison per block and stops at the first block that differs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np

from pytest_replay.ringlog import (
    RING_RECORD_DTYPE,
    RecordArray,
    RecordedSlot,
    ReplayRecord,
    records_to_array,
)

__all__ = [
    "RECORD_FIELDS",
    "Divergence",
    "first_divergence",
    "first_value_difference",
    "record_fields",
]

_WORDS_PER_RECORD: Final = RING_RECORD_DTYPE.itemsize // 4
_BLOCK: Final = 1 << 16

# Field name for each of the 16 words of a record, in on-disk order.
_WORD_FIELDS: Final = (
    "magic",
    "timestamp_ns",
    "timestamp_ns",
    "slot_idx",
    "tenant_id",
    "opcode",
    "args[0]",
    "args[1]",
    "args[2]",
    "args[3]",
    "epoch",
    "slot_status",
    "failure_class",
    "backend_code",
    "output_digest",
    "output_digest",
)
assert len(_WORD_FIELDS) == _WORDS_PER_RECORD

#: Every field name ``ignore`` accepts (``"args"`` ignores all four words).
RECORD_FIELDS: Final = frozenset(_WORD_FIELDS) | {"args"}


@dataclass(frozen=True, slots=True)
class Divergence:
    """Where two record sequences first differ.

    ``kind == "value"``: record ``index`` differs in ``field`` (``expected``
    vs ``actual``). ``kind == "length"``: the common prefix is equal but one
    sequence is longer; ``index`` is the first index only one of them has and
    ``expected``/``actual`` are the two lengths. ``index`` is ``None`` for a
    single value (the ``data`` kind), where ``field`` is the path of the
    first difference.
    """

    index: int | None
    field: str
    expected: Any
    actual: Any
    kind: Literal["value", "length"] = "value"

    def describe(self) -> str:
        if self.kind == "length":
            return (
                f"length differs: expected {self.expected} records, got {self.actual} "
                f"(first unmatched record is #{self.index})"
            )
        where = f"record #{self.index}: " if self.index is not None else ""
        return f"{where}{self.field} expected {self.expected!r}, got {self.actual!r}"

    __str__ = describe


Records = Sequence[RecordedSlot] | Sequence[ReplayRecord] | RecordArray


def _as_array(records: Records | Iterable[RecordedSlot | ReplayRecord]) -> RecordArray:
    if isinstance(records, np.ndarray) and records.dtype == RING_RECORD_DTYPE:
        return records
    return records_to_array(records)


def _ignored_words(ignore: Iterable[str]) -> list[int]:
    columns: list[int] = []
    for name in ignore:
        if name not in RECORD_FIELDS:
            raise ValueError(
                f"unknown record field {name!r} in ignore. "
                f"Fix: use one of {', '.join(sorted(RECORD_FIELDS))}."
            )
        for word, field in enumerate(_WORD_FIELDS):
            if field == name or (name == "args" and field.startswith("args[")):
                columns.append(word)
    return columns


def record_fields(record: np.void) -> dict[str, int]:
    """A record's fields as a flat mapping (``args[0]`` .. ``args[3]``), for reports."""
    out: dict[str, int] = {}
    for name in RING_RECORD_DTYPE.names or ():
        if name == "args":
            for k, value in enumerate(record["args"].tolist()):
                out[f"args[{k}]"] = value
        else:
            out[name] = int(record[name])
    return out


def first_divergence(
    expected: Records, actual: Records, ignore: Iterable[str] = ("timestamp_ns",)
) -> Divergence | None:
    """The first difference between two record sequences, or ``None``.

    Accepts sequences of :class:`RecordedSlot` / :class:`ReplayRecord` or
    :data:`RING_RECORD_DTYPE` arrays. Fields named in ``ignore`` (default: the
    volatile ``timestamp_ns``) never count as a difference.

    >>> a = [RecordedSlot(1, 0, 0, 7, (1, 2, 3, 4), 10)]
    >>> b = [RecordedSlot(2, 0, 0, 7, (1, 2, 3, 4), 11)]
    >>> first_divergence(a, b)
    Divergence(index=0, field='epoch', expected=10, actual=11, kind='value')
    """
    # The magic word marks a record live; it is not data (an array built by hand may hold 0).
    masked = [_WORD_FIELDS.index("magic"), *_ignored_words(ignore)]
    left, right = _as_array(expected), _as_array(actual)
    common = min(len(left), len(right))
    words_left = np.ascontiguousarray(left[:common]).view("<u4").reshape(common, _WORDS_PER_RECORD)
    words_right = (
        np.ascontiguousarray(right[:common]).view("<u4").reshape(common, _WORDS_PER_RECORD)
    )
    for start in range(0, common, _BLOCK):
        differs = words_left[start : start + _BLOCK] != words_right[start : start + _BLOCK]
        differs[:, masked] = False
        rows = differs.any(axis=1)
        if rows.any():
            row = int(np.argmax(rows))
            field = _WORD_FIELDS[int(np.argmax(differs[row]))]
            index = start + row
            want = record_fields(left[index])[field]
            got = record_fields(right[index])[field]
            return Divergence(index, field, want, got)
    if len(left) != len(right):
        return Divergence(common, "length", len(left), len(right), "length")
    return None


def _key_path(path: str, key: Any) -> str:
    shown = json.dumps(key, ensure_ascii=False) if isinstance(key, str) else repr(key)
    return f"{path}[{shown}]"


def first_value_difference(
    expected: Any, actual: Any, path: str = ""
) -> tuple[str, Any, Any] | None:
    """The first place two plain values differ: ``(path, expected, actual)`` or ``None``.

    Values are what msgpack round-trips: dicts (keys in the expected value's
    order, then the actual value's extra keys), lists/tuples (by index, then
    length), and scalars compared by type and value (``1`` differs from
    ``1.0`` and ``True``). A missing key or item is reported as ``<missing>``.

    >>> first_value_difference({"steps": [{"epoch": 1}]}, {"steps": [{"epoch": 2}]})
    ('["steps"][0]["epoch"]', 1, 2)
    """
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key, value in expected.items():
            where = _key_path(path, key)
            if key not in actual:
                return where, value, "<missing>"
            found = first_value_difference(value, actual[key], where)
            if found is not None:
                return found
        for key, value in actual.items():
            if key not in expected:
                return _key_path(path, key), "<missing>", value
        return None
    if isinstance(expected, (list, tuple)) and isinstance(actual, (list, tuple)):
        for index, (left, right) in enumerate(zip(expected, actual, strict=False)):
            found = first_value_difference(left, right, f"{path}[{index}]")
            if found is not None:
                return found
        if len(expected) != len(actual):
            index = min(len(expected), len(actual))
            left = expected[index] if index < len(expected) else "<missing>"
            right = actual[index] if index < len(actual) else "<missing>"
            return f"{path}[{index}]", left, right
        return None
    if type(expected) is not type(actual) or expected != actual:
        return path or "<value>", expected, actual
    return None
