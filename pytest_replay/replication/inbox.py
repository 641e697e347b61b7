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
from typing import Final

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


# A tuple, not a union: isinstance checks a tuple several times faster (every
# delivered message is classified once).
_PRIORITY_TYPES: Final = (Shutdown, InboundSyncResponse, InboundSyncNack)


def is_priority_event(event: Inbound) -> bool:
    return isinstance(event, _PRIORITY_TYPES)


class TwoLaneInbox:
    """Bounded priority + normal lanes, each with a line of events waiting for room."""

    __slots__ = (
        "_closed",
        "_normal",
        "_normal_cap",
        "_normal_waiting",
        "_priority",
        "_priority_cap",
        "_priority_waiting",
    )

    def __init__(
        self,
        capacity: int = RUNTIME_INBOX_CAPACITY,
        priority_capacity: int = RUNTIME_PRIORITY_INBOX_CAPACITY,
    ) -> None:
        self._normal: deque[Inbound] = deque()
        self._priority: deque[Inbound] = deque()
        self._normal_waiting: deque[Inbound] = deque()
        self._priority_waiting: deque[Inbound] = deque()
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
        if isinstance(event, _PRIORITY_TYPES):
            lane, cap = self._priority, self._priority_cap
        else:
            lane, cap = self._normal, self._normal_cap
        if len(lane) >= cap:
            return event
        lane.append(event)
        return None

    def push(self, event: Inbound) -> bool:
        """Queue ``event``, or keep it waiting for room behind the events already waiting
        when its lane is full; ``False`` (nothing kept) when the inbox is closed."""
        if self._closed:
            return False
        if is_priority_event(event):
            lane, cap, waiting = self._priority, self._priority_cap, self._priority_waiting
        else:
            lane, cap, waiting = self._normal, self._normal_cap, self._normal_waiting
        if len(lane) >= cap:
            waiting.append(event)
        else:
            lane.append(event)
        return True

    def lane_full(self, event: Inbound) -> bool:
        if is_priority_event(event):
            return len(self._priority) >= self._priority_cap
        return len(self._normal) >= self._normal_cap

    # Taking an event frees room that goes to the event waiting longest, as a bounded
    # channel hands a released slot to its first blocked sender, so the lane stays full
    # while any event waits. (Written out twice: the runtime polls both lanes at least
    # twice per message.)
    def pop_priority(self) -> Inbound | None:
        lane = self._priority
        if not lane:
            return None
        event = lane.popleft()
        if self._priority_waiting:
            lane.append(self._priority_waiting.popleft())
        return event

    def pop_normal(self) -> Inbound | None:
        lane = self._normal
        if not lane:
            return None
        event = lane.popleft()
        if self._normal_waiting:
            lane.append(self._normal_waiting.popleft())
        return event

    def empty(self) -> bool:
        """Nothing queued on either lane (nor waiting for room)."""
        return not (self._priority or self._normal)

    def lengths(self) -> tuple[int, int]:
        """``(priority, normal)`` queue lengths, not counting events waiting for room."""
        return len(self._priority), len(self._normal)

    def waiting(self) -> tuple[int, int]:
        """``(priority, normal)`` counts of events waiting for room."""
        return len(self._priority_waiting), len(self._normal_waiting)

    def clear(self) -> None:
        for lane in (self._priority, self._normal, self._priority_waiting, self._normal_waiting):
            lane.clear()
