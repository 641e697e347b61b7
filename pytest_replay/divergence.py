"""The one :class:`Divergence` value: where a recording first differs from its stored one.

Every system reports a difference the same way, so one value carries it from the place
that found it (a live recorder, a kind's ``diff``, a replay) to every place that shows it:
the terminal report (:func:`divergence_lines`), the JSON of a complete diff
(:func:`divergence_json`) and the lines of the full-diff file (:func:`divergence_line`).
:func:`context_window` renders the records before a divergence, for every kind alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any, Final, Literal, Protocol, TypeVar, runtime_checkable

__all__ = [
    "CONTEXT_RECORDS",
    "Divergence",
    "context_window",
    "divergence_json",
    "divergence_line",
    "divergence_lines",
]

#: Records of context shown before a divergence, as the report promises.
CONTEXT_RECORDS: Final = 2

Item = TypeVar("Item")


@runtime_checkable
class _Described(Protocol):
    """A side that words itself (a megakernel stream entry, an observed epoch)."""

    def describe(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Divergence:
    """Where two recordings (or a recording and a live run) first differ.

    ``kind == "value"``: record ``index`` differs in ``field`` (``expected`` vs
    ``actual``). ``kind == "length"``: the common prefix is equal but one side is
    longer; ``index`` is the first index only one of them has and ``expected`` /
    ``actual`` are the two lengths. ``index`` is ``None`` for a single value (the
    ``data`` kind, a reduce result, a schedule), where ``field`` is the path of the
    first difference.

    The rest says how to show it: ``at`` names the position in the system's own words
    (``"epoch 5 (record #5 in epoch order)"``), ``unit`` what ``index`` counts,
    ``context`` the rendered records before it (:func:`context_window`), ``detail`` a
    free-form line, ``rerecord`` the command that accepts the change. They do not take
    part in equality (nor in the repr): two divergences are equal when they name the
    same difference.
    """

    index: int | None
    field: str
    expected: Any
    actual: Any
    kind: Literal["value", "length"] = "value"
    at: str = dataclass_field(default="", compare=False, repr=False)
    unit: str = dataclass_field(default="record", compare=False, repr=False)
    context: tuple[str, ...] = dataclass_field(default=(), compare=False, repr=False)
    detail: str = dataclass_field(default="", compare=False, repr=False)
    rerecord: str = dataclass_field(default="", compare=False, repr=False)

    def describe(self) -> str:
        """The divergence in one sentence (``pytest-replay`` and the replay reports)."""
        if self.at:
            return (
                f"{self.at} differs in {self.field}: expected {_side(self.expected)}, "
                f"got {_side(self.actual)}"
            )
        if self.kind == "length":
            return (
                f"length differs: expected {self.expected} {_plural(self.unit)}, got {self.actual} "
                f"(first unmatched {self.unit} is #{self.index})"
            )
        where = f"{self.unit} #{self.index}: " if self.index is not None else ""
        return f"{where}{self.field} expected {self.expected!r}, got {self.actual!r}"

    __str__ = describe

    def between(self, sides: tuple[str, str] = ("A", "B")) -> str:
        """The divergence in one sentence when two files are compared (``pytest-replay
        diff A B``): neither side is the expected one, so each is named by its side;
        ``at`` (a recording, a step) leads the line."""
        a, b = sides
        prefix = f"{self.at}: " if self.at else ""
        if self.kind == "length":
            return (
                f"{prefix}length differs: {a} has {self.expected}, {b} has {self.actual} "
                f"(first unmatched is #{self.index})"
            )
        at = f"#{self.index} " if self.index is not None else ""
        return f"{prefix}{at}{self.field}: {a} has {self.expected!r}, {b} has {self.actual!r}"


def _plural(unit: str) -> str:
    return unit[:-1] + "ies" if unit.endswith("y") else unit + "s"


def _side(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, _Described):
        return value.describe()
    return repr(value)


def context_window(
    items: Sequence[Item],
    index: int,
    render: Callable[[int, Item], str],
    *,
    offset: int = 0,
    before: int = CONTEXT_RECORDS,
) -> tuple[str, ...]:
    """The (at most ``before``) items before position ``index``, each as
    ``render(offset + position, item)``: the context of a divergence at ``index``.

    ``offset`` turns positions in ``items`` into record numbers (a ring that wrapped
    holds its records from ``offset`` on).
    """
    lo = max(0, index - before)
    return tuple(render(offset + i, items[i]) for i in range(lo, min(index, len(items))))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 400 else text[:400] + f"... ({len(text)} characters)"


def divergence_lines(divergence: Divergence) -> list[str]:
    """The terminal lines of a divergence: where, both sides, and the records before it
    (indented by the caller)."""
    found = divergence
    if found.kind == "length":
        lines = [
            f"record count differs: expected {found.expected}, got {found.actual} "
            f"(first unmatched record #{found.index})"
        ]
    else:
        where = (
            f"at {found.field}"
            if found.index is None
            else f"at record #{found.index}, field {found.field}"
        )
        lines = [
            f"first divergence {where}",
            f"  expected: {_show(found.expected)}",
            f"  actual:   {_show(found.actual)}",
        ]
    if found.context:
        lines.append("context (the records before it):")
        lines += [f"  {line}" for line in found.context]
    return lines


def divergence_json(divergence: Divergence) -> dict[str, Any]:
    """A divergence as JSON-ready data (values as :func:`~pytest_replay.values.json_value`
    shows them); context and detail only when it has them."""
    from pytest_replay.values import json_value

    body: dict[str, Any] = {
        "index": divergence.index,
        "field": divergence.field,
        "expected": json_value(divergence.expected),
        "actual": json_value(divergence.actual),
    }
    if divergence.kind != "value":
        body["kind"] = divergence.kind
    if divergence.context:
        body["context"] = list(divergence.context)
    if divergence.detail:
        body["detail"] = divergence.detail
    return body


def divergence_line(divergence: Divergence) -> str:
    """A divergence as one line of the full-diff file: ``#index field: expected -> actual``."""
    from pytest_replay.values import render_value

    found = divergence
    where = found.field if found.index is None else f"#{found.index} {found.field}"
    return f"{where}: {render_value(found.expected)} -> {render_value(found.actual)}"
