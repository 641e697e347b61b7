"""Fleet logs and causal replay.

A fleet is many instances each running the same subsystems; every (instance, subsystem)
writes its own log of steps, and messages carry the provenance of the step that produced
them. This package writes and reads those logs (:class:`FleetLogWriter`,
:class:`FleetLogReader`), discovers them (:class:`ReplayCatalog`), validates them
against a topology (:class:`ReplayPlan`) and replays the whole fleet in one stable
causal order (:class:`ReplayEngine`). :mod:`pytest_replay.fleet.recording` bundles a
run into one recording and diffs two of them.
"""

from __future__ import annotations

from pytest_replay.fleet.app import FleetApp, MockClock, NoopApp
from pytest_replay.fleet.catalog import (
    DiscoveryFailure,
    FleetLogInfo,
    ReplayCatalog,
    discover_log,
    normalize_candidate,
)
from pytest_replay.fleet.engine import FleetCursor, ReplayEngine
from pytest_replay.fleet.errors import (
    FleetError,
    FleetLogError,
    FleetLogWriteError,
    FleetRecordingError,
    RegistrationError,
    ReplayGraphError,
    ReplaySessionError,
    ReplayValidationError,
    TopologyError,
)
from pytest_replay.fleet.graph import CausalGraph, SessionNodes, build_causal_graph
from pytest_replay.fleet.plan import (
    AppRegistration,
    ReplayAssignment,
    ReplayPlan,
    ReplayPlanBuilder,
    output_log_path_for,
)
from pytest_replay.fleet.reader import (
    SECTION_CACHE_CAP,
    FleetLogReader,
    LogIdentity,
    SectionIndexEntry,
    StepTable,
    read_identity,
)
from pytest_replay.fleet.recording import (
    FleetRecorder,
    FleetRecording,
    FleetTrace,
    RecordedLog,
    RecordingApp,
    TraceEntry,
    decode_fleet_recording,
    diff_fleet_recordings,
    diff_fleet_traces,
    encode_fleet_recording,
    load_fleet_recording,
    recording_app_for,
    replay_trace,
    write_fleet_recording,
)
from pytest_replay.fleet.records import (
    ConfigSource,
    Instantiated,
    Keyframe,
    LifecycleRecord,
    Message,
    MissionStarted,
    Origin,
    StackInfo,
    Step,
    StepMessages,
    Subsystem,
)
from pytest_replay.fleet.session import AppFactory, EngineSession, FleetSession
from pytest_replay.fleet.topology import (
    Interconnect,
    SubsystemSpec,
    Topology,
    format_topology,
    load_topology,
)
from pytest_replay.fleet.writer import FleetLogWriter
from pytest_replay.formats.fleet_log import LOG_EXTENSION, MAX_SECTION_BYTES, SectionType

__all__ = [
    "LOG_EXTENSION",
    "MAX_SECTION_BYTES",
    "SECTION_CACHE_CAP",
    "AppFactory",
    "AppRegistration",
    "CausalGraph",
    "ConfigSource",
    "DiscoveryFailure",
    "EngineSession",
    "FleetApp",
    "FleetCursor",
    "FleetError",
    "FleetLogError",
    "FleetLogInfo",
    "FleetLogReader",
    "FleetLogWriteError",
    "FleetLogWriter",
    "FleetRecorder",
    "FleetRecording",
    "FleetRecordingError",
    "FleetSession",
    "FleetTrace",
    "Instantiated",
    "Interconnect",
    "Keyframe",
    "LifecycleRecord",
    "LogIdentity",
    "Message",
    "MissionStarted",
    "MockClock",
    "NoopApp",
    "Origin",
    "RecordedLog",
    "RecordingApp",
    "RegistrationError",
    "ReplayAssignment",
    "ReplayCatalog",
    "ReplayEngine",
    "ReplayGraphError",
    "ReplayPlan",
    "ReplayPlanBuilder",
    "ReplaySessionError",
    "ReplayValidationError",
    "SectionIndexEntry",
    "SectionType",
    "SessionNodes",
    "StackInfo",
    "Step",
    "StepMessages",
    "StepTable",
    "Subsystem",
    "SubsystemSpec",
    "Topology",
    "TopologyError",
    "TraceEntry",
    "build_causal_graph",
    "decode_fleet_recording",
    "diff_fleet_recordings",
    "diff_fleet_traces",
    "discover_log",
    "encode_fleet_recording",
    "format_topology",
    "load_fleet_recording",
    "load_topology",
    "normalize_candidate",
    "output_log_path_for",
    "read_identity",
    "recording_app_for",
    "replay_trace",
    "write_fleet_recording",
]


def __getattr__(name: str) -> object:
    # docs/fleet.md taught `ReplaySession` before the plugin's ReplaySession made the name
    # ambiguous; the old name keeps working, with a warning.
    if name == "ReplaySession":
        import warnings

        warnings.warn(
            "pytest_replay.fleet.ReplaySession is now pytest_replay.fleet.FleetSession",
            DeprecationWarning,
            stacklevel=2,
        )
        return FleetSession
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
