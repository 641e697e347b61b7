"""The format objects of the VRRL ring log, the megakernel capture, the ``replay.data`` value
and the store manifest: found in the registry by magic and by extension, reading good
files, typed errors with a fix on damaged ones, rendering, diff keys, and framings that
say where the real bytes are."""

from __future__ import annotations

import itertools
import json
import struct
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from pytest_replay.cli import detect, main
from pytest_replay.errors import ReplayError
from pytest_replay.formats import (
    FormatError,
    all_formats,
    format_for,
    format_named,
    head_size,
)
from pytest_replay.formats.capture import CAPTURE, CAPTURE_EXTENSION, CAPTURE_KIND
from pytest_replay.formats.data import (
    DATA,
    DataFormatError,
    pack_plain,
    unpack_plain,
)
from pytest_replay.formats.manifest import MANIFEST
from pytest_replay.formats.vrrl import (
    HEADER_BYTES,
    LOG_MAGIC,
    LOG_VERSION,
    RECORD_BYTES,
    RECORD_MAGIC,
    RECORD_STRUCT,
    RING_RECORD_DTYPE,
    VRRL,
    HeaderMismatch,
    RecordedSlot,
    ReplayFailureEvidence,
    ReplayLogError,
    ReplayRecord,
    TruncatedLog,
)
from pytest_replay.report import ReplayUsageError
from pytest_replay.ringlog import ReplayFailureClass, RingLog, encode_ring_image
from pytest_replay.store import Manifest, ManifestEntry, StoreCorrupted, digest_bytes
from pytest_replay.values import encode_value

MY_FORMATS = ("vrrl", "capture", "data", "manifest")


def slot(i: int, epoch: int = 0) -> RecordedSlot:
    return RecordedSlot(
        timestamp_ns=1000 + i, slot_idx=i, tenant_id=7, opcode=3, args=(i, 2, 3, 4), epoch=epoch
    )


def ring_file(path: Path, capacity: int = 4, count: int = 3) -> Path:
    records = [ReplayRecord(slot(i, epoch=i)) for i in range(count)]
    path.write_bytes(encode_ring_image(capacity, records))
    return path


def manifest(nodeid: str = "t.py::test_a", **records: int) -> Manifest:
    entries = {
        name: ManifestEntry(
            "data", f"{name}.msgpack", 1, count, digest_bytes(name.encode()), size=count
        )
        for name, count in records.items()
    }
    return Manifest(nodeid, "1.0", entries)


# --------------------------------------------------------------------------- the registry


def test_each_format_is_registered_once_under_its_name() -> None:
    names = [fmt.name for fmt in all_formats()]
    assert names[: len(MY_FORMATS)] == list(MY_FORMATS)
    assert len(set(names)) == len(names)
    for name in MY_FORMATS:
        fmt = format_named(name)
        assert fmt.name == name and fmt.label and fmt.framing is not None
    with pytest.raises(FormatError, match=r"no format is called 'nope'.*Fix: use one of: "):
        format_named("nope")


def test_formats_are_found_by_magic_then_by_extension() -> None:
    image = LOG_MAGIC + bytes(HEADER_BYTES - len(LOG_MAGIC))
    assert head_size() >= len(LOG_MAGIC)
    # By magic, whatever the name; a capture shares the magic and is told by its extension.
    assert format_for(Path("any.bin"), image) is VRRL
    assert format_for(Path("ring.vrrl"), image) is VRRL
    assert format_for(Path(f"ring{CAPTURE_EXTENSION}"), image) is CAPTURE
    # By extension: formats with no magic of their own.
    assert format_for(Path("summary.msgpack"), b"\x81") is DATA
    assert format_for(Path("store/t/manifest.json"), b"{") is MANIFEST
    assert format_for(Path("store/t/old-manifest.json"), b"{") is None
    # A damaged ring is not claimed by its extension: its magic decides, and it is wrong.
    assert format_for(Path("ring.vrrl"), b"XXXX0001") is None
    assert format_for(Path("notes.txt"), b"hello") is None


# --------------------------------------------------------------------------- VRRL


def test_vrrl_reads_a_good_log_and_renders_its_records(tmp_path: Path) -> None:
    path = tmp_path / "run.vrrl"
    with RingLog.open(path, 4) as log:
        for i in range(6):  # wraps: the oldest two are overwritten
            log.append(slot(i, epoch=i))
        log.append_with_failure(
            slot(6, epoch=6),
            ReplayFailureEvidence(5, ReplayFailureClass.DEVICE_LOSS, 17, 0xABC),
        )
    VRRL.validate(path)
    image = VRRL.read(path)
    assert (image.capacity, image.cursor, image.stored_cursor) == (4, 3, 3)
    records = VRRL.records(image)
    assert records["epoch"].tolist() == [3, 4, 5, 6]
    assert VRRL.decode(path.read_bytes(), "copy").records.tobytes() == records.tobytes()
    assert [VRRL.diff_key(i, r) for i, r in enumerate(records)] == [0, 1, 2, 3]
    assert VRRL.render(0, records[0]) == (
        "#0 timestamp_ns=1003 slot_idx=3 tenant_id=7 opcode=3 args[0]=3 args[1]=2 args[2]=3 "
        "args[3]=4 epoch=3 slot_status=0 failure_class=0 backend_code=0 output_digest=0"
    )
    assert VRRL.item(3, records[3]) == {
        "index": 3,
        "timestamp_ns": 1006,
        "slot_idx": 6,
        "tenant_id": 7,
        "opcode": 3,
        "args": [6, 2, 3, 4],
        "epoch": 6,
        "failure": {
            "slot_status": 5,
            "failure_class": "device_loss",
            "backend_code": 17,
            "output_digest": "0000000000000abc",
        },
    }
    assert "failure" not in VRRL.item(0, records[0])
    assert VRRL.render_lines(image)[-1].startswith("#3 timestamp_ns=1006 slot_idx=6")


def test_vrrl_framing_says_where_every_header_and_record_field_is(tmp_path: Path) -> None:
    framing = VRRL.framing
    assert framing is not None and framing.magic == LOG_MAGIC
    assert framing.header_size == HEADER_BYTES
    assert framing.record_size == RING_RECORD_DTYPE.itemsize == RECORD_STRUCT.size == RECORD_BYTES
    data = ring_file(tmp_path / "r.vrrl", capacity=4, count=3).read_bytes()
    header = {span.name: data[span.offset : span.offset + span.size] for span in framing.header}
    assert header["magic"] == LOG_MAGIC
    assert int.from_bytes(header["version"], "little") == LOG_VERSION
    assert int.from_bytes(header["capacity"], "little") == 4
    assert int.from_bytes(header["next_slot"], "little") == 3
    # Every record field, read at its span, is the value packed into that field.
    words = (RECORD_MAGIC, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23)
    packed = RECORD_STRUCT.pack(*words)
    expected = {
        "magic": RECORD_MAGIC,
        "timestamp_ns": 11,
        "slot_idx": 12,
        "tenant_id": 13,
        "opcode": 14,
        "args": struct.pack("<4I", 15, 16, 17, 18),
        "epoch": 19,
        "slot_status": 20,
        "failure_class": 21,
        "backend_code": 22,
        "output_digest": 23,
    }
    assert [span.name for span in framing.record_fields] == list(expected)
    for span in framing.record_fields:
        raw = packed[span.offset : span.offset + span.size]
        value = raw if span.name == "args" else int.from_bytes(raw, "little")
        assert value == expected[span.name], span
    spans = sorted(framing.record_fields, key=lambda span: span.offset)
    assert sum(span.size for span in spans) == RECORD_BYTES  # no gaps, no overlaps
    assert all(a.offset + a.size == b.offset for a, b in itertools.pairwise(spans))
    # The live record's magic lies where the framing says, at each record's offset.
    magic = next(span for span in framing.record_fields if span.name == "magic")
    first = HEADER_BYTES + magic.offset
    assert int.from_bytes(data[first : first + magic.size], "little") == RECORD_MAGIC


def _damaged(path: Path, offset: int, raw: bytes) -> Path:
    data = bytearray(path.read_bytes())
    data[offset : offset + len(raw)] = raw
    path.write_bytes(bytes(data))
    return path


def test_vrrl_damage_is_a_typed_format_error_with_a_fix(tmp_path: Path) -> None:
    framing = VRRL.framing
    assert framing is not None
    spans = {span.name: span for span in framing.header}
    bad_magic = _damaged(ring_file(tmp_path / "a.vrrl"), spans["magic"].offset, b"XRRL")
    with pytest.raises(HeaderMismatch, match=r"wrong file magic.*Fix: regenerate the log") as info:
        VRRL.read(bad_magic)
    assert isinstance(info.value, FormatError) and isinstance(info.value, ReplayLogError)
    assert info.value.where == f"replay log '{bad_magic}'" and info.value.fix
    version = _damaged(ring_file(tmp_path / "v.vrrl"), spans["version"].offset, b"\x09")
    with pytest.raises(HeaderMismatch, match="unsupported version 9"):
        VRRL.read(version)
    record = framing.record_size
    assert record is not None
    second = HEADER_BYTES + record  # the second record's magic word
    bad_record = _damaged(ring_file(tmp_path / "r.vrrl"), second, b"\x01\x02\x03\x04")
    with pytest.raises(HeaderMismatch, match=rf"record 1 at byte offset {second} has magic"):
        VRRL.read(bad_record)
    short = ring_file(tmp_path / "s.vrrl")
    short.write_bytes(short.read_bytes()[:-1])
    with pytest.raises(TruncatedLog, match=r"file is truncated.*Fix:"):
        VRRL.read(short)
    with pytest.raises(FormatError, match=r"VRRL ring log is a folder.*Fix: pass a regular file"):
        VRRL.read(tmp_path)
    with pytest.raises(ReplayLogError, match=r"replay log read on .* failed.*Fix: create the"):
        VRRL.read(tmp_path / "missing.vrrl")


def test_the_capture_is_a_vrrl_log_known_by_its_extension(tmp_path: Path) -> None:
    from pytest_replay.megakernel import capture, kind

    assert CAPTURE_KIND == capture.CAPTURE_KIND and capture.CAPTURE_VERSION == 1
    # The megakernel kind stores its recordings under the capture format's extension.
    assert kind.EXTENSION == CAPTURE_EXTENSION and CAPTURE.kind == kind.KIND_NAME
    assert CAPTURE.magic == VRRL.magic and CAPTURE.volatile == ("timestamp_ns",)
    assert CAPTURE.framing is not None and VRRL.framing is not None
    assert CAPTURE.framing.record_fields == VRRL.framing.record_fields
    assert len(CAPTURE.framing.notes) > len(VRRL.framing.notes)
    path = ring_file(tmp_path / f"ring{CAPTURE_EXTENSION}", count=2)
    assert CAPTURE.read(path).records["epoch"].tolist() == [0, 1]
    found = detect.detect(path)
    assert (found.format, found.file_format) == (detect.VRRL, CAPTURE)
    assert found.label == "megakernel capture (VRRL ring log)"
    assert detect.detect(ring_file(tmp_path / "x.vrrl")).label == "VRRL ring log"


# --------------------------------------------------------------------------- data


def test_data_reads_a_value_as_its_leaves(tmp_path: Path) -> None:
    value = {"steps": [{"epoch": 3}, {"epoch": 4}], "name": "run", "when": (1, 2)}
    path = tmp_path / "summary.msgpack"
    path.write_bytes(encode_value(value))
    document = DATA.read(path)
    assert document == value
    leaves = DATA.records(document)
    assert leaves == [
        ('["name"]', "'run'"),
        ('["steps"][0]["epoch"]', "3"),
        ('["steps"][1]["epoch"]', "4"),
        ('["when"]', "(1, 2)"),
    ]
    assert DATA.diff_key(1, leaves[1]) == '["steps"][0]["epoch"]'
    assert DATA.render(1, leaves[1]) == '["steps"][0]["epoch"] = 3'
    assert DATA.item(1, leaves[1]) == {"index": 1, "path": '["steps"][0]["epoch"]', "value": "3"}
    assert DATA.render_lines(3) == ["<value> = 3"]
    found = detect.detect(path)
    assert (found.format, found.kind, found.file_format) == (detect.RECORDING, "data", DATA)


def test_damaged_data_is_a_typed_error_with_a_fix(tmp_path: Path) -> None:
    path = tmp_path / "bad.msgpack"
    path.write_bytes(b"\xc1")  # never used by msgpack
    with pytest.raises(DataFormatError, match=r"not a valid recorded value.*Fix: re-record") as e:
        DATA.read(path)
    # A format error, and for the replay fixture a usage error, as the data kind reported.
    assert isinstance(e.value, FormatError) and isinstance(e.value, ReplayUsageError)
    assert str(path) in str(e.value) and e.value.fix == "re-record it (pytest --replay-record)."
    with pytest.raises(DataFormatError, match=r"'thing' is not msgpack-serialisable.*Fix: record"):
        pack_plain({"a": object()}, "'thing'")
    with pytest.raises(DataFormatError, match=r"stored is not valid msgpack.*Fix: re-record"):
        unpack_plain(b"\x92\x01", "stored")
    assert unpack_plain(pack_plain({"a": [1, 2]}, "x"), "x") == {"a": [1, 2]}
    assert pack_plain((1, 2), "x", list) == pack_plain([1, 2], "x")


def test_the_data_and_sequence_kinds_pack_and_decode_through_the_data_format() -> None:
    from pytest_replay.datakind import DATA_KIND
    from pytest_replay.kindformat import pack_plain as pack_made_plain

    assert unpack_plain(pack_made_plain({"b": 1, "a": (1, 2)}, "v"), "v") == {"a": [1, 2], "b": 1}
    with pytest.raises(ReplayUsageError, match=r"recording is not a valid recorded value"):
        DATA_KIND.count(b"\xc1")
    with pytest.raises(ReplayUsageError, match=r"not msgpack-serialisable.*Fix:"):
        pack_made_plain({(1, 2): 3}, "value")


# --------------------------------------------------------------------------- manifest


def test_manifest_reads_its_entries_sorted_by_name(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_bytes(manifest(zeta=2, alpha=5).encode())
    document = MANIFEST.read(path)
    assert document == manifest(zeta=2, alpha=5)
    records = MANIFEST.records(document)
    assert [name for name, _entry in records] == ["alpha", "zeta"]
    assert [MANIFEST.diff_key(i, r) for i, r in enumerate(records)] == ["alpha", "zeta"]
    assert MANIFEST.render(0, records[0]).startswith(
        "#0 alpha: kind=data file=alpha.msgpack version=1 records=5 size=5 digest="
    )
    assert MANIFEST.item(1, records[1])["name"] == "zeta"
    assert MANIFEST.item(1, records[1])["records"] == 2
    framing = MANIFEST.framing
    assert framing is not None and framing.magic == b"" and framing.record_size is None
    assert json.loads(path.read_bytes())["format"] == 2 and "format" in framing.notes[1]


def test_a_damaged_manifest_is_a_typed_error_with_a_fix(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text('{"format": 2, "recordings": []}')
    with pytest.raises(StoreCorrupted, match=r"field 'recordings'.*Fix: re-record this test"):
        MANIFEST.read(path)
    path.write_text("{not json")
    with pytest.raises(ReplayError, match=r"is not JSON.*Fix:"):
        MANIFEST.read(path)
    link = tmp_path / "link" / "manifest.json"
    link.parent.mkdir()
    link.symlink_to(path)
    with pytest.raises(FormatError, match=r"store manifest is a symbolic link.*Fix:"):
        MANIFEST.read(link)  # never followed, as the store never follows one


# --------------------------------------------------------------------------- the CLI


def test_the_cli_inspects_and_diffs_manifests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = tmp_path / "a" / "manifest.json"
    b = tmp_path / "b" / "manifest.json"
    for path, body in ((a, manifest(one=1, two=2)), (b, manifest(one=1, two=3))):
        path.parent.mkdir()
        path.write_bytes(body.encode())
    assert main(["inspect", str(a), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["format"], report["label"]) == ("manifest", "store manifest")
    assert report["summary"]["recordings"] == 2
    assert [item["name"] for item in report["recordings"]["items"]] == ["one", "two"]
    assert main(["diff", str(a), str(a)]) == 0
    assert "hold the same store manifest (2 recordings)" in capsys.readouterr().out
    assert main(["diff", str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert "first divergence: two: #1 records: A has 2, B has 3" in out
    assert "#0 one: kind=data" in out  # the entry before it, as context
    assert main(["textconv", str(a)]) == 0
    assert capsys.readouterr().out.startswith("# store manifest\n# nodeid: t.py::test_a\n")


def test_the_cli_reads_rings_through_the_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = ring_file(tmp_path / "r.vrrl", capacity=8, count=3)
    assert main(["inspect", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    records = VRRL.records(VRRL.read(path))
    assert report["records"]["items"] == [VRRL.item(i, r) for i, r in enumerate(records)]
    assert report["summary"]["stored_cursor"] == 3
    assert main(["textconv", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "# VRRL ring log"
    assert lines[-1].startswith("#2 timestamp_ns(volatile)=1002 slot_idx=2")


def test_the_record_dtype_and_struct_agree() -> None:
    row = np.zeros(1, RING_RECORD_DTYPE)
    row["magic"], row["timestamp_ns"], row["args"] = RECORD_MAGIC, 5, (1, 2, 3, 4)
    unpacked = RECORD_STRUCT.unpack(row.tobytes())
    assert unpacked[:6] == (RECORD_MAGIC, 5, 0, 0, 0, 1) and unpacked[6:9] == (2, 3, 4)


def test_a_claimed_format_the_cli_does_not_show_is_a_recording_of_its_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_replay.formats import Format

    class Stored(Format):
        name = "stored-elsewhere"
        label = "a format only a kind stores"
        magic = b"STORED01"
        kind: ClassVar[str | None] = "data"

        def read(self, path: Path) -> bytes:
            return path.read_bytes()

    path = tmp_path / "x.msgpack"
    path.write_bytes(b"STORED01" + encode_value(1))
    monkeypatch.setattr(detect, "format_for", lambda path, head: Stored())
    found = detect.detect(path)
    assert (found.format, found.kind, found.label) == (
        detect.RECORDING,
        "data",
        "stored recording of kind 'data'",
    )
    # Without a kind it is left to the kind registry, which knows the file by its suffix.
    Stored.kind = None
    found = detect.detect(path)
    assert (found.format, found.kind, found.file_format) == (detect.RECORDING, "data", None)
