"""Inbound events and the runtime's two-lane inbox.

Shutdown, SyncResponse and SyncNack ride the priority lane (capacity 128);
Heartbeat and SyncRequest the normal lane (capacity 1024). The runtime drains
the priority lane first, so a heartbeat flood cannot starve catch-up or a
graceful shutdown. A full lane turns events away (``try_push``) or keeps them
waiting in line for room (``push``), like a bounded channel whose senders await.
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


class _Lane:
    """One bounded lane and the events waiting for room in it, oldest first."""

    __slots__ = ("capacity", "queued", "waiting")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.queued: deque[Inbound] = deque()
        self.waiting: deque[Inbound] = deque()

    def pop(self) -> Inbound | None:
        if not self.queued:
            return None
        event = self.queued.popleft()
        if self.waiting:
            # The room just freed goes to the event waiting longest, as a bounded
            # channel hands a released slot to its first blocked sender.
            self.queued.append(self.waiting.popleft())
        return event

    def clear(self) -> None:
        self.queued.clear()
        self.waiting.clear()


class TwoLaneInbox:
    """Bounded priority + normal lanes."""

    __slots__ = ("_closed", "_normal", "_priority")

    def __init__(
        self,
        capacity: int = RUNTIME_INBOX_CAPACITY,
        priority_capacity: int = RUNTIME_PRIORITY_INBOX_CAPACITY,
    ) -> None:
        self._normal = _Lane(capacity)
        self._priority = _Lane(priority_capacity)
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True

    def _lane(self, event: Inbound) -> _Lane:
        return self._priority if is_priority_event(event) else self._normal

    def try_push(self, event: Inbound) -> Inbound | None:
        """Queue ``event``; returns it back when its lane is full or the inbox closed."""
        if self._closed:
            return event
        lane = self._lane(event)
        if len(lane.queued) >= lane.capacity:
            return event
        lane.queued.append(event)
        return None

    def push(self, event: Inbound) -> bool:
        """Queue ``event``, or keep it waiting for room behind the events already waiting
        when its lane is full; ``False`` (nothing kept) when the inbox is closed."""
        if self._closed:
            return False
        lane = self._lane(event)
        if len(lane.queued) >= lane.capacity:
            lane.waiting.append(event)
        else:
            lane.queued.append(event)
        return True

    def lane_full(self, event: Inbound) -> bool:
        lane = self._lane(event)
        return len(lane.queued) >= lane.capacity

    def pop_priority(self) -> Inbound | None:
        return self._priority.pop()

    def pop_normal(self) -> Inbound | None:
        return self._normal.pop()

    def lengths(self) -> tuple[int, int]:
        """``(priority, normal)`` queue lengths, not counting events waiting for room."""
        return len(self._priority.queued), len(self._normal.queued)

    def waiting(self) -> tuple[int, int]:
        """``(priority, normal)`` counts of events waiting for room."""
        return len(self._priority.waiting), len(self._normal.waiting)

    def clear(self) -> None:
        self._priority.clear()
        self._normal.clear()
