"""The root of every error pytest_replay raises on purpose."""

from __future__ import annotations

__all__ = ["ReplayError", "StoreError"]


class ReplayError(Exception):
    """Base class of the errors of every pytest_replay package.

    Messages name the file, offset, record or sequence number involved and end
    with a ``Fix:`` hint.
    """


class StoreError(ReplayError):
    """The recording store refused an operation (a reserved name, a file it did not write,
    a lock another run holds); see :mod:`pytest_replay.store`."""
