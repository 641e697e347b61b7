"""Errors raised by :mod:`pytest_replay.replication`.

Every message names the node, sequence number, record or byte offset involved
and ends with a ``Fix: ...`` hint.
"""

from __future__ import annotations

from pytest_replay.errors import ReplayError
from pytest_replay.formats.replication_trace import TraceDamaged

__all__ = [
    "AppendFailedError",
    "ApplyError",
    "ChannelMismatchError",
    "CoordinatorError",
    "DispatchError",
    "GapBeforeChunkError",
    "InvalidTransitionError",
    "LogError",
    "LogFullError",
    "LogSequenceError",
    "NonContiguousChunkError",
    "ReplicationError",
    "RuntimeStoppedError",
    "ScheduleError",
    "SkipRejectedError",
    "StaleChunkError",
    "TagSinkError",
    "TraceFormatError",
]


class ReplicationError(ReplayError):
    """Base class of every error of the replication package."""


class ScheduleError(ReplicationError, ValueError):
    """A simulation schedule or runtime configuration is inconsistent."""


class LogError(ReplicationError):
    """A sequenced log refused an operation."""


class LogSequenceError(LogError):
    """An append or skip would break the log's sequence numbering."""


class LogFullError(LogError):
    """The log is at its byte capacity (the simulated disk-pressure signal)."""


class SkipRejectedError(LogError):
    """The log does not allow ``skip_to`` (a persistent file), or the target is behind."""


class ApplyError(ReplicationError):
    """``apply_sync_response`` could not apply a chunk."""


class ChannelMismatchError(ApplyError):
    """The response belongs to another channel."""


class GapBeforeChunkError(ApplyError):
    """The chunk starts after the local tail: the leader trimmed past us (or diverged)."""

    def __init__(self, first_seq: int, local_next: int, divergence_suspected: bool) -> None:
        self.first_seq = first_seq
        self.local_next = local_next
        self.divergence_suspected = divergence_suspected
        why = (
            "the leader still retains our tail, so the logs have probably diverged"
            if divergence_suspected
            else "the leader trimmed its log past our tail"
        )
        super().__init__(
            f"chunk starts at seq {first_seq} but the local log ends at seq {local_next}: {why}",
            fix=f"skip the local log to seq {first_seq} (skip_to) and apply the chunk again.",
        )


class StaleChunkError(ApplyError):
    """Every event of the chunk is already in the local log."""


class NonContiguousChunkError(ApplyError):
    """The chunk's events are not numbered first_seq, first_seq + 1, ..."""


class AppendFailedError(ApplyError):
    """The local log rejected the append (disk pressure)."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(
            f"local append failed: {detail}",
            fix="apply the channel's UnderCapacity policy (Withdraw or EvictOldest).",
        )


class CoordinatorError(ReplicationError):
    """A role transition failed."""


class InvalidTransitionError(CoordinatorError):
    """The transition matrix does not allow (current, target, signal); the role did not move."""


class TagSinkError(CoordinatorError):
    """The role moved, but the chain-tag side effect (announce / withdraw) failed."""


class DispatchError(ReplicationError):
    """A send could not be queued to the transport (synchronous failure)."""


class RuntimeStoppedError(ReplicationError):
    """The runtime has stopped; it takes no more inbound events."""


class TraceFormatError(ReplicationError, TraceDamaged):
    """A recorded replication trace is truncated, corrupt or of an unknown version
    (``TraceFormatError(source, offset, what, fix)``, a :class:`ValueError`)."""
