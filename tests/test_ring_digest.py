"""Wrapped rings verified in full: a ring recording keeps the BLAKE3 digest of every
appended record and of the ones the ring overwrote, and verify compares them."""

from __future__ import annotations

import itertools
from pathlib import Path

import blake3
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_replay.kinds import RING_KIND, FinishedRecording, RecordingTarget, RingRecorder
from pytest_replay.report import ReplayDivergence
from pytest_replay.ringdigest import AppendedDigest, append_hashed
from pytest_replay.ringlog import RecordedSlot, RingLog, records_to_array

_targets = itertools.count()


def target(tmp_path: Path, stored: FinishedRecording | None = None) -> RecordingTarget:
    scratch = tmp_path / f"scratch-{next(_targets)}"
    scratch.mkdir()
    return RecordingTarget(
        nodeid="tests/test_x.py::test_ring",
        name="ring",
        kind="ring",
        stored_path=tmp_path / "store" / "ring.vrrl",
        scratch=scratch,
        expected=None if stored is None else stored.data,
        expected_meta={} if stored is None else dict(stored.meta),
    )


def slot(i: int, changed: int | tuple[int, ...] = ()) -> RecordedSlot:
    # timestamp_ns is volatile: a re-run may change it, and it never reaches the digest.
    hit = i in (changed if isinstance(changed, tuple) else (changed,))
    return RecordedSlot(10_000 + i, i % 64, 0, 1, (i, 99 if hit else 0, 0, 0), 0)


def run(
    tmp_path: Path, stored: FinishedRecording | None, changed: int | tuple[int, ...] = ()
) -> FinishedRecording:
    recorder = RING_KIND.open(target(tmp_path, stored), capacity=1024)
    assert isinstance(recorder, RingRecorder)
    try:
        for i in range(0, 5000, 700):  # batches and single appends, mixed
            recorder.append_many([slot(j, changed) for j in range(i, min(i + 500, 5000))])
            for j in range(i + 500, min(i + 700, 5000)):
                recorder.append(slot(j, changed))
        recorder.check_complete()
        return recorder.finish()
    finally:
        recorder.close()


def test_a_change_the_ring_overwrote_fails_verify(tmp_path: Path) -> None:
    stored = run(tmp_path, None)
    assert stored.records == 1024 and stored.meta["appended"] == 5000
    run(tmp_path, stored)  # the same run verifies
    with pytest.raises(ReplayDivergence) as info:
        run(tmp_path, stored, changed=10)
    text = str(info.value)
    assert "records 0..3975 were overwritten in the ring; their digest differs" in text
    found = info.value.mismatch.divergence
    assert found is not None and found.field == "overwritten records"
    assert found.expected == stored.meta["overwritten_digest"]


def test_a_change_in_the_kept_window_reports_both(tmp_path: Path) -> None:
    stored = run(tmp_path, None)
    recorder = RING_KIND.open(target(tmp_path, stored), capacity=1024)
    assert isinstance(recorder, RingRecorder)
    with pytest.raises(ReplayDivergence) as info:
        recorder.append_many([slot(j, changed=(10, 4000)) for j in range(5000)])
    recorder.close()
    found = info.value.mismatch.divergence
    assert found is not None and (found.index, found.field) == (4000, "args[1]")
    assert "records 0..3975 were overwritten in the ring; their digest differs" in str(info.value)


def test_digests_cover_every_append_with_volatile_fields_zeroed(tmp_path: Path) -> None:
    stored = run(tmp_path, None)
    records = records_to_array([slot(i) for i in range(5000)])
    records["timestamp_ns"] = 0
    assert stored.meta["appended_digest"] == blake3.blake3(records.tobytes()).hexdigest()
    head = records[:3976].tobytes()
    assert stored.meta["overwritten_digest"] == blake3.blake3(head).hexdigest()


def test_a_recording_without_digests_still_verifies(tmp_path: Path) -> None:
    stored = run(tmp_path, None)
    meta = {k: v for k, v in stored.meta.items() if not k.endswith("_digest")}
    old = FinishedRecording(stored.data, stored.records, meta)
    run(tmp_path, old, changed=10)  # nothing to compare the overwritten records with


@given(
    capacity=st.integers(1, 6),
    appends=st.lists(st.integers(0, 9), max_size=12),
)
def test_the_digest_at_every_split_a_ring_can_report_is_exact(
    tmp_path_factory: pytest.TempPathFactory, capacity: int, appends: list[int]
) -> None:
    """0: one single append, n > 0: a batch of n - 1 records; checked after every call."""
    path = tmp_path_factory.mktemp("digest") / "r.vrrl"
    log = RingLog.open(path, capacity)
    digest = AppendedDigest(capacity, [1], log.slot_view)  # word 1: low timestamp word
    written: list[RecordedSlot] = []
    try:
        for n in appends:
            batch = [slot(len(written) + i) for i in range(max(1, n - 1) if n else 1)]
            if n == 0:
                if len(written) >= digest.due:
                    digest.catch_up(len(written))
                log.append(batch[0])
            else:
                append_hashed(log, digest, len(written), records_to_array(batch))
            written += batch
            words = records_to_array(written).view("<u4").reshape(len(written), 16).copy()
            words[:, 1] = 0
            for count in (len(written) - min(len(written), capacity), len(written)):
                want = blake3.blake3(np.ascontiguousarray(words[:count]).tobytes()).hexdigest()
                assert digest.digest_at(count, len(written)) == want
    finally:
        log.close()
