"""The fast read paths of fleet discovery and indexing (issue #19) keep the checks and
answers of the slower paths they replaced: bounded reads of regular files only, slab
names normalised exactly as :func:`slab_index_of` / :func:`slab_path` say, and readers
whose lazily built lookups answer as eagerly built ones did."""

from __future__ import annotations

import gc
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_replay import _fs
from pytest_replay._gc import paused_collector
from pytest_replay.fleet import (
    FleetLogError,
    FleetLogReader,
    FleetLogWriter,
    Keyframe,
    ReplayCatalog,
    Step,
    normalize_candidate,
)
from pytest_replay.fleet.reader import index_logs, read_regular_file
from pytest_replay.fleet.testing import stack_for, write_identity_log
from pytest_replay.formats.fleet_log import slab_index_of, slab_path


def _fail(detail: str, fix: str) -> Exception:
    return ValueError(f"{detail} | {fix}")


def test_read_regular_file_reads_every_byte_and_refuses_what_it_refused(tmp_path: Path) -> None:
    data = os.urandom(70_000)
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert read_regular_file(path, len(data), "fix", _fail) == data
    too_big = re.escape("70000 bytes, over the limit of 69999 | smaller")
    with pytest.raises(ValueError, match=too_big):
        read_regular_file(path, len(data) - 1, "smaller", _fail)
    with pytest.raises(ValueError, match="the path is a folder"):
        read_regular_file(tmp_path, 10, "fix", _fail)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        read_regular_file(fifo, 10, "fix", _fail)
    with pytest.raises(FileNotFoundError):
        read_regular_file(tmp_path / "absent", 10, "fix", _fail)


def test_read_regular_file_notices_a_file_longer_than_its_stat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "growing"
    path.write_bytes(b"x" * 100)
    opened: list[int] = []
    open_fd = _fs.open_regular_fd

    def stale_size(target: Path) -> tuple[int, int]:
        # The file grew between the stat and the read: the stat said one byte less.
        fd, size = open_fd(target)
        opened.append(fd)
        return fd, size - 1

    monkeypatch.setattr(_fs, "open_regular_fd", stale_size)
    with pytest.raises(ValueError, match="the file grew while it was read"):
        read_regular_file(path, 1000, "fix", _fail)
    with pytest.raises(OSError):  # the descriptor was closed on the error path
        os.fstat(opened[0])


def test_read_fd_continues_short_reads_and_stops_at_the_end() -> None:
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, b"abc")
        os.write(write_end, b"defg")
        os.close(write_end)
        write_end = -1
        # A pipe hands back what one write put in: reads come back short.
        assert _fs.read_fd(read_end, 5) == b"abcde"
        assert _fs.read_fd(read_end, 10) == b"fg"
        assert _fs.read_fd(read_end, 10) == b""
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)


def test_open_regular_fd_gives_the_size_and_refuses_links_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"12345")
    fd, size = _fs.open_regular_fd(path)
    os.close(fd)
    assert size == 5
    link = tmp_path / "link"
    link.symlink_to(path)
    fd, size = _fs.open_regular_fd(link)  # followed by default, as open_regular does
    os.close(fd)
    assert size == 5
    with pytest.raises(_fs.NotRegularFile, match="a symbolic link"):
        _fs.open_regular_fd(link, follow=False)
    with pytest.raises(_fs.NotRegularFile) as raised:
        _fs.open_regular_fd(tmp_path)
    assert raised.value.is_dir


def _reference_normalized(candidate: Path) -> Path:
    """normalize_candidate as it was written before the name cache (the reference)."""
    parsed = slab_index_of(candidate)
    if parsed is None or not candidate.suffix:
        return candidate
    base = parsed[0]
    return base if slab_path(base, 0).exists() else candidate


_NAME_PART = st.text(alphabet="ab._-0123456789", min_size=0, max_size=8)


@settings(max_examples=150, deadline=None)
@given(stem=_NAME_PART, tail=st.sampled_from(["", "_0", "_3", "_12", "_x", "_"]))
def test_normalize_candidate_matches_the_pathlib_reference(
    tmp_path_factory: pytest.TempPathFactory, stem: str, tail: str
) -> None:
    folder = tmp_path_factory.mktemp("names")
    name = f"{stem}{tail}.flog"
    if name in {".", ".."}:
        return
    candidate = folder / name
    assert normalize_candidate(candidate) == _reference_normalized(candidate)
    first = _reference_normalized(candidate)
    if first != candidate or slab_index_of(candidate) is None:
        return
    # With slab 0 present the slab path normalises to its base path.
    base = slab_index_of(candidate)
    assert base is not None
    try:
        slab_path(base[0], 0).write_bytes(b"")
    except OSError:
        return  # a name the file system refuses
    assert normalize_candidate(candidate) == _reference_normalized(candidate)


def test_discovery_walk_normalises_as_normalize_candidate(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    for instance in range(3):
        for name, code in (("plan", 1), ("a.b_c", 2)):
            stack = stack_for(name, code, instance)
            write_identity_log(logs / f"i{instance}" / f"{name}.flog", stack, None)
    # A lone slab whose slab 0 is missing stays as it is, and fails as before.
    (logs / "i0" / "lone_4.flog").write_bytes(b"not a slab")
    catalog = ReplayCatalog.discover_under(logs)
    assert [log.base_path for log in catalog.logs] == sorted(
        (logs / f"i{i}" / f"{name}.flog" for i in range(3) for name in ("plan", "a.b_c")),
        key=lambda path: (int(path.parent.name[1:]), 1 if path.stem == "plan" else 2),
    )
    assert [failure.candidate_path for failure in catalog.failures] == [logs / "i0" / "lone_4.flog"]


def test_lazy_reader_lookups_answer_as_before(tmp_path: Path) -> None:
    steps = [Step(step_id, 1000 + step_id) for step_id in range(0, 400, 2)]
    base = tmp_path / "log.flog"
    with FleetLogWriter(base, section_steps=16) as writer:
        writer.log_instantiated(stack_for("plan", 1, 7), effective_config="c")
        for step in steps:
            if step.step_id in (0, 100, 300):
                writer.log_keyframe(Keyframe(step.step_id, 0, b"state"))
            writer.log_step(step)
    reader = FleetLogReader(base)
    assert reader.cached_sections == ()
    assert len(reader.sections) > 1
    for index in (0, 57, len(steps) - 1):
        position, start = reader.section_of(index)
        entry = reader.sections[position]
        assert entry.start_index == start <= index < start + entry.count
        assert reader.step_at(index).step_id == steps[index].step_id
    assert reader.cached_sections == tuple(
        dict.fromkeys(reader.section_of(index)[0] for index in (0, 57, len(steps) - 1))
    )
    assert [keyframe.step_id for keyframe in reader.keyframes] == [0, 100, 300]
    for keyframe in reader.keyframes:
        assert reader.keyframe_for(keyframe.step_id) == keyframe
    assert reader.keyframe_for(10**12) is None
    with pytest.raises(IndexError):
        reader.section_of(reader.total_steps)


def test_a_missing_slab_0_is_still_reported_by_the_reader(tmp_path: Path) -> None:
    with pytest.raises(FleetLogError, match=re.escape("slab 0 'gone_0.flog' does not exist")):
        FleetLogReader(tmp_path / "gone.flog")


def test_paused_collector_restores_the_state_it_found() -> None:
    assert gc.isenabled()
    with paused_collector():
        assert not gc.isenabled()
        with paused_collector():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner one found it paused and leaves it so
    assert gc.isenabled()
    with pytest.raises(RuntimeError), paused_collector():
        raise RuntimeError("an error on the way out")
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_collector():
            pass
        assert not gc.isenabled()  # a collector the caller disabled stays disabled
    finally:
        gc.enable()


def test_discovery_and_indexing_run_no_automatic_collection(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    steps = [Step(step_id, step_id) for step_id in range(5)]
    for instance in range(40):
        stack = stack_for("plan", 1, instance)
        write_identity_log(logs / f"i{instance}" / "plan.flog", stack, None, steps=steps)
    collections: list[int] = []

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    def collections_during(action: Callable[[], object]) -> tuple[object, list[int]]:
        gc.collect()  # a fresh count: no collection is owed when the action starts
        collections.clear()
        gc.callbacks.append(note)
        try:
            result = action()
            return result, list(collections)
        finally:
            gc.callbacks.remove(note)

    catalog, during = collections_during(lambda: ReplayCatalog.discover_under(logs))
    assert isinstance(catalog, ReplayCatalog) and during == []
    bases = [log.base_path for log in catalog.logs]
    readers, during = collections_during(lambda: index_logs(bases))
    assert isinstance(readers, list) and len(readers) == 40 and during == []
    # The same work with the collector running triggers collections: the check can fail.
    _, during = collections_during(lambda: [[index] for index in range(5_000)])
    assert during
    assert gc.isenabled()
