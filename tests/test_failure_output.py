"""A failure found after the test body returned shows our message, not the hook frames."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

TEST = """
import os

def test_rec(replay):
    replay.data("v", {"a": [1, 2, 3], "b": 3 if os.environ.get("CHANGED") else 2})
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_an_end_of_test_divergence_shows_the_report_without_hook_frames(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, workers: list[str]
) -> None:
    pytester.makepyfile(test_rec=TEST)
    pytester.runpytest("--replay-record", "-p", "no:randomly").assert_outcomes(passed=1)
    monkeypatch.setenv("CHANGED", "1")
    # Under --replay-diff=full the recording is compared whole once the body has returned.
    result = pytester.runpytest(
        "--replay-verify", "--replay-diff=full", "-p", "no:randomly", *workers
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*replay diverged: test_rec.py::test_rec",
            "*first divergence at*b*",
            "*pytest test_rec.py::test_rec --replay-record",
            "FAILED test_rec.py::test_rec - *ReplayDivergence*",
        ]
    )
    failure = result.stdout.str().partition("FAILURES")[2].partition("short test summary")[0]
    assert "replay diverged" in failure
    # No frame of a hook wrapper (pytest's runner, ours, or another plugin's) is shown.
    for frame in ("ihook(", "runner.py", "runtest.py", "_hooks.py", "flaky_pytest_plugin"):
        assert frame not in failure, frame


def test_an_unknown_kind_points_at_the_test_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_kind="""
def test_kind(replay):
    replay.no_such_kind("x")
"""
    )
    result = pytester.runpytest("--replay-record", "-p", "no:randomly")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*replay.no_such_kind*", "E*no recording kind of that name*Fix:*"])
    assert "context.py" not in result.stdout.str()
