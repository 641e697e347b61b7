"""Event-stream scopes and cursors: may a stored cursor resume a requested stream?"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pytest_replay.journal.errors import JournalUsageError

__all__ = [
    "CursorCompatibility",
    "DurableReplaySupport",
    "EventCursor",
    "EventStreamScope",
    "ScopeKind",
    "check_cursor_compatibility",
    "durable_replay_support",
    "journal_cursor_for_seq",
]


class ScopeKind(enum.Enum):
    ALL = "all"
    RUN = "run"
    AGENT = "agent"
    FILTER = "filter"


@dataclass(frozen=True, slots=True)
class EventStreamScope:
    """Which events a stream carries: all, one run, one agent, or a filter (by fingerprint)."""

    kind: ScopeKind
    key: str = ""

    @classmethod
    def all(cls) -> EventStreamScope:
        return cls(ScopeKind.ALL)

    @classmethod
    def run(cls, run_id: str) -> EventStreamScope:
        return cls(ScopeKind.RUN, run_id)

    @classmethod
    def agent(cls, agent_id: str) -> EventStreamScope:
        return cls(ScopeKind.AGENT, agent_id)

    @classmethod
    def filter(cls, filter_fingerprint: str) -> EventStreamScope:
        return cls(ScopeKind.FILTER, filter_fingerprint)


@dataclass(frozen=True, slots=True)
class EventCursor:
    """A position in a stream of the given scope."""

    scope: EventStreamScope
    position: str


class CursorCompatibility(enum.Enum):
    COMPATIBLE = "compatible"
    SCOPE_MISMATCH = "scope_mismatch"


class DurableReplaySupport(enum.Enum):
    """A run's own journal can replay a run scope; wider scopes need the host's archive."""

    RUN_JOURNAL = "run_journal"
    HOST_ARCHIVE_REQUIRED = "host_archive_required"


def check_cursor_compatibility(
    requested_scope: EventStreamScope, cursor: EventCursor | None
) -> CursorCompatibility:
    """No cursor is always compatible; otherwise the scope kinds and keys must match."""
    if cursor is None:
        return CursorCompatibility.COMPATIBLE
    stored = cursor.scope
    same = stored.kind is requested_scope.kind and (
        requested_scope.kind is ScopeKind.ALL or stored.key == requested_scope.key
    )
    return CursorCompatibility.COMPATIBLE if same else CursorCompatibility.SCOPE_MISMATCH


def durable_replay_support(scope: EventStreamScope) -> DurableReplaySupport:
    if scope.kind is ScopeKind.RUN:
        return DurableReplaySupport.RUN_JOURNAL
    return DurableReplaySupport.HOST_ARCHIVE_REQUIRED


def journal_cursor_for_seq(seq: int) -> str:
    """The cursor naming journal sequence ``seq``: ``"journal.{seq}"``."""
    if type(seq) is not int or seq < 0:
        raise JournalUsageError(
            f"journal sequence must be a non-negative int, got {seq!r}", "pass a journal_seq"
        )
    return f"journal.{seq}"
