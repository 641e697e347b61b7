"""The Format objects of the journal, journal record, fleet log, fleet recording and
replication trace files: found in the registry by name, magic and extension, reading good
files, refusing damaged ones with a typed error that says the fix, framing that matches
the bytes the systems write, and the text and keys the CLI shows and aligns on."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from pytest_replay.fleet import (
    FleetLogError,
    FleetLogReader,
    FleetLogWriter,
    FleetRecording,
    FleetRecordingError,
    RecordedLog,
    Step,
    encode_fleet_recording,
    load_fleet_recording,
)
from pytest_replay.fleet.records import Message
from pytest_replay.fleet.testing import stack_for
from pytest_replay.formats import FieldSpan, Format, FormatError, all_formats, format_for
from pytest_replay.formats import format_named as named
from pytest_replay.formats.fleet_log import FRAMING as SLAB_FRAMING
from pytest_replay.formats.fleet_log import SectionType, SlabCorrupted
from pytest_replay.formats.fleet_recording import RecordingDamaged
from pytest_replay.formats.journal import (
    END_FRAME_BYTES,
    FILE_VERSION,
    UNDECODABLE,
    Frame,
    FrameCorrupted,
    FrameTruncated,
    encode_file_header,
    encode_frame,
)
from pytest_replay.formats.replication_trace import TraceDamaged, render_event
from pytest_replay.journal import (
    DeviceCmd,
    EffectIntent,
    JournalCorrupted,
    JournalRecord,
    JournalRecordKind,
    JournalTruncated,
    RngSeed,
    RunLifecycle,
    encode_journal,
    load_journal_records,
    write_journal_records,
)
from pytest_replay.replication.errors import TraceFormatError
from pytest_replay.replication.schedule import NetworkSchedule
from pytest_replay.replication.trace import decode_trace, encode_trace

NAMES = ("journal", "journal-records", "fleet-log", "fleet-recording", "replication-trace")


# --------------------------------------------------------------------------- good files


def journal_file(folder: Path) -> Path:
    path = folder / "cmds.jrnl"
    path.write_bytes(encode_journal([DeviceCmd(5, "reset", "x"), RngSeed("actor/1", 42)], "bot"))
    return path


RECORDS = [
    JournalRecord("r1", 1, JournalRecordKind.RUN, RunLifecycle("running")),
    JournalRecord("r2", 2, JournalRecordKind.EFFECT_INTENT, EffectIntent("e1", "k1")),
]


def records_file(folder: Path) -> Path:
    path = folder / "run.jrecs"
    write_journal_records(path, RECORDS)
    return path


STEPS = [
    Step(3, 100, (Message(b"hello", None),)),
    Step(7, 250, (Message(b"a", None), Message(b"bc", None))),
]


def fleet_log(folder: Path) -> Path:
    """A one-slab fleet log; returns its slab file."""
    writer = FleetLogWriter(folder / "ping.flog")
    writer.log_instantiated(stack_for("ping", 0, 1), effective_config="cfg")
    for step in STEPS:
        writer.log_step(step)
    writer.close()
    [slab] = writer.slab_paths
    return Path(slab)


def fleet_recording(folder: Path) -> Path:
    slab = fleet_log(folder).read_bytes()
    recording = FleetRecording("fleet.toml", "", (), (RecordedLog(1, "ping", (slab,)),))
    path = folder / "run.fleet"
    path.write_bytes(encode_fleet_recording(recording))
    return path


EVENTS = [[0, "deliver", 1, 2, {"seq": 1}], [5, "role", 2, -1, {"to": "LEADER"}]]


def trace_file(folder: Path) -> Path:
    path = folder / "run.rpltrace"
    path.write_bytes(encode_trace(NetworkSchedule(1, (1, 2), 100), EVENTS))
    return path


MAKERS = {
    "journal": journal_file,
    "journal-records": records_file,
    "fleet-log": fleet_log,
    "fleet-recording": fleet_recording,
    "replication-trace": trace_file,
}


# --------------------------------------------------------------------------- registry


@pytest.mark.parametrize("name", NAMES)
def test_each_format_is_registered_once_and_found_by_name(name: str) -> None:
    fmt = named(name)
    assert isinstance(fmt, Format) and fmt.name == name
    assert [f.name for f in all_formats()].count(name) == 1
    assert fmt.magic is not None and fmt.framing is not None
    assert fmt.framing.magic == fmt.magic
    assert fmt.label and fmt.extensions


@pytest.mark.parametrize("name", NAMES)
def test_a_file_is_found_by_its_magic_whatever_its_name(tmp_path: Path, name: str) -> None:
    path = MAKERS[name](tmp_path)
    head = path.read_bytes()[:8]
    assert format_for(path, head) is named(name)
    assert format_for(Path("renamed.bin"), head) is named(name)
    assert named(name).matches(path, head)
    # The extension alone does not claim a file whose magic is another format's.
    assert not named(name).matches(path, b"NOTMAGIC")


def test_an_unknown_name_is_a_format_error_that_lists_the_names() -> None:
    with pytest.raises(FormatError, match="no format is called 'jrnl'") as info:
        named("jrnl")
    assert "Fix: use one of:" in str(info.value)
    for name in NAMES:
        assert name in str(info.value)


# --------------------------------------------------------------------------- reading


def test_journal_file_reads_its_frames(tmp_path: Path) -> None:
    fmt = named("journal")
    document = fmt.read(journal_file(tmp_path))
    [frame] = fmt.records(document)
    assert not document.closed and document.torn_offset is None
    assert frame.offset == 16 and frame.body[0] == 0
    assert [message[:2] for message in frame.body[1]] == [["bot", 1], ["bot", 2]]


def test_journal_file_drops_a_torn_tail_as_a_live_journal_does(tmp_path: Path) -> None:
    path = journal_file(tmp_path)
    size = path.stat().st_size
    with open(path, "ab") as fh:
        fh.write(b"\x40\x00\x00\x00\x01\x02")
    document = named("journal").read(path)
    assert document.torn_offset == size and len(document.frames) == 1


def test_journal_records_read_one_frame_per_record(tmp_path: Path) -> None:
    fmt = named("journal-records")
    document = fmt.read(records_file(tmp_path))
    frames = fmt.records(document)
    assert document.closed
    assert [frame.body[1:3] for frame in frames] == [[1, "r1"], [2, "r2"]]
    assert [frame.index for frame in frames] == [0, 1]


def test_fleet_log_slab_reads_its_sections(tmp_path: Path) -> None:
    fmt = named("fleet-log")
    slab = fmt.read(fleet_log(tmp_path))
    assert slab.slab_index == 0 and slab.final
    kinds = [section.section_type for section in fmt.records(slab)]
    assert kinds[0] is SectionType.LIFECYCLE and SectionType.STEPS in kinds
    steps = next(s for s in fmt.records(slab) if s.section_type is SectionType.STEPS)
    assert steps.payload[:4] == [3, 7, 2, 3]  # first id, last id, steps, messages


def test_fleet_recording_reads_its_logs(tmp_path: Path) -> None:
    fmt = named("fleet-recording")
    path = fleet_recording(tmp_path)
    document = fmt.read(path)
    [log] = fmt.records(document)
    assert log[:2] == [1, "ping"] and document["topology_name"] == "fleet.toml"
    assert load_fleet_recording(path).logs[0].slabs == tuple(log[2])


def test_replication_trace_reads_its_events(tmp_path: Path) -> None:
    fmt = named("replication-trace")
    path = trace_file(tmp_path)
    document = fmt.read(path)
    assert fmt.records(document) == EVENTS == decode_trace(path.read_bytes()).events
    assert document.header["schedule"]["seed"] == 1


@pytest.mark.parametrize("name", NAMES)
def test_only_regular_files_are_opened(tmp_path: Path, name: str) -> None:
    fifo = tmp_path / f"pipe{named(name).extensions[0]}"
    os.mkfifo(fifo)  # a read would wait for a writer forever
    with pytest.raises(FormatError, match="is not a regular file") as info:
        named(name).read(fifo)
    assert "Fix: pass a regular file" in str(info.value)
    with pytest.raises(FormatError, match="is a folder"):
        named(name).read(tmp_path)


# --------------------------------------------------------------------------- damage


def flipped(path: Path, offset: int) -> Path:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    return path


def test_journal_damage_is_a_frame_error_with_its_offset_and_fix(tmp_path: Path) -> None:
    path = flipped(journal_file(tmp_path), 16 + 12)  # the first byte of the first body
    with pytest.raises(FrameCorrupted) as info:
        named("journal").read(path)
    error = info.value
    assert error.offset == 16 and error.index == 0
    assert "frame body checksum mismatch" in str(error)
    assert str(error).endswith(
        "Fix: restore the file from a backup, or truncate it to this offset by hand if "
        "losing everything after it is acceptable."
    )


def test_record_file_cut_at_a_frame_boundary_is_truncated(tmp_path: Path) -> None:
    path = records_file(tmp_path)
    path.write_bytes(path.read_bytes()[:-END_FRAME_BYTES])
    with pytest.raises(FrameTruncated, match="without the end frame its header promises"):
        named("journal-records").read(path)
    # The journal's reader raises its own error, a kind of the format's, with the same text.
    with pytest.raises(JournalTruncated) as journal:
        load_journal_records(path)
    assert isinstance(journal.value, FrameTruncated)
    with pytest.raises(FrameTruncated) as fmt:
        named("journal-records").read(path)
    assert str(fmt.value) == str(journal.value)


def test_a_journal_file_given_as_a_record_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "run.jrecs"
    path.write_bytes(journal_file(tmp_path).read_bytes())
    with pytest.raises(FrameCorrupted, match="this is a FileJournal file") as info:
        named("journal-records").read(path)
    assert str(info.value).endswith("Fix: read it with FileJournal(path).")


def test_fleet_slab_damage_is_a_slab_error(tmp_path: Path) -> None:
    path = fleet_log(tmp_path)
    flipped(path, SLAB_FRAMING.header_size + 12)  # a payload byte of the first frame
    with pytest.raises(SlabCorrupted, match="CRC32 mismatch") as info:
        named("fleet-log").read(path)
    assert info.value.offset == SLAB_FRAMING.header_size
    assert "Fix: the log is corrupted or was not written by FleetLogWriter" in str(info.value)
    with pytest.raises(FleetLogError) as system:
        FleetLogReader(tmp_path / "ping.flog")
    assert isinstance(system.value, SlabCorrupted)
    assert str(system.value) == str(info.value)


def test_fleet_recording_damage_is_a_recording_error(tmp_path: Path) -> None:
    path = flipped(fleet_recording(tmp_path), 40)
    with pytest.raises(RecordingDamaged, match="CRC32 mismatch in the body at byte 20") as info:
        named("fleet-recording").read(path)
    assert "Fix: record the fleet again" in str(info.value)
    with pytest.raises(FleetRecordingError) as system:
        load_fleet_recording(path)
    assert isinstance(system.value, RecordingDamaged)
    assert str(system.value) == str(info.value)


def test_trace_damage_is_a_trace_error(tmp_path: Path) -> None:
    path = trace_file(tmp_path)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(TraceDamaged, match="no end frame after the last announced event") as info:
        named("replication-trace").read(path)
    assert "Fix: re-record it (pytest --replay-record)." in str(info.value)
    with pytest.raises(TraceFormatError) as system:
        decode_trace(path.read_bytes(), str(path))
    assert isinstance(system.value, (TraceDamaged, ValueError))
    assert str(system.value) == str(info.value)


def test_the_systems_errors_are_kinds_of_the_formats_errors() -> None:
    assert issubclass(JournalCorrupted, FrameCorrupted)
    assert issubclass(JournalTruncated, FrameTruncated)
    assert issubclass(FleetLogError, SlabCorrupted)
    assert issubclass(FleetRecordingError, RecordingDamaged)
    assert issubclass(TraceFormatError, TraceDamaged)


# --------------------------------------------------------------------------- framing


def field(spans: tuple[FieldSpan, ...], name: str, data: bytes, at: int = 0) -> int:
    span = next(s for s in spans if s.name == name)
    return int.from_bytes(data[at + span.offset : at + span.offset + span.size], "little")


def test_container_framing_matches_a_record_file(tmp_path: Path) -> None:
    framing = named("journal-records").framing
    assert framing is not None
    data = records_file(tmp_path).read_bytes()
    assert data[:8] == framing.magic and framing.header_size == 16
    assert field(framing.header, "version", data) == FILE_VERSION
    assert field(framing.header, "flags", data) == 1  # closed by an end frame
    offset = framing.header_size
    for _record in RECORDS:
        body_len = field(framing.frame_header, "body_len", data, offset)
        head = 12
        assert head == max(s.offset + s.size for s in framing.frame_header)
        body = data[offset + head : offset + head + body_len]
        assert field(framing.frame_header, "body_crc", data, offset) == zlib.crc32(body)
        assert field(framing.frame_header, "header_crc", data, offset) == zlib.crc32(
            data[offset : offset + 8]
        )
        offset += head + body_len
    assert len(data) - offset == framing.trailer_size == END_FRAME_BYTES
    live = named("journal").framing
    assert live is not None and live.trailer_size == 0  # a live journal has no end frame


def test_slab_framing_matches_a_written_slab(tmp_path: Path) -> None:
    framing = named("fleet-log").framing
    assert framing is SLAB_FRAMING
    data = fleet_log(tmp_path).read_bytes()
    assert field(framing.header, "version", data) == 2
    assert field(framing.header, "flags", data) == 1  # FINAL
    assert field(framing.header, "slab_index", data) == 0
    offset, head = framing.header_size, 12
    types = []
    while offset < len(data) - framing.trailer_size:
        length = field(framing.frame_header, "length", data, offset)
        payload = data[offset + head : offset + head + length]
        crc = zlib.crc32(payload, zlib.crc32(data[offset : offset + 8]))
        assert field(framing.frame_header, "crc32", data, offset) == crc
        assert field(framing.frame_header, "reserved", data, offset) == 0
        types.append(field(framing.frame_header, "section_type", data, offset))
        offset += head + length
    assert offset == len(data) - framing.trailer_size
    assert field(framing.frame_header, "section_type", data, offset) == 4  # the end frame
    assert SectionType.STEPS in types


def test_recording_and_trace_framing_match_their_headers(tmp_path: Path) -> None:
    recording = named("fleet-recording").framing
    assert recording is not None
    data = fleet_recording(tmp_path).read_bytes()
    body = data[recording.header_size :]
    assert field(recording.header, "body_len", data) == len(body)
    assert field(recording.header, "body_crc", data) == zlib.crc32(body)
    trace = named("replication-trace").framing
    assert trace is not None
    data = trace_file(tmp_path).read_bytes()
    assert field(trace.header, "version", data) == 2
    assert field(trace.header, "event_count", data) == len(EVENTS)
    assert data[-trace.trailer_size :][:8] == b"RPLTEND1"
    assert struct.unpack_from("<I", data, len(data) - trace.trailer_size + 8)[0] == len(EVENTS)


# --------------------------------------------------------------------------- text and keys


def lines(name: str, path: Path) -> list[str]:
    fmt = named(name)
    return fmt.render_lines(fmt.read(path))


def test_journal_render_and_keys(tmp_path: Path) -> None:
    assert lines("journal", journal_file(tmp_path)) == ["#0 offset=16 append 2 [bot:1 bot:2]"]
    fmt = named("journal")
    [frame] = fmt.records(fmt.read(journal_file(tmp_path)))
    assert fmt.diff_key(0, frame) == ("append", "bot", 1)
    delete = Frame(1, 99, encode_frame(b"\x93\x01\xa3bot\x02")[12:])
    assert fmt.diff_key(1, delete) == ("delete", "bot", 2)
    assert fmt.render(1, delete) == "#1 offset=99 delete bot to 2"
    garbage = Frame(2, 120, b"\xc1")
    assert garbage.body is UNDECODABLE
    assert fmt.diff_key(2, garbage) == 2
    assert fmt.render(2, garbage) == "#2 offset=120 undecodable 1 bytes"


def test_record_render_and_keys(tmp_path: Path) -> None:
    fmt = named("journal-records")
    frames = fmt.records(fmt.read(records_file(tmp_path)))
    assert [fmt.diff_key(i, f) for i, f in enumerate(frames)] == [(1, "r1"), (2, "r2")]
    first = fmt.render(0, frames[0])
    assert first.startswith("#0 journal_schema_version=")
    assert "journal_seq=1 record_id='r1' record_kind=" in first
    # A body of the wrong shape is shown, keyed by its position.
    odd = Frame(5, 64, b"\x91\x01")
    assert fmt.diff_key(5, odd) == 5
    assert fmt.render(5, odd) == "#5 offset=64 malformed [1]"


def test_fleet_render_and_keys(tmp_path: Path) -> None:
    fmt = named("fleet-log")
    sections = fmt.records(fmt.read(fleet_log(tmp_path)))
    rendered = [fmt.render(s.index, s) for s in sections]
    assert any(
        line.endswith("steps first_step_id=3 last_step_id=7 steps=2 messages=3")
        for line in rendered
    )
    keys = [fmt.diff_key(s.index, s) for s in sections]
    assert ("steps", 3, 7) in keys and ("lifecycle", 0) in keys
    recording = named("fleet-recording")
    [log] = recording.records(recording.read(fleet_recording(tmp_path)))
    assert recording.diff_key(0, log) == (1, "ping")
    size = len(log[2][0])
    assert recording.render(0, log) == f"#0 instance_id=1 subsystem_id=ping slabs=1 bytes={size}"


def test_trace_render_is_the_reports_rendering(tmp_path: Path) -> None:
    fmt = named("replication-trace")
    assert lines("replication-trace", trace_file(tmp_path)) == [
        render_event(i, event) for i, event in enumerate(EVENTS)
    ]
    assert lines("replication-trace", trace_file(tmp_path))[1] == (
        "#1 t=5ms role node=2 peer=-1 to=LEADER"
    )
    assert fmt.diff_key(1, EVENTS[1]) == 1


def test_a_record_file_of_an_older_version_reads_with_a_warning(tmp_path: Path) -> None:
    from pytest_replay.errors import UnclosedFormatWarning

    path = tmp_path / "old.jrecs"
    path.write_bytes(encode_file_header(b"PRJRECS1") + encode_frame(b"\x90"))
    with pytest.warns(UnclosedFormatWarning, match="written before end frames"):
        document: Any = named("journal-records").read(path)
    assert not document.closed and len(document.frames) == 1
