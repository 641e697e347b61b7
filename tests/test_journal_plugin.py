"""The ``journal`` and ``reduce`` kinds through the real plugin (pytester):
record -> verify -> break -> verify fails with a readable report."""

from __future__ import annotations

import json

import pytest

from pytest_replay.journal import (
    DeviceCmd,
    FileJournal,
    KernelCmd,
    RngSeed,
    decode_entry,
    result_from_msgpack,
)
from pytest_replay.store import MANIFEST_NAME

JOURNAL_TEST = """
from pytest_replay.journal import DeviceCmd, KernelCmd, ReplayMode, RngSeed

def test_device(replay):
    journal = replay.journal("device")
    journal.record(RngSeed("/w/rng", 42))
    journal.record(DeviceCmd(0, "memcpy_h2d", "bytes=4096"))
    journal.record(KernelCmd(0, "launch", "{grid}"))
    journal.record(DeviceCmd(0, "memcpy_d2h", "bytes=4096"))
    # The recorder is a full harness: it replays its own working journal.
    journal.flush()
    journal.set_mode(ReplayMode.REPLAY)
    assert journal.load_from_journal() == 4
    seen = []
    journal.replay_all(seen.append)
    assert [type(e).__name__ for e in seen] == ["RngSeed", "DeviceCmd", "KernelCmd", "DeviceCmd"]
"""

REDUCE_TEST = """
from pytest_replay.journal import (
    EffectIntent, EffectResult, JournalRecord, JournalRecordKind as K, OpaquePayload,
)

def test_run(replay):
    records = [
        JournalRecord("r1", 1, K.MESSAGE, OpaquePayload("message")),
        JournalRecord("r2", 2, K.EFFECT_INTENT, EffectIntent("charge", idempotency_key="k")),
    ]
    if {finished}:
        records.append(JournalRecord("r3", 3, K.EFFECT_RESULT, EffectResult("charge")))
    reduced = replay.reduce("run", records, mode="resume")
    assert reduced.result.latest_journal_seq == len(records)
"""


def summary_line(result: pytest.RunResult) -> str:
    lines = [line for line in result.outlines if line.startswith("replay: ")]
    assert lines, result.stdout.str()
    return lines[0]


def test_journal_record_verify_break(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_device=JOURNAL_TEST.format(grid="grid=(1,1,1)"))
    recorded = pytester.runpytest("--replay-record")
    recorded.assert_outcomes(passed=1)
    assert summary_line(recorded) == "replay: 1 recorded (store: __replay__)"
    folder = pytester.path / "__replay__" / "test_device" / "test_device"
    stored = folder / "device.jrnl"
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    entry = manifest["recordings"]["device"]
    assert (entry["kind"], entry["records"]) == ("journal", 4)
    assert entry["meta"] == {"persistence_id": "device", "volatile": ["ts_micros"]}
    # The stored recording is a FileJournal with the volatile timestamps zeroed.
    with FileJournal(stored) as journal:
        entries = [decode_entry(m.payload) for m in journal.replay_messages("device")]
    assert entries == [
        RngSeed("/w/rng", 42),
        DeviceCmd(0, "memcpy_h2d", "bytes=4096"),
        KernelCmd(0, "launch", "grid=(1,1,1)"),
        DeviceCmd(0, "memcpy_d2h", "bytes=4096"),
    ]
    before = stored.read_bytes()

    verified = pytester.runpytest("--replay-verify")
    verified.assert_outcomes(passed=1)
    assert summary_line(verified) == "replay: 1 verified (store: __replay__)"
    assert stored.read_bytes() == before  # real timestamps differ; the recording does not

    pytester.makepyfile(test_device=JOURNAL_TEST.format(grid="grid=(2,1,1)"))
    broken = pytester.runpytest("--replay-verify")
    broken.assert_outcomes(failed=1)
    assert "1 diverged" in summary_line(broken)
    broken.stdout.fnmatch_lines(
        [
            "*recording 'device' (kind journal)*",
            "*first divergence at record #2, field payload*",
            "*expected: 'grid=(1,1,1)'*",
            "*actual:   'grid=(2,1,1)'*",
            "*#0 RngSeed(actor_path='/w/rng', seed=42)*",
            "*#1 DeviceCmd(ts_micros=0, name='memcpy_h2d', payload='bytes=4096')*",
            "*ignored (volatile) fields: ts_micros*",
            "*pytest *test_device.py::test_device --replay-record*",
        ]
    )
    # The failure points at the user's line, not into the recorder.
    broken.stdout.fnmatch_lines(['*journal.record(KernelCmd(0, "launch", "grid=(2,1,1)"))*'])
    assert stored.read_bytes() == before


def test_reduce_record_verify_break(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_run=REDUCE_TEST.format(finished=True))
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    folder = pytester.path / "__replay__" / "test_run" / "test_run"
    stored = folder / "run.jreduce"
    result = result_from_msgpack(stored.read_bytes())
    assert (result.status.value, result.mode.value, result.resume_allowed) == (
        "complete",
        "resume_replay",
        True,
    )
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["recordings"]["run"]["kind"] == "reduce"

    verified = pytester.runpytest("--replay-verify")
    verified.assert_outcomes(passed=1)
    assert summary_line(verified) == "replay: 1 verified (store: __replay__)"

    pytester.makepyfile(test_run=REDUCE_TEST.format(finished=False))
    broken = pytester.runpytest("--replay-verify")
    broken.assert_outcomes(failed=1)
    broken.stdout.fnmatch_lines(
        [
            "*recording 'run' (kind reduce)*",
            "*replay result of 2 journal records differs*",
            "*first divergence at status*",
            "*expected: 'complete'*",
            "*actual:   'repair_needed'*",
            "*stored: mode=resume_replay status=complete*",
        ]
    )


def test_journal_missing_entries_fail_at_the_end_of_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_short="""
        from pytest_replay.journal import RngSeed

        COUNT = {count}

        def test_short(replay):
            journal = replay.journal("seeds")
            for i in range(COUNT):
                journal.record(RngSeed("a", i))
        """.replace("{count}", "3")
    )
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    source = (pytester.path / "test_short.py").read_text().replace("COUNT = 3", "COUNT = 2")
    (pytester.path / "test_short.py").write_text(source)
    result = pytester.runpytest("--replay-verify")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) + outcomes.get("errors", 0) == 1, outcomes
    result.stdout.fnmatch_lines(
        [
            "*the test recorded 2 of the 3 stored entries*",
            "*record count differs: expected 3, got 2 (first unmatched record #2)*",
            "*#1 RngSeed(actor_path='a', seed=1)*",
        ]
    )
