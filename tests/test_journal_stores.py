"""The Journal store contract, run against InMemoryJournal, SqliteJournal and FileJournal,
plus what each durable store promises on its own (torn tails, corruption, reopening)."""

from __future__ import annotations

import os
import sqlite3
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pytest_replay.errors import ReplayError
from pytest_replay.formats.journal import FILE_HEADER_BYTES, FRAME_HEADER_BYTES, encode_frame
from pytest_replay.journal import (
    MAX_SEQUENCE_NR,
    DuplicateSequenceNr,
    FileJournal,
    FrameTooLarge,
    InMemoryJournal,
    Journal,
    JournalCorrupted,
    JournalDecodeError,
    JournalIoError,
    JournalStoreClosed,
    JournalUsageError,
    NonContiguousSequenceNr,
    PersistentRepr,
    SqliteJournal,
    TornTailWarning,
)
from pytest_replay.journal.file_journal import encode_journal_image, parse_journal_image

Store = InMemoryJournal | SqliteJournal | FileJournal


def msg(pid: str, seq: int, payload: bytes | None = None, **kw: object) -> PersistentRepr:
    body = payload if payload is not None else f"{pid}:{seq}".encode()
    return PersistentRepr(pid, seq, body, **kw)  # type: ignore[arg-type]


def batch(pid: str, first: int, last: int) -> list[PersistentRepr]:
    return [msg(pid, seq) for seq in range(first, last + 1)]


@pytest.fixture(params=["memory", "sqlite", "file"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def opener(kind: str, tmp_path: Path) -> Callable[[], Store]:
    """Opens the store under test; for the durable kinds, reopening sees the same data."""
    memory = InMemoryJournal()

    def open_store() -> Store:
        if kind == "memory":
            return memory
        if kind == "sqlite":
            return SqliteJournal(tmp_path / "journal.db")
        return FileJournal(tmp_path / "journal.jrnl")

    return open_store


@pytest.fixture
def store(opener: Callable[[], Store]) -> Iterator[Store]:
    journal = opener()
    yield journal
    journal.close()


# --------------------------------------------------------------------------- contract


def test_every_store_satisfies_the_journal_protocol(store: Store) -> None:
    assert isinstance(store, Journal)


def test_fresh_store_is_empty(store: Store) -> None:
    assert store.highest_sequence_nr("a") == 0
    assert store.highest_sequence_nr("a", 5) == 0
    assert store.replay_messages("a") == []


def test_write_then_replay_in_order_with_every_field(store: Store) -> None:
    items = [
        PersistentRepr("a", 1, b"\x00one", "m1", "w1", False, ("t1", "t2")),
        PersistentRepr("a", 2, b"", "m2", "w2", False, ()),
        PersistentRepr("a", 3, bytes(range(256)), "m1", "w1", False, ("t3",)),
    ]
    store.write_messages(items)
    assert store.replay_messages("a") == items
    assert store.highest_sequence_nr("a") == 3


def test_sequence_numbers_start_at_one(store: Store) -> None:
    with pytest.raises(NonContiguousSequenceNr) as info:
        store.write_messages([msg("a", 2)])
    assert info.value.expected == 1 and info.value.got == 2
    assert "Fix:" in str(info.value)
    assert store.highest_sequence_nr("a") == 0


def test_batches_continue_at_highest_plus_one(store: Store) -> None:
    store.write_messages(batch("a", 1, 3))
    store.write_messages(batch("a", 4, 6))
    assert [m.sequence_nr for m in store.replay_messages("a")] == [1, 2, 3, 4, 5, 6]


def test_duplicate_is_rejected_and_never_overwrites(store: Store) -> None:
    store.write_messages(batch("a", 1, 2))
    with pytest.raises(DuplicateSequenceNr) as info:
        store.write_messages([msg("a", 2, b"other")])
    assert isinstance(info.value, ReplayError)
    assert "'a'" in str(info.value) and "Fix:" in str(info.value)
    assert store.replay_messages("a")[1].payload == b"a:2"


def test_gap_is_rejected(store: Store) -> None:
    store.write_messages(batch("a", 1, 2))
    with pytest.raises(NonContiguousSequenceNr):
        store.write_messages([msg("a", 4)])
    assert store.highest_sequence_nr("a") == 2


def test_rejected_batch_writes_nothing(store: Store) -> None:
    store.write_messages(batch("a", 1, 1))
    bad = [msg("a", 2), msg("b", 1), msg("a", 4)]
    with pytest.raises(NonContiguousSequenceNr):
        store.write_messages(bad)
    assert store.highest_sequence_nr("a") == 1
    assert store.highest_sequence_nr("b") == 0
    # The same ids accept a correct batch afterwards.
    store.write_messages([msg("a", 2), msg("b", 1)])
    assert store.highest_sequence_nr("a") == 2


def test_non_contiguous_inside_one_batch_is_rejected(store: Store) -> None:
    with pytest.raises(NonContiguousSequenceNr):
        store.write_messages([msg("a", 1), msg("a", 3)])
    with pytest.raises(DuplicateSequenceNr):
        store.write_messages([msg("a", 1), msg("a", 1)])
    assert store.replay_messages("a") == []


def test_persistence_ids_are_independent_and_interleave(store: Store) -> None:
    store.write_messages([msg("a", 1), msg("b", 1), msg("a", 2), msg("b", 2), msg("c", 1)])
    assert [m.payload for m in store.replay_messages("a")] == [b"a:1", b"a:2"]
    assert [m.payload for m in store.replay_messages("b")] == [b"b:1", b"b:2"]
    assert store.highest_sequence_nr("c") == 1


def test_replay_range_and_max(store: Store) -> None:
    store.write_messages(batch("a", 1, 10))
    seqs = [m.sequence_nr for m in store.replay_messages("a", 3, 7)]
    assert seqs == [3, 4, 5, 6, 7]
    assert [m.sequence_nr for m in store.replay_messages("a", 3, 7, 2)] == [3, 4]
    assert store.replay_messages("a", 3, 7, 0) == []
    assert [m.sequence_nr for m in store.replay_messages("a", 0, 2)] == [1, 2]
    assert store.replay_messages("a", 11) == []
    assert store.replay_messages("a", 8, 4) == []
    assert len(store.replay_messages("a", 1, MAX_SEQUENCE_NR)) == 10


def test_delete_marks_deleted_and_keeps_highest(store: Store) -> None:
    store.write_messages(batch("a", 1, 5))
    store.delete_messages_to("a", 3)
    assert [m.sequence_nr for m in store.replay_messages("a")] == [4, 5]
    assert store.highest_sequence_nr("a") == 5
    # max counts live messages only.
    assert [m.sequence_nr for m in store.replay_messages("a", 1, 10, 1)] == [4]
    store.write_messages([msg("a", 6)])
    with pytest.raises(DuplicateSequenceNr):
        store.write_messages([msg("a", 1)])


def test_delete_everything_and_beyond(store: Store) -> None:
    store.write_messages(batch("a", 1, 3))
    store.delete_messages_to("a", MAX_SEQUENCE_NR)
    assert store.replay_messages("a") == []
    assert store.highest_sequence_nr("a") == 3
    store.delete_messages_to("missing", 10)
    assert store.highest_sequence_nr("missing") == 0


def test_a_message_written_deleted_does_not_replay(store: Store) -> None:
    store.write_messages([msg("a", 1, deleted=True), msg("a", 2)])
    assert [m.sequence_nr for m in store.replay_messages("a")] == [2]
    assert store.highest_sequence_nr("a") == 2


def test_empty_batch_is_a_no_op(store: Store) -> None:
    store.write_messages([])
    assert store.highest_sequence_nr("a") == 0


@pytest.mark.parametrize(
    "bad",
    [
        PersistentRepr("", 1, b"x"),
        PersistentRepr("a", 0, b"x"),
        PersistentRepr("a", -1, b"x"),
        PersistentRepr("a", MAX_SEQUENCE_NR + 1, b"x"),
        PersistentRepr("a", 1, "text"),  # type: ignore[arg-type]
        PersistentRepr("a", 1, b"x", tags=["list"]),  # type: ignore[arg-type]
        PersistentRepr("a", True, b"x"),
        PersistentRepr("a", 1, b"x", manifest=5),  # type: ignore[arg-type]
        PersistentRepr("a", 1, b"x", writer_uuid=None),  # type: ignore[arg-type]
        PersistentRepr("a", 1, b"x", deleted="no"),  # type: ignore[arg-type]
        PersistentRepr("a", 1, b"x", tags=("ok", 3)),  # type: ignore[arg-type]
    ],
    ids=[
        "empty-pid",
        "seq-0",
        "seq-neg",
        "seq-huge",
        "str-payload",
        "list-tags",
        "bool-seq",
        "int-manifest",
        "none-writer",
        "str-deleted",
        "int-tag",
    ],
)
def test_invalid_messages_are_usage_errors(store: Store, bad: PersistentRepr) -> None:
    with pytest.raises(JournalUsageError) as info:
        store.write_messages([msg("ok", 1), bad])
    assert str(info.value).count("Fix:") == 1
    assert store.highest_sequence_nr("ok") == 0


def test_non_repr_in_batch_is_a_usage_error(store: Store) -> None:
    with pytest.raises(JournalUsageError, match="PersistentRepr"):
        store.write_messages([b"raw"])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("", 1, 5, None), "persistence_id"),
        (("a", -1, 5, None), "from_seq"),
        (("a", 1, 2**64, None), "to_seq"),
        (("a", 1, 5, -1), "max"),
        (("a", 1, 5, 1.5), "max"),
    ],
)
def test_invalid_replay_arguments(store: Store, args: tuple[object, ...], match: str) -> None:
    with pytest.raises(JournalUsageError, match=match):
        store.replay_messages(*args)  # type: ignore[arg-type]


def test_store_is_unusable_after_close(opener: Callable[[], Store]) -> None:
    journal = opener()
    journal.close()
    journal.close()  # idempotent
    for call in (
        lambda: journal.write_messages([msg("a", 1)]),
        lambda: journal.replay_messages("a"),
        lambda: journal.highest_sequence_nr("a"),
        lambda: journal.delete_messages_to("a", 1),
    ):
        with pytest.raises(JournalStoreClosed, match="Fix:"):
            call()


def test_concurrent_writers_keep_sequences_contiguous(store: Store) -> None:
    errors: list[BaseException] = []

    def writer(pid: str) -> None:
        try:
            for first in range(1, 41, 4):
                store.write_messages(batch(pid, first, first + 3))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"p{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for i in range(4):
        assert [m.sequence_nr for m in store.replay_messages(f"p{i}")] == list(range(1, 41))


@pytest.mark.parametrize("durable", ["sqlite", "file"])
def test_durable_stores_survive_reopen(durable: str, tmp_path: Path) -> None:
    def opener() -> Store:
        if durable == "sqlite":
            return SqliteJournal(tmp_path / "journal.db")
        return FileJournal(tmp_path / "journal.jrnl")

    journal = opener()
    journal.write_messages([*batch("a", 1, 3), msg("b", 1, tags=("x",), manifest="m")])
    journal.delete_messages_to("a", 1)
    before = (journal.replay_messages("a"), journal.replay_messages("b"))
    journal.close()
    again = opener()
    try:
        assert (again.replay_messages("a"), again.replay_messages("b")) == before
        assert again.highest_sequence_nr("a") == 3
        again.write_messages([msg("a", 4)])
        assert again.highest_sequence_nr("a") == 4
    finally:
        again.close()


# --------------------------------------------------------------------------- FileJournal


def test_file_journal_torn_tail_is_reported_and_truncated(tmp_path: Path) -> None:
    path = tmp_path / "j.jrnl"
    with FileJournal(path) as journal:
        journal.write_messages(batch("a", 1, 3))
    good = path.stat().st_size
    frame = encode_frame(b"\x92\x00\x90" * 10)
    with open(path, "ab") as fh:
        fh.write(frame[: len(frame) - 5])
    with pytest.warns(TornTailWarning, match=f"byte offset {good}"):
        journal = FileJournal(path)
    try:
        assert journal.torn_tail is not None
        assert journal.torn_tail.offset == good
        assert journal.torn_tail.dropped_bytes == len(frame) - 5
        assert path.stat().st_size == good
        assert [m.sequence_nr for m in journal.replay_messages("a")] == [1, 2, 3]
        journal.write_messages([msg("a", 4)])
    finally:
        journal.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with FileJournal(path) as journal:
            assert journal.torn_tail is None
            assert journal.highest_sequence_nr("a") == 4


@pytest.mark.parametrize("keep", [1, FRAME_HEADER_BYTES - 1, FRAME_HEADER_BYTES + 1])
def test_file_journal_torn_header_or_body(tmp_path: Path, keep: int) -> None:
    path = tmp_path / "j.jrnl"
    with FileJournal(path) as journal:
        journal.write_messages(batch("a", 1, 2))
    good = path.stat().st_size
    with open(path, "ab") as fh:
        fh.write(encode_frame(b"\x92\x00\x90" * 4)[:keep])
    with pytest.warns(TornTailWarning), FileJournal(path) as journal:
        assert journal.highest_sequence_nr("a") == 2
    assert path.stat().st_size == good


def test_file_journal_zero_filled_tail_is_torn(tmp_path: Path) -> None:
    path = tmp_path / "j.jrnl"
    with FileJournal(path) as journal:
        journal.write_messages(batch("a", 1, 2))
    with open(path, "ab") as fh:
        fh.write(bytes(100))
    with pytest.warns(TornTailWarning), FileJournal(path) as journal:
        assert journal.highest_sequence_nr("a") == 2


def _three_frame_file(path: Path) -> list[int]:
    """Three batches; returns the byte offset of each frame."""
    offsets = []
    with FileJournal(path) as journal:
        for first in (1, 3, 5):
            offsets.append(path.stat().st_size)
            journal.write_messages(batch("a", first, first + 1))
    return offsets


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_file_journal_corrupt_body_before_tail_names_offset(tmp_path: Path) -> None:
    path = tmp_path / "j.jrnl"
    offsets = _three_frame_file(path)
    _flip(path, offsets[1] + FRAME_HEADER_BYTES + 2)
    before = path.read_bytes()
    with pytest.raises(JournalCorrupted) as info:
        FileJournal(path)
    assert info.value.offset == offsets[1]
    assert info.value.index == 1
    assert f"byte offset {offsets[1]}" in str(info.value)
    assert "Fix:" in str(info.value)
    assert path.read_bytes() == before  # nothing truncated or skipped


def test_file_journal_corrupt_length_field_is_not_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "j.jrnl"
    offsets = _three_frame_file(path)
    _flip(path, offsets[2] + 1)  # the final frame's length: the header CRC catches it
    with pytest.raises(JournalCorrupted, match="header checksum") as info:
        FileJournal(path)
    assert info.value.offset == offsets[2]


def test_file_journal_bad_magic_and_version(tmp_path: Path) -> None:
    path = tmp_path / "j.jrnl"
    path.write_bytes(b"NOTAJRNL" + bytes(8))
    with pytest.raises(JournalCorrupted, match="magic"):
        FileJournal(path)
    path.write_bytes(b"PRJOURNL" + (9).to_bytes(4, "little") + bytes(4))
    with pytest.raises(JournalCorrupted, match="version 9") as info:
        FileJournal(path)
    assert info.value.offset == 8
    path.write_bytes(b"PRJ")
    with pytest.raises(JournalCorrupted, match="shorter than"):
        FileJournal(path)


def test_file_journal_huge_length_field_allocates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "j.jrnl"
    _three_frame_file(path)
    import struct
    import zlib

    head = struct.pack("<II", 2**31, 0)
    frame_head = head + struct.pack("<I", zlib.crc32(head))
    with open(path, "ab") as fh:
        fh.write(frame_head + b"abc" + bytes(FILE_HEADER_BYTES))
    with pytest.raises(JournalCorrupted, match="outside"):
        FileJournal(path)


def test_file_journal_frame_with_bad_msgpack_names_offset(tmp_path: Path) -> None:
    path = tmp_path / "j.jrnl"
    _three_frame_file(path)
    end = path.stat().st_size
    with open(path, "ab") as fh:
        fh.write(encode_frame(b"\xc1"))  # never-used msgpack byte
        fh.write(encode_frame(b"\x93\x07\x01\x02"))  # unknown op
    with pytest.raises(JournalCorrupted) as info:
        FileJournal(path)
    assert info.value.offset == end and info.value.index == 3


def test_file_journal_stored_batch_breaking_sequence_is_corruption(tmp_path: Path) -> None:
    image = encode_journal_image(batch("a", 1, 2))
    from pytest_replay.journal.file_journal import encode_batch_body

    broken = image + encode_frame(encode_batch_body([msg("a", 5)]))
    path = tmp_path / "j.jrnl"
    path.write_bytes(broken)
    with pytest.raises(JournalCorrupted, match="breaks the sequence") as info:
        FileJournal(path)
    assert info.value.offset == len(image)


def test_file_journal_is_locked_against_a_second_writer(tmp_path: Path) -> None:
    path = tmp_path / "j.jrnl"
    with FileJournal(path), pytest.raises(JournalIoError, match="lock"):
        FileJournal(path)
    with FileJournal(path) as journal:  # released on close
        assert journal.highest_sequence_nr("a") == 0


def test_file_journal_frame_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pytest_replay.journal.file_journal as fj

    monkeypatch.setattr(fj, "MAX_FRAME_BYTES", 64)
    with FileJournal(tmp_path / "j.jrnl") as journal:
        with pytest.raises(FrameTooLarge, match="split the batch"):
            journal.write_messages([msg("a", 1, bytes(100))])
        assert journal.highest_sequence_nr("a") == 0


def test_file_journal_failed_append_leaves_no_half_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "j.jrnl"
    journal = FileJournal(path)
    journal.write_messages(batch("a", 1, 1))
    size = path.stat().st_size
    real = os.pwrite
    calls = {"n": 0}

    def short_then_fail(fd: int, data: bytes, offset: int) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            return real(fd, bytes(data)[:5], offset)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "pwrite", short_then_fail)
    with pytest.raises(JournalIoError, match="No space left"):
        journal.write_messages([msg("a", 2)])
    monkeypatch.setattr(os, "pwrite", real)
    assert path.stat().st_size == size
    assert journal.highest_sequence_nr("a") == 1
    journal.write_messages([msg("a", 2)])
    journal.close()
    with FileJournal(path) as again:
        assert again.highest_sequence_nr("a") == 2


def test_file_journal_failed_delete_append_deletes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "j.jrnl"
    with FileJournal(path) as journal:
        journal.write_messages(batch("a", 1, 3))

        def full(fd: int, data: bytes, offset: int) -> int:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "pwrite", full)
        with pytest.raises(JournalIoError, match="append"):
            journal.delete_messages_to("a", 2)
        monkeypatch.undo()
        assert [m.sequence_nr for m in journal.replay_messages("a")] == [1, 2, 3]
    with FileJournal(path) as again:
        assert [m.sequence_nr for m in again.replay_messages("a")] == [1, 2, 3]


@pytest.mark.parametrize("size", [0, -1, 2.5])
def test_journal_image_batch_size_must_be_positive(size: object) -> None:
    with pytest.raises(JournalUsageError, match="batch_size") as info:
        encode_journal_image(batch("a", 1, 3), batch_size=size)  # type: ignore[arg-type]
    assert "Fix:" in str(info.value)


def test_parse_image_in_absolute_mode_raises_on_a_torn_tail(tmp_path: Path) -> None:
    image = encode_journal_image(batch("a", 1, 3))
    streams, scan = parse_journal_image(image, "img")
    assert scan.good_end == len(image) and scan.torn_offset is None
    assert [m.sequence_nr for m in streams["a"]] == [1, 2, 3]
    with pytest.raises(JournalCorrupted, match="ends inside a frame"):
        parse_journal_image(image[:-3], "img")


# --------------------------------------------------------------------------- SqliteJournal


def test_sqlite_uses_wal_and_the_documented_schema(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with SqliteJournal(path) as journal:
        journal.write_messages(batch("a", 1, 2))
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        pk = conn.execute("PRAGMA table_info(journal_messages)").fetchall()
        key = sorted((row[5], row[1]) for row in pk if row[5])
        assert key == [(1, "persistence_id"), (2, "sequence_nr")]
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(
                "INSERT INTO journal_messages (persistence_id, sequence_nr, payload, writer_ref) "
                "VALUES ('a', 1, x'00', 1)"
            )
    finally:
        conn.close()


def test_sqlite_rejects_a_foreign_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=7")
    conn.close()
    with pytest.raises(JournalCorrupted, match="schema version 7"):
        SqliteJournal(path)


def test_sqlite_rejects_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(JournalCorrupted, match="not a usable SQLite database"):
        SqliteJournal(path)


def test_sqlite_bad_synchronous_level(tmp_path: Path) -> None:
    with pytest.raises(JournalUsageError, match="synchronous"):
        SqliteJournal(tmp_path / "j.db", synchronous="SOMETIMES")


def test_sqlite_damaged_tags_name_the_sequence_nr(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with SqliteJournal(path) as journal:
        journal.write_messages([msg("a", 1, tags=("x",)), msg("a", 2, tags=("y",))])
    conn = sqlite3.connect(path)
    conn.execute("UPDATE journal_messages SET tags = x'c1' WHERE sequence_nr = 2")
    conn.commit()
    conn.close()
    with SqliteJournal(path) as journal, pytest.raises(JournalDecodeError) as info:
        journal.replay_messages("a")
    assert info.value.sequence_nr == 2


def test_sqlite_duplicate_from_another_connection_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    first = SqliteJournal(path)
    second = SqliteJournal(path)
    try:
        first.write_messages(batch("a", 1, 2))
        with pytest.raises(DuplicateSequenceNr):
            second.write_messages([msg("a", 1, b"clobber")])
        second.write_messages([msg("a", 3)])
        assert [m.payload for m in first.replay_messages("a")] == [b"a:1", b"a:2", b"a:3"]
    finally:
        first.close()
        second.close()


def test_sqlite_many_writers_share_one_writer_row(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with SqliteJournal(path) as journal:
        journal.write_messages([msg("a", i, manifest="m", writer_uuid="w") for i in (1, 2, 3)])
        journal.write_messages([msg("a", 4, manifest="m2", writer_uuid="w")])
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT COUNT(*) FROM journal_writers").fetchone()[0] == 2
    finally:
        conn.close()
    with SqliteJournal(path) as journal:
        assert [m.manifest for m in journal.replay_messages("a")] == ["m", "m", "m", "m2"]


def test_sqlite_sees_writers_added_by_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with SqliteJournal(path) as reader, SqliteJournal(path) as writer:
        writer.write_messages([msg("a", 1, manifest="new-manifest", writer_uuid="proc-2")])
        (item,) = reader.replay_messages("a")
        assert (item.manifest, item.writer_uuid) == ("new-manifest", "proc-2")
        reader.write_messages([msg("a", 2, manifest="new-manifest", writer_uuid="proc-2")])
        assert len(writer.replay_messages("a")) == 2


def test_sqlite_unknown_writer_ref_names_the_sequence_nr(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with SqliteJournal(path) as journal:
        journal.write_messages(batch("a", 1, 2))
    conn = sqlite3.connect(path)
    conn.execute("UPDATE journal_messages SET writer_ref = 99 WHERE sequence_nr = 2")
    conn.commit()
    conn.close()
    with SqliteJournal(path) as journal, pytest.raises(JournalDecodeError) as info:
        journal.replay_messages("a")
    assert info.value.sequence_nr == 2 and "writer_ref 99" in str(info.value)


def test_bulk_allocation_restores_the_collector_state() -> None:
    import gc

    from pytest_replay._gc import paused_collector as bulk_allocation

    assert gc.isenabled()
    with bulk_allocation():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with bulk_allocation():
            pass
        assert not gc.isenabled()  # a caller's choice is kept
    finally:
        gc.enable()
    with pytest.raises(RuntimeError), bulk_allocation():
        raise RuntimeError("inside")
    assert gc.isenabled()


def test_a_file_of_another_known_kind_is_named_not_called_damage(tmp_path: Path) -> None:
    from pytest_replay.formats.journal import RECORDS_MAGIC, encode_file_header
    from pytest_replay.journal import load_journal_records

    records = tmp_path / "run.jrec"
    records.write_bytes(encode_file_header(RECORDS_MAGIC))
    with pytest.raises(JournalCorrupted, match="this is a journal record file") as info:
        FileJournal(records)
    assert str(info.value).endswith(
        "Fix: read it with load_journal_records(path) or pytest-replay reduce."
    )
    assert "truncate" not in str(info.value)  # cutting at offset 0 would erase the file
    with SqliteJournal(tmp_path / "run.db"):
        pass
    with pytest.raises(JournalCorrupted, match=r"an SQLite database.*SqliteJournal\(path\)"):
        load_journal_records(tmp_path / "run.db")
