"""Wire messages of one replicated channel: heartbeats, sync requests, responses, NACKs."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

from pytest_replay.replication.errors import ScheduleError

__all__ = [
    "CHANNEL_ID_BYTES",
    "BandwidthClass",
    "ChannelId",
    "Message",
    "NodeId",
    "ReplicaRole",
    "SyncEvent",
    "SyncHeartbeat",
    "SyncNack",
    "SyncNackError",
    "SyncRequest",
    "SyncResponse",
    "channel_id_for",
    "sync_events",
]

NodeId = int
ChannelId = bytes
CHANNEL_ID_BYTES = 32


class ReplicaRole(enum.IntEnum):
    """The role one node plays for one channel."""

    IDLE = 0
    REPLICA = 1
    CANDIDATE = 2
    LEADER = 3


class BandwidthClass(enum.IntEnum):
    """Admission class a replica stamps on its sync requests."""

    FOREGROUND = 0
    BACKGROUND = 1


class SyncNackError(enum.IntEnum):
    """Why a leader refused a sync request; replicas key their retry policy on it."""

    NOT_LEADER = 1
    BAD_RANGE = 2
    BACKPRESSURE = 3
    CHANNEL_CLOSED = 4


def channel_id_for(name: str) -> ChannelId:
    """The 32-byte channel id of a channel name (BLAKE2s of its UTF-8 bytes)."""
    if not name or "\x00" in name:
        raise ScheduleError(
            f"channel name {name!r} is empty or contains NUL",
            fix="use a non-empty name such as 'test/runtime'.",
        )
    return hashlib.blake2s(name.encode("utf-8"), digest_size=CHANNEL_ID_BYTES).digest()


@dataclass(frozen=True, slots=True)
class SyncHeartbeat:
    """Periodic liveness beacon: the sender's role and tail for the channel."""

    channel_id: ChannelId
    tail_seq: int
    role: ReplicaRole
    wall_clock_ms: int


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """A replica asks the leader for events from ``since_seq`` on."""

    channel_id: ChannelId
    since_seq: int
    chunk_max: int
    request_id: int = 0
    bandwidth_class: BandwidthClass = BandwidthClass.FOREGROUND


@dataclass(frozen=True, slots=True)
class SyncEvent:
    """One log entry on the wire."""

    seq: int
    payload: bytes


_new_object = object.__new__
_set_event_seq = vars(SyncEvent)["seq"].__set__
_set_event_payload = vars(SyncEvent)["payload"].__set__


def sync_events(first_seq: int, payloads: list[bytes]) -> tuple[SyncEvent, ...]:
    """``SyncEvent``s numbered from ``first_seq``, built without ``__init__``.

    A log builds one per entry it appends from a client write (the wire form it
    then serves, and replicas keep, as is); setting the two slots through their
    descriptors costs about half the frozen dataclass ``__init__`` (one
    ``object.__setattr__`` per field). The values come from the log's own
    checked entries, so there is nothing to check.
    """
    events: list[SyncEvent] = []
    append = events.append
    for seq, payload in enumerate(payloads, first_seq):
        event = _new_object(SyncEvent)
        _set_event_seq(event, seq)
        _set_event_payload(event, payload)
        append(event)
    return tuple(events)


@dataclass(frozen=True, slots=True)
class SyncResponse:
    """A chunk of the leader's log starting at ``first_seq``."""

    channel_id: ChannelId
    first_seq: int
    leader_first_retained_seq: int
    events: tuple[SyncEvent, ...]
    request_id: int


@dataclass(frozen=True, slots=True)
class SyncNack:
    """A leader's typed refusal of a sync request."""

    channel_id: ChannelId
    since_seq: int
    error_code: SyncNackError
    leader_first_retained_seq: int
    request_id: int
    detail: str = ""


Message = SyncHeartbeat | SyncRequest | SyncResponse | SyncNack
