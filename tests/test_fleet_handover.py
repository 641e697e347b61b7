"""Discovery reads each log once and hands its index to ``ReplayPlan.start``.

The handed-over index against the plain path it stands in for (discovery by
``read_identity``, then a reader that reads the log again): the same identities, the
same reader contents, the same errors for damaged logs, and a fresh read whenever a
log changed between discovery and the replay.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_fleet_engine_properties import fleets

from pytest_replay import strategies as rst
from pytest_replay.errors import ReplayError
from pytest_replay.fleet import (
    FleetLogReader,
    Keyframe,
    ReplayCatalog,
    ReplayPlan,
    Step,
)
from pytest_replay.fleet.app import NoopApp
from pytest_replay.fleet.catalog import FleetLogInfo, discover_log
from pytest_replay.fleet.errors import FleetLogError
from pytest_replay.fleet.graph import _locate, _sorted_unique, _step_ranks, _StepRanks
from pytest_replay.fleet.logformat import encode_keyframes, encode_lifecycle, encode_steps
from pytest_replay.fleet.reader import _index_precisely, index_is_current, open_readers
from pytest_replay.fleet.records import ConfigSource, Instantiated
from pytest_replay.fleet.testing import (
    STRESS_SUBSYSTEMS,
    FakeFleet,
    app_types,
    stack_for,
    write_identity_log,
    write_stress_fleet,
)
from pytest_replay.formats.fleet_log import (
    SectionType,
    encode_end_frame,
    encode_frame,
    encode_slab_header,
)


def _same_reader(got: FleetLogReader, want: FleetLogReader) -> None:
    assert got.base_path == want.base_path
    assert got.slab_paths == want.slab_paths
    assert got.sections == want.sections
    assert got.keyframes == want.keyframes
    assert got.lifecycle == want.lifecycle
    assert got.total_steps == want.total_steps
    table, expected = got.step_table(), want.step_table()
    for name in ("step_ids", "origin_step_index", "origin_instance", "origin_code", "origin_step"):
        a, b = getattr(table, name), getattr(expected, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    steps = range(got.total_steps)
    assert [got.step_timestamp(i) for i in steps] == [want.step_timestamp(i) for i in steps]
    assert list(got.iter_steps()) == list(want.iter_steps())


@settings(max_examples=25)
@given(spec=fleets(max_nodes=30))
def test_discovery_hands_over_what_a_reader_reads(spec: FakeFleet) -> None:
    with tempfile.TemporaryDirectory() as folder:
        spec.write(folder)
        catalog = ReplayCatalog.discover_under(Path(folder, "logs"))
        assert len(catalog.logs) == len(spec.sessions) and not catalog.failures
        for log in catalog.logs:
            assert log == discover_log(log.base_path)  # the identity read_identity finds
            assert log.index is not None and index_is_current(log.index)
            _same_reader(FleetLogReader.from_index(log.index), FleetLogReader(log.base_path))
        readers = open_readers((log.base_path, log.index) for log in catalog.logs)
        for reader, log in zip(readers, catalog.logs, strict=True):
            _same_reader(reader, FleetLogReader(log.base_path))


@given(case=rst.corrupted_logs("fleet"))
def test_damaged_logs_are_discovered_and_replayed_as_by_the_plain_path(
    tmp_path_factory: Any, case: rst.Corrupted
) -> None:
    path = case.write_to(tmp_path_factory.mktemp("fleet"))
    try:
        expected: FleetLogInfo | str = discover_log(path)
    except ReplayError as exc:
        expected = str(exc)
    catalog = ReplayCatalog.discover([path])
    if isinstance(expected, str):
        assert not catalog.logs and [f.error for f in catalog.failures] == [expected]
        return
    assert catalog.logs == (expected,) and not catalog.failures
    try:
        plain: FleetLogReader | str = FleetLogReader(path)
    except ReplayError as exc:
        plain = str(exc)
    try:
        (handed,) = open_readers([(path, catalog.logs[0].index)])
    except ReplayError as exc:
        assert str(exc) == plain
    else:
        assert isinstance(plain, FleetLogReader), plain
        _same_reader(handed, plain)


def _replayed_steps(topology: Path, logs: Path, changes: Any = None) -> list[int]:
    builder = ReplayPlan.builder(topology).discover_logs_under(logs)
    for name, app in app_types(STRESS_SUBSYSTEMS, NoopApp).items():
        builder.register(name, app)
    plan = builder.build()
    if changes is not None:
        changes()
    with plan.start() as engine:
        engine.run_all()
        return [s.reader.total_steps for s in engine.sessions]  # type: ignore[attr-defined]


def test_a_log_changed_after_discovery_is_read_again(tmp_path: Path) -> None:
    topology = write_stress_fleet(tmp_path, 2, 4)
    logs = tmp_path / "logs"
    sense = logs / "instance_1" / "sense.flog"
    assert _replayed_steps(topology, logs) == [4] * 8

    def rewrite() -> None:
        stack = stack_for("sense", 1, 1)
        steps = [Step(step_id, 1000 * step_id) for step_id in range(6)]
        write_identity_log(sense, stack, "default", steps=steps, keyframes=[Keyframe(0, 0, b"new")])

    catalog = ReplayCatalog.discover_under(logs)
    index = next(log.index for log in catalog.logs if log.base_path == sense)
    assert index is not None and index_is_current(index)
    rewrite()
    assert not index_is_current(index)
    (new,) = open_readers([(sense, index)])
    assert new.total_steps == 6 and new.keyframes == (Keyframe(0, 0, b"new"),)
    # A plan built before the change replays the new log, as it always did.
    write_stress_fleet(tmp_path, 2, 4)
    assert _replayed_steps(topology, logs, changes=rewrite) == [6, 4, 4, 4, 4, 4, 4, 4]


def test_a_stray_slab_or_a_touched_slab_after_discovery_is_noticed(tmp_path: Path) -> None:
    write_stress_fleet(tmp_path, 1, 3)
    base = tmp_path / "logs" / "instance_1" / "plan.flog"
    (log,) = ReplayCatalog.discover([base]).logs
    assert log.index is not None and index_is_current(log.index)
    slab = base.with_name("plan_0.flog")
    info = slab.stat()
    os.utime(slab, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))
    assert not index_is_current(log.index)
    (reader,) = open_readers([(base, log.index)])
    _same_reader(reader, FleetLogReader(base))
    (log,) = ReplayCatalog.discover([base]).logs
    assert log.index is not None and index_is_current(log.index)
    base.with_name("plan_1.flog").write_bytes(b"left over")
    assert not index_is_current(log.index)
    with pytest.raises(FleetLogError, match="stray slab after the last slab 0"):
        open_readers([(base, log.index)])


def test_an_index_is_used_only_for_its_own_log(tmp_path: Path) -> None:
    write_stress_fleet(tmp_path, 1, 3)
    logs = ReplayCatalog.discover_under(tmp_path / "logs").logs
    plan, sense = (log for log in logs if log.subsystem_id in ("plan", "sense"))
    (reader,) = open_readers([(sense.base_path, plan.index)])
    _same_reader(reader, FleetLogReader(sense.base_path))


def _write_log_with_keyframe(base: Path, keyframe: int, last: int) -> None:
    """One slab a writer would refuse to write: steps 1, 3, ``last`` and a keyframe for
    step ``keyframe``."""
    record = Instantiated(0, ConfigSource.EXTERNAL_FILE, "bad", stack_for("s9", 9, 99))
    steps = [Step(step_id, step_id) for step_id in (1, 3, last)]
    frames = b"".join(
        [
            encode_frame(SectionType.LIFECYCLE, encode_lifecycle([record])),
            encode_frame(SectionType.KEYFRAMES, encode_keyframes([Keyframe(keyframe, 0, b"")])),
            encode_frame(SectionType.STEPS, encode_steps(steps)),
        ]
    )
    slab = encode_slab_header(0, final=True) + frames + encode_end_frame(frames, 3)
    base.with_name(base.stem + "_0" + base.suffix).write_bytes(slab)


@settings(max_examples=20)
@given(
    spec=fleets(max_nodes=20),
    pick=st.integers(0, 1_000),
    keyframe=st.sampled_from([0, 5, 2**43, 2**44 + 3, 2**63, 2**64 - 1]),
    last=st.sampled_from([7, 2**44 + 2]),
)
def test_a_keyframe_off_the_log_among_good_logs_is_the_plain_reader_error(
    spec: FakeFleet, pick: int, keyframe: int, last: int
) -> None:
    """Keyframes are checked for a whole batch of logs at once: one log whose keyframe
    names a step it does not hold, among good ones, fails as the reader of that log
    alone fails, and discovery leaves that log (only) without an index."""
    with tempfile.TemporaryDirectory() as folder:
        spec.write(folder)
        bases = sorted(Path(folder, "logs").rglob("*_0.flog"))
        bases = [b.with_name(b.name.replace("_0.flog", ".flog")) for b in bases]
        bad = bases[pick % len(bases)]
        _write_log_with_keyframe(bad, keyframe, last)
        with pytest.raises(FleetLogError) as alone:
            _index_precisely(bad)  # the reference the batched checks stand in for
        with pytest.raises(FleetLogError) as together:
            open_readers((base, None) for base in bases)
        assert str(together.value) == str(alone.value)
        catalog = ReplayCatalog.discover_under(Path(folder, "logs"))
        assert [log.base_path for log in catalog.logs if log.index is None] == [bad]


@given(
    steps=st.lists(st.integers(0, 300), min_size=1, max_size=60)
    | st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=20),
    asked=st.lists(st.integers(0, 2**64 - 1) | st.integers(0, 320), max_size=30),
)
def test_dense_step_ranks_find_what_a_binary_search_finds(
    steps: list[int], asked: list[int]
) -> None:
    """The causal graph finds step ids through a table when they lie close together:
    the same positions and the same misses as a binary search over the sorted ids."""
    ids = np.array(steps, np.uint64)
    values = np.array(asked + steps, np.uint64)
    ranks = _step_ranks(ids)
    plain = _StepRanks(_sorted_unique(ids), 0, None, None)
    assert np.array_equal(ranks.unique, plain.unique)
    position, found = _locate(ranks, values)
    want_position, want_found = _locate(plain, values)
    assert np.array_equal(found, want_found)
    assert np.array_equal(position[found], want_position[want_found])
