"""Closed files say so: every multi-frame file our writers close ends with an end frame
(frame count + BLAKE3 digest), and every reader tells closed / torn tail / corrupt apart.

Each test damages a real file at every frame boundary or in every frame (the end frame
included) and checks the exact outcome: error type, file, byte offset, ``Fix:``.
"""

from __future__ import annotations

import itertools
import os
import struct
import warnings
import zlib
from pathlib import Path

import msgpack
import pytest

from pytest_replay.errors import ReplayError, UnclosedFormatWarning
from pytest_replay.fleet import FleetLogError, FleetLogReader, FleetLogWriter, Message, Step
from pytest_replay.fleet.testing import stack_for
from pytest_replay.formats.fleet_log import END_FRAME_BYTES as SLAB_END_BYTES
from pytest_replay.formats.fleet_log import FRAME_HEADER, LEGACY_VERSION, SLAB_HEADER
from pytest_replay.formats.journal import (
    END_FRAME_BYTES,
    FILE_HEADER_BYTES,
    FRAME_HEADER_BYTES,
    RECORDS_MAGIC,
    encode_end_frame,
    encode_file_header,
    encode_frame,
)
from pytest_replay.journal import (
    FileJournal,
    JournalCorrupted,
    JournalRecord,
    JournalRecordKind,
    JournalTruncated,
    JournalUsageError,
    PersistentRepr,
    PointInTimeRecoveryWarning,
    RunLifecycle,
    TornTailWarning,
    load_journal_records,
    write_journal_records,
)
from pytest_replay.replication import NetworkSchedule, decode_trace, encode_trace
from pytest_replay.replication.errors import TraceFormatError

# --------------------------------------------------------------------------- helpers


def frame_bounds(data: bytes, first: int, header: struct.Struct, length_at: int) -> list[int]:
    """Start offsets of every frame (the end frame included) and the file's end."""
    bounds, offset = [], first
    while offset < len(data):
        bounds.append(offset)
        (length,) = struct.unpack_from("<I", data, offset + length_at)
        offset += header.size + length
    assert offset == len(data)
    return [*bounds, len(data)]


_JOURNAL_HEADER = struct.Struct("<III")


def record_file(tmp_path: Path, count: int = 4) -> tuple[Path, bytes, list[int]]:
    path = tmp_path / "run.jrecs"
    records = [
        JournalRecord(f"r{i}", i + 1, JournalRecordKind.RUN, RunLifecycle(f"s{i}"))
        for i in range(count)
    ]
    write_journal_records(path, records)
    data = path.read_bytes()
    return path, data, frame_bounds(data, FILE_HEADER_BYTES, _JOURNAL_HEADER, 0)


def flip(data: bytes, offset: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= 0x10
    return bytes(out)


def assert_ours(exc: ReplayError, path: Path | str) -> None:
    assert "Fix:" in str(exc) and str(path) in str(exc)


# --------------------------------------------------------------------------- record files


def test_a_record_file_is_closed_by_an_end_frame(tmp_path: Path) -> None:
    path, data, bounds = record_file(tmp_path)
    assert struct.unpack_from("<I", data, 12)[0] == 1  # FLAG_END_FRAME
    assert len(bounds) == 4 + 2 and bounds[-1] - bounds[-2] == END_FRAME_BYTES
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [r.record_id for r in load_journal_records(path)] == ["r0", "r1", "r2", "r3"]


def test_a_record_file_cut_at_any_frame_boundary_is_truncated(tmp_path: Path) -> None:
    path, data, bounds = record_file(tmp_path)
    for cut in bounds[:-1]:
        path.write_bytes(data[:cut])
        with pytest.raises(JournalTruncated) as info:
            load_journal_records(path)
        assert info.value.offset == cut, cut
        assert "without the end frame" in str(info.value)
        assert_ours(info.value, path)


def test_a_record_file_cut_inside_any_frame_is_an_error_at_that_frame(tmp_path: Path) -> None:
    path, data, bounds = record_file(tmp_path)
    for start, end in itertools.pairwise(bounds):
        for cut in sorted({start + 1, start + FRAME_HEADER_BYTES, end - 1}):
            path.write_bytes(data[:cut])
            with pytest.raises(JournalCorrupted, match="ends inside a frame") as info:
                load_journal_records(path)
            assert type(info.value) is JournalCorrupted and info.value.offset == start


def test_a_bit_flip_in_any_frame_is_corruption(tmp_path: Path) -> None:
    path, data, bounds = record_file(tmp_path)
    for number, (start, end) in enumerate(itertools.pairwise(bounds)):
        for offset in (start + 2, start + 9, end - 1):  # length, header CRC, body
            path.write_bytes(flip(data, offset))
            with pytest.raises(JournalCorrupted, match="checksum mismatch") as info:
                load_journal_records(path)
            assert info.value.offset == start, (number, offset)
            assert_ours(info.value, path)


def test_a_frame_after_the_end_frame_is_corruption(tmp_path: Path) -> None:
    path, data, bounds = record_file(tmp_path)
    path.write_bytes(data + data[bounds[0] : bounds[1]])
    with pytest.raises(JournalCorrupted, match="follows the end frame") as info:
        load_journal_records(path)
    assert info.value.offset == len(data)


def test_an_end_frame_with_a_wrong_count_or_digest_is_corruption(tmp_path: Path) -> None:
    path, data, bounds = record_file(tmp_path)
    frames = data[FILE_HEADER_BYTES : bounds[-2]]
    head = data[:FILE_HEADER_BYTES]
    path.write_bytes(head + frames + encode_end_frame(frames, 5))
    with pytest.raises(JournalCorrupted, match="end frame counts 5 frames, the file holds 4"):
        load_journal_records(path)
    path.write_bytes(head + frames + encode_end_frame(frames[:-1] + b"?", 4))
    with pytest.raises(JournalCorrupted, match="end frame digest differs") as info:
        load_journal_records(path)
    assert info.value.offset == bounds[-2]


def test_an_oversized_length_field_sizes_nothing(tmp_path: Path) -> None:
    path, data, bounds = record_file(tmp_path)
    head = struct.pack("<II", 2**32 - 1, 0)
    frame = head + struct.pack("<I", zlib.crc32(head))
    path.write_bytes(data[: bounds[2]] + frame + data[bounds[2] :])
    with pytest.raises(JournalCorrupted, match=r"frame length 4294967295 outside") as info:
        load_journal_records(path)
    assert info.value.offset == bounds[2]
    head = struct.pack("<II", 1000, 0)  # a valid length running past the end: torn
    path.write_bytes(data[: bounds[2]] + head + struct.pack("<I", zlib.crc32(head)))
    with pytest.raises(JournalCorrupted, match="needs 1012 bytes, 12 are left"):
        load_journal_records(path)


def test_an_old_record_file_reads_with_a_warning(tmp_path: Path) -> None:
    path, data, bounds = record_file(tmp_path)
    legacy = encode_file_header(RECORDS_MAGIC) + data[FILE_HEADER_BYTES : bounds[-2]]
    path.write_bytes(legacy)
    with pytest.warns(UnclosedFormatWarning, match="cannot be detected"):
        assert len(load_journal_records(path)) == 4
    path.write_bytes(legacy + data[bounds[-2] :])
    with (
        pytest.warns(UnclosedFormatWarning),
        pytest.raises(JournalCorrupted, match="does not announce one"),
    ):
        load_journal_records(path)


# --------------------------------------------------------------------------- FileJournal


def journal_file(tmp_path: Path, batches: int = 3) -> tuple[Path, bytes, list[int]]:
    path = tmp_path / "live.journal"
    with FileJournal(path, fsync=False) as journal:
        for seq in range(1, batches + 1):
            journal.write_messages([PersistentRepr("p", seq, bytes([seq]))])
    data = path.read_bytes()
    return path, data, frame_bounds(data, FILE_HEADER_BYTES, _JOURNAL_HEADER, 0)


def seqs(journal: FileJournal) -> list[int]:
    return [m.sequence_nr for m in journal.replay_messages("p")]


def test_a_bit_flip_in_the_last_frame_is_never_a_torn_tail(tmp_path: Path) -> None:
    path, data, bounds = journal_file(tmp_path)
    for recovery in ("tolerate_torn_tail", "absolute"):
        path.write_bytes(flip(data, len(data) - 1))
        with pytest.raises(JournalCorrupted, match="body checksum mismatch") as info:
            FileJournal(path, recovery=recovery)  # type: ignore[arg-type]
        assert info.value.offset == bounds[-2]
        assert path.read_bytes() == flip(data, len(data) - 1)  # nothing dropped


def test_recovery_modes_on_a_torn_tail(tmp_path: Path) -> None:
    path, data, bounds = journal_file(tmp_path)
    torn = data[:-2]
    path.write_bytes(torn)
    with pytest.raises(JournalCorrupted, match="ends inside a frame") as info:
        FileJournal(path, recovery="absolute")
    assert info.value.offset == bounds[-2] and path.read_bytes() == torn
    with pytest.warns(TornTailWarning), FileJournal(path) as journal:
        assert seqs(journal) == [1, 2]
        assert journal.torn_tail is not None and journal.torn_tail.offset == bounds[-2]
    assert path.read_bytes() == data[: bounds[-2]]


def test_point_in_time_keeps_what_precedes_and_saves_what_it_drops(tmp_path: Path) -> None:
    path, data, bounds = journal_file(tmp_path, batches=4)
    damaged = flip(data, bounds[1] + FRAME_HEADER_BYTES)  # the body of frame #1
    path.write_bytes(damaged)
    with pytest.warns(PointInTimeRecoveryWarning, match=f"byte offset {bounds[1]}"):
        journal = FileJournal(path, recovery="point_in_time")
    with journal:
        assert seqs(journal) == [1]
        dropped = journal.dropped
        assert dropped is not None and dropped.offset == bounds[1]
        assert "body checksum mismatch" in dropped.reason
        assert Path(dropped.saved_to).read_bytes() == damaged[bounds[1] :]
        journal.write_messages([PersistentRepr("p", 2, b"again")])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with FileJournal(path, recovery="absolute") as journal:
            assert seqs(journal) == [1, 2]


def test_point_in_time_stops_at_a_frame_that_does_not_decode(tmp_path: Path) -> None:
    path, data, bounds = journal_file(tmp_path)
    bad = encode_frame(b"\x92\x07\x00")  # valid CRC, unknown op 7
    path.write_bytes(data[: bounds[1]] + bad + data[bounds[1] :])
    with pytest.raises(JournalCorrupted, match="unknown frame op 7"):
        FileJournal(path)
    with (
        pytest.warns(PointInTimeRecoveryWarning),
        FileJournal(path, recovery="point_in_time") as journal,
    ):
        assert seqs(journal) == [1]


def test_file_journal_refuses_unknown_modes_fifos_and_closed_images(tmp_path: Path) -> None:
    with pytest.raises(JournalUsageError, match="unknown recovery mode 'lenient'"):
        FileJournal(tmp_path / "j", recovery="lenient")  # type: ignore[arg-type]
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(JournalUsageError, match="not a regular file"):
        FileJournal(fifo)
    closed, data, _bounds = journal_file(tmp_path)
    frames = data[FILE_HEADER_BYTES:]
    closed.write_bytes(
        encode_file_header(b"PRJOURNL", end_frame=True) + frames + encode_end_frame(frames, 3)
    )
    with pytest.raises(JournalUsageError, match="closed journal image"):
        FileJournal(closed)


# --------------------------------------------------------------------------- fleet slabs


def fleet_log(tmp_path: Path) -> tuple[Path, Path, bytes, list[int]]:
    base = tmp_path / "ping.flog"
    with FleetLogWriter(base, section_steps=2, initial_keyframe=True) as writer:
        writer.log_instantiated(stack_for("ping", 1, 0))
        writer.log_mission_started("m")
        for step in range(5):
            writer.log_step(Step(step, step, (Message(bytes([step])),)))
    slab = tmp_path / "ping_0.flog"
    data = slab.read_bytes()
    return base, slab, data, frame_bounds(data, SLAB_HEADER.size, FRAME_HEADER, 4)


def test_every_slab_ends_with_its_end_frame(tmp_path: Path) -> None:
    base, _slab, data, bounds = fleet_log(tmp_path)
    assert struct.unpack_from("<H", data, 8)[0] == 2
    assert bounds[-1] - bounds[-2] == SLAB_END_BYTES
    assert struct.unpack_from("<H", data, bounds[-2])[0] == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert FleetLogReader(base).total_steps == 5


def test_a_slab_cut_at_any_frame_boundary_is_truncated(tmp_path: Path) -> None:
    base, slab, data, bounds = fleet_log(tmp_path)
    for cut in bounds[:-1]:
        slab.write_bytes(data[:cut])
        with pytest.raises(FleetLogError, match="without its end frame: it was truncated") as info:
            FleetLogReader(base)
        assert info.value.offset == cut and info.value.path == str(slab)
        assert "Fix:" in str(info.value)


def test_a_bit_flip_in_any_slab_frame_is_an_error_at_that_frame(tmp_path: Path) -> None:
    base, slab, data, bounds = fleet_log(tmp_path)
    for start, end in itertools.pairwise(bounds):
        slab.write_bytes(flip(data, end - 1))
        with pytest.raises(FleetLogError, match="CRC32 mismatch") as info:
            FleetLogReader(base)
        assert info.value.offset == start


def test_a_slab_frame_after_the_end_or_a_wrong_count_is_an_error(tmp_path: Path) -> None:
    base, slab, data, bounds = fleet_log(tmp_path)
    slab.write_bytes(data + data[bounds[0] : bounds[1]])
    with pytest.raises(FleetLogError, match="a frame follows the slab's end frame") as info:
        FleetLogReader(base)
    assert info.value.offset == len(data)
    from pytest_replay.formats.fleet_log import encode_end_frame as slab_end

    frames = data[SLAB_HEADER.size : bounds[-2]]
    slab.write_bytes(data[: bounds[-2]] + slab_end(frames, len(bounds) - 3))
    with pytest.raises(FleetLogError, match="end frame counts") as info:
        FleetLogReader(base)
    assert info.value.offset == bounds[-2]
    slab.write_bytes(data[: bounds[-2]] + slab_end(frames + b"x", len(bounds) - 2))
    with pytest.raises(FleetLogError, match="digest differs"):
        FleetLogReader(base)


def test_a_version_1_slab_reads_with_a_warning(tmp_path: Path) -> None:
    base, slab, data, bounds = fleet_log(tmp_path)
    legacy = data[:8] + struct.pack("<H", LEGACY_VERSION) + data[10 : bounds[-2]]
    slab.write_bytes(legacy)
    with pytest.warns(UnclosedFormatWarning, match="format version 1"):
        assert FleetLogReader(base).total_steps == 5


# --------------------------------------------------------------------------- traces


def trace(events: int = 4) -> tuple[bytes, list[int]]:
    schedule = NetworkSchedule(7, (1, 2), 100)
    raw = [[i, "deliver", 1, 2, {"n": i}] for i in range(events)]
    data = encode_trace(schedule, raw)
    (header_len,) = struct.unpack_from("<I", data, 12)
    start = 20 + header_len
    bounds = [start]
    for event in raw:
        bounds.append(bounds[-1] + len(msgpack.packb(event)))
    return data, [*bounds, len(data)]


def test_a_trace_is_closed_by_an_end_frame() -> None:
    data, bounds = trace()
    assert bounds[-1] - bounds[-2] == 44 and data[bounds[-2] : bounds[-2] + 8] == b"RPLTEND1"
    assert len(decode_trace(data, "t").events) == 4


def test_a_trace_cut_at_any_event_boundary_is_truncated() -> None:
    data, bounds = trace()
    for number, cut in enumerate(bounds[:-1]):
        with pytest.raises(TraceFormatError, match="truncated") as info:
            decode_trace(data[:cut], "t.rpltrace")
        assert f"at byte offset {cut}" in str(info.value), number
        assert "Fix:" in str(info.value) and "t.rpltrace" in str(info.value)


def test_trace_bit_flips_and_a_frame_after_the_end_are_errors() -> None:
    data, bounds = trace()
    for offset in range(bounds[0], len(data)):
        with pytest.raises(TraceFormatError):
            decode_trace(flip(data, offset), "t")
    with pytest.raises(TraceFormatError, match="follow the end frame"):
        decode_trace(data + data[bounds[0] : bounds[1]], "t")
