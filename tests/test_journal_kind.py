"""The ``journal`` and ``reduce`` recording kinds, driven through hand-built RecordingTargets:
record -> finish -> verify (same, diverging, short, long), byte-identical recordings, diff."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_replay.journal import (
    DeviceCmd,
    EffectIntent,
    EffectResult,
    FileJournal,
    JournalEntry,
    JournalRecord,
    JournalRecordKind,
    JournalUsageError,
    KernelCmd,
    MissingContentPolicy,
    OpaquePayload,
    ReducerMode,
    ReplayMode,
    ReplayReducerError,
    ReplayStatus,
    RngSeed,
    decode_journal,
    result_from_msgpack,
    write_journal_records,
)
from pytest_replay.journal.kind import (
    JOURNAL_KIND,
    REDUCE_KIND,
    JournalRecorder,
    ReduceRecorder,
    kinds,
)
from pytest_replay.kinds import FinishedRecording, KindRegistry, RecordingTarget, builtin_kinds
from pytest_replay.report import Mismatch, ReplayDivergence


class Ticks:
    def __init__(self, step: int) -> None:
        self.now = 0
        self.step = step

    def __call__(self) -> int:
        self.now += self.step
        return self.now


def target(
    tmp_path: Path,
    name: str = "gpu",
    kind: str = "journal",
    finished: FinishedRecording | None = None,
    seen: list[Mismatch] | None = None,
) -> RecordingTarget:
    ext = JOURNAL_KIND.extension if kind == "journal" else REDUCE_KIND.extension
    scratch = tmp_path / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    sink = seen if seen is not None else []
    return RecordingTarget(
        nodeid="tests/test_x.py::test_y",
        name=name,
        kind=kind,
        stored_path=tmp_path / f"{name}{ext}",
        scratch=scratch,
        expected=None if finished is None else finished.data,
        expected_meta={} if finished is None else dict(finished.meta),
        on_mismatch=sink.append,
    )


def entries() -> list[JournalEntry]:
    return [
        RngSeed("/w/rng", 42),
        DeviceCmd(0, "memcpy", "64"),
        KernelCmd(0, "launch", "grid=1"),
        DeviceCmd(0, "memcpy_d2h", "64"),
    ]


def record_all(recorder: JournalRecorder, items: list[JournalEntry]) -> None:
    for entry in items:
        recorder.record(entry)


def recorded(tmp_path: Path, step: int = 1000, **options: object) -> FinishedRecording:
    recorder = JOURNAL_KIND.open(target(tmp_path), clock=Ticks(step), **options)
    assert isinstance(recorder, JournalRecorder)
    record_all(recorder, entries())
    recorder.check_complete()
    finished = recorder.finish()
    recorder.close()
    return finished


# --------------------------------------------------------------------------- registry


def test_kinds_register_next_to_the_builtin_ones() -> None:
    registry = KindRegistry([*builtin_kinds(), *kinds()])
    assert registry.get("journal") is JOURNAL_KIND
    assert registry.get("reduce") is REDUCE_KIND
    assert registry.for_path(Path("x/gpu.jrnl")) is JOURNAL_KIND
    assert registry.for_path(Path("x/result.jreduce")) is REDUCE_KIND


# --------------------------------------------------------------------------- journal


def test_journal_recorder_is_a_harness_in_record_mode(tmp_path: Path) -> None:
    recorder = JOURNAL_KIND.open(target(tmp_path), clock=Ticks(2000))
    assert isinstance(recorder, JournalRecorder)
    assert recorder.mode is ReplayMode.RECORD and recorder.name == "gpu"
    assert recorder.persistence_id == "gpu"
    stamped = recorder.record(DeviceCmd(999, "memcpy", "x"))
    assert stamped == DeviceCmd(2, "memcpy", "x")
    assert recorder.snapshot() == [stamped] and len(recorder) == 1
    recorder.close()


def test_journal_recording_is_a_file_journal_image_with_ts_zeroed(tmp_path: Path) -> None:
    finished = recorded(tmp_path)
    assert finished.records == 4
    assert finished.meta == {"persistence_id": "gpu", "volatile": ["ts_micros"]}
    assert decode_journal(finished.data, "rec") == entries()  # ts_micros zeroed
    path = tmp_path / "copy.jrnl"
    path.write_bytes(finished.data)
    with FileJournal(path) as journal:
        assert journal.highest_sequence_nr("gpu") == 4


def test_journal_recording_is_byte_identical_across_clocks(tmp_path: Path) -> None:
    assert recorded(tmp_path / "a", step=1000).data == recorded(tmp_path / "b", step=7777).data


def test_journal_with_no_volatile_fields_keeps_timestamps(tmp_path: Path) -> None:
    finished = recorded(tmp_path, volatile=())
    stored = decode_journal(finished.data, "rec")
    assert stored[1] == DeviceCmd(1, "memcpy", "64")  # the clock's second reading: 1 us
    assert finished.meta["volatile"] == []


def test_journal_persistence_id_option(tmp_path: Path) -> None:
    finished = recorded(tmp_path, persistence_id="gpu-0")
    assert decode_journal(finished.data, "rec", persistence_id="gpu-0") == entries()


def test_journal_verify_matching_run_passes(tmp_path: Path) -> None:
    finished = recorded(tmp_path)
    seen: list[Mismatch] = []
    recorder = JOURNAL_KIND.open(target(tmp_path, finished=finished, seen=seen), clock=Ticks(5))
    record_all(recorder, entries())  # type: ignore[arg-type]
    recorder.check_complete()
    assert recorder.finish().data == finished.data
    recorder.close()
    assert seen == []


def test_journal_verify_fails_at_the_first_diverging_entry(tmp_path: Path) -> None:
    finished = recorded(tmp_path)
    seen: list[Mismatch] = []
    recorder = JOURNAL_KIND.open(target(tmp_path, finished=finished, seen=seen))
    assert isinstance(recorder, JournalRecorder)
    recorder.record(RngSeed("/w/rng", 42))
    recorder.record(DeviceCmd(0, "memcpy", "64"))
    with pytest.raises(ReplayDivergence) as info:
        recorder.record(KernelCmd(0, "launch", "grid=2"))
    recorder.close()
    found = info.value.mismatch.divergence
    assert found is not None
    assert (found.index, found.field, found.expected, found.actual) == (
        2,
        "payload",
        "grid=1",
        "grid=2",
    )
    text = str(info.value)
    assert "record #2, field payload" in text and "'grid=1'" in text and "'grid=2'" in text
    assert "#0 RngSeed(actor_path='/w/rng', seed=42)" in text  # context
    assert "ignored (volatile) fields: ts_micros" in text
    assert "--replay-record" in text
    assert seen == [info.value.mismatch]


def test_journal_verify_reports_a_different_entry_type(tmp_path: Path) -> None:
    finished = recorded(tmp_path)
    recorder = JOURNAL_KIND.open(target(tmp_path, finished=finished))
    with pytest.raises(ReplayDivergence) as info:
        recorder.record(DeviceCmd(0, "x", "y"))  # type: ignore[attr-defined]
    recorder.close()
    found = info.value.mismatch.divergence
    assert found is not None and found.field == "type"
    assert (found.expected, found.actual) == ("RngSeed", "DeviceCmd")


def test_journal_verify_compares_timestamps_when_not_volatile(tmp_path: Path) -> None:
    finished = recorded(tmp_path, volatile=())
    recorder = JOURNAL_KIND.open(
        target(tmp_path, finished=finished), clock=Ticks(3000), volatile=()
    )
    recorder.record(RngSeed("/w/rng", 42))  # type: ignore[attr-defined]
    with pytest.raises(ReplayDivergence) as info:
        recorder.record(DeviceCmd(0, "memcpy", "64"))  # type: ignore[attr-defined]
    recorder.close()
    found = info.value.mismatch.divergence
    assert found is not None and found.field == "ts_micros"
    assert (found.expected, found.actual) == (1, 3)


def test_journal_verify_too_many_entries(tmp_path: Path) -> None:
    finished = recorded(tmp_path)
    recorder = JOURNAL_KIND.open(target(tmp_path, finished=finished))
    assert isinstance(recorder, JournalRecorder)
    record_all(recorder, entries())
    with pytest.raises(ReplayDivergence) as info:
        recorder.record(RngSeed("extra", 1))
    recorder.close()
    found = info.value.mismatch.divergence
    assert found is not None and found.kind == "length"
    assert (found.index, found.expected, found.actual) == (4, 4, 5)
    assert "beyond the end" in str(info.value)


def test_journal_verify_too_few_entries(tmp_path: Path) -> None:
    finished = recorded(tmp_path)
    recorder = JOURNAL_KIND.open(target(tmp_path, finished=finished))
    assert isinstance(recorder, JournalRecorder)
    record_all(recorder, entries()[:2])
    with pytest.raises(ReplayDivergence) as info:
        recorder.check_complete()
    recorder.close()
    found = info.value.mismatch.divergence
    assert found is not None and found.kind == "length"
    assert (found.index, found.expected, found.actual) == (2, 4, 2)
    assert "recorded 2 of the 4" in str(info.value)


def test_journal_dropped_records_do_not_count(tmp_path: Path) -> None:
    finished = recorded(tmp_path)
    recorder = JOURNAL_KIND.open(target(tmp_path, finished=finished))
    assert isinstance(recorder, JournalRecorder)
    recorder.set_mode(ReplayMode.OFF)
    recorder.record(RngSeed("noise", 0))  # dropped: not compared, not recorded
    recorder.set_mode(ReplayMode.RECORD)
    record_all(recorder, entries())
    recorder.check_complete()
    recorder.close()


def test_journal_recorder_replays_its_own_working_journal(tmp_path: Path) -> None:
    recorder = JOURNAL_KIND.open(target(tmp_path), clock=Ticks(1000))
    assert isinstance(recorder, JournalRecorder)
    record_all(recorder, entries())
    live = recorder.snapshot()
    recorder.flush()
    recorder.set_mode(ReplayMode.REPLAY)
    assert recorder.load_from_journal() == 4
    seen: list[JournalEntry] = []
    recorder.replay_all(seen.append)
    assert seen == live
    # The loaded replay source is not part of the recording.
    assert recorder.finish().records == 4
    recorder.close()


def test_journal_volatile_must_name_entry_fields(tmp_path: Path) -> None:
    with pytest.raises(JournalUsageError, match="unknown journal entry field"):
        JOURNAL_KIND.open(target(tmp_path), volatile=("timestamp_ns",))
    with pytest.raises(JournalUsageError, match="sequence of field names"):
        JOURNAL_KIND.open(target(tmp_path), volatile="ts_micros")


def test_journal_diff_and_count(tmp_path: Path) -> None:
    left = recorded(tmp_path / "a")
    recorder = JOURNAL_KIND.open(target(tmp_path / "b"))
    assert isinstance(recorder, JournalRecorder)
    changed = entries()
    changed[3] = DeviceCmd(0, "memcpy_d2h", "128")
    record_all(recorder, changed)
    right = recorder.finish()
    recorder.close()
    assert JOURNAL_KIND.count(left.data) == 4
    assert JOURNAL_KIND.diff(left.data, left.data, left.meta) is None
    found = JOURNAL_KIND.diff(left.data, right.data, left.meta)
    assert found is not None
    divergence, context = found
    assert (divergence.index, divergence.field) == (3, "payload")
    assert context == (
        "#1 DeviceCmd(ts_micros=0, name='memcpy', payload='64')",
        "#2 KernelCmd(ts_micros=0, kind='launch', payload='grid=1')",
    )
    short = JOURNAL_KIND.open(target(tmp_path / "c"))
    record_all(short, entries()[:1])  # type: ignore[arg-type]
    shorter = short.finish()
    short.close()
    found = JOURNAL_KIND.diff(left.data, shorter.data, left.meta)
    assert found is not None and found[0].kind == "length"
    assert JOURNAL_KIND.ignored(left.meta) == ("ts_micros",)


# --------------------------------------------------------------------------- reduce


def journal_records(finished: bool = True) -> list[JournalRecord]:
    out = [
        JournalRecord("r1", 1, JournalRecordKind.MESSAGE, OpaquePayload("message")),
        JournalRecord(
            "r2", 2, JournalRecordKind.EFFECT_INTENT, EffectIntent("e", idempotency_key="k")
        ),
    ]
    if finished:
        out.append(JournalRecord("r3", 3, JournalRecordKind.EFFECT_RESULT, EffectResult("e")))
    return out


def reduce_recording(tmp_path: Path, records: object, **options: object) -> FinishedRecording:
    recorder = REDUCE_KIND.open(target(tmp_path, "run", "reduce"), records, **options)
    recorder.check_complete()
    finished = recorder.finish()
    recorder.close()
    return finished


def test_reduce_records_the_replay_result(tmp_path: Path) -> None:
    recorder = REDUCE_KIND.open(target(tmp_path, "run", "reduce"), journal_records(), "resume")
    assert isinstance(recorder, ReduceRecorder)
    assert recorder.result.status is ReplayStatus.COMPLETE
    assert recorder.result.mode is ReducerMode.RESUME
    finished = recorder.finish()
    assert result_from_msgpack(finished.data) == recorder.result
    assert finished.records == 1
    assert finished.meta == {
        "mode": "resume_replay",
        "records": 3,
        "status": "complete",
        "volatile": [],
    }
    assert REDUCE_KIND.count(finished.data) == 1


def test_reduce_reads_a_record_file(tmp_path: Path) -> None:
    path = tmp_path / "run.jrec"
    write_journal_records(path, journal_records())
    assert (
        reduce_recording(tmp_path, path).data == reduce_recording(tmp_path, journal_records()).data
    )
    assert reduce_recording(tmp_path, str(path)).data == reduce_recording(tmp_path, path).data


def test_reduce_recording_is_byte_identical(tmp_path: Path) -> None:
    first = reduce_recording(tmp_path, journal_records(False), mode=ReducerMode.REPAIR)
    second = reduce_recording(tmp_path, iter(journal_records(False)), mode="repair_replay")
    assert first.data == second.data


def test_reduce_verify_same_result_passes(tmp_path: Path) -> None:
    finished = reduce_recording(tmp_path, journal_records())
    seen: list[Mismatch] = []
    recorder = REDUCE_KIND.open(
        target(tmp_path, "run", "reduce", finished, seen), journal_records()
    )
    recorder.check_complete()
    recorder.close()
    assert seen == []


def test_reduce_verify_reports_the_first_differing_field(tmp_path: Path) -> None:
    finished = reduce_recording(tmp_path, journal_records())
    with pytest.raises(ReplayDivergence) as info:
        REDUCE_KIND.open(target(tmp_path, "run", "reduce", finished), journal_records(False))
    found = info.value.mismatch.divergence
    assert found is not None and found.index is None
    assert (found.field, found.expected, found.actual) == ("status", "complete", "repair_needed")
    text = str(info.value)
    assert "first divergence at status" in text
    assert "stored: mode=audit_replay status=complete" in text
    assert "replay result of 2 journal records differs" in text


def test_reduce_ignore_option(tmp_path: Path) -> None:
    base = journal_records()
    finished = reduce_recording(tmp_path, base, ignore=("latest_journal_seq",))
    moved = [*base, JournalRecord("r9", 9, JournalRecordKind.MESSAGE, OpaquePayload("m"))]
    REDUCE_KIND.open(
        target(tmp_path, "run", "reduce", finished), moved, ignore=("latest_journal_seq",)
    ).close()
    with pytest.raises(ReplayDivergence):
        REDUCE_KIND.open(target(tmp_path, "run", "reduce", finished), moved)


def test_reduce_content_options(tmp_path: Path) -> None:
    records = [
        JournalRecord(
            "r1", 1, JournalRecordKind.MESSAGE, OpaquePayload("m"), content_refs=("blob",)
        )
    ]
    recorder = REDUCE_KIND.open(
        target(tmp_path, "run", "reduce"),
        records,
        available_content_refs=[],
        missing_content_policy=MissingContentPolicy.OMIT_WITH_PROJECTION_AUDIT,
    )
    assert isinstance(recorder, ReduceRecorder)
    assert recorder.result.missing_content_refs == ("blob",)
    assert recorder.result.repair_needed == ()


def test_reduce_rejected_journal_raises_the_reducer_error(tmp_path: Path) -> None:
    bad = [*journal_records(), journal_records()[0]]
    with pytest.raises(ReplayReducerError, match="duplicate"):
        REDUCE_KIND.open(target(tmp_path, "run", "reduce"), bad)


def test_reduce_unknown_mode(tmp_path: Path) -> None:
    with pytest.raises(JournalUsageError, match="unknown reducer mode"):
        REDUCE_KIND.open(target(tmp_path, "run", "reduce"), [], "sideways")


def test_reduce_diff(tmp_path: Path) -> None:
    left = reduce_recording(tmp_path, journal_records())
    right = reduce_recording(tmp_path, journal_records(False))
    assert REDUCE_KIND.diff(left.data, left.data, left.meta) is None
    found = REDUCE_KIND.diff(left.data, right.data, left.meta)
    assert found is not None
    divergence, context = found
    assert divergence.field == "status"
    assert context[0].startswith("stored: mode=audit_replay status=complete")
    assert REDUCE_KIND.ignored({"volatile": ["status"]}) == ("status",)
    assert REDUCE_KIND.diff(left.data, right.data, {"volatile": ["status"]}) is not None
