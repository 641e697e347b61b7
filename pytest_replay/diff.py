"""First divergence between two ring-record sequences, vectorised.

Records are compared as 16 little-endian u32 words each; words that belong
to ignored (volatile) fields are masked out, so the scan is one numpy
comparison per block and stops at the first block that differs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from pytest_replay.divergence import Divergence
from pytest_replay.ringlog import (
    RING_RECORD_DTYPE,
    RecordArray,
    RecordedSlot,
    ReplayRecord,
    records_to_array,
)

__all__ = [
    "RECORD_FIELDS",
    "DiffSummary",
    "Divergence",
    "first_divergence",
    "first_value_difference",
    "ignored_words",
    "record_difference",
    "record_fields",
    "ring_summary",
    "sequence_summary",
    "value_differences",
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


Records = Sequence[RecordedSlot] | Sequence[ReplayRecord] | RecordArray


def _as_array(records: Records | Iterable[RecordedSlot | ReplayRecord]) -> RecordArray:
    if isinstance(records, np.ndarray) and records.dtype == RING_RECORD_DTYPE:
        return records
    return records_to_array(records)


def ignored_words(ignore: Iterable[str]) -> list[int]:
    """The 32-bit word columns of a VRRL record that the record fields ``ignore`` cover."""
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


def _compared_words(
    expected: Records, actual: Records, ignore: Iterable[str]
) -> tuple[list[int], RecordArray, RecordArray, np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The masked word columns, both record arrays, and their common prefix as u32 words."""
    # The magic word marks a record live; it is not data (an array built by hand may hold 0).
    masked = [_WORD_FIELDS.index("magic"), *ignored_words(ignore)]
    left, right = _as_array(expected), _as_array(actual)
    common = min(len(left), len(right))

    def words(records: RecordArray) -> np.ndarray[Any, Any]:
        return np.ascontiguousarray(records[:common]).view("<u4").reshape(common, _WORDS_PER_RECORD)

    return masked, left, right, words(left), words(right)


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
    masked, left, right, words_left, words_right = _compared_words(expected, actual, ignore)
    common = len(words_left)
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


def record_difference(
    expected: np.void, actual: np.void, ignore: Iterable[str] = ("timestamp_ns",)
) -> tuple[str, Any, Any] | None:
    """``(field, expected, actual)`` of the first differing field of two ring records (the
    record type of a checked ring stream), or ``None``."""
    found = first_divergence(
        np.asarray(expected).reshape(1), np.asarray(actual).reshape(1), ignore=ignore
    )
    return None if found is None else (found.field, found.expected, found.actual)


def _key_path(path: str, key: Any) -> str:
    shown = json.dumps(key, ensure_ascii=False) if isinstance(key, str) else repr(key)
    return f"{path}[{shown}]"


def first_value_difference(
    expected: Any, actual: Any, path: str = ""
) -> tuple[str, Any, Any] | None:
    """The first place two decoded values differ: ``(path, expected, actual)`` or ``None``.

    Dicts are compared key by key (the expected value's order, then the actual
    value's extra keys), lists and tuples by index then length, dataclasses and
    other recorded objects (:class:`pytest_replay.values.Tagged`) field by field
    (``.field`` in the path), and scalars by type and value (``1`` differs from
    ``1.0`` and ``True``, ``-0.0`` from ``0.0``). A missing key or item is
    reported as ``<missing>``.

    >>> first_value_difference({"steps": [{"epoch": 1}]}, {"steps": [{"epoch": 2}]})
    ('["steps"][0]["epoch"]', 1, 2)
    """
    return next(iter(value_differences(expected, actual, path)), None)


# --------------------------------------------------------------------------- every difference


@dataclass(frozen=True, slots=True)
class DiffSummary:
    """Every difference between two recordings, and the counts a report shows.

    ``differing`` counts the records of the common prefix that differ in at least
    one field; ``fields`` is, per field, how many records differ in it (most first);
    ``ranges`` are the ``[start, stop)`` runs of differing records; records past the
    end of the shorter side are ``missing`` (only expected has them) or ``extra``.
    """

    expected_records: int
    actual_records: int
    differing: int
    fields: tuple[tuple[str, int], ...]
    ranges: tuple[tuple[int, int], ...]
    differences: tuple[Divergence, ...]

    @property
    def missing(self) -> int:
        return max(0, self.expected_records - self.actual_records)

    @property
    def extra(self) -> int:
        return max(0, self.actual_records - self.expected_records)

    @property
    def same(self) -> bool:
        return not self.differences and self.expected_records == self.actual_records

    def first(self) -> Divergence | None:
        """The first divergence, as :func:`first_divergence` reports it."""
        if self.differences:
            return self.differences[0]
        if self.expected_records != self.actual_records:
            common = min(self.expected_records, self.actual_records)
            return Divergence(
                common, "length", self.expected_records, self.actual_records, "length"
            )
        return None


def _ranges(indices: Sequence[int]) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for index in indices:
        if out and out[-1][1] == index:
            out[-1] = (out[-1][0], index + 1)
        else:
            out.append((index, index + 1))
    return tuple(out)


def _field_counts(counts: dict[str, int]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _field_column(records: RecordArray, field: str) -> list[int]:
    if field.startswith("args["):
        column: list[int] = records["args"][:, int(field[5])].tolist()
        return column
    values: list[int] = records[field].tolist()
    return values


def ring_summary(
    expected: Records, actual: Records, ignore: Iterable[str] = ("timestamp_ns",)
) -> DiffSummary:
    """Every differing field of every record of two ring-record sequences (vectorised)."""
    masked, left, right, words_left, words_right = _compared_words(expected, actual, ignore)
    common = len(words_left)
    # Each field once, in record order (timestamp_ns and output_digest span two words).
    fields = list(dict.fromkeys(_WORD_FIELDS))
    columns = {f: [w for w, name in enumerate(_WORD_FIELDS) if name == f] for f in fields}
    counts: dict[str, int] = {}
    indices: list[npt.NDArray[np.int64]] = []
    differences: list[Divergence] = []
    for start in range(0, common, _BLOCK):
        differs = words_left[start : start + _BLOCK] != words_right[start : start + _BLOCK]
        differs[:, masked] = False
        rows = np.flatnonzero(differs.any(axis=1))
        if not len(rows):
            continue
        hit = differs[rows]
        at = rows + start
        indices.append(at)
        # One column per differing field, then one stable sort puts them in record order
        # (index, then field order), without a Python loop per record.
        index_parts, order_parts, want_parts, got_parts, names = [], [], [], [], []
        for order, f in enumerate(fields):
            flagged = hit[:, columns[f]].any(axis=1)
            n = int(np.count_nonzero(flagged))
            if not n:
                continue
            counts[f] = counts.get(f, 0) + n
            chosen = at[flagged]
            index_parts.append(chosen)
            order_parts.append(np.full(n, order))
            want_parts += _field_column(left[chosen], f)
            got_parts += _field_column(right[chosen], f)
            names += [f] * n
        sequence = np.lexsort((np.concatenate(order_parts), np.concatenate(index_parts)))
        index_list = np.concatenate(index_parts)[sequence].tolist()
        positions = sequence.tolist()
        differences += map(
            Divergence,
            index_list,
            [names[k] for k in positions],
            [want_parts[k] for k in positions],
            [got_parts[k] for k in positions],
        )
    every = np.concatenate(indices) if indices else np.zeros(0, np.int64)
    # Runs of consecutive indices: a run starts where the step from the previous one is not 1.
    starts = np.flatnonzero(np.diff(every, prepend=-2) != 1)
    ends = np.append(starts[1:], len(every))[: len(starts)] - 1
    ranges = tuple(zip(every[starts].tolist(), (every[ends] + 1).tolist(), strict=True))
    return DiffSummary(
        len(left), len(right), len(every), _field_counts(counts), ranges, tuple(differences),
    )  # fmt: skip


def value_differences(expected: Any, actual: Any, path: str = "") -> Iterable[tuple[str, Any, Any]]:
    """Every place two decoded values differ, as ``(path, expected, actual)``, in the
    order :func:`first_value_difference` would find them."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key, value in expected.items():
            where = _key_path(path, key)
            if key not in actual:
                yield where, value, "<missing>"
            else:
                yield from value_differences(value, actual[key], where)
        for key, value in actual.items():
            if key not in expected:
                yield _key_path(path, key), "<missing>", value
        return
    if type(expected) is type(actual) and isinstance(expected, (list, tuple)):
        for index, (left, right) in enumerate(zip(expected, actual, strict=False)):
            yield from value_differences(left, right, f"{path}[{index}]")
        for index in range(min(len(expected), len(actual)), max(len(expected), len(actual))):
            left = expected[index] if index < len(expected) else "<missing>"
            right = actual[index] if index < len(actual) else "<missing>"
            yield f"{path}[{index}]", left, right
        return
    fields = _tagged_fields(expected, actual)
    if fields is not None:
        left_fields, right_fields = fields
        for name in dict.fromkeys([*left_fields, *right_fields]):
            yield from value_differences(
                left_fields.get(name, "<missing>"),
                right_fields.get(name, "<missing>"),
                f"{path}.{name}",
            )
        return
    if not _same_scalar(expected, actual):
        yield path or "<value>", expected, actual


def _tagged_fields(expected: Any, actual: Any) -> tuple[dict[Any, Any], dict[Any, Any]] | None:
    """The fields of two Tagged values of one type (see :mod:`pytest_replay.values`)."""
    from pytest_replay.values import Tagged

    if (
        isinstance(expected, Tagged)
        and isinstance(actual, Tagged)
        and (expected.type, expected.form) == (actual.type, actual.form)
    ):
        return dict(expected.fields), dict(actual.fields)
    return None


def _same_scalar(expected: Any, actual: Any) -> bool:
    """Equal in type and in every bit the encoding keeps (``-0.0`` is not ``0.0``,
    ``Decimal("1.0")`` is not ``Decimal("1.00")``, a NaN equals the same NaN)."""
    if type(expected) is not type(actual):
        return False
    if isinstance(expected, np.ndarray):
        return bool(
            expected.dtype == actual.dtype
            and expected.shape == actual.shape
            and expected.tobytes() == actual.tobytes()
        )
    if isinstance(expected, (float, np.generic)):
        return _bits(expected) == _bits(actual)
    if isinstance(expected, (set, frozenset)):
        return expected == actual and repr(sorted(map(repr, expected))) == repr(
            sorted(map(repr, actual))
        )
    import decimal

    if isinstance(expected, decimal.Decimal):
        return str(expected) == str(actual)
    import datetime as dt

    if isinstance(expected, (dt.datetime, dt.time)):
        return (repr(expected), expected.fold) == (repr(actual), actual.fold)
    try:
        return bool(expected == actual)
    except (TypeError, ValueError):
        return repr(expected) == repr(actual)


def _bits(value: Any) -> bytes:
    if isinstance(value, np.generic):
        return bytes(value.dtype.str, "ascii") + value.tobytes()
    return bytes(np.float64(value).tobytes())


def sequence_summary(
    expected: Sequence[Any],
    actual: Sequence[Any],
    single: bool = False,
    item_differences: Callable[[Any, Any], Iterable[tuple[str, Any, Any]]] = value_differences,
) -> DiffSummary:
    """Every difference between two lists of decoded items, as ``item_differences`` finds
    them in each pair (``single``: two lists of one value each, the ``data`` kind, whose
    differences carry no record index)."""
    counts: dict[str, int] = {}
    indices: list[int] = []
    differences: list[Divergence] = []
    for index, (want, got) in enumerate(zip(expected, actual, strict=False)):
        found = list(item_differences(want, got))
        if not found:
            continue
        indices.append(index)
        for field in dict.fromkeys(path for path, _x, _y in found):
            counts[field] = counts.get(field, 0) + 1
        differences.extend(
            Divergence(None if single else index, path, x, y) for path, x, y in found
        )
    return DiffSummary(
        len(expected), len(actual), len(indices), _field_counts(counts),
        () if single else _ranges(indices), tuple(differences),
    )  # fmt: skip
