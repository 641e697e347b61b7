"""Catch-up: the leader serves a chunk (or a NACK), the replica applies it.

Both functions are pure over a :class:`~pytest_replay.replication.log.SequencedLog`;
the runtime decides what to do with the outcome (admission, skip-ahead,
back-off, disk pressure).
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter

from pytest_replay.replication.errors import (
    AppendFailedError,
    ChannelMismatchError,
    GapBeforeChunkError,
    LogFullError,
    LogSequenceError,
    NonContiguousChunkError,
    StaleChunkError,
)
from pytest_replay.replication.log import SequencedLog
from pytest_replay.replication.messages import (
    ChannelId,
    SyncEvent,
    SyncNackError,
    SyncRequest,
    SyncResponse,
)

__all__ = [
    "RESPONSE_EVENT_OVERHEAD_BYTES",
    "RESPONSE_HEADER_BYTES",
    "SyncRequestNack",
    "SyncRequestOutcome",
    "apply_sync_response",
    "estimate_response_bytes",
    "estimate_served_bytes",
    "handle_sync_request",
]

#: Wire header of a response: 3-byte subprotocol tag + 32-byte channel id + u64 + u32.
RESPONSE_HEADER_BYTES = 47
#: Per event: u64 sequence number + u32 payload length.
RESPONSE_EVENT_OVERHEAD_BYTES = 12

# Chunks are hundreds of events: read their fields with C-level maps, not Python loops.
_seq_of = attrgetter("seq")
_payload_of = attrgetter("payload")


@dataclass(frozen=True, slots=True)
class SyncRequestNack:
    """The leader-side refusal ``handle_sync_request`` produced."""

    error_code: SyncNackError
    leader_first_retained_seq: int
    detail: str


SyncRequestOutcome = SyncResponse | SyncRequestNack


def handle_sync_request(
    log: SequencedLog, request: SyncRequest, channel_id: ChannelId
) -> SyncRequestOutcome:
    """Leader side: the chunk answering ``request``, or why it cannot be served.

    * another channel or a closed log: ``ChannelClosed``;
    * ``since_seq`` below the first retained seq: ``BadRange`` carrying the
      first retained seq, so the replica jumps there in one round trip;
    * ``since_seq`` at or past our tail: an empty chunk (nothing to send);
    * otherwise events from ``since_seq`` within ``request.chunk_max`` bytes.
    """
    if request.channel_id != channel_id:
        return SyncRequestNack(
            SyncNackError.CHANNEL_CLOSED, 0, "request is for another channel on this log"
        )
    if log.closed:
        return SyncRequestNack(SyncNackError.CHANNEL_CLOSED, 0, "channel closed")
    first = log.first_retained_seq
    if request.since_seq < first:
        return SyncRequestNack(
            SyncNackError.BAD_RANGE,
            first,
            f"seq {request.since_seq} is below the first retained seq {first}",
        )
    events: tuple[SyncEvent, ...] = ()
    if request.since_seq < log.next_seq:
        events = log.read(request.since_seq, max(1, request.chunk_max))
    return SyncResponse(
        channel_id=channel_id,
        first_seq=request.since_seq,
        leader_first_retained_seq=first,
        events=events,
        request_id=request.request_id,
    )


def apply_sync_response(log: SequencedLog, response: SyncResponse, channel_id: ChannelId) -> int:
    """Replica side: append the chunk's new events; returns the new tail.

    An empty chunk returns the tail unchanged. A chunk that starts past the
    tail raises :class:`GapBeforeChunkError` (``divergence_suspected`` when the
    leader still retained our tail, i.e. it was not a retention trim). A chunk
    that overlaps the tail applies only its new suffix.
    """
    if response.channel_id != channel_id:
        raise ChannelMismatchError(
            f"response (request {response.request_id:#x}, first seq {response.first_seq}) "
            "is for another channel",
            fix="route responses by channel id.",
        )
    local_next = log.next_seq
    events = response.events
    if not events:
        return local_next
    first_seq = response.first_seq
    last = first_seq + len(events)
    if not first_seq <= local_next < last:
        # Nothing to append: a gap or a stale chunk, unless it is misnumbered (checked
        # first). One list comparison in C; the per-event loop only names the culprit.
        if list(map(_seq_of, events)) != list(range(first_seq, last)):
            _raise_non_contiguous(response)
        if first_seq > local_next:
            raise GapBeforeChunkError(
                first_seq,
                local_next,
                divergence_suspected=response.leader_first_retained_seq <= local_next,
            )
        raise StaleChunkError(
            f"response {response.request_id:#x} covers seqs {first_seq}..{last - 1}, "
            f"all below the local tail {local_next}",
            fix="nothing to apply; drop it.",
        )
    # The chunk overlaps the tail: its numbering is checked here for the prefix we hold,
    # and by ``append_events`` (before anything is appended) for the fresh rest.
    held = local_next - first_seq
    if held and list(map(_seq_of, events[:held])) != list(range(first_seq, local_next)):
        _raise_non_contiguous(response)
    try:
        return log.append_events(events[held:])
    except LogFullError as exc:
        raise AppendFailedError(str(exc)) from exc
    except LogSequenceError:
        _raise_non_contiguous(response)
        raise


def _raise_non_contiguous(response: SyncResponse) -> None:
    """Name the first event out of sequence (the caller found that one is)."""
    for offset, event in enumerate(response.events):
        if event.seq != response.first_seq + offset:
            raise NonContiguousChunkError(
                f"event #{offset} has seq {event.seq}, expected {response.first_seq + offset}",
                where=f"response {response.request_id:#x}",
                fix="leaders must ship consecutive sequence numbers.",
            )


def estimate_response_bytes(response: SyncResponse) -> int:
    """Wire cost of a response for bandwidth accounting."""
    events = response.events
    return (
        RESPONSE_HEADER_BYTES
        + RESPONSE_EVENT_OVERHEAD_BYTES * len(events)
        + sum(map(len, map(_payload_of, events)))
    )


def estimate_served_bytes(log: SequencedLog, response: SyncResponse) -> int:
    """:func:`estimate_response_bytes` of a chunk read from ``log`` (and still retained
    there): the payload total comes from the log's running byte count, not the events."""
    first, count = response.first_seq, len(response.events)
    return (
        RESPONSE_HEADER_BYTES
        + RESPONSE_EVENT_OVERHEAD_BYTES * count
        + log.payload_bytes(first, first + count)
    )
