"""The ``replication`` recording kind: a simulation's trace, recorded and verified live.

In a test::

    def test_partition_heals(replay):
        schedule = NetworkSchedule(seed=7, nodes=(1, 2, 3), end_ms=6_000, ...)
        run = replay.replication("cluster", schedule)
        sim = run.run()                       # simulate to schedule.end_ms
        assert not convergence_problems(sim)

When recording, the trace (with the schedule) is stored as a ``.rpltrace``
file. When verifying, the stored schedule must equal the one given, and every
event is compared with the stored one as the simulation produces it: the test
fails at the first differing event, inside the simulation, with the two
events before it as context.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pytest_replay.diff import first_value_difference
from pytest_replay.divergence import Divergence, context_window
from pytest_replay.recorder import CheckedRecorder, DiffResult, FinishedRecording, RecordingTarget
from pytest_replay.recordingkind import RecordingKind
from pytest_replay.replication.coordinator import ChainTagSink
from pytest_replay.replication.errors import ScheduleError
from pytest_replay.replication.messages import NodeId
from pytest_replay.replication.schedule import NetworkSchedule, schedule_to_plain
from pytest_replay.replication.sim import Simulation, first_trace_divergence
from pytest_replay.replication.trace import (
    RawEvent,
    TraceEvent,
    decode_trace,
    encode_trace,
    event_fields,
    render_event,
)
from pytest_replay.report import ReplayUsageError

__all__ = ["REPLICATION_KIND", "ReplicationRecorder", "kinds"]


class ReplicationRecorder(CheckedRecorder[RawEvent]):
    """Records (or verifies) the trace of one :class:`Simulation`.

    Pass the schedule to ``replay.replication(name, schedule)`` or later to
    :meth:`simulate`; then drive the simulation (:meth:`run`,
    :meth:`run_until`, or the returned :class:`Simulation` directly). The
    simulation's trace sink is :meth:`append`, so the item-by-item check is
    :class:`~pytest_replay.recorder.CheckedRecorder`'s, with events as items.
    """

    def __init__(
        self,
        target: RecordingTarget,
        schedule: NetworkSchedule | None = None,
        *,
        tag_sink: Callable[[NodeId], ChainTagSink] | None = None,
    ) -> None:
        if schedule is not None and not isinstance(schedule, NetworkSchedule):
            raise ScheduleError(
                f"replay.replication({target.name!r}, ...) got {type(schedule).__name__}, "
                "not a NetworkSchedule. Fix: pass a NetworkSchedule (or nothing, then "
                ".simulate(schedule))."
            )
        stored = (
            None
            if target.expected is None
            else decode_trace(target.expected, str(target.stored_path))
        )
        self._expected_schedule = None if stored is None else stored.schedule
        self._sim: Simulation | None = None
        super().__init__(
            target,
            encode=lambda events: encode_trace(self.simulation.schedule, events),
            decode=lambda _data, _source: [] if stored is None else stored.events,
            compare=event_fields,
            render=render_event,
            detail=self._describe,
        )
        if schedule is not None:
            self.simulate(schedule, tag_sink=tag_sink)

    @property
    def simulation(self) -> Simulation:
        if self._sim is None:
            raise ReplayUsageError(
                f"recording {self.name!r} has no simulation yet. Fix: call "
                ".simulate(schedule) or pass the schedule to replay.replication(name, schedule)."
            )
        return self._sim

    def events(self) -> list[TraceEvent]:
        """The events recorded so far."""
        return [TraceEvent.from_raw(e) for e in self.items]

    def simulate(
        self,
        schedule: NetworkSchedule,
        *,
        tag_sink: Callable[[NodeId], ChainTagSink] | None = None,
    ) -> Simulation:
        """Create the simulation whose trace this recording holds (once per recording)."""
        __tracebackhide__ = True
        if self._sim is not None:
            raise ReplayUsageError(
                f"recording {self.name!r} already holds a simulation. "
                "Fix: open another recording name for a second simulation."
            )
        stored = self._expected_schedule
        if stored is not None and stored != schedule:
            found = first_value_difference(schedule_to_plain(stored), schedule_to_plain(schedule))
            path, want, got = found if found is not None else ("", stored, schedule)
            self._target.fail(
                Divergence(
                    None,
                    f"schedule{path}",
                    want,
                    got,
                    detail="the test simulates another schedule than the stored trace",
                )
            )
        self._sim = Simulation(schedule, sinks=[self.append], keep_trace=False, tag_sink=tag_sink)
        return self._sim

    def run(self) -> Simulation:
        """Simulate to the schedule's ``end_ms``."""
        __tracebackhide__ = True
        return self.simulation.run()

    def run_until(self, time_ms: int) -> Simulation:
        __tracebackhide__ = True
        sim = self.simulation
        sim.run_until(time_ms)
        return sim

    @staticmethod
    def _describe(
        divergence: Divergence, expected: RawEvent | None, actual: RawEvent | None
    ) -> str:
        """The detail line of a failure at event ``divergence.index``."""
        index = divergence.index
        assert index is not None
        if divergence.kind != "length":
            assert expected is not None and actual is not None
            return f"expected {render_event(index, expected)}; got {render_event(index, actual)}"
        if expected is not None:
            return f"the simulation stopped before stored event {render_event(index, expected)}"
        assert actual is not None
        return f"an event beyond the end of the stored trace: {render_event(index, actual)}"

    def finish(self) -> FinishedRecording:
        sim = self.simulation
        schedule = sim.schedule
        meta = {
            "seed": schedule.seed,
            "nodes": len(schedule.nodes),
            "end_ms": schedule.end_ms,
            "simulated_ms": sim.now_ms,
        }
        return FinishedRecording(super().finish().data, len(self.items), meta)


def _diff(expected: bytes, actual: bytes, meta: Mapping[str, Any]) -> DiffResult | None:
    left = decode_trace(expected, "expected")
    right = decode_trace(actual, "actual")
    if left.schedule != right.schedule:
        found = first_value_difference(
            schedule_to_plain(left.schedule), schedule_to_plain(right.schedule)
        )
        if found is not None:
            return Divergence(None, f"schedule{found[0]}", found[1], found[2]), ()
    divergence = first_trace_divergence(left.events, right.events)
    if divergence is None:
        return None
    index = divergence.index if divergence.index is not None else 0
    return divergence, context_window(left.events, index, render_event)


def _count(data: bytes) -> int:
    return len(decode_trace(data, "recording").events)


REPLICATION_KIND = RecordingKind(
    name="replication",
    extension=".rpltrace",
    version=1,
    open=ReplicationRecorder,
    diff=_diff,
    count=_count,
)


def kinds() -> list[RecordingKind]:
    """The kinds this package adds to the plugin: ``replication``."""
    return [REPLICATION_KIND]
