"""One replay session: a recorded log driven through a fresh app, with keyframe seek."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from pytest_replay.fleet.app import FleetApp, MockClock
from pytest_replay.fleet.errors import ReplaySessionError
from pytest_replay.fleet.logformat import StepSection
from pytest_replay.fleet.reader import FleetLogReader, StepTable
from pytest_replay.fleet.records import Keyframe
from pytest_replay.fleet.writer import FleetLogWriter

__all__ = ["AppFactory", "EngineSession", "FleetSession"]

#: Builds the app of a session from its mock clock and optional output writer.
AppFactory = Callable[[MockClock, FleetLogWriter | None], FleetApp]


class EngineSession(Protocol):
    """What :class:`~pytest_replay.fleet.engine.ReplayEngine` needs from a session.

    ``goto_index(i)`` brings the session to the state right after its i-th step (log
    order); ``reset()`` stops whatever runs and returns to the state before any step,
    output log included (what the earlier pass wrote is removed); ``close()`` stops
    whatever runs and keeps the output log, finished.
    """

    instance_id: int
    subsystem_id: str
    subsystem_code: int
    output_log_path: Path | None

    def step_table(self) -> StepTable: ...

    def goto_index(self, index: int) -> None: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...


class FleetSession:
    """Replays one log through an app built by ``app_factory``.

    The app is built and started on the first seek. Seeking forward replays the steps
    in between; seeking backwards, or the first seek, restores the nearest keyframe at
    or before the target and replays from its step (an error when there is none).

    With an ``output_log_path`` the output log always holds exactly what the app wrote
    for the steps replayed since the session (re)started, byte for byte what a fresh
    session seeking to the same step writes: a backwards seek therefore starts over
    (:meth:`reset`, then the seek a fresh session makes) instead of restoring the
    keyframe into the running app, whose writer already holds the later steps.
    """

    def __init__(
        self,
        *,
        instance_id: int,
        subsystem_id: str,
        subsystem_code: int,
        reader: FleetLogReader,
        app_factory: AppFactory,
        output_log_path: Path | None = None,
    ) -> None:
        self.instance_id = instance_id
        self.subsystem_id = subsystem_id
        self.subsystem_code = subsystem_code
        self.output_log_path = output_log_path
        self.reader = reader
        self._factory = app_factory
        self._clock = MockClock()
        self._app: FleetApp | None = None
        self._output: FleetLogWriter | None = None
        self._current: int | None = None
        self._last_keyframe: int | None = None
        self._keyframe_by_id = {kf.step_id: kf for kf in reader.keyframes}
        self._section: StepSection | None = None
        self._section_start = 0
        self._section_end = 0

    def __repr__(self) -> str:
        return (
            f"FleetSession(instance {self.instance_id} subsystem '{self.subsystem_id}', "
            f"log '{self.reader.base_path}')"
        )

    @property
    def current_index(self) -> int | None:
        """Log-order index of the last replayed step, ``None`` before the first seek."""
        return self._current

    @property
    def last_keyframe(self) -> int | None:
        """Step id of the keyframe most recently restored."""
        return self._last_keyframe

    @property
    def clock(self) -> MockClock:
        return self._clock

    @property
    def app(self) -> FleetApp | None:
        return self._app

    def step_table(self) -> StepTable:
        return self.reader.step_table()

    def _describe(self) -> str:
        return f"instance {self.instance_id} subsystem '{self.subsystem_id}'"

    def _ensure_started(self) -> FleetApp:
        app = self._app
        if app is None:
            if self.output_log_path is not None:
                # A new writer replaces the slabs of the log kept by close().
                self._output = FleetLogWriter(self.output_log_path)
            app = self._factory(self._clock, self._output)
            app.start()
            self._app = app
        return app

    def _restore(self, app: FleetApp, target_step_id: int, why: str) -> int:
        keyframe = self.reader.nearest_keyframe(target_step_id)
        if keyframe is None:
            raise ReplaySessionError(
                f"no keyframe is available to {why} replay of {self._describe()} at step "
                f"{target_step_id} (log '{self.reader.base_path}')",
                "log a keyframe at or before the first step (FleetLogWriter.log_keyframe)",
            )
        app.restore_keyframe(keyframe)
        self._clock.now = keyframe.timestamp_ns
        self._last_keyframe = keyframe.step_id
        return self.reader.index_of_step(keyframe.step_id)

    def goto_step(self, step_id: int) -> None:
        """Seek to the step with ``step_id``."""
        try:
            index = self.reader.index_of_step(step_id)
        except KeyError:
            raise ReplaySessionError(
                f"step {step_id} of {self._describe()} is not in log '{self.reader.base_path}'",
                "seek to a recorded step id",
            ) from None
        self.goto_index(index)

    def goto_index(self, index: int) -> None:
        current = self._current
        if current is not None and index == current + 1:
            # The engine's usual move: one step forward in the section already decoded.
            section = self._section
            if section is None or not self._section_start <= index < self._section_end:
                section = self._load_section(index)
            step = section.step(index - self._section_start)
            self._clock.now = step.timestamp_ns
            assert self._app is not None
            self._app.replay_step(self._clock, step, self._keyframe_by_id.get(step.step_id))
            self._current = index
            if index + 1 == self._section_end and index + 1 == self.reader.total_steps:
                self._section = None  # done with this log: let the reader's cache decide
            return
        self._seek(index)

    def _seek(self, index: int) -> None:
        total = self.reader.total_steps
        if not 0 <= index < total:
            raise ReplaySessionError(
                f"step index {index} is outside the {total} steps of {self._describe()}",
                "seek to an index the log holds",
            )
        app = self._ensure_started()
        current = self._current
        if current == index:
            return
        if current is not None and index < current and self.output_log_path is not None:
            self.reset()
            app = self._ensure_started()
            current = None
        if current is not None and index > current:
            start = current + 1
        else:
            target_id = self.reader.step_at(index).step_id
            start = self._restore(app, target_id, "rewind" if current is not None else "start")
        for position in range(start, index + 1):
            section = self._section
            if section is None or not self._section_start <= position < self._section_end:
                section = self._load_section(position)
            step = section.step(position - self._section_start)
            keyframe: Keyframe | None = self._keyframe_by_id.get(step.step_id)
            self._clock.now = step.timestamp_ns
            app.replay_step(self._clock, step, keyframe)
            self._current = position

    def _load_section(self, index: int) -> StepSection:
        position, start = self.reader.section_of(index)
        section = self.reader.section(position)
        self._section = section
        self._section_start = start
        self._section_end = start + len(section)
        return section

    def close(self) -> None:
        """Stop the app and finish the output log, which keeps what was replayed; the next
        seek starts a new app and a new output log."""
        self._stop(keep_output=True)

    def reset(self) -> None:
        """Stop the app and remove the output log this session wrote (also after
        :meth:`close`): the session is as it was before its first seek."""
        self._stop(keep_output=False)

    def _stop(self, *, keep_output: bool) -> None:
        app, output = self._app, self._output
        self._app = None
        self._current = None
        self._last_keyframe = None
        self._clock = MockClock()
        try:
            if app is not None:
                app.stop()
        finally:
            if output is not None:
                if keep_output:
                    # Kept (closed) so that a later reset can still remove what it wrote.
                    output.close()
                else:
                    self._output = None
                    output.discard()
