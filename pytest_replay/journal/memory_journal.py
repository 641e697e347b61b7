"""A journal store that lives in memory: for tests and for journals that need no durability.

It is also the index :class:`~pytest_replay.journal.file_journal.FileJournal`
serves reads from: that store subclasses it and makes every change durable
(the ``_persist_*`` steps) before it reaches the lists.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable

from pytest_replay.journal.persistent import (
    MAX_SEQUENCE_NR,
    PersistentRepr,
    StoreBase,
    check_continuity,
    check_persistence_id,
    check_replay_args,
    check_to_seq,
    group_batch,
)

__all__ = ["InMemoryJournal", "Streams", "mark_deleted"]

#: Messages per persistence id; the message numbered ``n`` sits at index ``n - 1``.
Streams = dict[str, list[PersistentRepr]]


def mark_deleted(stream: list[PersistentRepr], to_seq: int) -> None:
    """Mark the messages numbered 1..``to_seq`` of ``stream`` deleted (in place)."""
    for index in range(min(to_seq, len(stream))):
        if not stream[index].deleted:
            stream[index] = dataclasses.replace(stream[index], deleted=True)


class InMemoryJournal(StoreBase):
    """The :class:`~pytest_replay.journal.persistent.Journal` contract over Python lists.

    Messages of one persistence id are kept in a list indexed by
    ``sequence_nr - 1`` (numbers are contiguous from 1), so replays are slices.
    Thread-safe: one lock guards every call.
    """

    def __init__(self) -> None:
        self._streams: Streams = {}
        self._source = "<memory>"
        self._lock = threading.Lock()
        self._closed = False

    def _persist_batch(self, batch: list[PersistentRepr]) -> None:
        """Make a validated, non-empty batch durable; memory keeps nothing beyond the lists."""

    def _persist_delete(self, persistence_id: str, to_seq: int) -> None:
        """Make a deletion durable; memory keeps nothing beyond the lists."""

    def write_messages(self, reprs: Iterable[PersistentRepr]) -> None:
        batch = list(reprs)
        with self._lock:
            self._check_open()
            groups = group_batch(batch)
            for pid, items in groups.items():
                check_continuity(pid, len(self._streams.get(pid, ())), items)
            if batch:
                self._persist_batch(batch)
            for pid, items in groups.items():
                self._streams.setdefault(pid, []).extend(items)

    def replay_messages(
        self,
        persistence_id: str,
        from_seq: int = 1,
        to_seq: int = MAX_SEQUENCE_NR,
        max: int | None = None,
    ) -> list[PersistentRepr]:
        low, high, limit = check_replay_args(persistence_id, from_seq, to_seq, max)
        with self._lock:
            self._check_open()
            stream = self._streams.get(persistence_id, [])
            window = stream[(low if low > 1 else 1) - 1 : min(high, len(stream))]
        live = [item for item in window if not item.deleted]
        return live if limit is None else live[:limit]

    def highest_sequence_nr(self, persistence_id: str, from_seq: int = 0) -> int:
        """The highest stored sequence nr (0 when none); ``from_seq`` is only a hint."""
        check_persistence_id(persistence_id)
        with self._lock:
            self._check_open()
            return len(self._streams.get(persistence_id, ()))

    def delete_messages_to(self, persistence_id: str, to_seq: int) -> None:
        check_persistence_id(persistence_id)
        upto = check_to_seq(to_seq)
        with self._lock:
            self._check_open()
            self._persist_delete(persistence_id, upto)
            mark_deleted(self._streams.get(persistence_id, []), upto)

    def close(self) -> None:
        with self._lock:
            self._closed = True
