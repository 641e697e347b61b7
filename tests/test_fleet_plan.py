"""The replay plan builder: registration checks and the aggregated validation."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

from pytest_replay.fleet import (
    ReplayCatalog,
    ReplayPlan,
    ReplayPlanBuilder,
    ReplayValidationError,
    Subsystem,
    TopologyError,
)
from pytest_replay.fleet.errors import RegistrationError
from pytest_replay.fleet.testing import NoopApp, app_types, stack_for, write_identity_log
from pytest_replay.fleet.testing import write_topology as _write_topology

APPS = app_types([("ping", 0), ("pong", 1)])
Ping, Pong = APPS["ping"], APPS["pong"]


class PingWrongCode(NoopApp):
    subsystem: ClassVar[Subsystem] = Subsystem("ping", 99)


class NotInTopology(NoopApp):
    subsystem: ClassVar[Subsystem] = Subsystem(None, 0)


def write_topology(tmp_path: Path, ids: list[str] | None = None) -> Path:
    ids = ids or ["ping", "pong"]
    return _write_topology(
        tmp_path / "fleet.toml",
        [(name, code, f"{name}_config.toml") for code, name in enumerate(ids)],
    )


def log(
    root: Path,
    name: str,
    subsystem: str | None,
    code: int,
    instance: int,
    mission: str | None = "default",
) -> Path:
    return write_identity_log(root / f"{name}.flog", stack_for(subsystem, code, instance), mission)


def builder(topology: Path, root: Path) -> ReplayPlanBuilder:
    return (
        ReplayPlan.builder(topology)
        .discover_logs_under(root)
        .register("ping", Ping)
        .register("pong", Pong)
    )


def issues_of(info: pytest.ExceptionInfo[ReplayValidationError]) -> tuple[str, ...]:
    return info.value.issues


def test_builder_builds_validated_plan_for_selected_instances(tmp_path: Path) -> None:
    topology = write_topology(tmp_path)
    root = tmp_path / "logs"
    for instance in (1, 2):
        log(root, f"instance{instance}_ping", "ping", 0, instance)
        log(root, f"instance{instance}_pong", "pong", 1, instance)
    plan = builder(topology, root).instances([2]).build()
    assert plan.selected_instances == (2,)
    assert plan.mission == "default"
    assert len(plan.assignments) == 2
    assert plan.assignment(2, "ping").log.base_path == root / "instance2_ping.flog"  # type: ignore[union-attr]
    assert plan.assignment(2, "pong").log.base_path == root / "instance2_pong.flog"  # type: ignore[union-attr]
    assert plan.assignment(1, "ping") is None
    assert [r.subsystem.id for r in plan.registrations] == ["ping", "pong"]
    assert plan.registrations[0].app_type_name.endswith("NoopApp_ping")
    assert plan.topology_path == topology
    assert len(plan.catalog.logs) == 4


def test_all_discovered_instances_by_default_and_sorted_assignments(tmp_path: Path) -> None:
    topology = _write_topology(tmp_path / "fleet.toml", [("pong", 1), ("ping", 0)])
    root = tmp_path / "logs"
    for instance in (3, 1, 2):
        log(root, f"i{instance}_ping", "ping", 0, instance)
        log(root, f"i{instance}_pong", "pong", 1, instance)
    plan = builder(topology, root).build()
    assert plan.selected_instances == (1, 2, 3)
    assert [(a.instance_id, a.subsystem_id) for a in plan.assignments] == [
        (1, "ping"), (1, "pong"), (2, "ping"), (2, "pong"), (3, "ping"), (3, "pong"),
    ]  # fmt: skip


def test_register_rejects_subsystem_code_mismatch(tmp_path: Path) -> None:
    topology = write_topology(tmp_path)
    with pytest.raises(RegistrationError, match="declares subsystem code 99") as info:
        ReplayPlan.builder(topology).register("ping", PingWrongCode)
    assert f"topology '{topology}' expects 0" in str(info.value)
    assert "Fix:" in str(info.value)


def test_register_rejects_twice_unknown_and_foreign_apps(tmp_path: Path) -> None:
    topology = write_topology(tmp_path)
    plan = ReplayPlan.builder(topology).register("ping", Ping)
    with pytest.raises(RegistrationError, match="'ping' is already registered"):
        plan.register("ping", Ping)
    with pytest.raises(RegistrationError, match="does not define subsystem 'radar'"):
        plan.register("radar", Ping)
    with pytest.raises(
        RegistrationError, match="declares subsystem 'ping' but was registered as 'pong'"
    ):
        plan.register("pong", Ping)
    with pytest.raises(RegistrationError, match="does not declare a topology subsystem"):
        plan.register("pong", NotInTopology)


def test_build_reports_missing_logs_and_missing_registrations(tmp_path: Path) -> None:
    topology = write_topology(tmp_path)
    root = tmp_path / "logs"
    log(root, "instance1_ping", "ping", 0, 1)
    with pytest.raises(ReplayValidationError) as info:
        ReplayPlan.builder(topology).discover_logs_under(root).register("ping", Ping).build()
    text = str(info.value)
    assert "missing app registration for subsystem 'pong'" in text
    assert "missing log for instance 1 subsystem 'pong'" in text
    assert text.endswith(".") and "\nFix: " in text
    assert issues_of(info) == (
        "missing app registration for subsystem 'pong'",
        "missing log for instance 1 subsystem 'pong'",
    )


def test_build_reports_duplicate_logs_for_one_target(tmp_path: Path) -> None:
    topology = write_topology(tmp_path)
    root = tmp_path / "logs"
    a = log(root, "instance1_ping_a", "ping", 0, 1)
    b = log(root, "instance1_ping_b", "ping", 0, 1)
    log(root, "instance1_pong", "pong", 1, 1)
    with pytest.raises(ReplayValidationError) as info:
        builder(topology, root).build()
    assert issues_of(info) == (f"found 2 logs for instance 1 subsystem 'ping': {a}, {b}",)


def test_build_reports_mission_mismatch_across_selected_logs(tmp_path: Path) -> None:
    topology = write_topology(tmp_path)
    root = tmp_path / "logs"
    log(root, "instance1_ping", "ping", 0, 1, "default")
    log(root, "instance1_pong", "pong", 1, 1, "recovery")
    with pytest.raises(ReplayValidationError) as info:
        builder(topology, root).build()
    assert issues_of(info) == ("selected logs disagree on mission: default, recovery",)


def test_missions_of_unselected_instances_do_not_matter(tmp_path: Path) -> None:
    topology = write_topology(tmp_path)
    root = tmp_path / "logs"
    log(root, "i1_ping", "ping", 0, 1, "default")
    log(root, "i1_pong", "pong", 1, 1, None)
    log(root, "i2_ping", "ping", 0, 2, "other")
    log(root, "i2_pong", "pong", 1, 2, "other")
    plan = builder(topology, root).instances([1]).build()
    assert plan.mission == "default"


def test_every_problem_is_reported_together(tmp_path: Path) -> None:
    topology = write_topology(tmp_path)
    root = tmp_path / "logs"
    nameless = log(root, "nameless", None, 0, 1)
    radar = log(root, "radar", "radar", 5, 1)
    wrong = log(root, "wrong_code", "ping", 4, 1)
    (root / "broken_0.flog").write_bytes(b"definitely not a fleet log")
    with pytest.raises(ReplayValidationError) as info:
        ReplayPlan.builder(topology).discover_logs_under(root).instances([1, 7]).build()
    issues = issues_of(info)
    assert issues[0].startswith(f"discovery failure for '{root / 'broken.flog'}': fleet log '")
    assert "bad slab magic" in issues[0]
    assert issues[1:] == (
        "missing app registration for subsystem 'ping'",
        "missing app registration for subsystem 'pong'",
        f"discovered log '{nameless}' is missing subsystem_id runtime metadata",
        f"discovered log '{wrong}' reports subsystem code 4 for 'ping' but topology "
        f"'{topology}' expects 0",
        f"discovered log '{radar}' belongs to subsystem 'radar' which is not present in "
        f"topology '{topology}'",
        "selected instance 7 has no discovered logs",
        "missing log for instance 1 subsystem 'pong'",
        "missing log for instance 7 subsystem 'ping'",
        "missing log for instance 7 subsystem 'pong'",
    )
    assert f"topology '{topology}' (10 problems)" in str(info.value)


def test_no_logs_means_no_instance_selected(tmp_path: Path) -> None:
    topology = write_topology(tmp_path)
    with pytest.raises(ReplayValidationError) as info:
        ReplayPlan.builder(topology).register("ping", Ping).register("pong", Pong).build()
    assert issues_of(info) == ("no instances selected for fleet replay",)
    with pytest.raises(ReplayValidationError) as info:
        ReplayPlan.builder(topology).register("ping", Ping).register("pong", Pong).instances(
            []
        ).with_catalog(ReplayCatalog()).build()
    assert issues_of(info) == ("no instances selected for fleet replay",)


def test_with_catalog_replaces_discovery(tmp_path: Path) -> None:
    topology = write_topology(tmp_path)
    root = tmp_path / "logs"
    log(root, "i1_ping", "ping", 0, 1)
    log(root, "i1_pong", "pong", 1, 1)
    catalog = ReplayCatalog.discover_under(root)
    plan = (
        ReplayPlan.builder(topology)
        .with_catalog(catalog)
        .register("ping", Ping)
        .register("pong", Pong)
        .build()
    )
    assert plan.catalog is catalog
    assert plan.selected_instances == (1,)


def test_discover_logs_accumulates_inputs(tmp_path: Path) -> None:
    topology = write_topology(tmp_path)
    a = log(tmp_path / "a", "i1_ping", "ping", 0, 1)
    b = log(tmp_path / "b", "i1_pong", "pong", 1, 1)
    plan = (
        ReplayPlan.builder(topology)
        .discover_logs([a])
        .discover_logs([tmp_path / "b"])
        .register("ping", Ping)
        .register("pong", Pong)
        .build()
    )
    assert [x.log.base_path for x in plan.assignments] == [a, b]


def test_a_bad_topology_fails_the_builder(tmp_path: Path) -> None:
    (tmp_path / "t.toml").write_text("[[subsystems]]\nid='a'\nid2=1\n")
    with pytest.raises(TopologyError, match="unknown key 'id2'"):
        ReplayPlan.builder(tmp_path / "t.toml")
