"""The tagged msgpack entry codec, journal recordings (FileJournal images), and files of
journal records: exact bytes, round trips, and errors that name where the damage is."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest

from pytest_replay.formats.journal import END_FRAME_BYTES, FILE_HEADER_BYTES, FRAME_HEADER_BYTES
from pytest_replay.journal import (
    BatchSize,
    DeviceCmd,
    EffectIntent,
    JournalCorrupted,
    JournalDecodeError,
    JournalEntry,
    JournalRecord,
    JournalRecordKind,
    JournalUsageError,
    KernelCmd,
    OpaquePayload,
    PersistentRepr,
    RngSeed,
    RunCheckpoint,
    UnknownEntryTag,
    decode_entries,
    decode_entry,
    decode_journal,
    decode_journal_records,
    decode_record,
    encode_entries,
    encode_entry,
    encode_journal,
    encode_journal_records,
    encode_record,
    entry_from_dict,
    entry_to_dict,
    entry_to_repr,
    load_journal_records,
    write_journal_records,
)
from pytest_replay.journal.file_journal import encode_journal_image

U64 = 2**64 - 1


def sample() -> list[JournalEntry]:
    return [
        DeviceCmd(12, "memcpy_h2d", "bytes=4096"),
        KernelCmd(U64, "launch", "grid=(1,1,1)"),
        RngSeed("/user/rng", 0),
        BatchSize("/user/w", U64),
    ]


# --------------------------------------------------------------------------- entries


def test_the_encoding_is_the_documented_tagged_array() -> None:
    assert msgpack.unpackb(encode_entry(DeviceCmd(7, "n", "p"))) == [1, 7, "n", "p"]
    assert msgpack.unpackb(encode_entry(KernelCmd(8, "k", "p"))) == [2, 8, "k", "p"]
    assert msgpack.unpackb(encode_entry(RngSeed("a", 9))) == [3, "a", 9]
    assert msgpack.unpackb(encode_entry(BatchSize("a", 10))) == [4, "a", 10]
    # Exact bytes: a fixarray of 3, tag 3, fixstr "a", positive fixint 9.
    assert encode_entry(RngSeed("a", 9)) == b"\x93\x03\xa1a\x09"


@pytest.mark.parametrize("entry", sample(), ids=lambda e: type(e).__name__)
def test_every_entry_kind_round_trips(entry: JournalEntry) -> None:
    assert decode_entry(encode_entry(entry)) == entry


def test_unicode_and_empty_strings_round_trip() -> None:
    entry = DeviceCmd(0, "", "grüße ✓ \x00")
    assert decode_entry(encode_entry(entry)) == entry


@pytest.mark.parametrize(
    "entry",
    [
        DeviceCmd(-1, "a", "b"),
        DeviceCmd(2**64, "a", "b"),
        RngSeed("a", True),
        BatchSize(b"a", 1),  # type: ignore[arg-type]
        KernelCmd(1, "k", None),  # type: ignore[arg-type]
        RngSeed("a", 1.0),  # type: ignore[arg-type]
    ],
)
def test_out_of_range_or_mistyped_fields_do_not_encode(entry: JournalEntry) -> None:
    with pytest.raises(JournalUsageError, match="Fix:"):
        encode_entry(entry)


def test_non_entry_does_not_encode() -> None:
    with pytest.raises(JournalUsageError, match="not a journal entry"):
        encode_entry("DeviceCmd")  # type: ignore[arg-type]


def test_unknown_tag_names_the_sequence_nr() -> None:
    with pytest.raises(UnknownEntryTag) as info:
        decode_entry(msgpack.packb([9, "x"]), source="run.db", sequence_nr=17)
    assert info.value.tag == 9 and info.value.sequence_nr == 17
    text = str(info.value)
    assert "unknown entry tag 9" in text and "sequence nr 17" in text and "run.db" in text
    assert "Fix:" in text
    with pytest.raises(UnknownEntryTag):
        decode_entry(msgpack.packb(["DeviceCmd", 1, "a", "b"]))


@pytest.mark.parametrize(
    "row",
    [
        [1, 5, "name"],  # too short
        [1, -5, "n", "p"],  # negative ts
        [2, 5, 7, "p"],  # kind not str
        [3, "a", "seed"],
        [4, "a", 1, "extra"],
        [3, "a", True],
    ],
)
def test_wrong_shape_is_a_decode_error(row: list[object]) -> None:
    with pytest.raises(JournalDecodeError, match="sequence nr 4"):
        decode_entry(msgpack.packb(row), sequence_nr=4)


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\x91", msgpack.packb({"a": 1}), b"\x90"])
def test_garbage_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(JournalDecodeError):
        decode_entry(data, sequence_nr=1)


def test_entry_streams_round_trip_and_locate_bad_entries() -> None:
    entries = sample() * 3
    data = encode_entries(entries)
    assert data == b"".join(encode_entry(e) for e in entries)
    assert decode_entries(data) == entries
    assert decode_entries(b"") == []
    bad = encode_entries(entries[:2]) + msgpack.packb([8, 1]) + encode_entries(entries[:1])
    with pytest.raises(UnknownEntryTag) as info:
        decode_entries(bad, "stream")
    assert info.value.sequence_nr == 3
    with pytest.raises(JournalDecodeError, match="sequence nr 2"):
        decode_entries(encode_entries(entries[:1]) + b"\xc1")


def test_entry_stream_with_truncated_last_entry_is_an_error() -> None:
    data = encode_entries([RngSeed("a", 1), RngSeed("b", 2)])
    with pytest.raises(JournalDecodeError, match="sequence nr 2, byte offset 5") as info:
        decode_entries(data[:-1], "stream")
    assert "truncated" in str(info.value) and "Fix:" in str(info.value)
    with pytest.raises(JournalDecodeError, match="sequence nr 1, byte offset 0"):
        decode_entries(data[:4])


def test_entry_dicts() -> None:
    entry = KernelCmd(5, "launch", "x")
    assert entry_to_dict(entry) == {
        "type": "KernelCmd",
        "ts_micros": 5,
        "kind": "launch",
        "payload": "x",
    }
    for item in sample():
        assert entry_from_dict(entry_to_dict(item)) == item
    with pytest.raises(JournalUsageError, match="unknown entry kind"):
        entry_from_dict({"type": "Nope"})
    with pytest.raises(JournalUsageError, match="bad fields"):
        entry_from_dict({"type": "RngSeed", "actor_path": "a"})
    with pytest.raises(JournalUsageError):
        entry_from_dict({"type": "RngSeed", "actor_path": "a", "seed": -1})


def test_entry_repr_carries_manifest_and_writer() -> None:
    item = entry_to_repr(RngSeed("a", 1), "pid", 3)
    assert item == PersistentRepr(
        "pid",
        3,
        encode_entry(RngSeed("a", 1)),
        "pytest_replay.journal.JournalEntry/1",
        "pytest-replay",
    )


# --------------------------------------------------------------------------- recordings


def test_recording_is_a_deterministic_file_journal_image() -> None:
    data = encode_journal(sample(), "gpu")
    assert data == encode_journal(list(sample()), "gpu")
    assert data.startswith(b"PRJOURNL")
    assert decode_journal(data, "rec") == sample()
    assert decode_journal(data, "rec", persistence_id="gpu") == sample()
    assert decode_journal(data, "rec", persistence_id="other") == []
    assert decode_journal(encode_journal([]), "rec") == []


def test_recording_opens_as_a_file_journal(tmp_path: Path) -> None:
    from pytest_replay.journal import FileJournal

    path = tmp_path / "rec.jrnl"
    path.write_bytes(encode_journal(sample(), "gpu"))
    with FileJournal(path) as journal:
        stored = journal.replay_messages("gpu")
    assert [decode_entry(m.payload) for m in stored] == sample()


def test_recording_with_several_ids_needs_a_choice() -> None:
    image = encode_journal_image(
        [entry_to_repr(RngSeed("a", 1), "one", 1), entry_to_repr(RngSeed("b", 2), "two", 1)]
    )
    with pytest.raises(JournalUsageError, match="2 persistence ids"):
        decode_journal(image, "rec")
    assert decode_journal(image, "rec", persistence_id="two") == [RngSeed("b", 2)]


def test_recording_with_a_bad_payload_names_the_sequence_nr() -> None:
    image = encode_journal_image(
        [
            entry_to_repr(RngSeed("a", 1), "p", 1),
            PersistentRepr("p", 2, msgpack.packb([77]), "m", "w"),
        ]
    )
    with pytest.raises(UnknownEntryTag) as info:
        decode_journal(image, "stored.jrnl")
    assert info.value.sequence_nr == 2 and "stored.jrnl" in str(info.value)


def test_truncated_recording_names_the_offset() -> None:
    data = encode_journal(sample())
    with pytest.raises(JournalCorrupted) as info:
        decode_journal(data[:-2], "rec")
    assert info.value.offset == FILE_HEADER_BYTES


# --------------------------------------------------------------------------- record files


def records() -> list[JournalRecord]:
    return [
        JournalRecord("r1", 1, JournalRecordKind.MESSAGE, OpaquePayload("message", b"\x00hi")),
        JournalRecord(
            "r2",
            2,
            JournalRecordKind.EFFECT_INTENT,
            EffectIntent("e", idempotency_key="k"),
            content_refs=("blob:1",),
            dedupe_key="d",
        ),
        JournalRecord(
            "r3",
            3,
            JournalRecordKind.CHECKPOINT,
            RunCheckpoint("c", 1, 3, "state", 1700, content_ref_manifest=("m",)),
        ),
    ]


def test_record_wire_order_leads_with_version_and_seq() -> None:
    wire = msgpack.unpackb(encode_record(records()[1]))
    assert wire[:4] == [1, 2, "r2", "effect_intent"]
    assert wire[4] == [3, ["e", "k", None, ""]]
    assert wire[5:] == [["blob:1"], None, "d"]


def test_record_files_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "run.jrec"
    write_journal_records(path, records())
    assert load_journal_records(path) == records()
    assert decode_journal_records(encode_journal_records([])) == []
    assert path.read_bytes() == encode_journal_records(records())


def test_record_file_damage_names_record_index_and_offset(tmp_path: Path) -> None:
    data = bytearray(encode_journal_records(records()))
    second = FILE_HEADER_BYTES + FRAME_HEADER_BYTES + len(encode_record(records()[0]))
    data[second + FRAME_HEADER_BYTES + 3] ^= 0x55
    path = tmp_path / "bad.jrec"
    path.write_bytes(bytes(data))
    with pytest.raises(JournalCorrupted) as info:
        load_journal_records(path)
    assert info.value.offset == second and info.value.index == 1
    assert "record #1" in str(info.value) and str(path) in str(info.value)


def test_record_file_truncation_is_an_error_not_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "cut.jrec"
    path.write_bytes(encode_journal_records(records())[: -(END_FRAME_BYTES + 4)])
    with pytest.raises(JournalCorrupted, match=r"record #2"):
        load_journal_records(path)


@pytest.mark.filterwarnings("ignore::pytest_replay.errors.UnclosedFormatWarning")
def test_record_with_bad_fields_names_index_and_offset() -> None:
    from pytest_replay.formats.journal import RECORDS_MAGIC, encode_file_header, encode_frame

    good = encode_record(records()[0])
    bad = msgpack.packb([1, 2, "r2", "no_such_kind", [12, ["x", b""]], [], None, None])
    image = encode_file_header(RECORDS_MAGIC) + encode_frame(good) + encode_frame(bad)
    with pytest.raises(JournalDecodeError) as info:
        decode_journal_records(image, "recs")
    offset = FILE_HEADER_BYTES + FRAME_HEADER_BYTES + len(good)
    assert info.value.record_index == 1 and info.value.offset == offset
    assert "record_kind" in str(info.value)
    with pytest.raises(JournalDecodeError, match="8 fields"):
        decode_record(msgpack.packb([1, 2]))
    with pytest.raises(JournalDecodeError, match="unknown payload tag"):
        decode_record(msgpack.packb([1, 2, "r", "message", [99, []], [], None, None]))


def test_a_journal_file_is_not_a_record_file() -> None:
    with pytest.raises(JournalCorrupted, match="magic"):
        decode_journal_records(encode_journal(sample()))


def test_missing_record_file_is_an_io_error(tmp_path: Path) -> None:
    from pytest_replay.journal import JournalIoError

    with pytest.raises(JournalIoError, match="Fix:"):
        load_journal_records(tmp_path / "nope.jrec")


def test_records_that_do_not_encode() -> None:
    with pytest.raises(JournalUsageError):
        encode_record("r1")  # type: ignore[arg-type]
    weird = JournalRecord("r", 1, JournalRecordKind.MESSAGE, object())  # type: ignore[arg-type]
    with pytest.raises(JournalUsageError, match="does not encode"):
        encode_record(weird)
