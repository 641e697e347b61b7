"""Catch-up back-off: stop asking a leader that keeps answering with nothing.

A leader that advertises a longer tail but ships empty chunks would make a
replica re-ask every heartbeat forever. After ``CATCHUP_BACKOFF_THRESHOLD``
consecutive empty responses the replica waits 1 s, doubling per further
strike up to 30 s; any productive response clears the entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_replay.replication.messages import NodeId

__all__ = [
    "CATCHUP_BACKOFF_CAP_MS",
    "CATCHUP_BACKOFF_INITIAL_MS",
    "CATCHUP_BACKOFF_THRESHOLD",
    "BackoffEntry",
    "CatchupBackoff",
]

CATCHUP_BACKOFF_THRESHOLD = 3
CATCHUP_BACKOFF_INITIAL_MS = 1_000
CATCHUP_BACKOFF_CAP_MS = 30_000
_MAX_SHIFT = 20


@dataclass(frozen=True, slots=True)
class BackoffEntry:
    """Strikes against one leader and, past the threshold, when its window ends."""

    consecutive_empty: int
    backoff_until_ms: int | None


class CatchupBackoff:
    """Per-leader empty-response strikes and back-off windows."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[NodeId, BackoffEntry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, leader: NodeId) -> BackoffEntry | None:
        return self._entries.get(leader)

    def record_empty(self, leader: NodeId, now_ms: int) -> None:
        """One more empty response; past the threshold, (re)stamp the window."""
        old = self._entries.get(leader)
        count = (0 if old is None else old.consecutive_empty) + 1
        until = None if old is None else old.backoff_until_ms
        if count > CATCHUP_BACKOFF_THRESHOLD:
            shift = min(count - CATCHUP_BACKOFF_THRESHOLD - 1, _MAX_SHIFT)
            until = now_ms + min(CATCHUP_BACKOFF_INITIAL_MS << shift, CATCHUP_BACKOFF_CAP_MS)
        self._entries[leader] = BackoffEntry(count, until)

    def record_progress(self, leader: NodeId) -> None:
        self._entries.pop(leader, None)

    def is_in_backoff(self, leader: NodeId, now_ms: int) -> bool:
        entry = self._entries.get(leader)
        return (
            entry is not None
            and entry.backoff_until_ms is not None
            and now_ms < entry.backoff_until_ms
        )

    def gc_expired(self, now_ms: int, cap_ms: int) -> None:
        """Drop entries whose window ended at least ``cap_ms`` ago; counting entries stay."""
        self._entries = {
            leader: entry
            for leader, entry in self._entries.items()
            if entry.backoff_until_ms is None or now_ms - entry.backoff_until_ms < cap_ms
        }
