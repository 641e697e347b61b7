"""An append-only sequenced log: the local copy of one channel on one node.

Entries are numbered from 0. The log retains a contiguous window
``[first_retained_seq, next_seq)``; retention trims the front, ``skip_to``
jumps the whole window forward over a gap. The log is the part of a node that
survives a crash in the simulator.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, Sequence
from itertools import accumulate
from operator import attrgetter

import blake3

from pytest_replay.replication.errors import LogFullError, LogSequenceError, SkipRejectedError
from pytest_replay.replication.messages import SyncEvent, sync_events

__all__ = ["SequencedLog"]

_payload_of = attrgetter("payload")
_seq_of = attrgetter("seq")


class SequencedLog:
    """Append-only log with retention trim and skip-ahead.

    ``retention_max_events`` caps what :meth:`sweep_retention` keeps;
    ``capacity_bytes`` makes appends past that many payload bytes fail with
    :class:`LogFullError` (the disk-pressure signal); ``allow_skip=False``
    models a persistent file whose ``skip_to`` is rejected.
    """

    __slots__ = (
        "_allow_skip",
        "_bytes",
        "_capacity_bytes",
        "_closed",
        "_ends",
        "_entries",
        "_events",
        "_first",
        "_head",
        "_retention",
        "name",
    )

    def __init__(
        self,
        name: str = "log",
        *,
        retention_max_events: int | None = None,
        capacity_bytes: int | None = None,
        allow_skip: bool = True,
    ) -> None:
        if retention_max_events is not None and retention_max_events < 1:
            raise LogSequenceError(
                f"retention_max_events={retention_max_events} keeps nothing",
                where=name,
                fix="pass None (keep everything) or a count >= 1.",
            )
        if capacity_bytes is not None and capacity_bytes < 0:
            raise LogSequenceError(
                f"capacity_bytes={capacity_bytes} is negative",
                where=name,
                fix="pass None (unbounded) or a byte count >= 0.",
            )
        self.name = name
        self._retention = retention_max_events
        self._capacity_bytes = capacity_bytes
        self._allow_skip = allow_skip
        # Entries live in lists read from ``_head``; trimming moves the head and
        # the lists are compacted once the dead prefix dominates, so trims are O(1)
        # amortised and reads by sequence number stay O(1). Beside each payload the
        # log keeps its wire form (a ``SyncEvent``, built once, shared by every chunk
        # that serves it) and ``_ends``, the running byte total at the end of each
        # entry (``_ends[i + 1] - _ends[i]`` is entry ``i``'s size), so a chunk's end
        # is a bisection instead of a walk over its payloads. ``_ends`` is brought up
        # to date when read (``_ends_to``): a replica appends far more than it serves.
        self._entries: list[bytes] = []
        self._events: list[SyncEvent] = []
        self._ends: list[int] = [0]
        self._head = 0
        self._first = 0
        self._bytes = 0
        self._closed = False

    # -- state --------------------------------------------------------------
    @property
    def next_seq(self) -> int:
        """Sequence number the next append gets (the tail)."""
        return self._first + len(self._entries) - self._head

    @property
    def first_retained_seq(self) -> int:
        """Lowest sequence number still held."""
        return self._first

    @property
    def bytes_used(self) -> int:
        return self._bytes

    @property
    def retention_max_events(self) -> int | None:
        return self._retention

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Mark the channel closed; leaders answer sync requests with ChannelClosed."""
        self._closed = True

    def __len__(self) -> int:
        return len(self._entries) - self._head

    def entry(self, seq: int) -> bytes | None:
        """The payload at ``seq``, or ``None`` when it is not retained."""
        if seq < self._first or seq >= self.next_seq:
            return None
        return self._entries[self._head + seq - self._first]

    def entries(self) -> Iterator[tuple[int, bytes]]:
        """Retained ``(seq, payload)`` pairs, oldest first."""
        for offset, payload in enumerate(self._entries[self._head :]):
            yield self._first + offset, payload

    def payloads(self, lo: int, hi: int) -> list[bytes]:
        """Payloads of ``[lo, hi)`` clamped to the retained window, oldest first."""
        lo = max(lo, self._first)
        hi = min(hi, self.next_seq)
        if hi <= lo:
            return []
        start = self._head + lo - self._first
        return self._entries[start : start + hi - lo]

    def read(self, since_seq: int, max_bytes: int) -> tuple[SyncEvent, ...]:
        """Events from ``since_seq`` whose payloads fit ``max_bytes``.

        At least one event is returned when any exists, so a payload larger than
        the chunk limit still makes progress.
        """
        if since_seq < self._first:
            raise LogSequenceError(
                f"read from seq {since_seq} but the first retained seq is {self._first}",
                where=self.name,
                fix="read from first_retained_seq or later.",
            )
        start = self._head + since_seq - self._first
        stop = len(self._entries)
        if start >= stop:
            return ()
        ends = self._ends_to(stop)
        # The last entry whose end stays within ``max_bytes`` of the chunk's start;
        # the first entry goes whatever its size.
        end = max(start + 1, bisect_right(ends, ends[start] + max_bytes, start + 1, stop + 1) - 1)
        return tuple(self._events[start:end])

    def digest(self) -> bytes:
        """BLAKE3 of the retained window (bounds and payloads), for cheap comparison."""
        hasher = blake3.blake3()
        hasher.update(self._first.to_bytes(8, "little") + self.next_seq.to_bytes(8, "little"))
        for payload in self._entries[self._head :]:
            hasher.update(len(payload).to_bytes(4, "little"))
            hasher.update(payload)
        digest: bytes = hasher.digest()
        return digest

    # -- mutation -----------------------------------------------------------
    def append(self, payload: bytes) -> int:
        """Append one entry; returns its sequence number."""
        seq = self.next_seq
        self.append_batch(seq, (payload,))
        return seq

    def append_batch(self, first_seq: int, payloads: Sequence[bytes]) -> int:
        """Append entries numbered from ``first_seq`` (must equal ``next_seq``).

        All or nothing: a capacity overflow appends none of them. Returns the new
        ``next_seq``.
        """
        self._check_first(first_seq)
        fresh = list(map(bytes, payloads))
        return self._append(first_seq, fresh, sync_events(first_seq, fresh))

    def append_events(self, events: Sequence[SyncEvent]) -> int:
        """Append events received on the wire: :meth:`append_batch` of their payloads.

        They must be numbered from ``next_seq`` on, consecutively. The events
        themselves become the entries' wire form, so serving them on costs nothing.
        """
        first_seq = events[0].seq if events else self.next_seq
        self._check_first(first_seq)
        if list(map(_seq_of, events)) != list(range(first_seq, first_seq + len(events))):
            raise LogSequenceError(
                f"events numbered {[event.seq for event in events[:8]]}... are not consecutive",
                where=self.name,
                fix="append events numbered one after the other from next_seq.",
            )
        payloads = list(map(_payload_of, events))
        if not set(map(type, payloads)) <= {bytes}:
            # A payload that is not plain bytes: copied, with events of its own.
            return self.append_batch(first_seq, payloads)
        return self._append(first_seq, payloads, events)

    def _check_first(self, first_seq: int) -> None:
        if first_seq != self.next_seq:
            raise LogSequenceError(
                f"batch starts at seq {first_seq} but the log's next seq is {self.next_seq}",
                where=self.name,
                fix="append from next_seq (skip_to first to jump a gap).",
            )

    def _append(self, first_seq: int, payloads: list[bytes], events: Sequence[SyncEvent]) -> int:
        """Add entries numbered from ``next_seq`` (plain bytes, and their events), or none
        of them past the capacity. Returns the new ``next_seq``."""
        added = sum(map(len, payloads))
        if self._capacity_bytes is not None and self._bytes + added > self._capacity_bytes:
            raise LogFullError(
                f"appending {len(payloads)} events ({added} bytes) at seq "
                f"{first_seq} exceeds the capacity of {self._capacity_bytes} bytes "
                f"({self._bytes} used)",
                where=self.name,
                fix="sweep retention or withdraw the replica.",
            )
        self._entries += payloads
        self._events += events
        self._bytes += added
        return self.next_seq

    def _ends_to(self, stop: int) -> list[int]:
        """``_ends``, covering at least the entries before list index ``stop``."""
        ends = self._ends
        done = len(ends) - 1
        if done < stop:
            # ``accumulate`` yields the running total it starts from again: popped first.
            ends += accumulate(map(len, self._entries[done:stop]), initial=ends.pop())
        return ends

    def payload_bytes(self, lo: int, hi: int) -> int:
        """Total payload size of ``[lo, hi)`` clamped to the retained window (O(1))."""
        lo = max(lo, self._first)
        hi = min(hi, self.next_seq)
        if hi <= lo:
            return 0
        start = self._head + lo - self._first
        ends = self._ends_to(start + hi - lo)
        return ends[start + hi - lo] - ends[start]

    def trim_to(self, seq: int) -> int:
        """Release entries below ``seq`` (clamped to the tail). Returns how many went."""
        target = min(seq, self.next_seq)
        dropped = max(0, target - self._first)
        ends = self._ends_to(self._head + dropped)
        self._bytes -= ends[self._head + dropped] - ends[self._head]
        self._head += dropped
        self._first += dropped
        if self._head > 64 and self._head * 2 > len(self._entries):
            del self._entries[: self._head]
            del self._events[: self._head]
            del self._ends[: self._head]
            self._head = 0
        return dropped

    def sweep_retention(self) -> int:
        """Apply ``retention_max_events``; returns the number of evicted entries."""
        if self._retention is None or len(self) <= self._retention:
            return 0
        return self.trim_to(self.next_seq - self._retention)

    def skip_to(self, seq: int) -> None:
        """Move the tail forward to ``seq``, leaving a gap.

        The entries before the gap are released so the retained window stays
        contiguous: afterwards ``first_retained_seq == next_seq == seq``. As in
        the reference, skipping to the current tail leaves no gap and changes
        nothing (the retained entries stay). Raises :class:`SkipRejectedError`
        when the log is persistent (``allow_skip=False``), whatever ``seq`` is,
        and when ``seq`` is behind the tail.
        """
        if not self._allow_skip:
            raise SkipRejectedError(
                f"skip_to({seq}) rejected: this log is persistent and cannot leave gaps",
                where=self.name,
                fix="recover through the heartbeat cycle (or allow_skip=True).",
            )
        if seq < self.next_seq:
            raise SkipRejectedError(
                f"skip_to({seq}) is behind the tail (next seq {self.next_seq})",
                where=self.name,
                fix="only skip forward.",
            )
        if seq == self.next_seq:
            return
        self._entries = []
        self._events = []
        self._ends = [0]
        self._head = 0
        self._bytes = 0
        self._first = seq
