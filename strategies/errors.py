"""The error the strategies raise for arguments they cannot honour."""

from __future__ import annotations

from pytest_replay.errors import ReplayError

__all__ = ["StrategyArgumentError"]


class StrategyArgumentError(ReplayError, ValueError):
    """A strategy was asked for something impossible (bounds, unknown labels).

    Raised when the strategy is built, not while drawing; the message ends with a
    ``Fix:`` hint. A ``ValueError`` too, as Hypothesis users expect.
    """
