"""Where a live journal (or replay result) first differs from the stored one."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any, Final

from pytest_replay.divergence import Divergence
from pytest_replay.journal.codec import entry_to_dict
from pytest_replay.journal.entries import ENTRY_KINDS, JournalEntry
from pytest_replay.journal.errors import JournalUsageError
from pytest_replay.journal.result import ReplayResult, result_to_dict

__all__ = [
    "ENTRY_FIELDS",
    "VOLATILE_ENTRY_FIELDS",
    "entry_difference",
    "first_journal_divergence",
    "first_result_divergence",
]

#: Field names ``ignore`` accepts for entries (``type`` is the entry class).
ENTRY_FIELDS: Final = frozenset(
    {"type"} | {field.name for cls in ENTRY_KINDS.values() for field in dataclasses.fields(cls)}
)
#: Fields that differ between equal runs: ignored unless the caller says otherwise.
VOLATILE_ENTRY_FIELDS: Final = ("ts_micros",)


def _check_ignore(ignore: Iterable[str], known: frozenset[str], what: str) -> frozenset[str]:
    names = frozenset(ignore)
    unknown = sorted(names - known)
    if unknown:
        raise JournalUsageError(
            f"unknown {what} field(s) {', '.join(map(repr, unknown))} in ignore",
            f"use names from {', '.join(sorted(known))}",
        )
    return names


def _first_difference(
    left: Any, right: Any, path: str, ignore: frozenset[str]
) -> tuple[str, Any, Any] | None:
    if isinstance(left, dict) and isinstance(right, dict):
        for key in list(left) + [k for k in right if k not in left]:
            sub = f"{path}.{key}" if path else str(key)
            if key in ignore or _strip_indices(sub) in ignore:
                continue
            if key not in left or key not in right:
                return sub, left.get(key), right.get(key)
            found = _first_difference(left[key], right[key], sub, ignore)
            if found is not None:
                return found
        return None
    if isinstance(left, list) and isinstance(right, list):
        for index, (a, b) in enumerate(zip(left, right, strict=False)):
            found = _first_difference(a, b, f"{path}[{index}]", ignore)
            if found is not None:
                return found
        if len(left) != len(right):
            return f"{path}.length", len(left), len(right)
        return None
    if type(left) is not type(right) or left != right:
        return path, left, right
    return None


def _strip_indices(path: str) -> str:
    out = []
    depth = 0
    for char in path:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif depth == 0:
            out.append(char)
    return "".join(out)


def entry_difference(
    expected: JournalEntry, actual: JournalEntry, ignore: Iterable[str] = VOLATILE_ENTRY_FIELDS
) -> tuple[str, Any, Any] | None:
    """``(field_path, expected, actual)`` of the first differing field, or ``None``.

    For comparing the n-th live entry with the stored n-th entry as it is
    recorded.
    """
    names = _check_ignore(ignore, ENTRY_FIELDS, "entry")
    if type(expected) is not type(actual):
        return "type", type(expected).__name__, type(actual).__name__
    return _first_difference(entry_to_dict(expected), entry_to_dict(actual), "", names)


def first_journal_divergence(
    expected: Sequence[JournalEntry],
    actual: Sequence[JournalEntry],
    ignore: Iterable[str] = VOLATILE_ENTRY_FIELDS,
) -> Divergence | None:
    """The first difference between two entry sequences, or ``None`` when they match.

    ``field`` is ``"type"`` when the entry classes differ, otherwise the dotted path of
    the first differing field; a ``length`` divergence when one sequence is a prefix of
    the other. Fields named in ``ignore`` (default: the volatile ``ts_micros``) never
    count as a difference.
    """
    names = _check_ignore(ignore, ENTRY_FIELDS, "entry")
    for index, (want, got) in enumerate(zip(expected, actual, strict=False)):
        if want == got:
            continue
        found = entry_difference(want, got, names)
        if found is not None:
            return Divergence(index, *found, unit="entry")
    if len(expected) != len(actual):
        common = min(len(expected), len(actual))
        return Divergence(common, "length", len(expected), len(actual), "length", unit="entry")
    return None


def first_result_divergence(
    expected: ReplayResult, actual: ReplayResult, ignore: Iterable[str] = ()
) -> tuple[str, Any, Any] | None:
    """``(field_path, expected, actual)`` where two replay results first differ, or ``None``.

    Paths follow the serialised form (``repair_needed[0].reason``); ``ignore``
    takes field names or index-free paths (``latest_checkpoint.created_at_millis``).
    """
    return _first_difference(
        result_to_dict(expected), result_to_dict(actual), "", frozenset(ignore)
    )
