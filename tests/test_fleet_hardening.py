"""Fleet package against hostile input and crashes: every failure is a clear FleetError."""

from __future__ import annotations

import contextlib
import os
import struct
import sys
import zlib
from pathlib import Path

import msgpack
import pytest

import pytest_replay.fleet.writer as writer_module
from pytest_replay._atomic import atomic_write_bytes
from pytest_replay.fleet import (
    FleetLogError,
    FleetLogReader,
    FleetLogWriteError,
    FleetLogWriter,
    FleetRecording,
    FleetRecordingError,
    Message,
    RecordedLog,
    ReplayCatalog,
    TopologyError,
    decode_fleet_recording,
    encode_fleet_recording,
    load_fleet_recording,
    load_topology,
)
from pytest_replay.fleet.testing import stack_for, write_identity_log, write_topology
from pytest_replay.fleet.topology import SubsystemSpec, Topology
from pytest_replay.formats.fleet_log import encode_empty_slab, encode_slab_header

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and /dev/zero are POSIX")

# --------------------------------------------------------------------------- topology


def test_deeply_nested_toml_is_a_topology_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(TopologyError, match=r"deep\.toml': invalid TOML \(nested too deeply\)"):
        load_topology(path)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("{outside}", "leaves the topology's folder"),
        ("../shared.toml", "leaves the topology's folder"),
        ("sub/../../shared.toml", "leaves the topology's folder"),
        ("a\\\\b.toml", "NUL or a backslash"),
        ("a\\u0000b.toml", "NUL or a backslash"),
    ],
)
def test_a_config_outside_the_topology_folder_is_refused(
    tmp_path: Path, config: str, message: str
) -> None:
    (tmp_path / "shared.toml").write_text("")
    folder = tmp_path / "topo"
    (folder / "sub").mkdir(parents=True)
    config = config.format(outside=(tmp_path / "shared.toml").as_posix())
    topology = folder / "t.toml"
    topology.write_text(f'[[subsystems]]\nid = "a"\nconfig = "{config}"\n')
    with pytest.raises(TopologyError, match=message) as info:
        load_topology(topology)
    assert "t.toml', key subsystems[0].config" in str(info.value) and "Fix:" in str(info.value)


def test_a_config_below_the_topology_folder_is_bundled(tmp_path: Path) -> None:
    (tmp_path / "cfg").mkdir()
    path = write_topology(tmp_path / "t.toml", [("a", 0, "cfg/a.toml")])
    recording = FleetRecording.bundle(load_topology(path), [])
    assert recording.configs == (("cfg/a.toml", b""),)


def test_bundle_refuses_a_config_outside_the_topology_folder(tmp_path: Path) -> None:
    outside = tmp_path / "shared.toml"
    outside.write_text("")
    (tmp_path / "topo").mkdir()
    topology = Topology(tmp_path / "topo" / "t.toml", (SubsystemSpec("a", 0, outside),))
    with pytest.raises(FleetRecordingError, match="outside the folder of topology"):
        FleetRecording.bundle(topology, [])


# --------------------------------------------------------------------------- recordings


def _with_body(**changes: object) -> bytes:
    body = {"version": 1, "topology_name": "t.toml", "topology": "", "configs": [], "logs": []}
    packed: bytes = msgpack.packb({**body, **changes}, use_bin_type=True)
    return struct.pack("<8sIQ", b"PRFLREC1", zlib.crc32(packed), len(packed)) + packed


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"logs": [[1, "a", []], [1, "a", []]]}, "log #1 repeats instance 1 subsystem 'a'"),
        ({"configs": [["a.toml", b"1"], ["a.toml", b"2"]]}, "path 'a.toml' is also config #0"),
        ({"configs": [["t.toml", b""]]}, "path 't.toml' is also the topology file"),
        ({"configs": [["a", b""], ["a/b", b""]]}, "'a' is config #0 and also a folder"),
        (
            {"configs": [["logs/instance_1/a_0.flog", b""]], "logs": [[1, "a", [b""]]]},
            "log #0 slab 0 path 'logs/instance_1/a_0.flog' is also config #0",
        ),
        (
            {"topology_name": "logs", "logs": [[1, "a", [b""]]]},
            "'logs' is the topology file and also a folder",
        ),
    ],
)
def test_decode_refuses_names_that_would_overwrite_each_other(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(FleetRecordingError, match=message) as info:
        decode_fleet_recording(_with_body(**changes), "r.fleet")
    assert "'r.fleet'" in str(info.value) and "Fix:" in str(info.value)


def test_encode_refuses_what_decode_would_refuse() -> None:
    twice = (RecordedLog(1, "a", ()), RecordedLog(1, "a", ()))
    with pytest.raises(FleetRecordingError, match="repeats instance 1"):
        encode_fleet_recording(FleetRecording("t.toml", "", (), twice))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"topology_name": "t\x00.toml"}, "topology name"),
        ({"topology_name": "a\\t.toml"}, "topology name"),
        ({"logs": [[1, "p\x00", []]]}, "log #0 subsystem id"),
        ({"logs": [[1, "p\\q", []]]}, "log #0 subsystem id"),
        ({"configs": [["a\x00.toml", b""]]}, "config #0 path"),
        ({"configs": [["sub\\a.toml", b""]]}, "config #0 path"),
        ({"configs": [["/abs.toml", b""]]}, "config #0 path"),
        ({"configs": [["", b""]]}, "config #0 path"),
    ],
)
def test_decode_refuses_nul_and_backslash_in_names(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(FleetRecordingError, match=message):
        decode_fleet_recording(_with_body(**changes))


# --------------------------------------------------------------------------- special files


@posix_only
def test_slabs_recordings_and_topologies_must_be_regular_files(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo_0.flog")
    (tmp_path / "zero_0.flog").symlink_to("/dev/zero")
    for name in ("fifo", "zero"):
        with pytest.raises(FleetLogError, match="not a regular file") as info:
            FleetLogReader(tmp_path / f"{name}.flog")
        assert f"{name}_0.flog" in str(info.value)
    os.mkfifo(tmp_path / "r.fleet")
    with pytest.raises(FleetRecordingError, match=r"r\.fleet': not a regular file"):
        load_fleet_recording(tmp_path / "r.fleet")
    with pytest.raises(FleetRecordingError, match="not a regular file"):
        load_fleet_recording(tmp_path / "zero_0.flog")
    with pytest.raises(TopologyError, match="not a regular file"):
        load_topology(tmp_path / "fifo_0.flog")
    (tmp_path / "folder_0.flog").mkdir()
    with pytest.raises(FleetLogError, match=r"folder_0\.flog': the path is a folder"):
        FleetLogReader(tmp_path / "folder.flog")


# --------------------------------------------------------------------------- discovery


def test_discovery_walks_a_very_deep_folder_tree(tmp_path: Path) -> None:
    deep = tmp_path
    for _level in range(1100):  # Path.mkdir(parents=True) itself recurses
        deep /= "d"
        deep.mkdir()
    try:
        base = write_identity_log(deep / "ping.flog", stack_for("ping", 0, 1), None)
        catalog = ReplayCatalog.discover_under(tmp_path)
        assert [log.base_path for log in catalog.logs] == [base]
        assert catalog.failures == ()
    finally:
        while deep != tmp_path:  # shutil.rmtree, which cleans tmp_path up, recurses too
            for entry in deep.iterdir():
                entry.unlink()
            deep.rmdir()
            deep = deep.parent


@posix_only
def test_discovery_reaches_a_linked_folder_by_its_first_sorted_path(tmp_path: Path) -> None:
    write_identity_log(tmp_path / "b" / "ping.flog", stack_for("ping", 0, 1), None)
    (tmp_path / "a").symlink_to(tmp_path / "b", target_is_directory=True)
    (tmp_path / "c").symlink_to(tmp_path / "b", target_is_directory=True)
    catalog = ReplayCatalog.discover_under(tmp_path)
    assert [log.base_path for log in catalog.logs] == [tmp_path / "a" / "ping.flog"]


# --------------------------------------------------------------------------- writer


class _Crash(BaseException):
    """Stands in for the process dying: nothing after the failed write runs."""


class _CrashingWrites:
    """``atomic_write_bytes`` that counts the writes done and crashes past ``limit``."""

    def __init__(self) -> None:
        self.real = atomic_write_bytes
        self.done = 0
        self.limit: int | None = None

    def __call__(self, path: Path, data: bytes) -> None:
        if self.limit is not None and self.done >= self.limit:
            raise _Crash
        self.real(path, data)
        self.done += 1


def _log_sync_then_rotate(base: Path, writes: _CrashingWrites) -> int:
    """3 steps synced, then enough steps to rotate slabs, then close; returns how many
    writes had been done when the sync returned."""
    writer = FleetLogWriter(base, slab_size=1024, section_steps=1)
    writer.log_instantiated(stack_for("x", 0, 1))
    for step_id in range(3):
        writer.log(step_id, step_id, [Message(b"p" * 100)])
    writer.sync()
    synced_at = writes.done
    for step_id in range(3, 12):
        writer.log(step_id, step_id, [Message(b"p" * 100)])
    writer.close()
    return synced_at


def test_a_crash_during_slab_rotation_keeps_every_synced_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = _CrashingWrites()
    monkeypatch.setattr(writer_module, "atomic_write_bytes", writes)
    synced_at = _log_sync_then_rotate(tmp_path / "full" / "a.flog", writes)
    total = writes.done
    assert total > synced_at + 2, "the scenario must rotate slabs after the sync"
    for crash_after in range(synced_at, total + 1):
        base = tmp_path / f"crash_{crash_after}" / "a.flog"
        writes.done, writes.limit = 0, crash_after
        with contextlib.suppress(_Crash):
            _log_sync_then_rotate(base, writes)
        ids = [step.step_id for step in FleetLogReader(base).iter_steps()]
        assert ids == list(range(len(ids))), crash_after
        assert len(ids) >= 3, f"synced steps lost after a crash at write {crash_after}"
    assert len(ids) == 12


def test_an_empty_final_slab_after_the_final_slab_is_ignored_and_nothing_else(
    tmp_path: Path,
) -> None:
    base = write_identity_log(tmp_path / "a.flog", stack_for("a", 0, 1), None)
    leftover = tmp_path / "a_1.flog"
    leftover.write_bytes(encode_empty_slab(1, final=True))
    reader = FleetLogReader(base)
    assert reader.slab_paths == (tmp_path / "a_0.flog",)
    (tmp_path / "a_2.flog").write_bytes(encode_slab_header(2, final=True))
    with pytest.raises(FleetLogError, match=r"a_2\.flog': stray slab after the last slab 0"):
        FleetLogReader(base)
    (tmp_path / "a_2.flog").unlink()
    leftover.write_bytes(encode_slab_header(1, final=False))
    with pytest.raises(FleetLogError, match=r"a_1\.flog': stray slab"):
        FleetLogReader(base)


def test_a_folder_in_the_way_of_a_slab_is_a_write_error(tmp_path: Path) -> None:
    # Refused when the writer is made, before anything is logged into it.
    (tmp_path / "a_0.flog").mkdir()
    with pytest.raises(
        FleetLogWriteError, match=r"a_0\.flog': slab 0's name is taken by a folder"
    ) as info:
        FleetLogWriter(tmp_path / "a.flog")
    assert ".tmp" not in str(info.value) and "Fix:" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_0.flog"]
