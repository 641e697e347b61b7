"""The ring log's write paths compared with the plain one: batches written with ``pwrite``
(write-through), the write-behind advice, and ``create_log`` freeing the file it replaces
off the caller's path. Each fast path must leave the bytes the plain path leaves."""

from __future__ import annotations

import errno
import mmap
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pytest_replay.ringlog as ringlog_module
from pytest_replay.ringlog import (
    HEADER_BYTES,
    RECORD_BYTES,
    RECORD_MAGIC,
    RING_RECORD_DTYPE,
    WRITE_THROUGH_MIN_RECORDS,
    ReplayLogIoError,
    RingLog,
    create_log,
    encode_ring_image,
)
from pytest_replay.ringlog_io import ring_spans

posix_only = pytest.mark.skipif(
    not hasattr(os, "pwrite") or os.name != "posix", reason="pwrite and fd-held replace are POSIX"
)


def make_batch(n: int, seed: int, *, live: bool) -> np.ndarray:
    """``n`` records of arbitrary field values; ``live`` sets the record magic."""
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, (n, RECORD_BYTES), dtype=np.uint8)
    batch = raw.view(RING_RECORD_DTYPE).reshape(n).copy()
    batch["magic"] = RECORD_MAGIC if live else 0
    return batch


def write_batches(path: Path, capacity: int, batches: list[np.ndarray], **options: bool) -> bytes:
    path.unlink(missing_ok=True)
    with RingLog.open(path, capacity, **options) as log:
        for batch in batches:
            log.append_many(batch)
        log.sync()
    return path.read_bytes()


def plain_bytes(path: Path, capacity: int, batches: list[np.ndarray]) -> bytes:
    """The same batches cut into pieces below the write-through size: the map path only."""
    pieces = [
        batch[start : start + WRITE_THROUGH_MIN_RECORDS - 1]
        for batch in batches
        for start in range(0, len(batch), WRITE_THROUGH_MIN_RECORDS - 1)
    ]
    assert all(len(piece) < WRITE_THROUGH_MIN_RECORDS for piece in pieces)
    return write_batches(path, capacity, pieces)


batch_plans = st.tuples(
    st.integers(1, 3 * WRITE_THROUGH_MIN_RECORDS),  # capacity
    st.lists(
        st.tuples(
            st.integers(0, 7 * WRITE_THROUGH_MIN_RECORDS),  # batch length
            st.booleans(),  # live magic (else the log must stamp it)
            st.booleans(),  # strided (not contiguous)
        ),
        min_size=1,
        max_size=5,
    ),
)


@settings(max_examples=40, deadline=None)
@given(plan=batch_plans, write_behind=st.booleans())
def test_large_batches_leave_the_bytes_the_map_path_and_the_image_leave(
    tmp_path_factory: pytest.TempPathFactory,
    plan: tuple[int, list[tuple[int, bool, bool]]],
    write_behind: bool,
) -> None:
    capacity, shapes = plan
    folder = tmp_path_factory.mktemp("paths")
    batches = []
    for seed, (n, live, strided) in enumerate(shapes):
        batch = make_batch(2 * n if strided else n, seed, live=live)
        batches.append(batch[::2] if strided else batch)
    fast = write_batches(folder / "fast.vrrl", capacity, batches, write_behind=write_behind)
    assert fast == plain_bytes(folder / "plain.vrrl", capacity, batches)
    assert fast == encode_ring_image(capacity, np.concatenate(batches))


@posix_only
def test_a_large_live_batch_is_written_through_and_any_other_through_the_map(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int]] = []
    real_pwrite = os.pwrite

    def spy(fd: int, data: memoryview, offset: int) -> int:
        calls.append((offset, len(data)))
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", spy)
    n = WRITE_THROUGH_MIN_RECORDS
    with RingLog.open(tmp_path / "a.vrrl", 3 * n) as log:
        log.append_many(make_batch(n - 1, 1, live=True))  # too small
        log.append_many(make_batch(n, 2, live=False))  # its magic must be stamped
        log.append_many(make_batch(2 * n, 3, live=False)[::2])  # not contiguous
        assert calls == []
        log.append_many(make_batch(n + 5, 4, live=True))  # wraps: two spans
        start = HEADER_BYTES + RECORD_BYTES * (3 * n - 1)
        assert calls == [(start, RECORD_BYTES), (HEADER_BYTES, RECORD_BYTES * (n + 4))]
        assert log.cursor == n + 4


@posix_only
def test_short_writes_are_continued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_pwrite = os.pwrite
    monkeypatch.setattr(os, "pwrite", lambda fd, data, offset: real_pwrite(fd, data[:1000], offset))
    batches = [make_batch(WRITE_THROUGH_MIN_RECORDS + 3, 5, live=True)]
    fast = write_batches(tmp_path / "short.vrrl", 2000, batches)
    assert fast == encode_ring_image(2000, batches[0])


@posix_only
@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"), None])
def test_a_failed_write_through_is_a_typed_error_and_keeps_the_cursor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: OSError | None
) -> None:
    def refuse(fd: int, data: memoryview, offset: int) -> int:
        if failure is not None:
            raise failure
        return 0  # wrote nothing, and said so

    path = tmp_path / "full.vrrl"
    with RingLog.open(path, 4096) as log:
        log.append_many(make_batch(10, 6, live=True))
        monkeypatch.setattr(os, "pwrite", refuse)
        with pytest.raises(ReplayLogIoError, match="append") as caught:
            log.append_many(make_batch(WRITE_THROUGH_MIN_RECORDS, 7, live=True))
        assert "Fix:" in str(caught.value)
        if failure is not None:
            assert "free disk space" in str(caught.value)
        assert log.cursor == 10
        assert len(log.records()) == 10


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise here")
@pytest.mark.parametrize("write_behind", [True, False])
def test_write_behind_advises_the_whole_pages_each_batch_filled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_behind: bool
) -> None:
    advised: list[tuple[int, int]] = []
    real_fadvise = os.posix_fadvise

    def spy(fd: int, offset: int, length: int, advice: int) -> None:
        assert advice == os.POSIX_FADV_DONTNEED
        advised.append((offset, offset + length))
        real_fadvise(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", spy)
    page = mmap.PAGESIZE
    capacity = 4 * page // RECORD_BYTES + 7
    sizes = [3, page // RECORD_BYTES, capacity - 1, 2 * capacity + 11, 1, 1500]
    path = tmp_path / "behind.vrrl"
    with RingLog.open(path, capacity, write_behind=write_behind) as log:
        for seed, n in enumerate(sizes):
            before, cursor = len(advised), log.cursor
            log.append_many(make_batch(n, seed, live=seed % 2 == 0))
            if not write_behind:
                continue
            expected = []
            for slot, _start, count in ring_spans(cursor, n, capacity):
                first = HEADER_BYTES + RECORD_BYTES * slot
                end = first + RECORD_BYTES * count
                begin, stop = max(first // page * page, page), end // page * page
                if stop > begin:
                    expected.append((begin, stop))
            assert advised[before:] == expected
            for begin, stop in advised[before:]:
                assert begin % page == stop % page == 0 and begin >= page  # never page 0
    if write_behind:
        assert advised, "the sizes above fill whole pages"
    else:
        assert advised == []
    with RingLog.open(path, read_only=True) as log:  # the advice lost nothing
        assert len(log) == capacity


def test_ring_spans_cover_each_landing_slot_once_with_the_newest_records() -> None:
    for capacity in (1, 2, 5, 8):
        for cursor in range(capacity):
            for n in range(0, 3 * capacity + 2):
                spans = ring_spans(cursor, n, capacity)
                landed = {}
                for slot, start, count in spans:
                    assert count > 0 and slot >= 0 and slot + count <= capacity
                    for k in range(count):
                        assert slot + k not in landed
                        landed[slot + k] = start + k
                # Plain model: append one at a time; each slot keeps the last record sent.
                model = {}
                for index in range(n):
                    model[(cursor + index) % capacity] = index
                assert landed == model, (capacity, cursor, n)


# -- create_log: the replaced file is freed off the caller's path


def held_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def join_release_threads() -> None:
    for thread in threading.enumerate():
        if thread.name == "vrrl-free-replaced":
            thread.join(10)


@posix_only
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_create_log_replaces_a_file_and_closes_what_it_held(tmp_path: Path) -> None:
    path = tmp_path / "old.vrrl"
    path.write_bytes(b"old contents" * 1000)
    kept = tmp_path / "kept.vrrl"
    os.link(path, kept)  # a second name sees the old file exactly as it was
    join_release_threads()
    before = held_descriptors()
    create_log(path, 16)
    join_release_threads()
    assert held_descriptors() == before
    assert kept.read_bytes() == b"old contents" * 1000
    assert path.read_bytes() == encode_ring_image(16, [])
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["kept.vrrl", "old.vrrl"]


@posix_only
def test_create_log_replaces_a_link_or_fifo_itself_and_never_opens_through_it(
    tmp_path: Path,
) -> None:
    target = tmp_path / "target.bin"
    target.write_bytes(b"not a log")
    link = tmp_path / "link.vrrl"
    link.symlink_to(target)
    create_log(link, 4)
    assert not link.is_symlink() and link.read_bytes() == encode_ring_image(4, [])
    assert target.read_bytes() == b"not a log"
    fifo = tmp_path / "fifo.vrrl"
    os.mkfifo(fifo)
    create_log(fifo, 4)  # holding it would block without O_NONBLOCK; nothing to hold
    assert fifo.read_bytes() == encode_ring_image(4, [])
    join_release_threads()


@posix_only
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_a_failed_replace_leaves_the_old_file_and_no_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keep.vrrl"
    path.write_bytes(b"precious")

    def crash(src: str, dst: str) -> None:
        raise OSError(errno.EIO, "simulated crash before the rename")

    monkeypatch.setattr(ringlog_module.os, "replace", crash)
    join_release_threads()
    before = held_descriptors()
    with pytest.raises(ReplayLogIoError, match="create"):
        create_log(path, 8)
    assert held_descriptors() == before
    assert path.read_bytes() == b"precious"
    assert [entry.name for entry in tmp_path.iterdir()] == ["keep.vrrl"]  # no temp file left


# --------------------------------------------------------------------------- background syncs


def _spy_syncs(
    monkeypatch: pytest.MonkeyPatch, *, fail: OSError | None = None, delay: float = 0.0
) -> list[tuple[int, bool]]:
    """Replace the background sync with a spy: (fd, fd still open after ``delay``)."""
    calls: list[tuple[int, bool]] = []
    done = threading.Event()

    def spy(fd: int) -> None:
        done.wait(delay)  # an Event that is never set: a sleep that reads as one
        try:
            os.fstat(fd)
            still_open = True
        except OSError:
            still_open = False
        calls.append((fd, still_open))
        if fail is not None:
            raise fail
        os.fsync(fd)

    monkeypatch.setattr(ringlog_module, "_datasync", spy)
    monkeypatch.setattr(ringlog_module, "WRITE_BEHIND_SYNC_BYTES", 64 * RECORD_BYTES)
    return calls


@pytest.mark.parametrize("write_behind", [True, False])
def test_a_write_behind_log_syncs_in_the_background_as_data_accumulates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_behind: bool
) -> None:
    calls = _spy_syncs(monkeypatch)
    path = tmp_path / "behind.vrrl"
    with RingLog.open(path, 1000, write_behind=write_behind) as log:
        log.append_many(make_batch(63, 0, live=True))  # under the threshold: no sync
        log.sync()
        assert calls == []
        log.append_many(make_batch(1, 1, live=True))  # reaches it
        log.sync()  # waits for the running background sync
        assert len(calls) == (1 if write_behind else 0)
        for seed in range(5):
            log.append_many(make_batch(64, 2 + seed, live=False))
            log.sync()
    assert len(calls) == (6 if write_behind else 0)
    assert all(still_open for _, still_open in calls)
    with RingLog.open(path, read_only=True) as log:
        assert log.cursor == 64 + 5 * 64


def test_close_waits_for_a_running_background_sync_before_closing_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _spy_syncs(monkeypatch, delay=0.2)
    log = RingLog.open(tmp_path / "behind.vrrl", 1000, write_behind=True)
    log.append_many(make_batch(64, 0, live=True))
    log.close()  # the sync is still in its delay: close must wait, not close under it
    assert len(calls) == 1 and calls[0][1], "the sync ran on a closed descriptor"


@pytest.mark.parametrize("closing", [False, True])
def test_an_error_of_a_background_sync_is_raised_by_the_next_sync_or_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, closing: bool
) -> None:
    # Linux reports a write error to one sync of a file only: kept from the background
    # sync, it must reach the caller, not vanish before the final sync succeeds.
    _spy_syncs(monkeypatch, fail=OSError(errno.EIO, "Input/output error"))
    path = tmp_path / "behind.vrrl"
    log = RingLog.open(path, 1000, write_behind=True)
    log.append_many(make_batch(64, 0, live=True))
    with pytest.raises(ReplayLogIoError, match="Input/output error") as info:
        log.close() if closing else log.sync()
    assert "behind.vrrl" in str(info.value) and "Fix:" in str(info.value)
    assert log.closed == closing
    if not closing:
        log.sync()  # raised once: a later sync with nothing failing succeeds
        log.close()


def test_a_background_sync_that_cannot_start_a_thread_runs_in_the_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _spy_syncs(monkeypatch)

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    path = tmp_path / "behind.vrrl"
    log = RingLog.open(path, 1000, write_behind=True)
    log.append_many(make_batch(64, 0, live=True))
    assert len(calls) == 1  # ran right there, on a descriptor of its own
    log.append_many(make_batch(64, 1, live=True))
    own = log._file.fileno()
    log.sync()
    log.close()
    assert log.closed and len(calls) == 2
    assert all(still_open and fd != own for fd, still_open in calls)  # a duplicate
    with RingLog.open(path, read_only=True) as reread:
        assert reread.cursor == 128
