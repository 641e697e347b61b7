"""A journal store in an SQLite database (stdlib ``sqlite3``, WAL mode).

Messages live in ``journal_messages``, primary key (persistence_id,
sequence_nr), ``WITHOUT ROWID``. The (manifest, writer_uuid) pair, equal for
nearly every message, is stored once in ``journal_writers`` and referenced
by id: replays then build no per-row strings for it.
Each ``write_messages`` call is one ``BEGIN IMMEDIATE`` transaction: the
continuity check and the inserts see the same snapshot, and a process killed
mid-batch leaves the batch entirely absent. Inserts are plain ``INSERT``: a
stored row is never overwritten.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import msgpack

from pytest_replay._gc import paused_collector
from pytest_replay._msgpack import unpack_bounded
from pytest_replay.journal.errors import (
    DuplicateSequenceNr,
    JournalCorrupted,
    JournalDecodeError,
    JournalIoError,
    JournalUsageError,
)
from pytest_replay.journal.persistent import (
    MAX_SEQUENCE_NR,
    PersistentRepr,
    PersistentReprDraft,
    StoreBase,
    check_continuity,
    check_persistence_id,
    check_replay_args,
    check_to_seq,
    group_batch,
)

__all__ = ["SCHEMA_VERSION", "SqliteJournal"]


def _read_error(source: str, what: str, exc: sqlite3.Error) -> JournalDecodeError | JournalIoError:
    """A failed read: damage when SQLite says a stored text is not UTF-8, else an I/O error."""
    if isinstance(exc, sqlite3.OperationalError) and "decode" in str(exc):
        return JournalDecodeError(
            source,
            f"{what} hold a text column that is not UTF-8 ({exc})",
            fix="restore the database from a backup; it was damaged or written by another tool",
        )
    return JournalIoError("read", source, exc)


#: Stored in ``PRAGMA user_version``.
SCHEMA_VERSION: Final = 1


_SCHEMA: Final = (
    """
CREATE TABLE IF NOT EXISTS journal_writers (
    writer_ref  INTEGER PRIMARY KEY,
    manifest    TEXT NOT NULL,
    writer_uuid TEXT NOT NULL,
    UNIQUE (manifest, writer_uuid)
)
""",
    """
CREATE TABLE IF NOT EXISTS journal_messages (
    persistence_id TEXT NOT NULL,
    sequence_nr    INTEGER NOT NULL,
    payload        BLOB NOT NULL,
    writer_ref     INTEGER NOT NULL REFERENCES journal_writers (writer_ref),
    deleted        INTEGER NOT NULL DEFAULT 0,
    tags           BLOB,
    PRIMARY KEY (persistence_id, sequence_nr)
) WITHOUT ROWID
""",
)
_INSERT: Final = (
    "INSERT INTO journal_messages "
    "(persistence_id, sequence_nr, payload, writer_ref, deleted, tags) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_SELECT_RANGE: Final = (
    "SELECT sequence_nr, payload, writer_ref, tags FROM journal_messages "
    "WHERE persistence_id = ? AND sequence_nr >= ? AND sequence_nr <= ? AND deleted = 0 "
    "ORDER BY sequence_nr LIMIT ?"
)
#: Most distinct tag values one replay keeps decoded (messages whose tags all differ
#: are decoded one by one without filling memory).
_DECODED_TAGS_KEPT: Final = 1024
_SELECT_HIGHEST: Final = "SELECT MAX(sequence_nr) FROM journal_messages WHERE persistence_id = ?"
_SYNC_LEVELS: Final = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})


class SqliteJournal(StoreBase):
    """The :class:`~pytest_replay.journal.persistent.Journal` contract over SQLite.

    ``synchronous`` is SQLite's ``PRAGMA synchronous`` (default ``FULL``:
    every committed batch survives a power cut, not only a process kill).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, synchronous: str = "FULL", timeout: float = 30.0
    ) -> None:
        if synchronous not in _SYNC_LEVELS:
            raise JournalUsageError(
                f"synchronous={synchronous!r} is not an SQLite sync level",
                f"use one of {', '.join(sorted(_SYNC_LEVELS))}",
            )
        self.path = Path(path)
        self._source = os.fspath(self.path)
        self._lock = threading.Lock()
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISREG(os.stat(self.path).st_mode):
                # SQLite would fail with "disk I/O error" on a FIFO or device: say why.
                raise JournalUsageError(
                    f"'{self._source}' is a folder, FIFO or device, not an SQLite journal",
                    "pass the path of a database file (or of one to create)",
                )
        try:
            self._conn = sqlite3.connect(
                self._source, timeout=timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise JournalIoError("open", self.path, exc) from exc
        try:
            self._setup(synchronous)
        except BaseException:
            self._conn.close()
            raise

    def _setup(self, synchronous: str) -> None:
        conn = self._conn
        try:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version not in (0, SCHEMA_VERSION):
                raise JournalCorrupted(
                    self._source,
                    0,
                    f"schema version {version} is not {SCHEMA_VERSION} (written by another "
                    "pytest_replay version)",
                )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={synchronous}")
            for statement in _SCHEMA:
                conn.execute(statement)
            self._writers = self._load_writers()
            if version == 0:
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise JournalCorrupted(
                self._source, 0, f"not a usable SQLite database ({exc})"
            ) from exc

    def _load_writers(self) -> dict[int, tuple[str, str]]:
        rows = self._conn.execute(
            "SELECT writer_ref, manifest, writer_uuid FROM journal_writers"
        ).fetchall()
        return {ref: (manifest, writer) for ref, manifest, writer in rows}

    def _writer_refs(self, batch: list[PersistentRepr]) -> dict[tuple[str, str], int]:
        # Runs inside the write transaction, so a new writer row commits with its batch.
        refs = {pair: ref for ref, pair in self._writers.items()}
        for item in batch:
            pair = (item.manifest, item.writer_uuid)
            if pair not in refs:
                self._conn.execute(
                    "INSERT OR IGNORE INTO journal_writers (manifest, writer_uuid) VALUES (?, ?)",
                    pair,
                )
                (ref,) = self._conn.execute(
                    "SELECT writer_ref FROM journal_writers WHERE manifest = ? AND writer_uuid = ?",
                    pair,
                ).fetchone()
                refs[pair] = ref
        return refs

    def _highest(self, persistence_id: str) -> int:
        (value,) = self._conn.execute(_SELECT_HIGHEST, (persistence_id,)).fetchone()
        return 0 if value is None else int(value)

    def write_messages(self, reprs: Iterable[PersistentRepr]) -> None:
        batch = list(reprs)
        groups = group_batch(batch)
        if not batch:
            return
        with self._lock:
            self._check_open()
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for pid, items in groups.items():
                        check_continuity(pid, self._highest(pid), items)
                    refs = self._writer_refs(batch)
                    conn.executemany(
                        _INSERT,
                        [
                            (
                                item.persistence_id,
                                item.sequence_nr,
                                item.payload,
                                refs[item.manifest, item.writer_uuid],
                                1 if item.deleted else 0,
                                msgpack.packb(list(item.tags)) if item.tags else None,
                            )
                            for item in batch
                        ],
                    )
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    self._writers = self._load_writers()
                    raise
                self._writers = {ref: pair for pair, ref in refs.items()}
            except sqlite3.IntegrityError as exc:
                first = batch[0]
                raise DuplicateSequenceNr(
                    first.persistence_id, self._highest(first.persistence_id) + 1, first.sequence_nr
                ) from exc
            except sqlite3.Error as exc:
                raise JournalIoError("write", self.path, exc) from exc

    def replay_messages(
        self,
        persistence_id: str,
        from_seq: int = 1,
        to_seq: int = MAX_SEQUENCE_NR,
        max: int | None = None,
    ) -> list[PersistentRepr]:
        low, high, limit = check_replay_args(persistence_id, from_seq, to_seq, max)
        with paused_collector():
            return self._replay(persistence_id, low, high, limit)

    def _replay(
        self, persistence_id: str, low: int, high: int, limit: int | None
    ) -> list[PersistentRepr]:
        with self._lock:
            self._check_open()
            try:
                rows = self._conn.execute(
                    _SELECT_RANGE, (persistence_id, low, high, -1 if limit is None else limit)
                )
                # Messages are built as the rows come, under the lock that guards the
                # connection: no list of row tuples is built and walked again.
                return self._build(persistence_id, rows)
            except sqlite3.Error as exc:
                raise _read_error(self._source, f"messages of {persistence_id!r}", exc) from exc

    def _build(
        self, persistence_id: str, rows: Iterable[tuple[int, bytes, int, bytes | None]]
    ) -> list[PersistentRepr]:
        # The loop below is stored_repr() inlined: one Python call less per row.
        draft, cls = PersistentReprDraft, PersistentRepr
        writers = self._writers
        no_tags: tuple[str, ...] = ()
        out: list[PersistentRepr] = []
        append = out.append
        last_ref: int | None = None
        manifest = writer = ""
        # Tags decoded once per distinct stored value: messages tagged alike (an entity's
        # or a run's tag on each of its messages) share one tuple.
        decoded_tags: dict[bytes, tuple[str, ...]] = {}
        for seq, payload, ref, tags in rows:
            if ref != last_ref:
                pair = writers.get(ref)
                if pair is None:
                    # Another connection (process) may have added a writer since we loaded them.
                    writers = self._reload_writers()
                    pair = writers.get(ref)
                if pair is None:
                    raise JournalDecodeError(
                        self._source,
                        f"message refers to unknown writer_ref {ref!r}",
                        sequence_nr=seq,
                    )
                manifest, writer = pair
                last_ref = ref
            item = draft()
            item.persistence_id = persistence_id
            item.sequence_nr = seq
            item.payload = payload
            item.manifest = manifest
            item.writer_uuid = writer
            item.deleted = False
            if tags is None:
                item.tags = no_tags
            else:
                known = decoded_tags.get(tags)
                item.tags = self._tags(tags, seq, decoded_tags) if known is None else known
            item.__class__ = cls  # type: ignore[assignment]
            append(item)  # type: ignore[arg-type]
        return out

    def _reload_writers(self) -> dict[int, tuple[str, str]]:
        """The writers table read again; the caller holds the lock."""
        try:
            self._writers = self._load_writers()
        except sqlite3.Error as exc:
            raise _read_error(self._source, "the writers table", exc) from exc
        return self._writers

    def _tags(
        self, blob: bytes, seq: int, decoded: dict[bytes, tuple[str, ...]]
    ) -> tuple[str, ...]:
        """The tags of message ``seq``, also kept in ``decoded`` (up to a bound)."""
        try:
            tags = unpack_bounded(blob)
        except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
            tags = None
        if type(tags) is not list or not all(type(tag) is str for tag in tags):
            raise JournalDecodeError(
                self._source, "stored tags are not a list of str", sequence_nr=seq
            )
        value = tuple(tags)
        if len(decoded) < _DECODED_TAGS_KEPT:
            decoded[blob] = value
        return value

    def highest_sequence_nr(self, persistence_id: str, from_seq: int = 0) -> int:
        """The highest stored sequence nr (0 when none); ``from_seq`` is only a hint."""
        check_persistence_id(persistence_id)
        with self._lock:
            self._check_open()
            try:
                return self._highest(persistence_id)
            except sqlite3.Error as exc:
                raise JournalIoError("read", self.path, exc) from exc

    def delete_messages_to(self, persistence_id: str, to_seq: int) -> None:
        check_persistence_id(persistence_id)
        upto = check_to_seq(to_seq)
        with self._lock:
            self._check_open()
            try:
                self._conn.execute(
                    "UPDATE journal_messages SET deleted = 1 "
                    "WHERE persistence_id = ? AND sequence_nr <= ? AND deleted = 0",
                    (persistence_id, upto),
                )
            except sqlite3.Error as exc:
                raise JournalIoError("delete", self.path, exc) from exc

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._conn.close()
