"""The simulated clock: integer milliseconds that only move when told to."""

from __future__ import annotations

from pytest_replay.replication.errors import ScheduleError

__all__ = ["SimClock"]


class SimClock:
    """A monotonic virtual clock; call it to read the time in milliseconds."""

    __slots__ = ("_now",)

    def __init__(self, start_ms: int = 0) -> None:
        self._now = start_ms

    def __call__(self) -> int:
        return self._now

    @property
    def now_ms(self) -> int:
        return self._now

    def advance(self, ms: int) -> int:
        if ms < 0:
            raise ScheduleError(f"cannot move the clock back by {-ms} ms", fix="advance by >= 0.")
        self._now += ms
        return self._now

    def set(self, now_ms: int) -> None:
        if now_ms < self._now:
            raise ScheduleError(
                f"clock at {self._now} ms cannot go back to {now_ms} ms",
                fix="events must be processed in time order.",
            )
        self._now = now_ms
