"""Readers under corruption: for every ``corrupted_logs`` example the reader raises exactly
the expected error, or replays something that differs from the original; it never raises
anything else, never hangs, and never allocates much more than the file it reads."""

from __future__ import annotations

import contextlib
import signal
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import Phase, event, find, given, settings

from pytest_replay import strategies as rst
from pytest_replay.diff import first_divergence
from pytest_replay.errors import ReplayError
from pytest_replay.fleet import FleetLogReader, Step
from pytest_replay.journal import decode_journal, first_journal_divergence, load_journal_records
from pytest_replay.replication import decode_trace
from pytest_replay.ringlog import RingLog, read_ring_image, records_to_array

#: Allocation allowed while decoding: a multiple of the file size (decoded Python
#: objects are larger than their encoding) plus a constant for interpreter noise.
ALLOC_FACTOR = {"ring": 3, "journal": 32, "fleet": 32, "records": 32, "trace": 32}
ALLOC_CONSTANT = 128 * 1024
#: Seconds one decode may take before the test calls it a hang.
HANG_SECONDS = 20


@contextlib.contextmanager
def no_hang(seconds: int = HANG_SECONDS) -> Iterator[None]:
    def expired(signum: int, frame: object) -> None:
        raise AssertionError(f"the reader did not finish within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _read_ring(path: Path) -> Any:
    with RingLog.open(path, read_only=True) as log:
        return log.records()


def _read_journal(path: Path) -> Any:
    return decode_journal(path.read_bytes(), str(path))


def _read_fleet(path: Path) -> Any:
    reader = FleetLogReader(path)
    steps = [Step(s.step_id, s.timestamp_ns, tuple(s.messages)) for s in reader.iter_steps()]
    return (*reader.lifecycle, *steps, *reader.keyframes)


def _read_trace(path: Path) -> Any:
    return decode_trace(path.read_bytes(), str(path)).events


READERS: dict[str, Callable[[Path], Any]] = {
    "ring": _read_ring,
    "journal": _read_journal,
    "fleet": _read_fleet,
    "records": load_journal_records,
    "trace": _read_trace,
}


def _differs(case: rst.Corrupted, replayed: Any) -> bool:
    if case.format == "ring":
        # Raw words: a flipped failure-class bit must not hide behind decoding.
        return first_divergence(records_to_array(case.original), replayed, ignore=()) is not None
    if case.format == "journal":
        return first_journal_divergence(case.original, replayed, ignore=()) is not None
    return tuple(replayed) != tuple(case.original)


def _check(case: rst.Corrupted, folder: Path) -> None:
    path = case.write_to(folder)
    size = sum(len(data) for _name, data in case.files)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with no_hang():
            try:
                replayed = READERS[case.format](path)
            except ReplayError as exc:
                assert type(exc) is case.expected_error, (
                    f"{case.corruption}: expected {case.expected_error}, got {exc!r}"
                )
                assert "Fix:" in str(exc)
                replayed = None
                outcome = type(exc).__name__
            else:
                outcome = "replayed, differs"
        # Counted per kind in --hypothesis-show-statistics (docs/formats.md quotes a run).
        event(f"{case.corruption.kind} -> {outcome}")
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= ALLOC_FACTOR[case.format] * size + ALLOC_CONSTANT, (case.corruption, peak, size)
    if replayed is not None:
        assert case.expected_error is None, (
            f"{case.corruption}: the reader accepted damage it must reject with "
            f"{case.expected_error.__name__}"
        )
        assert _differs(case, replayed), f"{case.corruption}: replay equals the original"


@given(case=rst.corrupted_logs("ring"))
def test_ring_reader_meets_every_corruption(tmp_path_factory, case: rst.Corrupted) -> None:
    _check(case, tmp_path_factory.mktemp("ring"))


@given(case=rst.corrupted_logs("ring"))
def test_in_memory_ring_decode_meets_every_corruption(case: rst.Corrupted) -> None:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        try:
            image = read_ring_image(case.data, "case.vrrl")
        except ReplayError as exc:
            assert type(exc) is case.expected_error, (case.corruption, exc)
            image = None
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= ALLOC_FACTOR["ring"] * len(case.data) + ALLOC_CONSTANT
    if image is not None:
        assert case.expected_error is None, case.corruption
        assert _differs(case, image.records), case.corruption


@given(case=rst.corrupted_logs("journal"))
def test_journal_reader_meets_every_corruption(tmp_path_factory, case: rst.Corrupted) -> None:
    _check(case, tmp_path_factory.mktemp("journal"))


@given(case=rst.corrupted_logs("fleet"))
def test_fleet_reader_meets_every_corruption(tmp_path_factory, case: rst.Corrupted) -> None:
    _check(case, tmp_path_factory.mktemp("fleet"))


@given(case=rst.corrupted_logs("records"))
def test_record_file_reader_meets_every_corruption(tmp_path_factory, case: rst.Corrupted) -> None:
    _check(case, tmp_path_factory.mktemp("records"))


@given(case=rst.corrupted_logs("trace"))
def test_trace_reader_meets_every_corruption(tmp_path_factory, case: rst.Corrupted) -> None:
    _check(case, tmp_path_factory.mktemp("trace"))


@pytest.mark.parametrize(
    ("fmt", "kind"),
    [(fmt, kind) for fmt, kinds in rst.CORRUPTION_KINDS.items() for kind in kinds],
)
def test_every_corruption_kind_is_met(tmp_path_factory, fmt: str, kind: str) -> None:
    """Each kind on its own, so a rarely drawn kind is still exercised in every run."""

    @settings(max_examples=8)
    @given(case=rst.corrupted_logs(fmt, corruptions=[kind]))  # type: ignore[arg-type]
    def run(case: rst.Corrupted) -> None:
        assert case.corruption.kind == kind
        _check(case, tmp_path_factory.mktemp(kind))

    run()


def test_the_allocation_bound_catches_a_reader_that_trusts_the_header() -> None:
    """The bound can fail: a reader sizing its buffer from the stored capacity breaks it."""

    def naive_peak(case: rst.Corrupted) -> int:
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            capacity = int.from_bytes(case.data[16:24], "little")
            buffer = bytearray(32 + 64 * capacity)  # sized from the header, not the file
            del buffer
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    found = find(
        rst.corrupted_logs("ring", corruptions=["capacity_past_file"]),
        lambda case: naive_peak(case) > ALLOC_FACTOR["ring"] * len(case.data) + ALLOC_CONSTANT,
        settings=settings(database=None, derandomize=True, phases=[Phase.generate]),
    )
    assert found.expected_error is not None
