"""The ``fleet`` recording kind: ``replay.fleet(name, topology)`` in a test.

The recorder hands the test one :class:`~pytest_replay.fleet.writer.FleetLogWriter` per
(instance, subsystem) and stores the fleet's logs plus its topology as ONE recording
file (:func:`~pytest_replay.fleet.recording.encode_fleet_recording`).

Verify mode checks in two stages:

* live: the stored topology is compared when the recorder opens, each log's identity
  (mission, effective config) when its writer is created, and every step as it is
  logged, against the step at the same position of the stored log, so the test fails
  at the line that logged the first different step;
* at the end of the test (``check_complete``): every stored log must have been written
  in full, then both fleets are replayed through the causal engine with a
  :class:`~pytest_replay.fleet.recording.RecordingApp` and the causal order and every
  replayed step (id, clock, messages, keyframe) are compared.

Every divergence names the instance, the subsystem and the step id.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, NoReturn, overload

from pytest_replay.divergence import Divergence, context_window
from pytest_replay.fleet.errors import FleetError
from pytest_replay.fleet.reader import FleetLogReader
from pytest_replay.fleet.recording import (
    FleetRecorder,
    FleetRecording,
    TraceEntry,
    count_recording_steps,
    decode_fleet_recording,
    diff_fleet_traces,
    encode_fleet_recording,
    replay_trace,
    step_where,
)
from pytest_replay.fleet.records import Instantiated, Message, MissionStarted, Step
from pytest_replay.fleet.topology import Topology, load_topology
from pytest_replay.fleet.writer import FleetLogWriter
from pytest_replay.recorder import CheckedStream, DiffResult, FinishedRecording, RecordingTarget
from pytest_replay.recordingkind import RecordingKind

__all__ = ["FLEET_KIND", "FleetKindRecorder", "kinds"]

_MISSING: Final = "<missing>"


def _render_step(position: int, step: Step) -> str:
    messages = ", ".join(_render_message(m) for m in step.messages)
    return f"#{position} step {step.step_id} t={step.timestamp_ns} [{messages}]"


def _render_message(message: Message) -> str:
    origin = message.origin
    where = (
        ""
        if origin is None
        else f" <- ({origin.instance_id}, {origin.subsystem_code}, {origin.step_id})"
    )
    return f"{message.payload!r}{where}"


def _render_entry(index: int, entry: TraceEntry) -> str:
    return (
        f"#{index} instance {entry.instance_id} subsystem '{entry.subsystem_id}' "
        f"step {entry.step_id} t={entry.timestamp_ns} messages={len(entry.messages)}"
    )


def _step_difference(want: Step, got: Step) -> tuple[str, object, object] | None:
    """The first field where two steps differ (ids, clock, then message by message)."""
    if want.step_id != got.step_id:
        return "step_id", want.step_id, got.step_id
    if want.timestamp_ns != got.timestamp_ns:
        return "timestamp_ns", want.timestamp_ns, got.timestamp_ns
    left, right = tuple(want.messages), tuple(got.messages)
    for position, (a, b) in enumerate(zip(left, right, strict=False)):
        if a.payload != b.payload:
            return f"messages[{position}].payload", a.payload, b.payload
        if a.origin != b.origin:
            return f"messages[{position}].origin", a.origin, b.origin
    if len(left) != len(right):
        return "messages.length", len(left), len(right)
    return None


def _trace_detail(found: Divergence) -> str:
    if found.index is None:
        return "the fleet topology differs from the stored one"
    if found.field == "length":
        return (
            f"the causal replays have different lengths; the first step only one side has is "
            f"{found.at} (causal position #{found.index})"
        )
    return f"causal replay diverges at {found.at} (causal position #{found.index})"


class _StoredSteps(Sequence[Step]):
    """The steps of a stored log, read on demand: the stored stream of a checked writer."""

    def __init__(self, reader: FleetLogReader) -> None:
        self._reader = reader

    def __len__(self) -> int:
        return self._reader.total_steps

    @overload
    def __getitem__(self, index: int) -> Step: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Step]: ...

    def __getitem__(self, index: int | slice) -> Step | Sequence[Step]:
        if isinstance(index, slice):
            return [self._reader.step_at(i) for i in range(*index.indices(len(self)))]
        return self._reader.step_at(index)

    def __iter__(self) -> Iterator[Step]:
        return (self._reader.step_at(i) for i in range(len(self)))


def _step_detail(instance_id: int, subsystem_id: str) -> Any:
    """The detail line of a failure at a step of the log of one (instance, subsystem)."""

    def detail(divergence: Divergence, expected: Step | None, actual: Step | None) -> str:
        if divergence.kind != "length":
            assert expected is not None
            where = step_where(instance_id, subsystem_id, expected.step_id)
            return f"first divergence at {where} (step #{divergence.index} of its log)"
        if divergence.actual > divergence.expected:
            assert actual is not None
            where = step_where(instance_id, subsystem_id, actual.step_id)
            return f"{where} is a step beyond the end of the stored log"
        assert expected is not None
        where = step_where(instance_id, subsystem_id, expected.step_id)
        return (
            f"the log of {where} ends early: stored {divergence.expected} steps, "
            f"logged {divergence.actual}"
        )

    return detail


class _CheckedWriter(FleetLogWriter):
    """A log writer that compares every step with the stored log as it is logged."""

    def __init__(self, base_path: Path, *, stream: CheckedStream[Step], **options: Any) -> None:
        super().__init__(base_path, **options)
        self.stream = stream

    def log_step(self, step: Step) -> None:
        __tracebackhide__ = True
        super().log_step(step)
        self.stream.check(step)


class FleetKindRecorder:
    """What ``replay.fleet(name, topology)`` returns.

    ``writer(instance_id, subsystem_id, mission=..., effective_config=...)`` gives the
    log writer of one (instance, subsystem), with its Instantiated (and MissionStarted)
    records logged and an empty keyframe at its first step. Everything else is the
    plugin's: ``check_complete``, ``finish`` and ``close``.
    """

    def __init__(
        self, target: RecordingTarget, topology: str | os.PathLike[str] | Topology
    ) -> None:
        __tracebackhide__ = True
        self._target = target
        self._topology = topology if isinstance(topology, Topology) else load_topology(topology)
        self._workdir = target.scratch / f"{target.stored_path.name}.d"
        if self._workdir.exists():
            shutil.rmtree(self._workdir)
        self._recorder = FleetRecorder(self._workdir / "actual", self._topology)
        self._writers: dict[tuple[int, str], FleetLogWriter] = {}
        self._streams: dict[tuple[int, str], CheckedStream[Step]] = {}
        self._finished: FinishedRecording | None = None
        self._expected: FleetRecording | None = None
        self._expected_logs: dict[tuple[int, str], Path] = {}
        self._readers: dict[tuple[int, str], FleetLogReader] = {}
        if target.expected is not None:
            self._open_expected(target.expected)

    # ----------------------------------------------------------------- user API

    @property
    def name(self) -> str:
        return self._target.name

    @property
    def topology(self) -> Topology:
        return self._topology

    @property
    def logs_root(self) -> Path:
        """Where this run's logs are written."""
        return self._recorder.logs_root

    def writer(
        self,
        instance_id: int,
        subsystem_id: str,
        *,
        mission: str | None = None,
        effective_config: str = "",
        slab_size: int | None = None,
    ) -> FleetLogWriter:
        """The log writer of one (instance, subsystem); ask once for each."""
        __tracebackhide__ = True
        key = (instance_id, subsystem_id)
        stored: _StoredSteps | None = None
        if self._expected is not None:
            stored = _StoredSteps(self._expected_reader(key, mission, effective_config))
        stream: CheckedStream[Step] = CheckedStream(
            self._target,
            stored,
            _step_difference,
            _render_step,
            detail=_step_detail(instance_id, subsystem_id),
            unit="step",
        )
        writer = self._recorder.writer(
            instance_id,
            subsystem_id,
            mission=mission,
            effective_config=effective_config,
            slab_size=slab_size,
            writer_type=lambda base, **options: _CheckedWriter(base, stream=stream, **options),
        )
        self._writers[key] = writer
        self._streams[key] = stream
        return writer

    # ----------------------------------------------------------------- plugin API

    def check_complete(self) -> None:
        """Replay this run's fleet through the engine (so a recording that cannot be
        replayed is never stored) and, when checking, compare it with the stored one."""
        __tracebackhide__ = True
        recording = self._recording()
        actual = replay_trace(recording)
        if self._expected is None:
            return
        for key, path in sorted(self._expected_logs.items()):
            if key not in self._streams:
                self._fail_log_missing(key, path)
            self._streams[key].check_complete()
        expected = replay_trace(self._expected)
        found = diff_fleet_traces(expected, actual)
        if found is not None:
            context = context_window(expected.entries, found.index or 0, _render_entry)
            self._fail(found, context, _trace_detail(found))

    def finish(self) -> FinishedRecording:
        """Close every writer and bundle topology and logs (the same bytes every run)."""
        if self._finished is None:
            recording = self._recording()
            self._finished = FinishedRecording(
                encode_fleet_recording(recording),
                count_recording_steps(recording),
                {
                    "topology": recording.topology_name,
                    "logs": len(recording.logs),
                    "instances": sorted({log.instance_id for log in recording.logs}),
                },
            )
        return self._finished

    def close(self) -> None:
        """Close every writer still open; keeps what was logged."""
        for _key, writer in sorted(self._writers.items()):
            with contextlib.suppress(FleetError):
                writer.close()

    # ----------------------------------------------------------------- internals

    def _recording(self) -> FleetRecording:
        return self._recorder.finish()

    def _open_expected(self, data: bytes) -> None:
        __tracebackhide__ = True
        recording = decode_fleet_recording(data, self._target.stored_path)
        self._expected = recording
        current = FleetRecording.bundle(self._topology, ())
        if current.topology_text != recording.topology_text:
            self._fail(
                Divergence(None, "topology", recording.topology_text, current.topology_text),
                (),
                f"the topology '{self._topology.path}' differs from the stored one",
            )
        if current.configs != recording.configs:
            self._fail(
                Divergence(None, "configs", recording.configs, current.configs),
                (),
                "the subsystem config files named by the topology differ from the stored ones",
            )
        _topology_path, logs_root = recording.materialise(self._workdir / "expected")
        for log in recording.logs:
            self._expected_logs[(log.instance_id, log.subsystem_id)] = recording.log_base_path(
                logs_root, log
            )

    def _reader(self, key: tuple[int, str]) -> FleetLogReader:
        reader = self._readers.get(key)
        if reader is None:
            reader = self._readers[key] = FleetLogReader(self._expected_logs[key])
        return reader

    def _expected_reader(
        self, key: tuple[int, str], mission: str | None, effective_config: str
    ) -> FleetLogReader:
        __tracebackhide__ = True
        if key not in self._expected_logs:
            stored = ", ".join(f"({i}, '{s}')" for i, s in sorted(self._expected_logs)) or "none"
            self._fail(
                Divergence(None, "logs", _MISSING, f"({key[0]}, '{key[1]}')"),
                (),
                f"the stored recording has no log for instance {key[0]} subsystem '{key[1]}' "
                f"(stored logs: {stored})",
            )
        reader = self._reader(key)
        stored_config = next(
            (r.effective_config for r in reader.lifecycle if isinstance(r, Instantiated)), None
        )
        stored_mission = next(
            (r.mission for r in reader.lifecycle if isinstance(r, MissionStarted)), None
        )
        where = f"the log of instance {key[0]} subsystem '{key[1]}'"
        if stored_mission != mission:
            self._fail(
                Divergence(None, "mission", stored_mission, mission),
                (),
                f"{where} starts another mission",
            )
        if stored_config != effective_config:
            self._fail(
                Divergence(None, "effective_config", stored_config, effective_config),
                (),
                f"{where} was built from another effective config",
            )
        return reader

    def _fail_log_missing(self, key: tuple[int, str], path: Path) -> NoReturn:
        __tracebackhide__ = True
        self._fail(
            Divergence(None, "logs", f"({key[0]}, '{key[1]}')", _MISSING),
            (),
            f"the stored log of instance {key[0]} subsystem '{key[1]}' was not written "
            "(no writer was asked for it)",
        )

    def _fail(self, divergence: Divergence, context: Sequence[str], detail: str) -> NoReturn:
        __tracebackhide__ = True
        self._target.fail(dataclasses.replace(divergence, context=tuple(context), detail=detail))


def open_fleet(
    target: RecordingTarget, topology: str | os.PathLike[str] | Topology
) -> FleetKindRecorder:
    """``replay.fleet(name, topology)``: the fleet recorder of one test."""
    return FleetKindRecorder(target, topology)


def diff_fleet(expected: bytes, actual: bytes, meta: Mapping[str, Any]) -> DiffResult | None:
    """Replay two stored fleet recordings and return their first divergence."""
    left = decode_fleet_recording(expected, "expected")
    right = decode_fleet_recording(actual, "actual")
    want, got = replay_trace(left), replay_trace(right)
    found = diff_fleet_traces(want, got)
    if found is None:
        return None
    context = context_window(want.entries, found.index or 0, _render_entry)
    return found, (_trace_detail(found), *context)


def count_fleet(data: bytes) -> int:
    """Number of recorded steps across every log of a stored fleet recording."""
    return count_recording_steps(decode_fleet_recording(data, "recording"))


FLEET_KIND: Final = RecordingKind(
    name="fleet",
    extension=".fleet",
    version=1,
    open=open_fleet,
    diff=diff_fleet,
    count=count_fleet,
)


def kinds() -> list[RecordingKind]:
    """The recording kinds this package adds: ``fleet``."""
    return [FLEET_KIND]
