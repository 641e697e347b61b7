"""Inbound events and the runtime's two-lane inbox.

Shutdown, SyncResponse and SyncNack ride the priority lane (capacity 128);
Heartbeat and SyncRequest the normal lane (capacity 1024). The runtime drains
the priority lane first, so a heartbeat flood cannot starve catch-up or a
graceful shutdown.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from pytest_replay.replication.messages import (
    NodeId,
    SyncHeartbeat,
    SyncNack,
    SyncRequest,
    SyncResponse,
)

__all__ = [
    "RUNTIME_INBOX_CAPACITY",
    "RUNTIME_PRIORITY_INBOX_CAPACITY",
    "Inbound",
    "InboundHeartbeat",
    "InboundSyncNack",
    "InboundSyncRequest",
    "InboundSyncResponse",
    "Shutdown",
    "TwoLaneInbox",
    "is_priority_event",
]

RUNTIME_INBOX_CAPACITY = 1024
RUNTIME_PRIORITY_INBOX_CAPACITY = 128


@dataclass(frozen=True, slots=True)
class InboundHeartbeat:
    sender: NodeId
    msg: SyncHeartbeat


@dataclass(frozen=True, slots=True)
class InboundSyncRequest:
    sender: NodeId
    msg: SyncRequest


@dataclass(frozen=True, slots=True)
class InboundSyncResponse:
    sender: NodeId
    msg: SyncResponse


@dataclass(frozen=True, slots=True)
class InboundSyncNack:
    sender: NodeId
    msg: SyncNack


@dataclass(frozen=True, slots=True)
class Shutdown:
    """Local-only: close the channel (never crosses the wire)."""


Inbound = InboundHeartbeat | InboundSyncRequest | InboundSyncResponse | InboundSyncNack | Shutdown


def is_priority_event(event: Inbound) -> bool:
    return isinstance(event, Shutdown | InboundSyncResponse | InboundSyncNack)


class TwoLaneInbox:
    """Bounded priority + normal lanes."""

    __slots__ = ("_closed", "_normal", "_normal_cap", "_priority", "_priority_cap")

    def __init__(
        self,
        capacity: int = RUNTIME_INBOX_CAPACITY,
        priority_capacity: int = RUNTIME_PRIORITY_INBOX_CAPACITY,
    ) -> None:
        self._normal: deque[Inbound] = deque()
        self._priority: deque[Inbound] = deque()
        self._normal_cap = capacity
        self._priority_cap = priority_capacity
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True

    def try_push(self, event: Inbound) -> Inbound | None:
        """Queue ``event``; returns it back when its lane is full or the inbox closed."""
        if self._closed:
            return event
        if is_priority_event(event):
            lane, cap = self._priority, self._priority_cap
        else:
            lane, cap = self._normal, self._normal_cap
        if len(lane) >= cap:
            return event
        lane.append(event)
        return None

    def lane_full(self, event: Inbound) -> bool:
        if is_priority_event(event):
            return len(self._priority) >= self._priority_cap
        return len(self._normal) >= self._normal_cap

    def pop_priority(self) -> Inbound | None:
        return self._priority.popleft() if self._priority else None

    def pop_normal(self) -> Inbound | None:
        return self._normal.popleft() if self._normal else None

    def lengths(self) -> tuple[int, int]:
        """``(priority, normal)`` queue lengths."""
        return len(self._priority), len(self._normal)

    def clear(self) -> None:
        self._priority.clear()
        self._normal.clear()
