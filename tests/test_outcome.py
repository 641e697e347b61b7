"""Recording outcomes are one enum: the summary line counts its members in their order, an
xdist worker sends them as their text and the controller reads them back, and a text the
controller does not know is reported apart instead of ending the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_replay.outcome import Outcome
from pytest_replay.report import Mismatch
from pytest_replay.session import UsageTally

# The summary line's words and order, as users read them (and as they were before the enum).
SUMMARY_ORDER = [
    "recorded",
    "verified",
    "diverged",
    "missing",
    "corrupted",
    "unused",
    "pruned",
    "recovered",
    "not recorded",
    "not recorded (test failed)",
    "not recorded (store failed)",
]


def test_the_members_are_the_summary_words_in_summary_order() -> None:
    assert [outcome.value for outcome in Outcome] == SUMMARY_ORDER
    assert {outcome for outcome in Outcome if outcome.fails} == {
        Outcome.DIVERGED,
        Outcome.MISSING,
        Outcome.CORRUPTED,
    }


@pytest.mark.parametrize(
    ("reason", "outcome"),
    [
        ("diverged", Outcome.DIVERGED),
        ("missing", Outcome.MISSING),
        ("unproduced", Outcome.DIVERGED),
        ("nondeterministic", Outcome.DIVERGED),
    ],
)
def test_a_mismatch_counts_as_its_outcome(reason: str, outcome: Outcome) -> None:
    mismatch = Mismatch("t.py::test", "ring", "ring", None, reason)  # type: ignore[arg-type]
    assert mismatch.outcome is outcome


def _through_json(tally: UsageTally) -> dict[str, object]:
    # What xdist carries from a worker to the controller: JSON, which holds no enums.
    data: dict[str, object] = json.loads(json.dumps(tally.to_json()))
    return data


def test_a_worker_tally_merges_back_into_members(tmp_path: Path) -> None:
    worker = UsageTally()
    worker.add(Outcome.VERIFIED, tmp_path / "a")
    worker.add(Outcome.VERIFIED, tmp_path / "b")
    worker.add(Outcome.NOT_RECORDED_TEST_FAILED, tmp_path / "c")
    worker.add(Outcome.DIVERGED)
    data = _through_json(worker)
    assert data["counts"] == {"verified": 2, "not recorded (test failed)": 1, "diverged": 1}
    controller = UsageTally()
    controller.add(Outcome.VERIFIED)
    controller.merge(data)
    controller.merge(data)
    assert controller.counts == {
        Outcome.VERIFIED: 5,
        Outcome.NOT_RECORDED_TEST_FAILED: 2,
        Outcome.DIVERGED: 2,
    }
    assert all(type(outcome) is Outcome for outcome in controller.counts)
    assert controller.paths[:3] == [
        (Outcome.VERIFIED, str(tmp_path / "a")),
        (Outcome.VERIFIED, str(tmp_path / "b")),
        (Outcome.NOT_RECORDED_TEST_FAILED, str(tmp_path / "c")),
    ]
    assert controller.unknown == {}


def test_an_outcome_the_controller_does_not_know_is_kept_apart() -> None:
    data = {"counts": {"verified": 3, "quarantined": 2}, "paths": [["quarantined", "x"]]}
    controller = UsageTally()
    controller.merge(data)
    assert controller.counts == {Outcome.VERIFIED: 3}
    assert controller.unknown == {"quarantined": 2}
    assert controller.paths == []
    # Handed on again (a controller's tally read by another), the unknown text survives.
    assert _through_json(controller)["counts"] == {"verified": 3, "quarantined": 2}


XDIST_SUITE = """
import pytest

@pytest.mark.parametrize("n", range(4))
def test_values(replay, n):
    replay.data("v", {"n": n, "square": n * n})
"""

# Stands in for a worker running a newer pytest-replay: after the plugin wrote the worker's
# tally (and before xdist sends it), one outcome this version does not know is added.
NEWER_WORKER = """
import pytest

@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_sessionfinish(session):
    result = yield
    tally = getattr(session.config, "workeroutput", {}).get("pytest_replay")
    if tally is not None:
        tally["counts"]["quarantined"] = 1
        tally["paths"].append(["quarantined", "somewhere"])
    return result
"""


def _replay_lines(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if line.startswith("replay: ")]


def test_xdist_counts_merge_into_the_summary_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_values=XDIST_SUITE)
    recorded = pytester.runpytest("--replay-record", "-n", "2")
    recorded.assert_outcomes(passed=4)
    assert _replay_lines(recorded)[0] == "replay: 4 recorded (store: __replay__)"
    pytester.makepyfile(test_values=XDIST_SUITE.replace("n * n", "n * n + (n == 3)"))
    checked = pytester.runpytest("--replay-verify", "-n", "2", "-v")
    checked.assert_outcomes(passed=3, failed=1)
    assert _replay_lines(checked)[0] == "replay: 3 verified, 1 diverged (store: __replay__)"
    shown = [line.strip() for line in checked.outlines if line.startswith("  verified: ")]
    assert len(shown) == 3 and shown == sorted(shown)
    assert [line for line in checked.outlines if line.startswith("  diverged: ")] != []


def test_xdist_reports_an_unknown_worker_outcome_without_failing(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_values=XDIST_SUITE)
    pytester.makeconftest(NEWER_WORKER)
    recorded = pytester.runpytest("--replay-record", "-n", "2", "-v")
    recorded.assert_outcomes(passed=4)
    assert recorded.ret == pytest.ExitCode.OK
    lines = _replay_lines(recorded)
    assert lines[0] == "replay: 4 recorded (store: __replay__)"
    assert (
        "replay: 2 outcome(s) from an xdist worker are unknown here and not counted: "
        "'quarantined' (2). Fix: run the same pytest-replay version on every worker."
    ) in lines
    assert "somewhere" not in recorded.stdout.str()
    assert "INTERNALERROR" not in recorded.stdout.str() + recorded.stderr.str()
