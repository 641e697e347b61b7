"""Fleet log discovery: identity from lifecycle records, slab normalisation, the walk."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_replay.fleet import (
    ConfigSource,
    FleetLogError,
    FleetLogInfo,
    FleetLogWriter,
    ReplayCatalog,
    Step,
    discover_log,
    normalize_candidate,
)
from pytest_replay.fleet.testing import stack_for, write_identity_log


def test_discovers_single_log_identity_from_runtime_lifecycle(tmp_path: Path) -> None:
    base = write_identity_log(tmp_path / "logs/ping.flog", stack_for("ping", 7, 42), "default")
    found = discover_log(base)
    assert found.base_path == base
    assert found.subsystem_id == "ping"
    assert found.subsystem_code == 7
    assert found.instance_id == 42
    assert found.mission == "default"
    assert found.config_source is ConfigSource.EXTERNAL_FILE
    assert found.effective_config == "(tasks: [], cnx: [])"
    assert found.stack.app_name == "demo" and found.stack.git_commit == "abc123"
    assert FleetLogInfo.discover(base) == found


def test_identity_comes_from_the_first_records_only(tmp_path: Path) -> None:
    base = tmp_path / "twice.flog"
    with FleetLogWriter(base) as writer:
        writer.log(0, 0)
        writer.log_mission_started("first", timestamp_ns=1)
        writer.log_instantiated(stack_for("ping", 1, 3), effective_config="one")
        writer.log(1, 1)
        writer.log_instantiated(stack_for("pong", 2, 4), effective_config="two")
        writer.log_mission_started("second", timestamp_ns=2)
    found = discover_log(base)
    assert (found.subsystem_id, found.instance_id, found.mission) == ("ping", 3, "first")
    assert found.effective_config == "one"


def test_a_log_without_mission_has_none(tmp_path: Path) -> None:
    base = write_identity_log(tmp_path / "a.flog", stack_for("ping", 0, 1), None)
    assert discover_log(base).mission is None


def test_a_log_without_instantiated_record_is_an_error(tmp_path: Path) -> None:
    base = tmp_path / "bare.flog"
    with FleetLogWriter(base) as writer:
        writer.log_mission_started("m")
        writer.log(0, 0)
    with pytest.raises(FleetLogError, match="no 'instantiated' lifecycle record") as info:
        discover_log(base)
    assert "bare.flog" in str(info.value) and "Fix:" in str(info.value)


def test_discover_log_accepts_a_slab_path(tmp_path: Path) -> None:
    base = write_identity_log(tmp_path / "pong.flog", stack_for("pong", 3, 9), "default")
    assert discover_log(tmp_path / "pong_0.flog").base_path == base


def test_catalog_discovery_normalizes_slab_paths(tmp_path: Path) -> None:
    base = write_identity_log(tmp_path / "logs/pong.flog", stack_for("pong", 3, 9), "default")
    catalog = ReplayCatalog.discover([base, tmp_path / "logs/pong_0.flog"])
    assert catalog.failures == ()
    assert [log.base_path for log in catalog.logs] == [base]
    assert catalog.logs[0].subsystem_id == "pong"


def test_many_slabs_collapse_to_one_log(tmp_path: Path) -> None:
    steps = [Step(i, i) for i in range(300)]
    base = write_identity_log(
        tmp_path / "big.flog", stack_for("ping", 0, 1), "m", steps=steps, slab_size=1024
    )
    slabs = sorted(tmp_path.glob("big_*.flog"))
    assert len(slabs) > 2
    catalog = ReplayCatalog.discover([*reversed(slabs), tmp_path])
    assert [log.base_path for log in catalog.logs] == [base]
    assert catalog.failures == ()


def test_normalisation_needs_slab_zero(tmp_path: Path) -> None:
    lone = tmp_path / "foo_3.flog"
    assert normalize_candidate(lone) == lone
    (tmp_path / "foo_0.flog").write_bytes(b"")
    assert normalize_candidate(lone) == tmp_path / "foo.flog"
    assert normalize_candidate(tmp_path / "foo_x.flog") == tmp_path / "foo_x.flog"
    assert normalize_candidate(tmp_path / "foo_.flog") == tmp_path / "foo_.flog"
    assert normalize_candidate(tmp_path / "plain.flog") == tmp_path / "plain.flog"


def test_catalog_discovery_walks_directories_using_physical_slab_files(tmp_path: Path) -> None:
    ping = write_identity_log(tmp_path / "logs/ping.flog", stack_for("ping", 0, 1), "alpha")
    pong = write_identity_log(tmp_path / "logs/pong.flog", stack_for("pong", 1, 1), "alpha")
    catalog = ReplayCatalog.discover_under(tmp_path)
    assert catalog.failures == ()
    assert [log.subsystem_id for log in catalog.logs] == ["ping", "pong"]
    assert [log.base_path for log in catalog.logs] == [ping, pong]


def test_walk_is_recursive_and_sorted_by_identity(tmp_path: Path) -> None:
    made = [
        write_identity_log(tmp_path / "z/deep/er/a.flog", stack_for("pong", 1, 1), "m"),
        write_identity_log(tmp_path / "a/b.flog", stack_for("ping", 0, 2), "m"),
        write_identity_log(tmp_path / "m/c.flog", stack_for("ping", 0, 1), "m"),
        write_identity_log(tmp_path / "m/d.flog", stack_for(None, 0, 1), "m"),
    ]
    (tmp_path / "m/notes.txt").write_text("not a log")
    catalog = ReplayCatalog.discover_under(tmp_path)
    assert catalog.failures == ()
    # (instance, code, subsystem id with None first, path)
    assert [log.base_path for log in catalog.logs] == [made[3], made[2], made[0], made[1]]


def test_catalog_reports_invalid_logs_without_aborting_scan(tmp_path: Path) -> None:
    write_identity_log(tmp_path / "logs/good.flog", stack_for("good", 2, 5), "beta")
    (tmp_path / "logs/bad_0.flog").write_bytes(b"not a fleet log at all")
    (tmp_path / "logs/empty_0.flog").write_bytes(b"")
    catalog = ReplayCatalog.discover_under(tmp_path)
    assert [log.subsystem_id for log in catalog.logs] == ["good"]
    assert [f.candidate_path for f in catalog.failures] == [
        tmp_path / "logs/bad.flog",
        tmp_path / "logs/empty.flog",
    ]
    assert "bad slab magic" in catalog.failures[0].error
    assert str(catalog.failures[0]).startswith(f"{tmp_path / 'logs/bad.flog'}: ")


def test_a_missing_input_is_a_failure_not_a_crash(tmp_path: Path) -> None:
    catalog = ReplayCatalog.discover([tmp_path / "nowhere", tmp_path / "gone.flog"])
    assert catalog.logs == ()
    assert [f.candidate_path for f in catalog.failures] == [
        tmp_path / "gone.flog",
        tmp_path / "nowhere",
    ]


def test_a_symlink_loop_is_walked_once(tmp_path: Path) -> None:
    write_identity_log(tmp_path / "a/x.flog", stack_for("ping", 0, 1), "m")
    (tmp_path / "a/loop").symlink_to(tmp_path / "a", target_is_directory=True)
    catalog = ReplayCatalog.discover_under(tmp_path)
    assert len(catalog.logs) == 1


def test_other_extensions_are_ignored_unless_asked_for(tmp_path: Path) -> None:
    write_identity_log(tmp_path / "x.other", stack_for("ping", 0, 1), "m")
    assert ReplayCatalog.discover_under(tmp_path).logs == ()
    assert len(ReplayCatalog.discover_under(tmp_path, extension=".other").logs) == 1
