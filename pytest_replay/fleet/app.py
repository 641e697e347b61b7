"""What an app type must provide to be replayed, and the mock clock it is driven with."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol

from pytest_replay.fleet.records import Keyframe, Step, Subsystem

if TYPE_CHECKING:
    from pytest_replay.fleet.writer import FleetLogWriter

__all__ = ["FleetApp", "MockClock", "NoopApp"]


class MockClock:
    """A clock that only moves when replay sets it (nanoseconds)."""

    __slots__ = ("now",)

    def __init__(self, now_ns: int = 0) -> None:
        self.now = now_ns

    def now_ns(self) -> int:
        return self.now

    def set_ns(self, value: int) -> None:
        self.now = value

    def advance_ns(self, delta: int) -> None:
        self.now += delta

    def __repr__(self) -> str:
        return f"MockClock(now_ns={self.now})"


class FleetApp(Protocol):
    """The protocol of an app type registered with ``ReplayPlanBuilder.register``.

    One object is built per replayed (instance, subsystem) session, lazily, when the
    session first executes a step. Calls then arrive in this order: ``start()``,
    ``restore_keyframe(kf)`` for the keyframe replay starts from, ``replay_step(...)``
    for each step in log order (again ``restore_keyframe`` when a rewind needs one;
    when replay records, a rewind stops the app and builds a new one instead), and
    ``stop()`` when the engine is reset or closed. ``clock`` is already set to the
    step's timestamp when ``replay_step`` runs; ``keyframe`` is the log's keyframe for
    that step, if any. ``output`` is a log writer when the engine records its replay
    (``plan.start(record_under=...)``) and ``None`` otherwise; the engine closes it
    (``close()``) or removes it (``reset()``, a ``goto`` backwards).
    """

    #: The subsystem this app type implements; ``id`` must match the topology's.
    subsystem: ClassVar[Subsystem]

    def __init__(
        self,
        instance_id: int,
        effective_config: str,
        clock: MockClock,
        output: FleetLogWriter | None,
    ) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def restore_keyframe(self, keyframe: Keyframe) -> None: ...

    def replay_step(self, clock: MockClock, step: Step, keyframe: Keyframe | None) -> None: ...


class NoopApp:
    """An app that keeps its constructor arguments and does nothing on every call: a
    base for app types that only need some of the calls (subclass it, set
    ``subsystem`` and override the calls that matter)."""

    subsystem: ClassVar[Subsystem] = Subsystem(None, 0)

    def __init__(
        self,
        instance_id: int,
        effective_config: str,
        clock: MockClock,
        output: FleetLogWriter | None,
    ) -> None:
        self.instance_id = instance_id
        self.effective_config = effective_config
        self.clock = clock
        self.output = output

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def restore_keyframe(self, keyframe: Keyframe) -> None:
        pass

    def replay_step(self, clock: MockClock, step: Step, keyframe: Keyframe | None) -> None:
        pass
