"""The running digest of every record appended to a ring, the overwritten ones included.

A ring recording keeps only the records still in the ring; a change in a record the ring
overwrote would pass verify unseen. :class:`AppendedDigest` hashes (BLAKE3) every record
in publish order with the volatile words zeroed, so the recording's meta can keep the
digest of all appended records and of the overwritten prefix, and verify can compare.

Records are hashed from the ring just before they would be overwritten (a whole ring at
a time, so a single append costs one integer comparison) and from the caller's array
for batches. The hasher state before the last update and the last ``capacity`` records
of that update are kept, so the digest at any split point a ring can still report (the
first record it holds) is available without hashing anything twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

import blake3
import numpy as np
import numpy.typing as npt

from pytest_replay.divergence import Divergence
from pytest_replay.formats.vrrl import RECORD_BYTES, RecordArray
from pytest_replay.ringlog import RingLog

__all__ = [
    "AppendedDigest",
    "append_hashed",
    "check_overwritten",
    "digest_meta",
    "overwritten_note",
]

_WORDS = RECORD_BYTES // 4
Words = npt.NDArray[np.uint32]


class AppendedDigest:
    """BLAKE3 over the masked records ``0 .. n-1`` of a ring's publish order, for any
    ``n`` from the first record still in the ring up to the last appended.

    ``slot_view()`` returns the ring's slots in slot order (:meth:`RingLog.slot_view`) of
    a log that started empty, so record ``i`` sits in slot ``i % capacity``. The owner
    takes :meth:`unhashed` before appending an array and hands it with the array to
    :meth:`add_batch` once the append succeeded (see :func:`append_hashed`), and calls
    :meth:`catch_up` before a single append once :attr:`due` appends are reached.
    """

    __slots__ = ("_capacity", "_hasher", "_masked", "_slots", "_snap", "_tail", "due", "hashed")

    def __init__(
        self,
        capacity: int,
        masked_words: Sequence[int],
        slot_view: Callable[[], RecordArray],
    ) -> None:
        self._capacity = capacity
        self._masked = list(masked_words)
        self._slots = slot_view
        self._hasher = blake3.blake3()
        #: Records hashed so far: every record before this index.
        self.hashed = 0
        #: A single append at this count would overwrite a record not yet hashed.
        self.due = capacity
        # The hasher before the kept tail of the last update, and that tail's bytes.
        self._snap = (0, self._hasher.copy())
        self._tail = memoryview(b"")

    def _zeroed(self, *parts: RecordArray) -> Words:
        """The records as words with the volatile ones zeroed, in one fresh array."""
        # Plain words, not the structured dtype: numpy copies and joins those far faster.
        views = [np.ascontiguousarray(part).view("<u4").reshape(-1, _WORDS) for part in parts]
        words = np.concatenate(views) if len(views) != 1 else views[0].copy()
        words[:, self._masked] = 0
        return words

    def _pending(self, upto: int) -> Words:
        """Records ``hashed .. upto-1`` (all still in the ring), masked, in a fresh array."""
        count = upto - self.hashed
        assert 0 <= count <= self._capacity, "a record was overwritten before it was hashed"
        body = self._slots()
        start = self.hashed % self._capacity
        if start + count <= self._capacity:
            return self._zeroed(body[start : start + count])
        return self._zeroed(body[start:], body[: start + count - self._capacity])

    def _update(self, words: Words) -> None:
        data = words.reshape(-1).view(np.uint8).data
        keep = self._capacity * RECORD_BYTES
        if len(data) > keep:
            self._hasher.update(data[:-keep])
            self.hashed += (len(data) - keep) // RECORD_BYTES
            data = data[-keep:]
        self._snap = (self.hashed, self._hasher.copy())
        self._tail = data
        self._hasher.update(data)
        self.hashed += len(data) // RECORD_BYTES
        self.due = self.hashed + self._capacity

    def catch_up(self, appended: int) -> None:
        """Hash every record appended so far (all still in the ring)."""
        if appended > self.hashed:
            self._update(self._pending(appended))

    def unhashed(self, appended: int) -> Words | None:
        """The records appended but not hashed yet (``None`` when there are none): take
        them before a batch that may overwrite them, and pass them to :meth:`add_batch`."""
        return self._pending(appended) if appended > self.hashed else None

    def add_batch(self, unhashed: Words | None, batch: RecordArray) -> None:
        """Hash ``unhashed`` (from :meth:`unhashed`) and the batch just appended."""
        words = self._zeroed(batch)
        self._update(words if unhashed is None else np.concatenate((unhashed, words)))

    def digest_at(self, count: int, appended: int) -> str | None:
        """Hex digest of records ``0 .. count-1`` of ``appended``, or ``None`` when the ring
        no longer holds what that needs."""
        if count >= self.hashed:
            assert count <= appended
            hasher = self._hasher.copy()
            hasher.update(self._pending(count).reshape(-1).view(np.uint8).data)
            return str(hasher.hexdigest())
        start, snap = self._snap
        if count < start:
            return None
        hasher = snap.copy()
        hasher.update(self._tail[: (count - start) * RECORD_BYTES])
        return str(hasher.hexdigest())


def append_hashed(
    log: RingLog, digest: AppendedDigest, appended: int, records: RecordArray
) -> None:
    """``log.append_many(records)`` on a ring holding ``appended`` appends, hashing first
    the records the batch overwrites before they were hashed."""
    if appended + len(records) > digest.due:
        unhashed = digest.unhashed(appended)
        log.append_many(records)
        digest.add_batch(unhashed, records)
    else:
        log.append_many(records)


def digest_meta(digest: AppendedDigest, appended: int, retained: int) -> dict[str, str | None]:
    """The recording meta of a ring that took ``appended`` records and kept ``retained``."""
    return {
        "appended_digest": digest.digest_at(appended, appended),
        "overwritten_digest": digest.digest_at(appended - retained, appended),
    }


def overwritten_note(
    digest: AppendedDigest, meta: Mapping[str, Any], overwritten: int, in_ring: int
) -> str:
    """What verify says when the stored ring overwrote ``overwritten`` records whose digest
    (kept in ``meta``) differs from this run's first ``overwritten`` records; ``""`` when
    it matches, the ring never wrapped, or this run cannot tell (yet)."""
    stored = meta.get("overwritten_digest")
    if not overwritten or not isinstance(stored, str) or in_ring < overwritten:
        return ""
    live = digest.digest_at(overwritten, in_ring)
    if live is None or live == stored:
        return ""
    return (
        f"records 0..{overwritten - 1} were overwritten in the ring; their digest differs "
        f"(stored {stored[:16]}, this run {live[:16]})"
    )


def check_overwritten(
    digest: AppendedDigest,
    meta: Mapping[str, Any],
    overwritten: int,
    appended: int,
    fail: Callable[..., NoReturn],
    volatile: Sequence[str],
) -> None:
    """At the end of a verified run: ``fail`` (a ``RecordingTarget.fail``) when the records
    the stored ring overwrote differ from this run's, by their digest."""
    note = overwritten_note(digest, meta, overwritten, appended)
    if note:
        live = digest.digest_at(overwritten, appended)
        stored = meta["overwritten_digest"]
        fail(Divergence(None, "overwritten records", stored, live, detail=note), volatile)
