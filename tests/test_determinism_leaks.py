"""``replay_determinism`` catches each classic leak, names what exposed it, and never flags a
deterministic test."""

from __future__ import annotations

import pytest

from pytest_replay.determinism import Perturbation, child_hash_seed

IN_PROCESS_LEAKS = """
import datetime
import random
import tempfile
import time

import pytest

@pytest.mark.replay_determinism(runs=2)
def test_unseeded_random(replay):
    replay.data("v", random.random())

@pytest.mark.replay_determinism(runs=2)
def test_wall_clock_seconds(replay):
    replay.data("v", int(time.time()))

@pytest.mark.replay_determinism(runs=3)
def test_today(replay):
    replay.data("v", datetime.datetime.now().strftime("%Y-%m-%d"))

@pytest.mark.replay_determinism(runs=2)
def test_temp_path(replay):
    replay.data("v", tempfile.gettempdir())

@pytest.mark.replay_determinism(runs=3)
def test_deterministic(replay, tmp_path):
    rng = random.Random(replay.seed)
    (tmp_path / "out.txt").write_text("x")
    names = {"sense", "plan", "control"}
    replay.data("v", {"draws": [rng.random() for _ in range(3)], "names": sorted(names),
                      "file": (tmp_path / "out.txt").read_text()})
"""

CHILD_LEAKS = """
import os

import pytest

@pytest.mark.replay_determinism(runs=2, subprocess=True)
def test_set_order(replay):
    replay.data("v", list({"sense", "plan", "control", "telemetry", "power", "drive"}))

@pytest.mark.replay_determinism(runs=2, subprocess=True)
def test_pid(replay):
    replay.data("v", os.getpid())

@pytest.mark.replay_determinism(runs=2, subprocess=True)
def test_deterministic_in_a_child(replay):
    replay.data("v", {"names": sorted({"a", "b", "c"}), "store": replay.store.root.name,
                      "seed": replay.seed})
"""


def failure_of(result: pytest.RunResult, test: str) -> str:
    text = result.stdout.str()
    start = text.index(f"_ {test} _")
    end = text.find("\n____", start + 1)
    return text[start : end if end >= 0 else len(text)]


def test_in_process_leaks_are_caught_and_named(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_leaks=IN_PROCESS_LEAKS)
    result = pytester.runpytest("--replay-record")
    result.assert_outcomes(passed=1, failed=4)
    assert "test_deterministic" not in "".join(line for line in result.outlines if "FAILED" in line)
    assert "exposed without any perturbation" in failure_of(result, "test_unseeded_random")
    clock = failure_of(result, "test_wall_clock_seconds")
    assert "run 2 vs run 1 (wall clock shifted +1 day(s)" in clock
    assert "exposed by: wall clock shifted +1 day(s)" in clock
    assert "expected:" in clock  # the first difference
    # runs=3: run 2 is a day ahead, run 3 two days behind; either exposes the date.
    assert "exposed by: wall clock shifted +1 day(s)" in failure_of(result, "test_today")
    assert "exposed by: another temp folder" in failure_of(result, "test_temp_path")
    manifests = list((pytester.path / "__replay__").rglob("manifest.json"))
    assert len(manifests) == 1  # only the deterministic test recorded


def test_child_leaks_are_caught_even_when_the_parent_pins_the_hash_seed(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The parent runs with PYTHONHASHSEED=1, which every child used to get as well; and a
    # store outside the default one, which a child without the parent's options missed.
    monkeypatch.setenv("PYTHONHASHSEED", "1")
    pytester.makepyfile(test_child=CHILD_LEAKS)
    result = pytester.runpytest_subprocess("--replay-dir", "recordings")
    result.assert_outcomes(passed=1, failed=2)
    set_order = failure_of(result, "test_set_order")
    assert "PYTHONHASHSEED=2" in set_order
    assert "exposed by: the child process (another PYTHONHASHSEED" in set_order
    assert "exposed by: the child process" in failure_of(result, "test_pid")


def test_perturbations_of_later_runs() -> None:
    second, third = Perturbation.for_run(2), Perturbation.for_run(3)
    assert second.clock_shift_s == 86_400 and third.clock_shift_s == -2 * 86_400
    assert second.other_temp and second.switch_interval != third.switch_interval
    assert Perturbation.from_json(second.to_json()) == second
    assert [part.describe() for part in second.parts()] == [
        "wall clock shifted +1 day(s)",
        "thread switch interval 0.0001 s",
        "another temp folder",
    ]


@pytest.mark.parametrize("parent", [None, "random", "0", "1", "4294967295"])
def test_a_child_never_gets_the_parents_hash_seed(parent: str | None) -> None:
    for run in (2, 3, 9):
        assert str(child_hash_seed(run, parent)) != parent
        assert 0 <= child_hash_seed(run, parent) < 2**32
