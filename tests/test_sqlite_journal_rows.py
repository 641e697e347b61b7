"""SqliteJournal stores exactly the rows the one-message-at-a-time formula gives, and
replays them back (built from the rows as the cursor hands them over), whatever mix of
writers, deleted flags and tags the batches hold."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_replay.journal import PersistentRepr, SqliteJournal

_WRITERS = [("m", "w1"), ("m", "w2"), ("other", "w1")]

_message = st.tuples(
    st.sampled_from(["a", "b"]),
    st.binary(max_size=40),
    st.sampled_from(_WRITERS),
    st.booleans(),
    st.lists(st.text(max_size=4), max_size=2).map(tuple),
)


def _expected_rows(
    batches: list[list[PersistentRepr]],
) -> list[tuple[str, int, bytes, int, int, bytes | None]]:
    """The stored rows as the per-message formula makes them: a writer gets the next
    ref the first time a batch names it."""
    refs: dict[tuple[str, str], int] = {}
    rows = []
    for batch in batches:
        for item in batch:
            pair = (item.manifest, item.writer_uuid)
            if pair not in refs:
                refs[pair] = len(refs) + 1
            rows.append(
                (
                    item.persistence_id,
                    item.sequence_nr,
                    item.payload,
                    refs[pair],
                    1 if item.deleted else 0,
                    msgpack.packb(list(item.tags)) if item.tags else None,
                )
            )
    return sorted(rows)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(_message, min_size=1, max_size=8), min_size=1, max_size=4))
def test_stored_rows_match_the_per_message_formula(
    raw_batches: list[list[tuple[str, bytes, tuple[str, str], bool, tuple[str, ...]]]],
) -> None:
    highest = {"a": 0, "b": 0}
    batches = []
    for raw in raw_batches:
        batch = []
        for pid, payload, (manifest, writer), deleted, tags in raw:
            highest[pid] += 1
            batch.append(
                PersistentRepr(pid, highest[pid], payload, manifest, writer, deleted, tags)
            )
        batches.append(batch)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "journal.db"
        journal = SqliteJournal(path, synchronous="OFF")
        try:
            for batch in batches:
                journal.write_messages(batch)
            for pid in ("a", "b"):
                # Replay skips deleted rows and gives back every other message as written
                # (a stored message replays as not deleted).
                written = [
                    item for batch in batches for item in batch if item.persistence_id == pid
                ]
                assert journal.replay_messages(pid) == [
                    PersistentRepr(
                        item.persistence_id,
                        item.sequence_nr,
                        item.payload,
                        item.manifest,
                        item.writer_uuid,
                        False,
                        item.tags,
                    )
                    for item in written
                    if not item.deleted
                ]
        finally:
            journal.close()
        conn = sqlite3.connect(path)
        try:
            stored = conn.execute(
                "SELECT persistence_id, sequence_nr, payload, writer_ref, deleted, tags "
                "FROM journal_messages ORDER BY persistence_id, sequence_nr"
            ).fetchall()
        finally:
            conn.close()
    assert sorted(stored) == _expected_rows(batches)
