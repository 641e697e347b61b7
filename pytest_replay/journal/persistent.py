"""The journal-store contract: :class:`PersistentRepr` and the :class:`Journal` protocol.

Every store keeps, per persistence id, messages numbered 1, 2, 3, ... without
gaps. ``write_messages`` accepts a batch only if, for each persistence id in
it, the numbers continue at ``highest_sequence_nr(pid) + 1`` and stay
contiguous; otherwise nothing of the batch is written. ``delete_messages_to``
marks messages deleted (they no longer replay) but never lowers
``highest_sequence_nr``.
"""

from __future__ import annotations

import abc
import itertools
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, TypeVar, runtime_checkable

from pytest_replay.journal.errors import (
    DuplicateSequenceNr,
    JournalStoreClosed,
    JournalUsageError,
    NonContiguousSequenceNr,
)

__all__ = [
    "MAX_SEQUENCE_NR",
    "Journal",
    "PersistentRepr",
    "PersistentReprDraft",
    "StoreBase",
    "check_replay_args",
    "group_batch",
    "stored_repr",
]

#: Sequence numbers are stored as signed 64-bit integers by SQLite.
MAX_SEQUENCE_NR: Final = 2**63 - 1


@dataclass(frozen=True, slots=True)
class PersistentRepr:
    """One stored message: an opaque payload under (persistence_id, sequence_nr)."""

    persistence_id: str
    sequence_nr: int
    payload: bytes
    manifest: str = ""
    writer_uuid: str = ""
    deleted: bool = False
    tags: tuple[str, ...] = ()


class PersistentReprDraft:
    """A :class:`PersistentRepr` being filled in by a store's replay loop.

    It has exactly PersistentRepr's slots, without the frozen ``__setattr__``, so
    ``draft.sequence_nr = n`` is one specialised slot store; a draft whose seven
    slots are all set becomes the PersistentRepr itself with
    ``draft.__class__ = PersistentRepr`` (same layout, so CPython allows it). Building
    100,000 messages so takes 19 ms, against 55 ms setting the slots of new
    PersistentRepr objects through their descriptors (a C call with an argument tuple
    each) and 111 ms through the frozen ``__init__``, which matters at hundreds of
    thousands of rows a second. The result is a plain PersistentRepr: same type,
    equality, hash, repr, pickling.
    """

    __slots__ = PersistentRepr.__slots__

    persistence_id: str
    sequence_nr: int
    payload: bytes
    manifest: str
    writer_uuid: str
    deleted: bool
    tags: tuple[str, ...]


def stored_repr(
    persistence_id: str,
    sequence_nr: int,
    payload: bytes,
    manifest: str,
    writer_uuid: str,
    tags: tuple[str, ...],
) -> PersistentRepr:
    """A live (not deleted) message read back from a store, built without ``__init__``.

    The values come from the store's own validated columns, so nothing is checked
    here. Hot loops (``SqliteJournal.replay_messages``) inline the same steps with
    :class:`PersistentReprDraft`.
    """
    item = PersistentReprDraft()
    item.persistence_id = persistence_id
    item.sequence_nr = sequence_nr
    item.payload = payload
    item.manifest = manifest
    item.writer_uuid = writer_uuid
    item.deleted = False
    item.tags = tags
    item.__class__ = PersistentRepr  # type: ignore[assignment]
    return item  # type: ignore[return-value]


# A layout PersistentRepr no longer shares with its draft fails here, at import, with
# CPython's "object layout differs" TypeError, not in a replay.
stored_repr("", 0, b"", "", "", ())


@runtime_checkable
class Journal(Protocol):
    """What the harness needs of a store (InMemoryJournal, SqliteJournal, FileJournal)."""

    def write_messages(self, reprs: Iterable[PersistentRepr]) -> None: ...

    def replay_messages(
        self,
        persistence_id: str,
        from_seq: int = 1,
        to_seq: int = MAX_SEQUENCE_NR,
        max: int | None = None,
    ) -> list[PersistentRepr]: ...

    def highest_sequence_nr(self, persistence_id: str, from_seq: int = 0) -> int: ...

    def delete_messages_to(self, persistence_id: str, to_seq: int) -> None: ...

    def close(self) -> None: ...


_Store = TypeVar("_Store", bound="StoreBase")


class StoreBase(abc.ABC):
    """What every store shares: ``with`` support and the check that it is still open.

    Subclasses set ``_source`` (the name errors show) and ``_closed``, and
    implement :meth:`close`.
    """

    _source: str
    _closed: bool

    def __enter__(self: _Store) -> _Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise JournalStoreClosed(self._source)

    @abc.abstractmethod
    def close(self) -> None:
        """Release the store; every later call raises :class:`JournalStoreClosed`."""


def _check_seq(value: object, name: str) -> int:
    if type(value) is not int or value < 0 or value > MAX_SEQUENCE_NR:
        raise JournalUsageError(
            f"{name} must be an int in 0..{MAX_SEQUENCE_NR}, got {value!r}",
            f"pass a non-negative sequence number below 2**63 as {name}",
        )
    return value


def check_replay_args(
    persistence_id: object, from_seq: object, to_seq: object, max: object
) -> tuple[int, int, int | None]:
    """Validate replay_messages arguments; ``max=None`` means unlimited."""
    check_persistence_id(persistence_id)
    low = _check_seq(from_seq, "from_seq")
    high = _check_seq(to_seq, "to_seq")
    if max is not None:
        if type(max) is not int or max < 0:
            raise JournalUsageError(
                f"max must be None or a non-negative int, got {max!r}",
                "pass max=None for no limit",
            )
        return low, high, max
    return low, high, None


def check_persistence_id(persistence_id: object) -> str:
    if not isinstance(persistence_id, str) or not persistence_id:
        raise JournalUsageError(
            f"persistence_id must be a non-empty str, got {persistence_id!r}",
            "name the journal stream with a non-empty string",
        )
    return persistence_id


def check_to_seq(to_seq: object) -> int:
    return _check_seq(to_seq, "to_seq")


def _check_repr(item: object) -> PersistentRepr:
    if not isinstance(item, PersistentRepr):
        raise JournalUsageError(
            f"write_messages takes PersistentRepr values, got {type(item).__name__}",
            "wrap each payload in PersistentRepr(persistence_id, sequence_nr, payload)",
        )
    check_persistence_id(item.persistence_id)
    if _check_seq(item.sequence_nr, "sequence_nr") == 0:
        raise JournalUsageError(
            f"sequence_nr of a message of {item.persistence_id!r} is 0",
            "number messages from 1 (highest_sequence_nr(persistence_id) + 1)",
        )
    if not isinstance(item.payload, bytes):
        raise JournalUsageError(
            f"payload of {item.persistence_id!r} #{item.sequence_nr} must be bytes, "
            f"got {type(item.payload).__name__}",
            "encode the payload to bytes first (see pytest_replay.journal.codec)",
        )
    for name in ("manifest", "writer_uuid"):
        value = getattr(item, name)
        if not isinstance(value, str):
            raise JournalUsageError(
                f"{name} of {item.persistence_id!r} #{item.sequence_nr} must be str, "
                f"got {type(value).__name__}",
                f"pass {name}='...' (or leave the default '')",
            )
    if not isinstance(item.deleted, bool):
        raise JournalUsageError(
            f"deleted of {item.persistence_id!r} #{item.sequence_nr} must be a bool",
            "pass deleted=False (or True)",
        )
    if not isinstance(item.tags, tuple) or not all(isinstance(t, str) for t in item.tags):
        raise JournalUsageError(
            f"tags of {item.persistence_id!r} #{item.sequence_nr} must be a tuple of str",
            "pass tags=tuple(...) of strings",
        )
    return item


def group_batch(
    reprs: Iterable[PersistentRepr], highest: dict[str, int] | None = None
) -> dict[str, list[PersistentRepr]]:
    """Validate a batch and group it by persistence id, in first-seen order.

    With ``highest`` (the stored highest sequence nr per id, 0 when absent)
    the continuity rule is checked too, raising :class:`DuplicateSequenceNr`
    or :class:`NonContiguousSequenceNr` before anything is written.
    """
    batch = reprs if isinstance(reprs, list) else list(reprs)
    groups = _group_well_typed(batch)
    if groups is None:
        groups = _group_checked(batch)
    if highest is not None:
        for pid, items in groups.items():
            check_continuity(pid, highest.get(pid, 0), items)
    return groups


#: A message's fields, in order, as one tuple built in C.
_REPR_FIELDS: Final = operator.attrgetter(
    "persistence_id", "sequence_nr", "payload", "manifest", "writer_uuid", "deleted", "tags"
)
_FIELD_TYPES: Final = [{str}, {int}, {bytes}, {str}, {str}, {bool}, {tuple}]


def _group_well_typed(batch: list[PersistentRepr]) -> dict[str, list[PersistentRepr]] | None:
    """The groups of a batch whose every field has its exact type, or ``None``.

    Checked column by column with ``map``/``set`` (C loops), which costs a fraction
    of a per-message Python check: a store validates every message it is given,
    hundreds of thousands a second. ``None`` sends the batch to the per-message
    check, which names the first bad message.
    """
    if not batch:
        return {}
    if set(map(type, batch)) != {PersistentRepr}:
        return None
    columns = list(zip(*map(_REPR_FIELDS, batch), strict=True))
    column_types = [set(map(type, column)) for column in columns]
    if column_types != _FIELD_TYPES:
        return None
    pids, seqs, tags = columns[0], columns[1], columns[6]
    if "" in pids or min(seqs) <= 0 or max(seqs) > MAX_SEQUENCE_NR:
        return None
    if any(tags) and {type(tag) for tag in itertools.chain.from_iterable(tags)} != {str}:
        return None
    first = pids[0]
    if pids.count(first) == len(pids):
        return {first: list(batch)}
    groups: dict[str, list[PersistentRepr]] = {}
    for pid, item in zip(pids, batch, strict=True):
        group = groups.get(pid)
        if group is None:
            groups[pid] = group = []
        group.append(item)
    return groups


def _group_checked(reprs: list[PersistentRepr]) -> dict[str, list[PersistentRepr]]:
    groups: dict[str, list[PersistentRepr]] = {}
    cls = PersistentRepr
    top = MAX_SEQUENCE_NR
    for item in reprs:
        # Exact-type fast path for the common case; anything unusual (subclasses,
        # bad values) goes through the full check, which names the problem.
        if (
            type(item) is not cls
            or type(item.persistence_id) is not str
            or not item.persistence_id
            or type(item.sequence_nr) is not int
            or not 0 < item.sequence_nr <= top
            or type(item.payload) is not bytes
            or type(item.manifest) is not str
            or type(item.writer_uuid) is not str
            or type(item.deleted) is not bool
            or type(item.tags) is not tuple
            or (item.tags and not all(type(tag) is str for tag in item.tags))
        ):
            _check_repr(item)
        group = groups.get(item.persistence_id)
        if group is None:
            groups[item.persistence_id] = group = []
        group.append(item)
    return groups


def check_continuity(pid: str, highest: int, items: Sequence[PersistentRepr]) -> None:
    expected = highest + 1
    # One list comparison in C for the common (valid) batch; the loop names the culprit.
    if [item.sequence_nr for item in items] == list(range(expected, expected + len(items))):
        return
    for item in items:
        if item.sequence_nr != expected:
            if item.sequence_nr < expected:
                raise DuplicateSequenceNr(pid, expected, item.sequence_nr)
            raise NonContiguousSequenceNr(pid, expected, item.sequence_nr)
        expected += 1
