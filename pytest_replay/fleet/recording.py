"""Fleet recordings: a fleet run's logs plus its topology as one file, and their diff.

The three calls a test harness needs:

* :class:`FleetRecorder` hands out one :class:`FleetLogWriter` per (instance, subsystem)
  and :meth:`FleetRecorder.finish` returns the run as a :class:`FleetRecording`;
* :func:`write_fleet_recording` / :func:`load_fleet_recording` store and read it;
* :func:`diff_fleet_recordings` replays two recordings through the causal engine with
  :class:`RecordingApp` and returns the first
  :class:`~pytest_replay.divergence.Divergence`, or ``None``.

The recording file's byte layout is :mod:`pytest_replay.formats.fleet_recording`.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import ClassVar, Final

import msgpack

from pytest_replay._atomic import atomic_write_bytes
from pytest_replay.divergence import Divergence
from pytest_replay.fleet.app import MockClock, NoopApp
from pytest_replay.fleet.catalog import ReplayCatalog
from pytest_replay.fleet.errors import FleetRecordingError
from pytest_replay.fleet.logformat import decode_steps, iter_frames, parse_slab_header
from pytest_replay.fleet.plan import ReplayPlan
from pytest_replay.fleet.reader import FleetLogReader, read_regular_file
from pytest_replay.fleet.records import (
    ConfigSource,
    Keyframe,
    StackInfo,
    Step,
    Subsystem,
)
from pytest_replay.fleet.topology import Topology, load_topology
from pytest_replay.fleet.writer import DEFAULT_SLAB_SIZE, FleetLogWriter
from pytest_replay.formats.fleet_log import LOG_EXTENSION, SectionType, slab_path
from pytest_replay.formats.fleet_recording import (
    MAX_RECORDING_BYTES,
    RECORDING_MAGIC,
    RECORDING_VERSION,
    encode_recording_body,
    read_recording_body,
)

__all__ = [
    "RECORDING_MAGIC",
    "FleetRecorder",
    "FleetRecording",
    "FleetTrace",
    "RecordedLog",
    "RecordingApp",
    "TraceEntry",
    "count_recording_steps",
    "decode_fleet_recording",
    "diff_fleet_recordings",
    "diff_fleet_traces",
    "encode_fleet_recording",
    "load_fleet_recording",
    "replay_trace",
    "step_where",
    "write_fleet_recording",
]

_RECORD_FIX: Final = "record the fleet again (pytest --replay-record)"
_BUILD_FIX: Final = (
    "give every log its own (instance, subsystem) and every file a plain relative name "
    "(no '..', backslash or NUL) that no other file or folder of the recording uses"
)


@dataclass(frozen=True, slots=True)
class RecordedLog:
    """The slab files of one log, in slab order."""

    instance_id: int
    subsystem_id: str
    slabs: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class FleetRecording:
    """A fleet run: topology text, the config files it names, and every log's slabs."""

    topology_name: str
    topology_text: str
    configs: tuple[tuple[str, bytes], ...] = ()
    logs: tuple[RecordedLog, ...] = ()

    @classmethod
    def from_files(
        cls, topology_path: str | os.PathLike[str], logs_root: str | os.PathLike[str]
    ) -> FleetRecording:
        """Bundle a topology and every log discovered under ``logs_root``."""
        topology = load_topology(topology_path)
        catalog = ReplayCatalog.discover_under(logs_root)
        if catalog.failures:
            raise FleetRecordingError(
                None,
                f"cannot bundle unreadable log {catalog.failures[0]}",
                "fix or remove the log before recording",
            )
        logs = []
        for log in catalog.logs:
            if log.subsystem_id is None:
                raise FleetRecordingError(
                    None,
                    f"log '{log.base_path}' has no subsystem id",
                    "log_instantiated with a StackInfo naming the subsystem",
                )
            reader = FleetLogReader(log.base_path)
            slabs = tuple(path.read_bytes() for path in reader.slab_paths)
            logs.append(RecordedLog(log.instance_id, log.subsystem_id, slabs))
        return cls.bundle(topology, logs)

    @classmethod
    def bundle(cls, topology: Topology, logs: Sequence[RecordedLog]) -> FleetRecording:
        """The recording of ``logs`` under ``topology`` (its file and config files are read)."""
        configs = []
        for spec in topology.subsystems:
            if spec.config_path is not None:
                if not spec.config_path.is_relative_to(topology.path.parent):
                    raise FleetRecordingError(
                        None,
                        f"config '{spec.config_path}' of subsystem '{spec.id}' is outside the "
                        f"folder of topology '{topology.path}'",
                        "keep config files next to the topology file (load it with load_topology)",
                    )
                relative = spec.config_path.relative_to(topology.path.parent).as_posix()
                configs.append((relative, spec.config_path.read_bytes()))
        ordered = sorted(logs, key=lambda log: (log.instance_id, log.subsystem_id))
        return cls(
            topology_name=topology.path.name,
            topology_text=topology.path.read_text(encoding="utf-8"),
            configs=tuple(sorted(configs)),
            logs=tuple(ordered),
        )

    def materialise(self, folder: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write the topology, configs and logs under ``folder``; returns
        (topology path, logs root)."""
        _check_recording(self)
        root = Path(folder)
        topology_path = root / self.topology_name
        for relative, data in self.configs:
            atomic_write_bytes(root / relative, data)
        atomic_write_bytes(topology_path, self.topology_text.encode("utf-8"))
        logs_root = root / "logs"
        for log in self.logs:
            base = self.log_base_path(logs_root, log)
            for index, data in enumerate(log.slabs):
                atomic_write_bytes(slab_path(base, index), data)
        return topology_path, logs_root

    @staticmethod
    def log_base_path(logs_root: Path, log: RecordedLog) -> Path:
        """Where :meth:`materialise` puts the base path of ``log``."""
        return logs_root / f"instance_{log.instance_id}" / f"{log.subsystem_id}{LOG_EXTENSION}"


def count_recording_steps(recording: FleetRecording) -> int:
    """Steps held by every log of ``recording``, read from the slab bytes in memory.

    Every frame is CRC-checked; step sections are decoded and validated.
    """
    total = 0
    for log in recording.logs:
        base = FleetRecording.log_base_path(Path("logs"), log)
        for index, data in enumerate(log.slabs):
            path = slab_path(base, index)
            parse_slab_header(path, data, index)
            for offset, kind, payload in iter_frames(path, data):
                if kind is SectionType.STEPS:
                    total += len(decode_steps(path, offset, payload))
    return total


def encode_fleet_recording(recording: FleetRecording) -> bytes:
    _check_recording(recording)
    body: bytes = msgpack.packb(
        {
            "version": RECORDING_VERSION,
            "topology_name": recording.topology_name,
            "topology": recording.topology_text,
            "configs": [[name, data] for name, data in recording.configs],
            "logs": [
                [log.instance_id, log.subsystem_id, list(log.slabs)] for log in recording.logs
            ],
        },
        use_bin_type=True,
    )
    return encode_recording_body(body)


def _bad(path: str | os.PathLike[str] | None, detail: str) -> FleetRecordingError:
    return FleetRecordingError(path, detail, _RECORD_FIX)


def _is_name(value: str) -> bool:
    # Names become file names when a recording is materialised: one path component,
    # without the NUL the OS refuses or the backslash Windows reads as a separator.
    return value not in ("", ".", "..") and not any(ch in value for ch in "/\\\x00")


def _check_recording(
    recording: FleetRecording, path: str | os.PathLike[str] | None = None, fix: str = _BUILD_FIX
) -> None:
    """Refuse names that are not plain relative paths, and files that would overwrite each
    other (or stand where a folder must be) when :meth:`FleetRecording.materialise` writes
    them out."""

    def bad(detail: str) -> FleetRecordingError:
        return FleetRecordingError(path, detail, fix)

    if not _is_name(recording.topology_name):
        raise bad(f"topology name {recording.topology_name!r} is not a plain file name")
    files = {recording.topology_name: "the topology file"}
    for position, (name, _data) in enumerate(recording.configs):
        if not all(_is_name(part) for part in name.split("/")):
            raise bad(f"config #{position} path {name!r} is not a relative path in the recording")
        if name in files:
            raise bad(f"config #{position} path '{name}' is also {files[name]}")
        files[name] = f"config #{position}"
    seen: dict[tuple[int, str], int] = {}
    for position, log in enumerate(recording.logs):
        if not _is_name(log.subsystem_id):
            raise bad(f"log #{position} subsystem id {log.subsystem_id!r} is not a plain file name")
        key = (log.instance_id, log.subsystem_id)
        if key in seen:
            raise bad(
                f"log #{position} repeats instance {log.instance_id} subsystem "
                f"'{log.subsystem_id}' (also log #{seen[key]})"
            )
        seen[key] = position
        base = FleetRecording.log_base_path(Path("logs"), log)
        for index in range(len(log.slabs)):
            name = slab_path(base, index).as_posix()
            if name in files:
                raise bad(f"log #{position} slab {index} path '{name}' is also {files[name]}")
            files[name] = f"log #{position} slab {index}"
    folders = {parent.as_posix() for name in files for parent in PurePosixPath(name).parents}
    for name, what in files.items():
        if name in folders:
            raise bad(f"'{name}' is {what} and also a folder of the recording")


def decode_fleet_recording(
    data: bytes, path: str | os.PathLike[str] | None = None
) -> FleetRecording:
    raw = read_recording_body(data, path, error=FleetRecordingError)
    if type(raw["topology_name"]) is not str or type(raw["topology"]) is not str:
        raise _bad(path, "topology name/text are malformed")
    configs = []
    if type(raw["configs"]) is not list:
        raise _bad(path, "configs is not an array")
    for position, item in enumerate(raw["configs"]):
        if not (type(item) is list and len(item) == 2 and type(item[0]) is str
                and type(item[1]) is bytes):  # fmt: skip
            raise _bad(path, f"config #{position} is not [path, bytes]")
        configs.append((item[0], item[1]))
    logs = []
    if type(raw["logs"]) is not list:
        raise _bad(path, "logs is not an array")
    for position, item in enumerate(raw["logs"]):
        if not (
            type(item) is list
            and len(item) == 3
            and type(item[0]) is int
            and 0 <= item[0] < 1 << 32
            and type(item[1]) is str
            and type(item[2]) is list
            and all(type(slab) is bytes for slab in item[2])
        ):
            raise _bad(path, f"log #{position} is not [instance id, subsystem id, [slabs]]")
        logs.append(RecordedLog(item[0], item[1], tuple(item[2])))
    recording = FleetRecording(raw["topology_name"], raw["topology"], tuple(configs), tuple(logs))
    _check_recording(recording, path, _RECORD_FIX)
    return recording


def write_fleet_recording(path: str | os.PathLike[str], recording: FleetRecording) -> None:
    """Store ``recording`` at ``path`` atomically."""
    atomic_write_bytes(path, encode_fleet_recording(recording))


def load_fleet_recording(path: str | os.PathLike[str]) -> FleetRecording:
    fail = functools.partial(FleetRecordingError, path)
    try:
        data = read_regular_file(Path(path), MAX_RECORDING_BYTES, _RECORD_FIX, fail)
    except OSError as exc:
        raise FleetRecordingError(path, f"cannot read ({exc})", "check the path") from None
    return decode_fleet_recording(data, path)


# --------------------------------------------------------------------------- recorder


class FleetRecorder:
    """Gives a test one log writer per (instance, subsystem) and bundles the run.

    Writers are created under ``workdir/logs/instance_<id>/<subsystem>.flog`` with the
    Instantiated (and, when given, MissionStarted) records already logged and an
    empty keyframe added at the first step (``initial_keyframe=True``).
    """

    def __init__(
        self, workdir: str | os.PathLike[str], topology: str | os.PathLike[str] | Topology
    ) -> None:
        self._workdir = Path(workdir)
        self._topology = topology if isinstance(topology, Topology) else load_topology(topology)
        self._writers: dict[tuple[int, str], FleetLogWriter] = {}
        self._finished = False

    @property
    def topology(self) -> Topology:
        return self._topology

    @property
    def logs_root(self) -> Path:
        return self._workdir / "logs"

    def writer(
        self,
        instance_id: int,
        subsystem_id: str,
        *,
        mission: str | None = None,
        effective_config: str = "",
        app_name: str = "pytest_replay",
        app_version: str = "0",
        slab_size: int | None = None,
        writer_type: Callable[..., FleetLogWriter] = FleetLogWriter,
    ) -> FleetLogWriter:
        """The writer of one (instance, subsystem) of the topology; one per pair.

        ``writer_type(base_path, **options)`` builds it (a :class:`FleetLogWriter`
        subclass that checks as it goes, for instance).
        """
        if self._finished:
            raise FleetRecordingError(
                None, "the recorder has finished", "ask for writers before finish()"
            )
        spec = self._topology.subsystem(subsystem_id)
        if spec is None:
            raise FleetRecordingError(
                None,
                f"topology '{self._topology.path}' does not define subsystem '{subsystem_id}'",
                f"use one of {', '.join(self._topology.subsystem_ids)}",
            )
        key = (instance_id, subsystem_id)
        if key in self._writers:
            raise FleetRecordingError(
                None,
                f"a writer for instance {instance_id} subsystem '{subsystem_id}' exists already",
                "keep the writer the first call returned",
            )
        base = self.logs_root / f"instance_{instance_id}" / f"{subsystem_id}{LOG_EXTENSION}"
        writer = writer_type(base, initial_keyframe=True, slab_size=slab_size or DEFAULT_SLAB_SIZE)
        writer.log_instantiated(
            StackInfo(app_name, app_version, subsystem_id, spec.code, instance_id),
            effective_config=effective_config,
            config_source=ConfigSource.PROGRAMMATIC_OVERRIDE,
        )
        if mission is not None:
            writer.log_mission_started(mission)
        self._writers[key] = writer
        return writer

    def finish(self) -> FleetRecording:
        """Close every writer and bundle topology and logs. Idempotent."""
        self._finished = True
        for _key, writer in sorted(self._writers.items()):
            writer.close()
        logs = []
        for (instance_id, subsystem_id), writer in sorted(self._writers.items()):
            slabs = tuple(path.read_bytes() for path in writer.slab_paths)
            logs.append(RecordedLog(instance_id, subsystem_id, slabs))
        return FleetRecording.bundle(self._topology, logs)


# --------------------------------------------------------------------------- replay trace


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """One replayed step as the recording app saw it."""

    instance_id: int
    subsystem_id: str
    step_id: int
    timestamp_ns: int
    messages: tuple[tuple[bytes, tuple[int, int, int] | None], ...]
    keyframe: bytes | None


@dataclass(frozen=True, slots=True)
class FleetTrace:
    """Every replayed step, in causal order."""

    topology_text: str
    entries: tuple[TraceEntry, ...] = field(default=())


class RecordingApp(NoopApp):
    """An app that remembers every step it replays (made concrete per subsystem by
    :func:`recording_app_for`); used by :func:`replay_trace`."""

    #: Where replayed steps go (set per subclass by :func:`recording_app_for`).
    sink: ClassVar[list[TraceEntry] | None] = None

    def __init__(
        self,
        instance_id: int,
        effective_config: str,
        clock: MockClock,
        output: FleetLogWriter | None,
    ) -> None:
        super().__init__(instance_id, effective_config, clock, output)
        self.calls: list[tuple[str, object]] = []

    def start(self) -> None:
        self.calls.append(("start", None))

    def stop(self) -> None:
        self.calls.append(("stop", None))

    def restore_keyframe(self, keyframe: Keyframe) -> None:
        self.calls.append(("restore_keyframe", keyframe.step_id))

    def replay_step(self, clock: MockClock, step: Step, keyframe: Keyframe | None) -> None:
        self.calls.append(("replay_step", step.step_id))
        entry = TraceEntry(
            self.instance_id,
            str(self.subsystem.id),
            step.step_id,
            clock.now,
            tuple(
                (
                    message.payload,
                    None
                    if message.origin is None
                    else (
                        message.origin.instance_id,
                        message.origin.subsystem_code,
                        message.origin.step_id,
                    ),
                )
                for message in step.messages
            ),
            None if keyframe is None else keyframe.state,
        )
        if self.sink is not None:
            self.sink.append(entry)


def recording_app_for(subsystem: Subsystem, sink: list[TraceEntry]) -> type[RecordingApp]:
    """A :class:`RecordingApp` subclass declaring ``subsystem`` that appends to ``sink``."""
    name = f"RecordingApp_{subsystem.id}"
    return type(name, (RecordingApp,), {"subsystem": subsystem, "sink": sink, "__qualname__": name})


def replay_trace(recording: FleetRecording) -> FleetTrace:
    """Materialise ``recording`` in a temporary folder and replay the whole fleet."""
    with tempfile.TemporaryDirectory(prefix="pytest-replay-fleet-") as folder:
        topology_path, logs_root = recording.materialise(folder)
        builder = ReplayPlan.builder(topology_path).discover_logs_under(logs_root)
        sink: list[TraceEntry] = []
        for spec in builder.topology.subsystems:
            builder.register(spec.id, recording_app_for(Subsystem(spec.id, spec.code), sink))
        if not recording.logs:
            return FleetTrace(recording.topology_text, ())
        with builder.build().start() as engine:
            engine.run_all()
        return FleetTrace(recording.topology_text, tuple(sink))


def _entry_fields(entry: TraceEntry) -> list[tuple[str, object]]:
    fields: list[tuple[str, object]] = [
        ("instance_id", entry.instance_id),
        ("subsystem_id", entry.subsystem_id),
        ("step_id", entry.step_id),
        ("timestamp_ns", entry.timestamp_ns),
        ("keyframe", entry.keyframe),
        ("messages.length", len(entry.messages)),
    ]
    for position, (payload, origin) in enumerate(entry.messages):
        fields.append((f"messages[{position}].payload", payload))
        fields.append((f"messages[{position}].origin", origin))
    return fields


def step_where(instance_id: int, subsystem_id: str, step_id: int) -> str:
    """``instance I subsystem 'S' step N``: a step of a fleet, as every report names it."""
    return f"instance {instance_id} subsystem '{subsystem_id}' step {step_id}"


def diff_fleet_traces(expected: FleetTrace, actual: FleetTrace) -> Divergence | None:
    """Where two fleet replays first differ, or ``None``.

    ``index`` is the position in causal order (``None`` when the topologies differ);
    ``field`` a path such as ``step_id``, ``messages[1].payload`` or ``length``; ``at``
    names the entry's instance, subsystem and step, from the expected side (the actual
    side when the expected replay is shorter).
    """
    if expected.topology_text != actual.topology_text:
        return Divergence(None, "topology", expected.topology_text, actual.topology_text)
    for index, (want, got) in enumerate(zip(expected.entries, actual.entries, strict=False)):
        if want == got:
            continue
        for (name, a), (_name, b) in zip(_entry_fields(want), _entry_fields(got), strict=False):
            if a != b:
                where = step_where(want.instance_id, want.subsystem_id, want.step_id)
                return Divergence(index, name, a, b, at=where, unit="step")
    if len(expected.entries) != len(actual.entries):
        common = min(len(expected.entries), len(actual.entries))
        longer = expected.entries if len(expected.entries) > common else actual.entries
        first = longer[common]
        return Divergence(
            common,
            "length",
            len(expected.entries),
            len(actual.entries),
            "length",
            at=step_where(first.instance_id, first.subsystem_id, first.step_id),
            unit="step",
        )
    return None


def diff_fleet_recordings(expected: FleetRecording, actual: FleetRecording) -> Divergence | None:
    """Replay both recordings and return their first divergence, or ``None``.

    Raises :class:`~pytest_replay.fleet.errors.FleetError` subclasses when either
    recording cannot be replayed.
    """
    return diff_fleet_traces(replay_trace(expected), replay_trace(actual))
