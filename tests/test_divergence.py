"""The one Divergence value, its context window and its three renderings."""

from __future__ import annotations

from dataclasses import dataclass

from pytest_replay.diff import Divergence as DiffDivergence
from pytest_replay.divergence import (
    Divergence,
    context_window,
    divergence_json,
    divergence_line,
    divergence_lines,
)


@dataclass(frozen=True)
class Side:
    slot: int

    def describe(self) -> str:
        return f"slot {self.slot}"


def test_diff_exports_the_same_class() -> None:
    assert DiffDivergence is Divergence


def test_equality_and_repr_name_the_difference_not_how_it_is_shown() -> None:
    plain = Divergence(3, "epoch", 1, 2)
    shown = Divergence(
        3, "epoch", 1, 2, at="epoch 3", unit="entry", context=("#2 x",), detail="d", rerecord="r"
    )
    assert plain == shown
    assert plain != Divergence(3, "epoch", 1, 3)
    assert plain != Divergence(3, "length", 1, 2, "length")
    assert repr(shown) == ("Divergence(index=3, field='epoch', expected=1, actual=2, kind='value')")


def test_describe_in_each_form() -> None:
    assert Divergence(4, "args[2]", 6, 99).describe() == "record #4: args[2] expected 6, got 99"
    assert Divergence(None, '["a"]', 1, 2).describe() == '["a"] expected 1, got 2'
    assert Divergence(2, "length", 5, 2, "length", unit="entry").describe() == (
        "length differs: expected 5 entries, got 2 (first unmatched entry is #2)"
    )
    assert str(Divergence(2, "length", 5, 2, "length")) == (
        "length differs: expected 5 records, got 2 (first unmatched record is #2)"
    )
    at = Divergence(5, "slot_idx", Side(3), None, at="epoch 5 (record #5 in epoch order)")
    assert at.describe() == (
        "epoch 5 (record #5 in epoch order) differs in slot_idx: expected slot 3, got nothing"
    )
    assert Divergence(1, "f", 1, "x", at="step 1").describe() == (
        "step 1 differs in f: expected 1, got 'x'"
    )


def render(index: int, item: str) -> str:
    return f"#{index} {item}"


def test_context_window_shows_at_most_two_records_before_the_index() -> None:
    items = ["a", "b", "c", "d"]
    assert context_window(items, 0, render) == ()
    assert context_window(items, 1, render) == ("#0 a",)
    assert context_window(items, 3, render) == ("#1 b", "#2 c")
    # Past the end (a record beyond the stored ones): the last stored records.
    assert context_window(items, 9, render) == ()
    assert context_window(items, 4, render) == ("#2 c", "#3 d")
    # A wrapped ring holds records from `offset` on: they are numbered as recorded.
    assert context_window(items, 2, render, offset=100) == ("#100 a", "#101 b")
    assert context_window(items, 3, render, before=1) == ("#2 c",)
    assert context_window(items, -3, render) == ()


def test_terminal_lines() -> None:
    value = Divergence(7, "opcode", 0, 9, context=("#6 x",))
    assert divergence_lines(value) == [
        "first divergence at record #7, field opcode",
        "  expected: 0",
        "  actual:   9",
        "context (the records before it):",
        "  #6 x",
    ]
    assert divergence_lines(Divergence(None, '["k"]', "a", "b"))[0] == 'first divergence at ["k"]'
    assert divergence_lines(Divergence(10, "length", 10, 11, "length")) == [
        "record count differs: expected 10, got 11 (first unmatched record #10)"
    ]
    long = divergence_lines(Divergence(0, "f", "x" * 1000, 1))[1]
    assert long.endswith("... (1002 characters)") and len(long) < 450


def test_json_and_full_diff_line() -> None:
    found = Divergence(2, "payload", b"\x00", [1, 2])
    body = divergence_json(found)
    assert list(body) == ["index", "field", "expected", "actual"]
    assert (body["index"], body["field"], body["actual"]) == (2, "payload", [1, 2])
    assert body["expected"] != b"\x00"  # bytes are shown JSON-ready
    full = divergence_json(
        Divergence(3, "length", 3, 4, "length", context=("#2 c",), detail="one more")
    )
    assert (full["kind"], full["context"], full["detail"]) == ("length", ["#2 c"], "one more")
    assert divergence_line(Divergence(2, "epoch", 1, 2)) == "#2 epoch: 1 -> 2"
    assert divergence_line(Divergence(None, '["a"]', "x", "y")).startswith('["a"]: ')
