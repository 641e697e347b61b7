"""The ``fleet`` recording kind, driven through hand-built recording targets."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_replay.fleet import (
    FleetRecording,
    FleetRecordingError,
    Keyframe,
    Message,
    Origin,
    ReplayValidationError,
    decode_fleet_recording,
    encode_fleet_recording,
)
from pytest_replay.fleet.kind import FLEET_KIND, FleetKindRecorder, kinds
from pytest_replay.fleet.testing import write_topology
from pytest_replay.kinds import FinishedRecording, RecordingTarget
from pytest_replay.report import ReplayDivergence

Scenario = Callable[[FleetKindRecorder], None]


def target(tmp_path: Path, expected: bytes | None = None, name: str = "fleet") -> RecordingTarget:
    scratch = tmp_path / ("verify" if expected is not None else "record")
    scratch.mkdir(parents=True, exist_ok=True)
    return RecordingTarget(
        nodeid="tests/test_x.py::test_fleet",
        name=name,
        kind="fleet",
        stored_path=tmp_path / "store" / f"{name}.fleet",
        scratch=scratch,
        expected=expected,
    )


def topology(tmp_path: Path, extra: str = "") -> Path:
    return write_topology(tmp_path / f"topo{extra}" / "fleet.toml", [("ping", 0), ("pong", 1)])


def fleet(
    rec: FleetKindRecorder,
    *,
    payload: bytes = b"x",
    steps: int = 6,
    pong_steps: int | None = None,
    mission: str = "default",
    keyframe_state: bytes = b"s",
    instances: tuple[int, ...] = (1, 2),
) -> None:
    """Each instance: ping step i sends to pong step i; pong keyframes every 3 steps."""
    for instance in instances:
        ping = rec.writer(instance, "ping", mission=mission, effective_config="p")
        pong = rec.writer(instance, "pong", mission=mission)
        for i in range(steps):
            ping.log(i, 10 * i, [Message(payload + b"%d" % i)])
        for i in range(steps if pong_steps is None else pong_steps):
            if i % 3 == 0 and i:
                pong.log_keyframe(Keyframe(i, 10 * i, keyframe_state))
            pong.log(i, 10 * i + 5, [Message(b"ack", Origin(instance, 0, i))])


def record(tmp_path: Path, scenario: Scenario = fleet) -> FinishedRecording:
    rec = FLEET_KIND.open(target(tmp_path / "r"), topology(tmp_path))
    assert isinstance(rec, FleetKindRecorder)
    scenario(rec)
    rec.check_complete()
    finished = rec.finish()
    rec.close()
    return finished


def verify(tmp_path: Path, expected: bytes, scenario: Scenario = fleet) -> FinishedRecording:
    rec = FLEET_KIND.open(target(tmp_path / "v", expected), topology(tmp_path))
    try:
        scenario(rec)
        rec.check_complete()
        return rec.finish()
    finally:
        rec.close()


def test_kinds_expose_the_fleet_kind() -> None:
    [kind] = kinds()
    assert kind is FLEET_KIND and kind.name == "fleet" and kind.extension == ".fleet"


def test_record_is_byte_identical_run_after_run(tmp_path: Path) -> None:
    first = record(tmp_path / "a")
    second = record(tmp_path / "b")
    assert first.data == second.data
    assert first.records == 24 == FLEET_KIND.count(first.data)
    assert first.meta == {"topology": "fleet.toml", "logs": 4, "instances": [1, 2]}
    recording = decode_fleet_recording(first.data)
    assert [(log.instance_id, log.subsystem_id) for log in recording.logs] == [
        (1, "ping"), (1, "pong"), (2, "ping"), (2, "pong"),
    ]  # fmt: skip
    assert encode_fleet_recording(recording) == first.data


def test_finish_is_idempotent(tmp_path: Path) -> None:
    rec = FLEET_KIND.open(target(tmp_path), topology(tmp_path))
    fleet(rec)
    assert rec.finish() is rec.finish()


def test_verify_of_the_same_fleet_passes(tmp_path: Path) -> None:
    stored = record(tmp_path)
    assert verify(tmp_path, stored.data).data == stored.data
    assert FLEET_KIND.diff(stored.data, stored.data, {}) is None


def divergence_of(tmp_path: Path, scenario: Scenario) -> ReplayDivergence:
    stored = record(tmp_path)
    with pytest.raises(ReplayDivergence) as info:
        verify(tmp_path, stored.data, scenario)
    return info.value


def test_a_different_payload_fails_live_naming_instance_subsystem_step(tmp_path: Path) -> None:
    error = divergence_of(tmp_path, lambda rec: fleet(rec, payload=b"y"))
    found = error.mismatch.divergence
    assert found is not None
    assert (found.index, found.field, found.expected, found.actual) == (
        0, "messages[0].payload", b"x0", b"y0",
    )  # fmt: skip
    assert "instance 1 subsystem 'ping' step 0" in error.mismatch.detail
    assert "re-record" in str(error)


def test_a_different_origin_fails_live(tmp_path: Path) -> None:
    def scenario(rec: FleetKindRecorder) -> None:
        ping = rec.writer(1, "ping", mission="default", effective_config="p")
        pong = rec.writer(1, "pong", mission="default")
        for i in range(6):
            ping.log(i, 10 * i, [Message(b"x%d" % i)])
        pong.log(0, 5, [Message(b"ack", Origin(1, 0, 0))])
        pong.log(1, 15, [Message(b"ack", Origin(1, 0, 0))])

    error = divergence_of(tmp_path, scenario)
    found = error.mismatch.divergence
    assert found is not None and found.field == "messages[0].origin"
    assert (found.expected, found.actual) == (Origin(1, 0, 1), Origin(1, 0, 0))
    assert "instance 1 subsystem 'pong' step 1 (step #1 of its log)" in error.mismatch.detail
    assert error.mismatch.context[-1].startswith("#0 step 0 t=5")


def test_an_extra_step_fails_live(tmp_path: Path) -> None:
    error = divergence_of(tmp_path, lambda rec: fleet(rec, steps=7))
    found = error.mismatch.divergence
    assert found is not None and found.kind == "length" and found.index == 6
    assert "instance 1 subsystem 'ping' step 6 is a step beyond the end" in error.mismatch.detail


def test_a_short_log_fails_at_the_end(tmp_path: Path) -> None:
    error = divergence_of(tmp_path, lambda rec: fleet(rec, pong_steps=4))
    found = error.mismatch.divergence
    assert found is not None and (found.expected, found.actual) == (6, 4)
    assert "the log of instance 1 subsystem 'pong' step 4 ends early" in error.mismatch.detail


def test_a_log_never_written_fails_at_the_end(tmp_path: Path) -> None:
    error = divergence_of(tmp_path, lambda rec: fleet(rec, instances=(1,)))
    assert "the stored log of instance 2 subsystem 'ping' was not written" in (
        error.mismatch.detail
    )


def test_an_unknown_log_fails_when_its_writer_is_asked_for(tmp_path: Path) -> None:
    error = divergence_of(tmp_path, lambda rec: fleet(rec, instances=(1, 3)))
    assert "no log for instance 3 subsystem 'ping'" in error.mismatch.detail
    assert "(1, 'ping'), (1, 'pong'), (2, 'ping'), (2, 'pong')" in error.mismatch.detail


def test_another_mission_fails_when_the_writer_is_asked_for(tmp_path: Path) -> None:
    error = divergence_of(tmp_path, lambda rec: fleet(rec, mission="recovery"))
    found = error.mismatch.divergence
    assert found is not None and (found.field, found.expected, found.actual) == (
        "mission", "default", "recovery",
    )  # fmt: skip


def test_a_different_keyframe_is_found_by_the_causal_replay(tmp_path: Path) -> None:
    error = divergence_of(tmp_path, lambda rec: fleet(rec, keyframe_state=b"t"))
    found = error.mismatch.divergence
    assert found is not None
    assert (found.field, found.expected, found.actual) == ("keyframe", b"s", b"t")
    detail = error.mismatch.detail
    assert "causal replay diverges at instance 1 subsystem 'pong' step 3" in detail
    assert found.index is not None and f"(causal position #{found.index})" in detail
    assert len(error.mismatch.context) == 2


def test_a_changed_topology_fails_when_the_recorder_opens(tmp_path: Path) -> None:
    stored = record(tmp_path)
    other = write_topology(tmp_path / "other" / "fleet.toml", [("ping", 0), ("pong", 2)])
    with pytest.raises(ReplayDivergence) as info:
        FLEET_KIND.open(target(tmp_path / "v", stored.data), other)
    assert info.value.mismatch.divergence is not None
    assert info.value.mismatch.divergence.field == "topology"


def test_kind_diff_reports_the_first_causal_divergence(tmp_path: Path) -> None:
    left = record(tmp_path / "a")
    right = record(tmp_path / "b", lambda rec: fleet(rec, payload=b"z"))
    found = FLEET_KIND.diff(left.data, right.data, {})
    assert found is not None
    divergence, context = found
    assert (divergence.index, divergence.field) == (0, "messages[0].payload")
    assert (
        context[0]
        == "causal replay diverges at instance 1 subsystem 'ping' step 0 (causal position #0)"
    )
    shorter = record(tmp_path / "c", lambda rec: fleet(rec, steps=5))
    found = FLEET_KIND.diff(left.data, shorter.data, {})
    assert found is not None  # ping runs to step 5 where pong 5 used to follow: order differs
    assert (found[0].index, found[0].field, found[0].expected, found[0].actual) == (
        5, "subsystem_id", "ping", "pong",
    )  # fmt: skip
    one = record(tmp_path / "d", lambda rec: fleet(rec, instances=(1,)))
    found = FLEET_KIND.diff(left.data, one.data, {})
    assert found is not None and found[0].kind == "length"
    assert (found[0].index, found[0].expected, found[0].actual) == (12, 24, 12)
    assert "instance 2 subsystem 'ping' step 0 (causal position #12)" in found[1][0]


def test_an_unreplayable_fleet_is_refused_at_record_time(tmp_path: Path) -> None:
    def half(rec: FleetKindRecorder) -> None:
        rec.writer(1, "ping").log(0, 0)

    with pytest.raises(ReplayValidationError, match="missing log for instance 1 subsystem 'pong'"):
        record(tmp_path, half)


def test_writer_misuse(tmp_path: Path) -> None:
    rec = FLEET_KIND.open(target(tmp_path), topology(tmp_path))
    assert isinstance(rec, FleetKindRecorder)
    rec.writer(1, "ping")
    with pytest.raises(FleetRecordingError, match="exists already"):
        rec.writer(1, "ping")
    with pytest.raises(FleetRecordingError, match="does not define subsystem 'radar'"):
        rec.writer(1, "radar")
    rec.finish()
    with pytest.raises(FleetRecordingError, match="has finished"):
        rec.writer(2, "ping")


@pytest.fixture(scope="module")
def small_recording(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Path]:
    folder = tmp_path_factory.mktemp("small")
    data = record(folder, lambda rec: fleet(rec, steps=2, instances=(1,))).data
    return data, topology(folder)


@given(data=st.data())
def test_a_damaged_recording_raises_only_fleet_recording_error(
    tmp_path_factory: pytest.TempPathFactory,
    small_recording: tuple[bytes, Path],
    data: st.DataObject,
) -> None:
    stored, topology_path = small_recording
    blob = bytearray(stored)
    mode = data.draw(st.sampled_from(["flip", "truncate", "append"]))
    if mode == "flip":
        position = data.draw(st.integers(0, len(blob) - 1))
        blob[position] ^= data.draw(st.integers(1, 255))
    elif mode == "truncate":
        del blob[data.draw(st.integers(0, len(blob) - 1)) :]
    else:
        blob += data.draw(st.binary(min_size=1, max_size=8))
    folder = tmp_path_factory.mktemp("damaged")
    with pytest.raises(FleetRecordingError) as info:
        FLEET_KIND.open(target(folder, bytes(blob)), topology_path)
    assert "Fix:" in str(info.value)


def _with_body(body: object) -> bytes:
    packed = msgpack.packb(body, use_bin_type=True)
    return struct.pack("<8sIQ", b"PRFLREC1", zlib.crc32(packed), len(packed)) + packed


GOOD_BODY = {"version": 1, "topology_name": "t.toml", "topology": "", "configs": [], "logs": []}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 2}, "unsupported recording version 2"),
        ({"extra": 1}, "exactly the keys"),
        ({"topology_name": "../t.toml"}, "topology name '../t.toml' is not a plain file name"),
        ({"topology": 3}, "topology name/text are malformed"),
        ({"configs": [["a.toml", "text"]]}, "config #0 is not"),
        ({"configs": 3}, "configs is not an array"),
        ({"logs": [[1, "ping", ["slab"]]]}, "log #0 is not"),
        ({"logs": [[-1, "ping", []]]}, "log #0 is not"),
        ({"logs": [[1, "a/b", []]]}, "log #0 subsystem id 'a/b' is not a plain file name"),
        ({"logs": {}}, "logs is not an array"),
    ],
)
def test_a_well_framed_but_malformed_body(change: dict[str, object], message: str) -> None:
    with pytest.raises(FleetRecordingError, match=message):
        decode_fleet_recording(_with_body({**GOOD_BODY, **change}), "x.fleet")
    assert decode_fleet_recording(_with_body(GOOD_BODY)).logs == ()
    with pytest.raises(FleetRecordingError, match="not valid msgpack"):
        raw = b"\xc1"
        decode_fleet_recording(struct.pack("<8sIQ", b"PRFLREC1", zlib.crc32(raw), 1) + raw)


def test_a_config_path_may_not_leave_the_folder(tmp_path: Path) -> None:
    body = {**GOOD_BODY, "configs": [["../../escape.toml", b""]]}
    with pytest.raises(
        FleetRecordingError, match=r"'\.\./\.\./escape\.toml' is not a relative path"
    ):
        decode_fleet_recording(_with_body(body))
    recording = FleetRecording("t.toml", "", (("../../escape.toml", b""),))
    with pytest.raises(FleetRecordingError, match="is not a relative path in the recording"):
        recording.materialise(tmp_path / "m")
