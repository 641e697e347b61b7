"""Sessions whose app ignores ``replay_step``: moving forward only moves the clock.

An app type that inherits :meth:`NoopApp.replay_step <pytest_replay.fleet.app.NoopApp>`
unchanged cannot tell whether the steps between two moves were handed to it, so the
engine moves such a session straight to the last step of a run (``ignores_steps``)
and the session sets its clock from the log's timestamp column instead of decoding
every step. Starting, keyframe restores, rewinds and stopping happen exactly as for a
:class:`FleetSession`.
"""

from __future__ import annotations

from pytest_replay.fleet.app import FleetApp, NoopApp
from pytest_replay.fleet.session import FleetSession

__all__ = ["StepBlindSession", "ignores_steps"]


def ignores_steps(app_type: type[FleetApp]) -> bool:
    """Whether ``app_type`` keeps the no-op ``replay_step`` of :class:`NoopApp`."""
    return getattr(app_type, "replay_step", None) is NoopApp.replay_step


class StepBlindSession(FleetSession):
    """A :class:`FleetSession` for an app that ignores ``replay_step``."""

    #: Read by the engine: forward moves may skip steps.
    ignores_steps = True

    def goto_index(self, index: int) -> None:
        current = self._current
        if 0 <= index < self.reader.total_steps and (current is None or current < index):
            if current is None:
                # The first seek starts the app and restores the keyframe at or before
                # the target, as FleetSession does, without decoding the target step.
                app = self._ensure_started()
                target_id = int(self.reader.step_table().step_ids[index])
                self._restore(app, target_id, "start")
            # The app would be handed each step up to ``index`` and do nothing with
            # it; only the clock it reads in later calls moves.
            self._clock.now = self.reader.step_timestamp(index)
            self._current = index
            return
        super().goto_index(index)
