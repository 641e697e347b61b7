"""The replay plan: discovered logs validated against a topology and app registrations."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pytest_replay._gc import paused_collector
from pytest_replay.fleet.app import FleetApp, MockClock
from pytest_replay.fleet.catalog import FleetLogInfo, ReplayCatalog
from pytest_replay.fleet.engine import ReplayEngine
from pytest_replay.fleet.errors import RegistrationError, ReplayValidationError
from pytest_replay.fleet.reader import open_readers
from pytest_replay.fleet.records import Subsystem
from pytest_replay.fleet.session import FleetSession
from pytest_replay.fleet.stepblind import StepBlindSession, ignores_steps
from pytest_replay.fleet.topology import Topology, load_topology
from pytest_replay.fleet.writer import FleetLogWriter
from pytest_replay.formats.fleet_log import LOG_EXTENSION

__all__ = [
    "AppRegistration",
    "ReplayAssignment",
    "ReplayPlan",
    "ReplayPlanBuilder",
    "output_log_path_for",
]


def _type_name(app_type: type) -> str:
    return f"{app_type.__module__}.{app_type.__qualname__}"


@dataclass(frozen=True, slots=True)
class AppRegistration:
    """An app type registered for one subsystem."""

    subsystem: Subsystem
    app_type: type[FleetApp]

    @property
    def app_type_name(self) -> str:
        return _type_name(self.app_type)


@dataclass(frozen=True, slots=True)
class ReplayAssignment:
    """One validated (instance, subsystem) with the log and app type that replay it."""

    instance_id: int
    subsystem_id: str
    log: FleetLogInfo
    registration: AppRegistration


def output_log_path_for(record_under: Path, instance_id: int, subsystem_id: str) -> Path:
    """Where a recording replay writes the output log of one session."""
    return record_under / f"instance_{instance_id}" / f"{subsystem_id}{LOG_EXTENSION}"


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    """A validated plan: one assignment per selected instance and topology subsystem,
    sorted by (instance id, subsystem code, subsystem id)."""

    topology_path: Path
    topology: Topology
    catalog: ReplayCatalog
    selected_instances: tuple[int, ...]
    mission: str | None
    registrations: tuple[AppRegistration, ...]
    assignments: tuple[ReplayAssignment, ...] = field(default=())

    @staticmethod
    def builder(topology_path: str | os.PathLike[str]) -> ReplayPlanBuilder:
        return ReplayPlanBuilder(topology_path)

    def assignment(self, instance_id: int, subsystem_id: str) -> ReplayAssignment | None:
        for assignment in self.assignments:
            if assignment.instance_id == instance_id and assignment.subsystem_id == subsystem_id:
                return assignment
        return None

    def start(self, *, record_under: str | os.PathLike[str] | None = None) -> ReplayEngine:
        """Index every assigned log and build the causal replay engine.

        With ``record_under``, each session's app gets a :class:`FleetLogWriter` at
        ``record_under/instance_<id>/<subsystem id>.flog``.
        """
        with paused_collector():
            return self._start(None if record_under is None else Path(record_under))

    def _start(self, root: Path | None) -> ReplayEngine:
        # Discovery indexed each log it read cleanly; only the others are read here.
        readers = open_readers(
            (assignment.log.base_path, assignment.log.index) for assignment in self.assignments
        )
        sessions = []
        for assignment, reader in zip(self.assignments, readers, strict=True):
            output = (
                None
                if root is None
                else output_log_path_for(root, assignment.instance_id, assignment.subsystem_id)
            )
            app_type = assignment.registration.app_type
            session_type = StepBlindSession if ignores_steps(app_type) else FleetSession
            sessions.append(
                session_type(
                    instance_id=assignment.instance_id,
                    subsystem_id=assignment.subsystem_id,
                    subsystem_code=assignment.registration.subsystem.code,
                    reader=reader,
                    app_factory=_factory(assignment),
                    output_log_path=output,
                )
            )
        return ReplayEngine(sessions)


def _factory(
    assignment: ReplayAssignment,
) -> _AppFactory:
    return _AppFactory(
        assignment.registration.app_type, assignment.instance_id, assignment.log.effective_config
    )


@dataclass(frozen=True, slots=True)
class _AppFactory:
    app_type: type[FleetApp]
    instance_id: int
    effective_config: str

    def __call__(self, clock: MockClock, output: FleetLogWriter | None) -> FleetApp:
        return self.app_type(self.instance_id, self.effective_config, clock, output)


class ReplayPlanBuilder:
    """Collects logs, instance selection and app registrations, then validates them all
    at once in :meth:`build`. Every method but :meth:`build` returns the builder."""

    def __init__(self, topology_path: str | os.PathLike[str]) -> None:
        self._topology_path = Path(topology_path)
        self._topology = load_topology(self._topology_path)
        self._inputs: list[Path] = []
        self._catalog: ReplayCatalog | None = None
        self._registrations: dict[str, AppRegistration] = {}
        self._selected: frozenset[int] | None = None

    @property
    def topology(self) -> Topology:
        return self._topology

    def with_catalog(self, catalog: ReplayCatalog) -> ReplayPlanBuilder:
        """Use ``catalog`` instead of discovering logs."""
        self._catalog = catalog
        return self

    def discover_logs(self, paths: Iterable[str | os.PathLike[str]]) -> ReplayPlanBuilder:
        """Add files/folders (walked recursively) and rediscover everything added so far."""
        self._inputs.extend(Path(path) for path in paths)
        self._catalog = ReplayCatalog.discover(self._inputs)
        return self

    def discover_logs_under(self, root: str | os.PathLike[str]) -> ReplayPlanBuilder:
        return self.discover_logs([root])

    def instances(self, instance_ids: Iterable[int]) -> ReplayPlanBuilder:
        """Replay only these instances (default: every instance with discovered logs)."""
        self._selected = frozenset(instance_ids)
        return self

    def register(self, subsystem_id: str, app_type: type[FleetApp]) -> ReplayPlanBuilder:
        """Register the app type that replays ``subsystem_id``; raises at once when the
        subsystem is registered already or unknown, or the app declares another id/code."""
        name = _type_name(app_type) if isinstance(app_type, type) else repr(app_type)
        if subsystem_id in self._registrations:
            raise RegistrationError(
                f"subsystem '{subsystem_id}' is already registered for fleet replay "
                f"(with {self._registrations[subsystem_id].app_type_name})",
                "register each subsystem once",
            )
        expected = self._topology.subsystem(subsystem_id)
        if expected is None:
            raise RegistrationError(
                f"topology '{self._topology_path}' does not define subsystem '{subsystem_id}'",
                f"register one of {', '.join(self._topology.subsystem_ids)}",
            )
        declared = getattr(app_type, "subsystem", None)
        if not isinstance(declared, Subsystem) or declared.id is None:
            raise RegistrationError(
                f"app type '{name}' does not declare a topology subsystem and cannot be "
                "registered for fleet replay",
                "give the class a `subsystem = Subsystem(id, code)` attribute",
            )
        if declared.id != subsystem_id:
            raise RegistrationError(
                f"app type '{name}' declares subsystem '{declared.id}' but was registered as "
                f"'{subsystem_id}'",
                "register the app under the subsystem it declares",
            )
        if declared.code != expected.code:
            raise RegistrationError(
                f"app type '{name}' declares subsystem code {declared.code} for "
                f"'{subsystem_id}' but topology '{self._topology_path}' expects {expected.code}",
                "make the app's Subsystem code match the topology",
            )
        self._registrations[subsystem_id] = AppRegistration(declared, app_type)
        return self

    def build(self) -> ReplayPlan:
        """Validate and return the plan, or raise one :class:`ReplayValidationError`
        listing every problem."""
        catalog = self._catalog
        if catalog is None:
            catalog = ReplayCatalog.discover(self._inputs) if self._inputs else ReplayCatalog()
        topology, where = self._topology, self._topology_path
        issues: list[str] = []
        for failure in catalog.failures:
            issues.append(f"discovery failure for '{failure.candidate_path}': {failure.error}")
        specs = {spec.id: spec for spec in topology.subsystems}
        for name in sorted(specs):
            if name not in self._registrations:
                issues.append(f"missing app registration for subsystem '{name}'")

        discovered: set[int] = set()
        logs_by_target: dict[tuple[int, str], list[FleetLogInfo]] = {}
        for log in catalog.logs:
            subsystem_id = log.subsystem_id
            if subsystem_id is None:
                issues.append(
                    f"discovered log '{log.base_path}' is missing subsystem_id runtime metadata"
                )
                continue
            spec = specs.get(subsystem_id)
            if spec is None:
                issues.append(
                    f"discovered log '{log.base_path}' belongs to subsystem '{subsystem_id}' "
                    f"which is not present in topology '{where}'"
                )
                continue
            if log.subsystem_code != spec.code:
                issues.append(
                    f"discovered log '{log.base_path}' reports subsystem code "
                    f"{log.subsystem_code} for '{subsystem_id}' but topology '{where}' expects "
                    f"{spec.code}"
                )
            discovered.add(log.instance_id)
            logs_by_target.setdefault((log.instance_id, subsystem_id), []).append(log)

        for (instance_id, subsystem_id), logs in sorted(logs_by_target.items()):
            if len(logs) > 1:
                paths = ", ".join(str(log.base_path) for log in logs)
                issues.append(
                    f"found {len(logs)} logs for instance {instance_id} subsystem "
                    f"'{subsystem_id}': {paths}"
                )

        if self._selected is not None:
            selected = sorted(self._selected)
            for instance_id in selected:
                if instance_id not in discovered:
                    issues.append(f"selected instance {instance_id} has no discovered logs")
        else:
            selected = sorted(discovered)
        if not selected:
            issues.append("no instances selected for fleet replay")

        for instance_id in selected:
            for spec in topology.subsystems:
                if (instance_id, spec.id) not in logs_by_target:
                    issues.append(f"missing log for instance {instance_id} subsystem '{spec.id}'")

        missions: list[str] = []
        for instance_id in selected:
            for spec in topology.subsystems:
                found = logs_by_target.get((instance_id, spec.id))
                if found and found[0].mission is not None:
                    missions.append(found[0].mission)
        if len(set(missions)) > 1:
            issues.append(f"selected logs disagree on mission: {', '.join(sorted(set(missions)))}")

        if issues:
            raise ReplayValidationError(where, issues)

        registrations = tuple(
            sorted(self._registrations.values(), key=lambda reg: reg.subsystem.id or "")
        )
        assignments = [
            ReplayAssignment(
                instance_id,
                spec.id,
                logs_by_target[(instance_id, spec.id)][0],
                self._registrations[spec.id],
            )
            for instance_id in selected
            for spec in topology.subsystems
        ]
        assignments.sort(
            key=lambda a: (a.instance_id, a.registration.subsystem.code, a.subsystem_id)
        )
        return ReplayPlan(
            topology_path=where,
            topology=topology,
            catalog=catalog,
            selected_instances=tuple(selected),
            mission=missions[0] if missions else None,
            registrations=registrations,
            assignments=tuple(assignments),
        )
