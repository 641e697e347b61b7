"""The one checked stream every recorder compares with, and the list recorder built on it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgpack
import pytest

from pytest_replay.divergence import Divergence
from pytest_replay.recorder import CheckedRecorder, CheckedStream, RecordingTarget
from pytest_replay.report import Mismatch, ReplayDivergence


def target(tmp_path: Path, seen: list[Mismatch], expected: bytes | None = None) -> RecordingTarget:
    return RecordingTarget(
        nodeid="test_x.py::test_y",
        name="numbers",
        kind="numbers",
        stored_path=tmp_path / "numbers.bin",
        scratch=tmp_path,
        expected=expected,
        on_mismatch=seen.append,
    )


def compare(want: int, got: int) -> tuple[str, Any, Any] | None:
    return None if want == got else ("value", want, got)


def render(index: int, item: int) -> str:
    return f"#{index} = {item}"


Sides = list[tuple[Any, Any]]


def stream(
    tmp_path: Path,
    seen: list[Mismatch],
    stored: Sequence[int] | None,
    sides: Sides | None = None,
    **options: Any,
) -> CheckedStream[int]:
    def detail(divergence: Divergence, expected: Any, actual: Any) -> str:
        if sides is not None:
            sides.append((expected, actual))
        return f"detail of #{divergence.index}"

    return CheckedStream(
        target(tmp_path, seen, b"" if stored is not None else None),
        stored,
        compare,
        render,
        detail=detail,
        **options,
    )


def test_recording_only_counts(tmp_path: Path) -> None:
    seen: list[Mismatch] = []
    checked = stream(tmp_path, seen, None)
    checked.extend([1, 2, 3])
    checked.check_batch([4, 5], lambda want, got: Divergence(0, "x", 0, 1))
    checked.check_complete()
    assert (checked.checking, checked.produced, seen) == (False, 5, [])


def test_a_differing_record_fails_with_context_detail_and_rerecord(tmp_path: Path) -> None:
    seen: list[Mismatch] = []
    sides: Sides = []
    checked = stream(tmp_path, seen, [10, 11, 12, 13], sides, ignored=("ts",))
    checked.extend([10, 11, 12])
    with pytest.raises(ReplayDivergence) as caught:
        checked.check(99)
    [mismatch] = seen
    found = mismatch.divergence
    assert found == Divergence(3, "value", 13, 99)
    assert found is not None and found.context == ("#1 = 11", "#2 = 12")
    assert sides == [(13, 99)]
    assert mismatch.detail == "detail of #3"
    assert mismatch.ignored == ("ts",)
    assert found.rerecord == "pytest test_x.py::test_y --replay-record"
    text = str(caught.value)
    assert "first divergence at record #3, field value" in text
    assert "    #2 = 12" in text and "detail of #3" in text


def test_one_record_too_many_and_too_few_are_length_divergences(tmp_path: Path) -> None:
    seen: list[Mismatch] = []
    sides: Sides = []
    longer = stream(tmp_path, seen, [1, 2], sides)
    longer.extend([1, 2])
    with pytest.raises(ReplayDivergence):
        longer.check(3)
    assert seen[-1].divergence == Divergence(2, "length", 2, 3, "length")
    assert sides[-1] == (None, 3)
    shorter = stream(tmp_path, seen, [1, 2, 3], sides)
    shorter.check(1)
    with pytest.raises(ReplayDivergence):
        shorter.check_complete()
    assert seen[-1].divergence == Divergence(1, "length", 3, 1, "length")
    assert seen[-1].context == ("#0 = 1",)
    assert sides[-1] == (2, None)
    complete = stream(tmp_path, seen, [1, 2], sides)
    complete.extend([1, 2])
    complete.check_complete()
    assert len(seen) == 2


def test_a_wrapped_stored_ring_is_compared_from_its_offset(tmp_path: Path) -> None:
    seen: list[Mismatch] = []
    # 6 records were recorded; the ring kept the last 3 (numbers 3, 4, 5).
    checked = stream(tmp_path, seen, [30, 40, 50], offset=3, stored_count=6)
    assert checked.position == -3
    checked.extend([0, 0, 0])  # overwritten in the stored ring: not compared
    checked.extend([30, 40])
    with pytest.raises(ReplayDivergence):
        checked.check(51)
    found = seen[0].divergence
    assert found == Divergence(5, "value", 50, 51)
    assert found is not None and found.context == ("#3 = 30", "#4 = 40")
    short = stream(tmp_path, seen, [30, 40, 50], offset=3, stored_count=6)
    short.extend([1, 2])
    with pytest.raises(ReplayDivergence):
        short.check_complete()
    assert seen[-1].divergence == Divergence(2, "length", 6, 2, "length")


def first_difference(want: Sequence[int], got: Sequence[int]) -> Divergence | None:
    for index, (a, b) in enumerate(zip(want, got, strict=False)):
        if a != b:
            return Divergence(index, "value", a, b)
    if len(want) != len(got):
        return Divergence(min(len(want), len(got)), "length", len(want), len(got), "length")
    return None


def test_a_batch_is_compared_in_one_call_at_its_positions(tmp_path: Path) -> None:
    seen: list[Mismatch] = []
    calls: list[tuple[list[int], list[int]]] = []

    def spy(want: Sequence[int], got: Sequence[int]) -> Divergence | None:
        calls.append((list(want), list(got)))
        return first_difference(want, got)

    checked = stream(tmp_path, seen, [30, 40, 50, 60], offset=2, stored_count=6)
    checked.check_batch([1, 2, 30], spy)  # the first two were overwritten in the stored ring
    checked.check_batch([40, 50], spy)
    assert calls == [([30], [30]), ([40, 50], [40, 50])]
    sides: Sides = []
    failing = stream(tmp_path, seen, [30, 40, 50, 60], sides, offset=2, stored_count=6)
    failing.check_batch([1, 2, 30], first_difference)
    with pytest.raises(ReplayDivergence):
        failing.check_batch([40, 55, 60], first_difference)
    assert seen[-1].divergence == Divergence(4, "value", 50, 55)
    assert seen[-1].context == ("#2 = 30", "#3 = 40")
    assert sides[-1] == (50, 55)
    beyond = stream(tmp_path, seen, [30, 40], sides, offset=2, stored_count=4)
    with pytest.raises(ReplayDivergence):
        beyond.check_batch([0, 0, 30, 40, 7, 8], first_difference)
    assert seen[-1].divergence == Divergence(4, "length", 4, 6, "length")
    assert sides[-1] == (None, 7)


def encode(items: Sequence[int]) -> bytes:
    packed: bytes = msgpack.packb(list(items))
    return packed


def decode(data: bytes, source: str) -> list[int]:
    value: list[int] = msgpack.unpackb(data)
    return value


def test_checked_recorder_records_and_checks_a_list(tmp_path: Path) -> None:
    seen: list[Mismatch] = []
    recorder = CheckedRecorder(target(tmp_path, seen), encode, decode, compare, render)
    recorder.extend([1, 2, 3])
    finished = recorder.finish()
    assert (finished.records, decode(finished.data, ""), recorder.expected) == (3, [1, 2, 3], None)
    checking = CheckedRecorder(
        target(tmp_path, seen, finished.data), encode, decode, compare, render
    )
    checking.extend([1, 2])
    assert checking.expected == [1, 2, 3] and len(checking) == 2
    with pytest.raises(ReplayDivergence, match="record count differs: expected 3, got 2"):
        checking.check_complete()
    extra = CheckedRecorder(target(tmp_path, seen, finished.data), encode, decode, compare, render)
    extra.extend([1, 2, 3])
    with pytest.raises(ReplayDivergence, match="an item beyond the end of the stored recording"):
        extra.append(4)
