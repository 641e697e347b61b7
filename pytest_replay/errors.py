"""The root of every error pytest_replay raises on purpose, and of its format warnings."""

from __future__ import annotations

__all__ = ["ReplayError", "StoreError", "UnclosedFormatWarning"]


class ReplayError(Exception):
    """Base class of the errors of every pytest_replay package.

    Messages name the file, offset, record or sequence number involved and end
    with a ``Fix:`` hint.
    """


class StoreError(ReplayError):
    """The recording store refused an operation (a reserved name, a file it did not write,
    a lock another run holds); see :mod:`pytest_replay.store`."""


class UnclosedFormatWarning(UserWarning):
    """A file written before end frames existed was read.

    Its frames are all checked, but a copy cut exactly at a frame boundary cannot be told
    from a complete one: the file carries no frame count or stream digest.
    """
