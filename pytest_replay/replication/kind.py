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

from pytest_replay.diff import Divergence, first_value_difference
from pytest_replay.kinds import FinishedRecording, RecordingKind, RecordingTarget
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

CONTEXT_EVENTS = 2


class ReplicationRecorder:
    """Records (or verifies) the trace of one :class:`Simulation`.

    Pass the schedule to ``replay.replication(name, schedule)`` or later to
    :meth:`simulate`; then drive the simulation (:meth:`run`,
    :meth:`run_until`, or the returned :class:`Simulation` directly).
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
        self._target = target
        self._events: list[RawEvent] = []
        self._expected: list[RawEvent] | None = None
        self._expected_schedule: NetworkSchedule | None = None
        self._sim: Simulation | None = None
        if target.expected is not None:
            stored = decode_trace(target.expected, str(target.stored_path))
            self._expected = stored.events
            self._expected_schedule = stored.schedule
        if schedule is not None:
            self.simulate(schedule, tag_sink=tag_sink)

    @property
    def name(self) -> str:
        return self._target.name

    def __len__(self) -> int:
        return len(self._events)

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
        return [TraceEvent.from_raw(e) for e in self._events]

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
                Divergence(None, f"schedule{path}", want, got),
                detail="the test simulates another schedule than the stored trace",
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

    def append(self, event: RawEvent) -> None:
        """The simulation's trace sink: keep ``event`` and, when verifying, compare it."""
        __tracebackhide__ = True
        index = len(self._events)
        self._events.append(event)
        expected = self._expected
        if expected is None:
            return
        if index >= len(expected):
            self._target.fail(
                Divergence(index, "length", len(expected), index + 1, "length"),
                self._context(index),
                detail=f"an event beyond the end of the stored trace: {render_event(index, event)}",
            )
        want = expected[index]
        if event != want:
            found = event_fields(want, event)
            if found is not None:
                self._target.fail(
                    Divergence(index, found[0], found[1], found[2]),
                    self._context(index),
                    detail=(
                        f"expected {render_event(index, want)}; got {render_event(index, event)}"
                    ),
                )

    def _context(self, index: int) -> list[str]:
        assert self._expected is not None
        lo = max(0, index - CONTEXT_EVENTS)
        return [
            render_event(i, self._expected[i]) for i in range(lo, min(index, len(self._expected)))
        ]

    def check_complete(self) -> None:
        __tracebackhide__ = True
        expected = self._expected
        if expected is not None and len(self._events) < len(expected):
            n = len(self._events)
            self._target.fail(
                Divergence(n, "length", len(expected), n, "length"),
                self._context(n),
                detail=f"the simulation stopped before stored event {render_event(n, expected[n])}",
            )

    def finish(self) -> FinishedRecording:
        sim = self.simulation
        schedule = sim.schedule
        meta = {
            "seed": schedule.seed,
            "nodes": len(schedule.nodes),
            "end_ms": schedule.end_ms,
            "simulated_ms": sim.now_ms,
        }
        return FinishedRecording(encode_trace(schedule, self._events), len(self._events), meta)

    def close(self) -> None:
        """Holds no resources."""


def _diff(
    expected: bytes, actual: bytes, meta: Mapping[str, Any]
) -> tuple[Divergence, tuple[str, ...]] | None:
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
    lo = max(0, index - CONTEXT_EVENTS)
    context = tuple(
        render_event(i, left.events[i]) for i in range(lo, min(index, len(left.events)))
    )
    return divergence, context


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
