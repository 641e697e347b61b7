"""The names of the pytest markers pytest_replay owns.

Apart from :mod:`pytest_replay.plugin` (which registers them) so that the per-test hooks
in :mod:`pytest_replay.runtest` read them without importing the entry point.
"""

from __future__ import annotations

from typing import Final

__all__ = ["GPU_MARKER", "MARKER"]

MARKER: Final = "replay_determinism"
GPU_MARKER: Final = "replay_gpu"
