"""Whole-picture divergence reports: the summary, the complete diff files, --replay-diff."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pytest_replay.diff import ring_summary, sequence_summary
from pytest_replay.report import REPORT_DIR, ReplayUsageError, render_summary, write_diff_report
from pytest_replay.ringlog import RECORD_MAGIC, RING_RECORD_DTYPE


def ring(count: int) -> np.ndarray:
    records = np.zeros(count, dtype=RING_RECORD_DTYPE)
    records["magic"] = RECORD_MAGIC
    records["timestamp_ns"] = np.arange(count)
    records["slot_idx"] = np.arange(count) % 64
    records["epoch"] = np.arange(count) // 8
    return records


def changed(records: np.ndarray, every: int, count: int) -> np.ndarray:
    """``count`` records changed in their epoch, one every ``every`` records; every third
    of them also in its opcode; timestamps all changed (volatile, not counted)."""
    out = records.copy()
    out["timestamp_ns"] += 1
    at = np.arange(count) * every
    out["epoch"][at] += 1
    out["opcode"][at[::3]] = 9
    return out


SNAPSHOTS = {
    1: [
        "summary: 1 of 100,000 records differ",
        "  by field: epoch 1, opcode 1",
        "  differing records: #0",
    ],
    10: [
        "summary: 10 of 100,000 records differ",
        "  by field: epoch 10, opcode 4",
        "  differing records: #0, #7, #14, #21, #28, and 5 more ranges",
    ],
    90_000: [
        "summary: 90,000 of 100,000 records differ",
        "  by field: epoch 90,000, opcode 30,000",
        "  differing records: #0-#89999",
    ],
}


@pytest.mark.parametrize("count", sorted(SNAPSHOTS))
def test_summary_snapshot(count: int, tmp_path: Path) -> None:
    every = 1 if count == 90_000 else 7
    expected = ring(100_000)
    summary = ring_summary(expected, changed(expected, every, count))
    assert render_summary(summary) == SNAPSHOTS[count]
    assert summary.differing == count == len({d.index for d in summary.differences})
    report = write_diff_report(tmp_path / REPORT_DIR / "t", "ring", {"test": "t.py::t"}, summary)
    lines = report.read_text().splitlines()
    assert lines[0] == "# test: t.py::t"
    assert lines[1:4] == [f"# {line}" for line in SNAPSHOTS[count][:3]]
    body = [line for line in lines if not line.startswith("# ")]
    assert len(body) == count + len(range(0, count, 3))  # every differing field, one a line
    assert body[:2] == ["#0 opcode: 0 -> 9", "#0 epoch: 0 -> 1"]  # in record order
    data = json.loads(report.with_suffix(".json").read_text())
    assert data["differing_records"] == count
    assert len(data["differences"]) == len(body)
    assert (tmp_path / REPORT_DIR / ".gitignore").read_text().splitlines()[-1] == "*"


def test_missing_and_extra_records_at_the_end() -> None:
    expected = ring(20)
    shorter = sequence_summary(list(range(10)), list(range(7)))
    longer = ring_summary(expected, np.concatenate([expected, ring(3)]))
    assert render_summary(shorter)[1:] == [
        "  missing at the end: 3 records (#7-#9, stored but not produced)"
    ]
    assert render_summary(longer) == [
        "summary: 0 of 20 records differ (23 produced)",
        "  extra at the end: 3 records (#20-#22, produced but not stored)",
    ]
    assert longer.first() is not None and longer.first().kind == "length"  # type: ignore[union-attr]


def test_a_symlinked_report_folder_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / REPORT_DIR).symlink_to(elsewhere)
    summary = sequence_summary([1], [2])
    with pytest.raises(ReplayUsageError, match=r"symbolic link.*Fix:"):
        write_diff_report(tmp_path / REPORT_DIR / "t", "x", {}, summary)
    assert not list(elsewhere.iterdir())


TEST_FILE = """
import os
from pytest_replay import RecordedSlot

BUMP = int(os.environ.get("BUMP", "0"))
N = int(os.environ.get("N", "40"))

def test_steps(replay):
    ring = replay.ring()
    for i in range(N):
        epoch = i + (BUMP if i % 10 == 3 else 0)
        ring.append(RecordedSlot(timestamp_ns=i, slot_idx=i, tenant_id=0, opcode=1,
                                 args=(i, 0, 0, 0), epoch=epoch))
    replay.data("summary", {"steps": N, "bump": BUMP})
    print("REACHED THE END")
"""


def test_replay_diff_first_and_full(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_it=TEST_FILE)
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    monkeypatch.setenv("BUMP", "1")
    monkeypatch.setenv("N", "38")
    first = pytester.runpytest("--replay-verify", "-s")
    first.assert_outcomes(failed=1)
    out = first.stdout.str()
    assert "REACHED THE END" not in out
    assert "first divergence at record #3, field epoch" in out
    assert "rerun with --replay-diff=full" in out
    assert not (pytester.path / REPORT_DIR).exists()

    full = pytester.runpytest("--replay-verify", "--replay-diff=full", "-s")
    full.assert_outcomes(failed=1)
    out = full.stdout.str()
    assert "REACHED THE END" in out
    full.stdout.fnmatch_lines(
        [
            "*first divergence at record #3, field epoch",
            "*summary: 4 of 40 records differ (38 produced)",
            "*by field: epoch 4",
            "*differing records: #3, #13, #23, #33",
            "*missing at the end: 2 records (#38-#39, stored but not produced)",
            f"*complete diff: {REPORT_DIR}/*/ring.diff.txt*",
        ]
    )
    assert "also differ (see their reports): 'summary'" in out
    folders = [p for p in (pytester.path / REPORT_DIR).iterdir() if p.is_dir()]
    assert len(folders) == 1
    assert sorted(p.name for p in folders[0].iterdir()) == [
        "ring.diff.json", "ring.diff.txt", "summary.diff.json", "summary.diff.txt",
    ]  # fmt: skip
    text = (folders[0] / "summary.diff.txt").read_text()
    assert '["bump"]: 0 -> 1' in text and '["steps"]: 40 -> 38' in text
    # The store is untouched by a failed verify.
    monkeypatch.delenv("BUMP")
    monkeypatch.delenv("N")
    pytester.runpytest("--replay-verify", "--replay-diff=full").assert_outcomes(passed=1)


def test_replay_diff_rejects_other_values(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--replay-diff=all")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--replay-diff: invalid choice: 'all'*"])


def test_sequence_kinds_summarise_with_their_own_item_diff() -> None:
    import msgpack

    from pytest_replay.kinds import sequence_kind

    plain_kind = sequence_kind("events", ".events")

    old = msgpack.packb([{"t": 1, "v": "a"}, {"t": 2, "v": "b"}, {"t": 3, "v": "c"}])
    new = msgpack.packb([{"t": 1, "v": "a"}, {"t": 9, "v": "x"}])
    assert plain_kind.summarize is not None
    summary = plain_kind.summarize(old, new, {})
    assert render_summary(summary) == [
        "summary: 1 of 3 records differ (2 produced)",
        '  by field: ["t"] 1, ["v"] 1',
        "  differing records: #1",
        "  missing at the end: 1 record (#2, stored but not produced)",
    ]
    only_first = sequence_kind(
        "firsts", ".firsts", item_diff=lambda a, b: None if a == b else ("item", a, b)
    )
    assert only_first.summarize is not None
    assert render_summary(only_first.summarize(old, new, {}))[1] == "  by field: item 1"
