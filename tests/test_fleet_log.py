"""Fleet log format: writer/reader round trips, slabs, keyframes, corruption."""

from __future__ import annotations

import errno
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_replay.fleet import (
    SECTION_CACHE_CAP,
    FleetLogError,
    FleetLogReader,
    FleetLogWriteError,
    FleetLogWriter,
    Instantiated,
    Keyframe,
    Message,
    MissionStarted,
    Origin,
    Step,
    read_identity,
)
from pytest_replay.fleet.testing import stack_for, write_identity_log
from pytest_replay.formats.fleet_log import (
    END_FRAME_BYTES,
    FRAME_HEADER,
    SLAB_HEADER,
    SectionType,
    encode_frame,
)

origins = st.none() | st.builds(
    Origin,
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**16 - 1),
    st.integers(0, 2**64 - 1),
)
messages = st.lists(st.builds(Message, st.binary(max_size=40), origins), max_size=4).map(tuple)


@st.composite
def step_lists(draw: st.DrawFn) -> list[Step]:
    ids = sorted(draw(st.sets(st.integers(0, 2**64 - 1), min_size=1, max_size=40)))
    return [Step(i, draw(st.integers(0, 2**64 - 1)), draw(messages)) for i in ids]


def _write(base: Path, steps: list[Step], **options: int) -> FleetLogWriter:
    writer = FleetLogWriter(base, **options)
    writer.log_instantiated(stack_for("ping", 0, 1), effective_config="cfg")
    writer.log_mission_started("alpha", timestamp_ns=5)
    for step in steps:
        writer.log_step(step)
    writer.close()
    return writer


@given(steps=step_lists(), section_steps=st.integers(1, 8), slab_size=st.sampled_from([256, 4096]))
def test_round_trip_preserves_every_step(
    tmp_path_factory: pytest.TempPathFactory,
    steps: list[Step],
    section_steps: int,
    slab_size: int,
) -> None:
    base = tmp_path_factory.mktemp("log") / "ping.flog"
    writer = _write(base, steps, section_steps=section_steps, slab_size=slab_size)
    reader = FleetLogReader(base)
    assert reader.total_steps == len(steps)
    assert list(reader.iter_steps()) == steps
    assert [reader.step_at(i) for i in reversed(range(len(steps)))] == steps[::-1]
    assert reader.slab_paths == writer.slab_paths
    table = reader.step_table()
    assert table.step_ids.tolist() == [s.step_id for s in steps]
    expected_origins = [
        (index, m.origin.instance_id, m.origin.subsystem_code, m.origin.step_id)
        for index, s in enumerate(steps)
        for m in s.messages
        if m.origin is not None
    ]
    got = list(
        zip(
            table.origin_step_index.tolist(),
            table.origin_instance.tolist(),
            table.origin_code.tolist(),
            table.origin_step.tolist(),
            strict=True,
        )
    )
    assert got == expected_origins
    for entry in reader.sections:
        assert entry.first_id == steps[entry.start_index].step_id
        assert entry.last_id == steps[entry.start_index + entry.count - 1].step_id
    for step in steps:
        assert reader.step_at(reader.index_of_step(step.step_id)) == step


def test_lifecycle_and_identity(tmp_path: Path) -> None:
    base = _write(tmp_path / "a.flog", [Step(1, 2)]).base_path
    reader = FleetLogReader(base)
    assert isinstance(reader.lifecycle[0], Instantiated)
    assert reader.lifecycle[0].stack == stack_for("ping", 0, 1)
    assert reader.lifecycle[1] == MissionStarted(5, "alpha")
    identity = read_identity(base)
    assert identity.instantiated.effective_config == "cfg"
    assert identity.mission == MissionStarted(5, "alpha")


def test_slabs_rotate_and_each_is_final_only_at_the_end(tmp_path: Path) -> None:
    steps = [Step(i, i, (Message(bytes(100)),)) for i in range(200)]
    writer = _write(tmp_path / "big.flog", steps, slab_size=2048, section_steps=4)
    assert len(writer.slab_paths) > 3
    flags = [struct.unpack_from("<H", p.read_bytes(), 10)[0] for p in writer.slab_paths]
    assert flags == [0] * (len(flags) - 1) + [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in writer.slab_paths)


def test_keyframes_are_indexed_and_seekable(tmp_path: Path) -> None:
    steps = [Step(i * 2, i) for i in range(50)]
    keyframes = [Keyframe(0, 0, b"a"), Keyframe(20, 10, b"b"), Keyframe(60, 30, b"c")]
    base = write_identity_log(
        tmp_path / "k.flog", stack_for("ping", 0, 1), None, steps=steps, keyframes=keyframes
    )
    reader = FleetLogReader(base)
    assert reader.keyframes == tuple(keyframes)
    assert reader.nearest_keyframe(59) == keyframes[1]
    assert reader.nearest_keyframe(60) == keyframes[2]
    assert reader.keyframe_for(20) == keyframes[1]
    assert reader.keyframe_for(21) is None


def test_section_cache_is_capped(tmp_path: Path) -> None:
    steps = [Step(i, i) for i in range(100)]
    base = _write(tmp_path / "c.flog", steps, section_steps=2).base_path
    reader = FleetLogReader(base)
    for index in range(0, 100, 2):
        reader.step_at(index)
        assert len(reader.cached_sections) <= SECTION_CACHE_CAP
    assert reader.cached_sections == tuple(range(42, 50))
    reader.step_at(84)
    assert reader.cached_sections[-1] == 42


def test_sync_makes_a_complete_readable_log(tmp_path: Path) -> None:
    writer = FleetLogWriter(tmp_path / "s.flog")
    writer.log_instantiated(stack_for("ping", 0, 1))
    writer.log(0, 0)
    writer.sync()
    assert FleetLogReader(tmp_path / "s.flog").total_steps == 1
    writer.log(1, 1)
    writer.close()
    assert FleetLogReader(tmp_path / "s.flog").total_steps == 2
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_new_writer_removes_stale_slabs(tmp_path: Path) -> None:
    steps = [Step(i, i, (Message(bytes(200)),)) for i in range(60)]
    _write(tmp_path / "x.flog", steps, slab_size=1024, section_steps=1)
    _write(tmp_path / "x.flog", steps[:1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x_0.flog"]
    assert FleetLogReader(tmp_path / "x.flog").total_steps == 1


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda w: (w.log(5, 0), w.log(5, 1)), "not greater than the previous step id 5"),
        (lambda w: w.log(-1, 0), "is not a u64"),
        (lambda w: w.log_step(Step(0, 0, (Message("text"),))), "bytes payload"),  # type: ignore[arg-type]
        (lambda w: w.log(0, 0, [Message(b"", Origin(2**32, 0, 0))]), "bad origin"),
        (lambda w: (w.log_keyframe(Keyframe(3, 0)), w.log_keyframe(Keyframe(3, 0))), "increasing"),
        (lambda w: (w.log(5, 0), w.log_keyframe(Keyframe(4, 0))), "arrives after step 5"),
        (lambda w: (w.log_keyframe(Keyframe(3, 0)), w.log(4, 0)), "names step 3"),
        (lambda w: (w.log_keyframe(Keyframe(3, 0)), w.close()), "never were"),
    ],
)
def test_writer_rejects_contract_violations(tmp_path: Path, action, message: str) -> None:  # type: ignore[no-untyped-def]
    writer = FleetLogWriter(tmp_path / "w.flog")
    with pytest.raises(FleetLogWriteError, match=message) as info:
        action(writer)
    assert str(info.value).rstrip(".").split("Fix: ")[-1]
    assert "w.flog" in str(info.value)


def test_closed_writer_refuses_writes(tmp_path: Path) -> None:
    writer = FleetLogWriter(tmp_path / "w.flog")
    writer.close()
    with pytest.raises(FleetLogWriteError, match="closed"):
        writer.log(0, 0)


# --------------------------------------------------------------------------- corruption


def _one_slab_log(tmp_path: Path) -> Path:
    base = tmp_path / "ping.flog"
    _write(base, [Step(i, i, (Message(b"x" * 10, Origin(1, 2, i)),)) for i in range(30)])
    return base


def test_crc_mismatch_names_slab_and_offset(tmp_path: Path) -> None:
    base = _one_slab_log(tmp_path)
    slab = tmp_path / "ping_0.flog"
    data = bytearray(slab.read_bytes())
    data[-3] ^= 0xFF
    slab.write_bytes(bytes(data))
    with pytest.raises(FleetLogError, match=r"ping_0\.flog' at byte \d+: CRC32 mismatch") as info:
        FleetLogReader(base)
    assert info.value.offset is not None and info.value.offset >= SLAB_HEADER.size
    assert "Fix:" in str(info.value)


def test_truncated_frame(tmp_path: Path) -> None:
    base = _one_slab_log(tmp_path)
    slab = tmp_path / "ping_0.flog"
    slab.write_bytes(slab.read_bytes()[:-5])
    with pytest.raises(FleetLogError, match="truncated frame"):
        FleetLogReader(base)


def test_unknown_section_type(tmp_path: Path) -> None:
    base = _one_slab_log(tmp_path)
    slab = tmp_path / "ping_0.flog"
    data = slab.read_bytes()
    size = len(data) - END_FRAME_BYTES
    frame = encode_frame(SectionType.STEPS, b"\x90")
    frame = struct.pack("<HHI", 9, 0, 1) + frame[8:]
    crc = zlib.crc32(frame[12:], zlib.crc32(frame[:8]))
    frame = frame[:8] + struct.pack("<I", crc) + frame[12:]
    slab.write_bytes(data[:size] + frame + data[size:])
    with pytest.raises(FleetLogError, match=f"at byte {size}: unknown section type 9"):
        FleetLogReader(base)


def test_missing_and_stray_slabs(tmp_path: Path) -> None:
    base = tmp_path / "m.flog"
    steps = [Step(i, i, (Message(bytes(300)),)) for i in range(40)]
    writer = _write(base, steps, slab_size=1024, section_steps=1)
    assert len(writer.slab_paths) >= 3
    middle = writer.slab_paths[1]
    data = middle.read_bytes()
    middle.unlink()
    with pytest.raises(FleetLogError, match="slab 1 is missing"):
        FleetLogReader(base)
    middle.write_bytes(data)
    (tmp_path / f"m_{len(writer.slab_paths)}.flog").write_bytes(data)
    with pytest.raises(FleetLogError, match="stray slab"):
        FleetLogReader(base)
    with pytest.raises(FleetLogError, match=r"slab 0 'nothing_0\.flog' does not exist"):
        FleetLogReader(tmp_path / "nothing.flog")


def test_renamed_slab_and_bad_magic(tmp_path: Path) -> None:
    base = _one_slab_log(tmp_path)
    (tmp_path / "ping_0.flog").rename(tmp_path / "other_0.flog")
    (tmp_path / "ping_0.flog").write_bytes(b"not a fleet log at all")
    with pytest.raises(FleetLogError, match="bad slab magic"):
        FleetLogReader(base)


def test_consistent_crc_but_inconsistent_columns(tmp_path: Path) -> None:
    base = tmp_path / "bad.flog"
    ids, starts = struct.pack("<QQ", 9, 5), struct.pack("<III", 0, 0, 0)
    payload = msgpack.packb([5, 9, 2, 0, ids, bytes(16), starts, b"", b"", b"", b""])
    slab = SLAB_HEADER.pack(b"PRFLOG01", 2, 1, 0) + encode_frame(SectionType.STEPS, payload)
    (tmp_path / "bad_0.flog").write_bytes(slab)
    with pytest.raises(FleetLogError, match=r"says ids 5\.\.9 but its id column holds 9\.\.5"):
        FleetLogReader(base)


@given(data=st.data())
def test_any_corruption_raises_only_fleet_log_error(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    folder = tmp_path_factory.mktemp("corrupt")
    base = folder / "c.flog"
    steps = [
        Step(i, i, (Message(bytes([i]) * 3, Origin(1, 0, i) if i % 2 else None),))
        for i in range(12)
    ]
    _write(base, steps, section_steps=3)
    slab = folder / "c_0.flog"
    blob = bytearray(slab.read_bytes())
    mode = data.draw(st.sampled_from(["flip", "truncate", "splice"]))
    if mode == "flip":
        for _ in range(data.draw(st.integers(1, 4))):
            position = data.draw(st.integers(0, len(blob) - 1))
            blob[position] ^= data.draw(st.integers(1, 255))
    elif mode == "truncate":
        del blob[data.draw(st.integers(0, len(blob) - 1)) :]
    else:
        position = data.draw(st.integers(SLAB_HEADER.size, len(blob)))
        blob[position:position] = data.draw(st.binary(min_size=1, max_size=20))
    slab.write_bytes(bytes(blob))
    try:
        reader = FleetLogReader(base)
        decoded = list(reader.iter_steps())
        read_identity(base)
    except FleetLogError as exc:
        assert "Fix:" in str(exc)
        return
    # A change that survived every check did not alter the steps.
    assert decoded == steps


def test_frame_length_is_bounded_before_allocation(tmp_path: Path) -> None:
    slab = SLAB_HEADER.pack(b"PRFLOG01", 2, 1, 0) + FRAME_HEADER.pack(2, 0, 2**32 - 1, 0)
    (tmp_path / "huge_0.flog").write_bytes(slab)
    with pytest.raises(FleetLogError, match="exceeds the limit"):
        FleetLogReader(tmp_path / "huge.flog")


def test_new_writer_removes_only_the_earlier_logs_slabs(tmp_path: Path) -> None:
    # Slabs are probed by name from 0 up: the earlier log's run of slabs goes, files of
    # other logs in the folder (names that share the prefix among them) stay untouched.
    steps = [Step(i, i, (Message(bytes(200)),)) for i in range(30)]
    _write(tmp_path / "x.flog", steps, slab_size=1024, section_steps=1)
    _write(tmp_path / "x_a.flog", steps[:2])
    _write(tmp_path / "xy.flog", steps[:2])
    earlier = sorted(p.name for p in tmp_path.glob("x_*.flog") if p.name[2].isdigit())
    assert len(earlier) > 3
    _write(tmp_path / "x.flog", steps[:1])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["x_0.flog", "x_a_0.flog", "xy_0.flog"]
    assert FleetLogReader(tmp_path / "x_a.flog").total_steps == 2


@pytest.mark.parametrize(
    ("plant", "what"),
    [
        (lambda p: p.write_bytes(b"my notes"), "not a fleet log slab"),
        (lambda p: p.write_bytes(b""), "not a fleet log slab"),
        (lambda p: p.symlink_to(p.with_name("elsewhere")), "a symbolic link"),
    ],
)
def test_new_writer_refuses_a_file_it_did_not_write_at_a_slab_name(
    tmp_path: Path, plant: Callable[[Path], object], what: str
) -> None:
    (tmp_path / "elsewhere").write_bytes(b"PRFLOG01 but not a slab: a link's target")
    _write(tmp_path / "x.flog", [Step(0, 0)])
    planted = tmp_path / "x_1.flog"
    plant(planted)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if not p.is_symlink()}
    with pytest.raises(FleetLogWriteError, match=what) as info:
        FleetLogWriter(tmp_path / "x.flog")
    assert "x_1.flog" in str(info.value) and "Fix: move it away" in str(info.value)
    # Refused before anything was removed: the earlier log's slab 0 is still there.
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if not p.is_symlink()}
    assert after == before and "x_0.flog" in after
    assert planted.is_symlink() or planted.is_file()


def test_new_writer_removes_an_earlier_log_with_one_slab_missing(tmp_path: Path) -> None:
    # A slab removed by hand leaves a gap of one name; the slabs after it still go, so
    # the new log has no stray slab after its last one.
    steps = [Step(i, i, (Message(bytes(200)),)) for i in range(60)]
    _write(tmp_path / "x.flog", steps, slab_size=1024, section_steps=1)
    (tmp_path / "x_1.flog").unlink()
    _write(tmp_path / "x.flog", steps[:1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x_0.flog"]
    assert FleetLogReader(tmp_path / "x.flog").total_steps == 1


def test_a_writer_stopped_while_removing_an_earlier_log_leaves_it_removable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fault injection: the removal fails after two slabs. It goes last slab first, so
    # what is left is slabs 0..j, which the next writer removes whole.
    steps = [Step(i, i, (Message(bytes(200)),)) for i in range(60)]
    _write(tmp_path / "x.flog", steps, slab_size=1024, section_steps=1)
    count = len(list(tmp_path.glob("x_*.flog")))
    assert count > 4
    real_unlink, removed = os.unlink, []

    def unlink_twice(path: str | os.PathLike[str]) -> None:
        if len(removed) == 2:
            raise OSError(errno.EIO, "Input/output error")
        real_unlink(path)
        removed.append(Path(path).name)

    monkeypatch.setattr(os, "unlink", unlink_twice)
    with pytest.raises(FleetLogWriteError, match="cannot remove a slab of an earlier log"):
        FleetLogWriter(tmp_path / "x.flog")
    monkeypatch.setattr(os, "unlink", real_unlink)
    assert removed == [f"x_{count - 1}.flog", f"x_{count - 2}.flog"]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(f"x_{i}.flog" for i in range(count - 2))
    _write(tmp_path / "x.flog", steps[:1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x_0.flog"]
    assert FleetLogReader(tmp_path / "x.flog").total_steps == 1


_KILLED_WHILE_REMOVING = """
import os, sys
from pytest_replay.fleet import FleetLogWriter
real_unlink, removed = os.unlink, []
def unlink_then_die(path):
    if len(removed) == int(sys.argv[2]):
        os._exit(9)  # the process dies here: no exception handler, no cleanup
    real_unlink(path)
    removed.append(path)
os.unlink = unlink_then_die
FleetLogWriter(sys.argv[1])
"""


@pytest.mark.parametrize("kill_after", [0, 1, 3])
def test_a_writer_killed_while_removing_an_earlier_log_leaves_it_removable(
    tmp_path: Path, kill_after: int
) -> None:
    # Kill point: the process dies between two removals. Slabs go last first, so what
    # is left is slabs 0..j, which the next writer removes whole; the new log reads.
    steps = [Step(i, i, (Message(bytes(200)),)) for i in range(60)]
    _write(tmp_path / "x.flog", steps, slab_size=1024, section_steps=1)
    count = len(list(tmp_path.glob("x_*.flog")))
    died = subprocess.run(
        [sys.executable, "-c", _KILLED_WHILE_REMOVING, str(tmp_path / "x.flog"), str(kill_after)],
        check=False,
    )
    assert died.returncode == 9
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(f"x_{i}.flog" for i in range(count - kill_after))
    _write(tmp_path / "x.flog", steps[:1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x_0.flog"]
    assert FleetLogReader(tmp_path / "x.flog").total_steps == 1
