"""The ``replication`` recording kind, driven with hand-built targets."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_replay.diff import Divergence
from pytest_replay.kinds import KindRegistry, RecordingTarget
from pytest_replay.replication import (
    Crash,
    LinkSpec,
    NetworkSchedule,
    ScheduleError,
    TraceFormatError,
    WriteStream,
)
from pytest_replay.replication.kind import REPLICATION_KIND, ReplicationRecorder, kinds
from pytest_replay.report import Mismatch, ReplayDivergence, ReplayUsageError


def schedule(seed: int = 1, total: int = 30) -> NetworkSchedule:
    return NetworkSchedule(
        seed=seed,
        nodes=(1, 2, 3),
        end_ms=2_500,
        quiet_after_ms=1_500,
        link=LinkSpec(latency_ms=3, jitter_ms=2, drop=0.05),
        writes=(WriteStream(500, 50, 3, total),),
        crashes=(Crash(3, 700, 1_000),),
    )


def target(tmp_path: Path, expected: bytes | None = None, seen: list[Mismatch] | None = None):
    def keep(mismatch: Mismatch) -> None:
        if seen is not None:
            seen.append(mismatch)

    return RecordingTarget(
        "test_x.py::test_cluster",
        "cluster",
        "replication",
        tmp_path / "cluster.rpltrace",
        tmp_path,
        expected=expected,
        on_mismatch=keep,
    )


def record(tmp_path: Path, sched: NetworkSchedule) -> bytes:
    recorder = ReplicationRecorder(target(tmp_path), sched)
    recorder.run()
    finished = recorder.finish()
    assert finished.records == len(recorder) > 0
    assert finished.meta == {"seed": sched.seed, "nodes": 3, "end_ms": 2_500, "simulated_ms": 2_500}
    return finished.data


def test_kind_is_registered_and_counts(tmp_path: Path) -> None:
    [kind] = kinds()
    assert kind is REPLICATION_KIND and kind.extension == ".rpltrace"
    assert "replication" in KindRegistry(kinds())
    recorder = ReplicationRecorder(target(tmp_path), schedule())
    recorder.run()
    assert kind.count(recorder.finish().data) == len(recorder.events()) > 100


def test_record_is_byte_identical_and_verifies(tmp_path: Path) -> None:
    data = record(tmp_path, schedule())
    assert record(tmp_path, schedule()) == data
    verifier = ReplicationRecorder(target(tmp_path, data), schedule())
    verifier.run()
    verifier.check_complete()
    assert verifier.finish().data == data
    assert REPLICATION_KIND.diff(data, data, {}) is None


def test_verify_fails_live_at_the_first_divergent_event(tmp_path: Path) -> None:
    data = record(tmp_path, schedule(total=30))
    seen: list[Mismatch] = []
    # Same schedule, but the stored trace was tampered with in the middle.
    from pytest_replay.replication import decode_trace, encode_trace

    stored = decode_trace(data)
    index = len(stored.events) // 2
    stored.events[index][0] += 1
    tampered = encode_trace(stored.schedule, stored.events)
    verifier = ReplicationRecorder(target(tmp_path, tampered, seen), schedule(total=30))
    with pytest.raises(ReplayDivergence) as caught:
        verifier.run()
    assert len(verifier) == index + 1  # stopped inside the simulation, at that event
    [mismatch] = seen
    assert mismatch.divergence == Divergence(
        index, "time_ms", stored.events[index][0], stored.events[index][0] - 1
    )
    assert len(mismatch.context) == 2 and mismatch.context[1].startswith(f"#{index - 1} t=")
    assert "expected #" in mismatch.detail
    assert "first divergence at record" in str(caught.value)


def test_verify_rejects_another_schedule(tmp_path: Path) -> None:
    data = record(tmp_path, schedule(seed=1))
    seen: list[Mismatch] = []
    with pytest.raises(ReplayDivergence):
        ReplicationRecorder(target(tmp_path, data, seen), schedule(seed=2))
    assert seen[0].divergence == Divergence(None, 'schedule["seed"]', 1, 2)
    other = record(tmp_path, schedule(seed=2))
    found = REPLICATION_KIND.diff(data, other, {})
    assert found is not None and found[0].field == 'schedule["seed"]'


def test_verify_reports_missing_and_extra_events(tmp_path: Path) -> None:
    data = record(tmp_path, schedule())
    short = ReplicationRecorder(target(tmp_path, data), schedule())
    short.run_until(1_000)
    with pytest.raises(ReplayDivergence, match="record count differs") as caught:
        short.check_complete()
    missing = caught.value.mismatch
    assert missing.detail.startswith(f"the simulation stopped before stored event #{len(short)} t=")
    assert [line.split(" ")[0] for line in missing.context] == [
        f"#{len(short) - 2}",
        f"#{len(short) - 1}",
    ]
    from pytest_replay.replication import decode_trace, encode_trace

    stored = decode_trace(data)
    cut = encode_trace(stored.schedule, stored.events[:10])
    longer = ReplicationRecorder(target(tmp_path, cut), schedule())
    with pytest.raises(ReplayDivergence, match="beyond the end of the stored trace: #10 t="):
        longer.run()
    found = REPLICATION_KIND.diff(cut, data, {})
    assert found is not None and found[0].kind == "length" and found[0].index == 10


def test_diff_reports_the_first_event_with_context(tmp_path: Path) -> None:
    from pytest_replay.replication import decode_trace, encode_trace

    a = record(tmp_path, schedule(total=30))
    stored = decode_trace(a)
    stored.events[40][4] = {**stored.events[40][4], "extra": 1}
    found = REPLICATION_KIND.diff(a, encode_trace(stored.schedule, stored.events), {})
    assert found is not None
    divergence, context = found
    assert divergence == Divergence(40, "attrs.extra", None, 1)
    assert [line.split(" ")[0] for line in context] == ["#38", "#39"]


def test_usage_errors(tmp_path: Path) -> None:
    recorder = ReplicationRecorder(target(tmp_path))
    with pytest.raises(ReplayUsageError, match="no simulation yet"):
        recorder.run()
    recorder.simulate(schedule())
    with pytest.raises(ReplayUsageError, match="already holds a simulation"):
        recorder.simulate(schedule())
    with pytest.raises(ScheduleError, match="not a NetworkSchedule"):
        ReplicationRecorder(target(tmp_path), "nodes=3")  # type: ignore[arg-type]
    with pytest.raises(TraceFormatError, match=r"cluster\.rpltrace: truncated"):
        ReplicationRecorder(target(tmp_path, b"RPL"))
