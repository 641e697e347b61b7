"""The ``pytest-replay`` command line on fleet logs, journals, record files and results.

Subprocess runs of ``python -m pytest_replay`` on files written by the packages' own
writers, checked against what the packages' APIs say about the same files.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_replay.fleet import (
    FleetLogReader,
    ReplayPlan,
    Subsystem,
    recording_app_for,
)
from pytest_replay.fleet.testing import write_stress_fleet
from pytest_replay.formats.journal import END_FRAME_BYTES
from pytest_replay.journal import (
    DeviceCmd,
    EffectIntent,
    EffectResult,
    JournalRecord,
    JournalRecordKind,
    ReducerMode,
    RngSeed,
    RunLifecycle,
    encode_journal,
    reduce_journal,
    result_to_json,
    result_to_msgpack,
    write_journal_records,
)


def cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_replay", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def one_line_error(
    result: subprocess.CompletedProcess[str], *needles: str, status: int = 2
) -> None:
    """One line on stderr; status 2 for a usage error, 1 for a recording that is corrupt."""
    assert result.returncode == status, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("pytest-replay: error: ") and "Fix:" in lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]


# --------------------------------------------------------------------------- fleet


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stress topology, 3 instances x 4 subsystems x 5 steps, keyframes every 2 steps."""
    root = tmp_path_factory.mktemp("fleet")
    write_stress_fleet(root, 3, 5, payload=b"abc", keyframe_every=2)
    return root


def test_inspect_fleet_folder(fleet: Path) -> None:
    result = cli("inspect", fleet / "logs", "--json", "-n", "20")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["format"] == "fleet-folder"
    summary = report["summary"]
    assert summary["logs"] == 12 and summary["instances"] == [1, 2, 3]
    assert summary["subsystems"] == {"sense": 0, "plan": 1, "control": 2, "telemetry": 3}
    assert summary["steps"] == 60 and summary["missions"] == ["default"]
    assert summary["time_range_ns"] == [0, 4003]
    assert summary["failures"] == []
    rows = report["logs"]["items"]
    assert [(r["instance_id"], r["subsystem_id"]) for r in rows[:2]] == [(1, "sense"), (1, "plan")]
    assert rows[1]["messages_with_origin"] == 5 and rows[0]["messages_with_origin"] == 0
    assert all(row["keyframes"] == 3 and row["last_step_id"] == 4 for row in rows)


def test_inspect_fleet_log_by_base_and_slab_path(fleet: Path) -> None:
    base = fleet / "logs" / "instance_2" / "telemetry.flog"
    by_base = cli("inspect", base, "--records", "1:3")
    by_slab = cli("inspect", fleet / "logs" / "instance_2" / "telemetry_0.flog", "--records", "1:3")
    assert by_base.returncode == 0, by_base.stderr
    assert by_base.stdout == by_slab.stdout
    lines = by_base.stdout.splitlines()
    assert lines[0] == f"{base}: fleet log"
    expected_lines = ["  instance_id: 2", "  subsystem_id: telemetry", "  subsystem_code: 3"]
    expected_lines += ["  steps: 5", "  last_step_id: 4", "  keyframes: 3", "steps 1..2 of 5:"]
    for line in expected_lines:
        assert line in lines, by_base.stdout
    assert (
        "  #1 step_id=1 timestamp_ns=1003 keyframe=False "
        'messages=[{"bytes":3,"digest":"6437b3ac38465133","origin":[2,0,1]},'
        '{"bytes":3,"digest":"6437b3ac38465133","origin":[2,2,1]}]'
    ) in lines
    reader = FleetLogReader(base)
    report = json.loads(cli("inspect", base, "--json", "-n", "5").stdout)
    assert [s["step_id"] for s in report["steps"]["items"]] == list(
        reader.step_table().step_ids.tolist()
    )


def api_order(topology: Path, logs: Path) -> tuple[ReplayPlan, list[tuple[int, str, int]]]:
    builder = ReplayPlan.builder(topology).discover_logs([logs])
    sink: list[object] = []
    for spec in builder.topology.subsystems:
        builder.register(spec.id, recording_app_for(Subsystem(spec.id, spec.code), sink))  # type: ignore[arg-type]
    plan = builder.build()
    order = []
    with plan.start() as engine:
        while (cursor := engine.step_causal()) is not None:
            order.append((cursor.instance_id, cursor.subsystem_id, cursor.step_id))
    return plan, order


def test_fleet_replay_order_matches_the_engine(fleet: Path) -> None:
    topology = fleet / "topology.toml"
    result = cli("fleet", "replay", topology, fleet / "logs", "--all", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    plan, order = api_order(topology, fleet / "logs")
    with plan.start() as engine:
        edges = engine.graph.total_edges
    assert report["valid"] is True
    assert report["nodes"] == 60 == len(order)
    assert report["edges"] == edges
    shown = [(c["instance_id"], c["subsystem_id"], c["step_id"]) for c in report["order"]]
    assert shown == order
    text = cli("fleet", "replay", topology, fleet / "logs", "--steps", "3")
    lines = text.stdout.splitlines()
    assert "  nodes (steps): 60" in lines and f"  edges: {edges}" in lines
    assert "  causal order (first 3 of 60):" in lines
    assert lines[-3:] == [
        f"    #{i} instance {o[0]} subsystem '{o[1]}' (code {c}) step {o[2]}"
        for i, (o, c) in enumerate(zip(order[:3], (0, 0, 0), strict=True))
    ]


def test_fleet_replay_goto_frontier_matches_the_engine(fleet: Path) -> None:
    topology = fleet / "topology.toml"
    result = cli("fleet", "replay", topology, fleet / "logs", "--goto", "2:control:3", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    plan, _order = api_order(topology, fleet / "logs")
    with plan.start() as engine:
        engine.goto(2, "control", 3)
        frontier = [(c.instance_id, c.subsystem_id, c.step_id) for c in engine.current_frontier()]
        executed = engine.executed_nodes
    assert report["executed"] == executed
    assert [(c["instance_id"], c["subsystem_id"], c["step_id"]) for c in report["frontier"]] == (
        frontier
    )
    target = {"instance_id": 2, "subsystem_id": "control", "subsystem_code": 2, "step_id": 3}
    assert report["order"][-1] == target or len(report["order"]) == 20
    text = cli("fleet", "replay", topology, fleet / "logs", "--goto", "2:control:3")
    assert f"executed {executed} of 60 steps" in text.stdout
    assert "    instance 2 subsystem 'control' (code 2) step 3" in text.stdout.splitlines()


def test_fleet_replay_validation_problems(fleet: Path) -> None:
    topology = fleet / "topology.toml"
    logs = fleet / "logs"
    result = cli(
        "fleet", "replay", topology, logs / "instance_1", logs / "instance_2" / "sense.flog"
    )
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"fleet replay: 3 validation problems for topology '{topology}':"
    assert lines[1:4] == [
        "  - missing log for instance 2 subsystem 'plan'",
        "  - missing log for instance 2 subsystem 'control'",
        "  - missing log for instance 2 subsystem 'telemetry'",
    ]
    assert lines[-1].startswith("Fix: ")
    selected = cli("fleet", "replay", topology, logs, "--instances", "1,3", "--json")
    assert json.loads(selected.stdout)["instances"] == [1, 3]
    absent = cli("fleet", "replay", topology, logs, "--instances", "7", "--json")
    assert absent.returncode == 1
    assert "selected instance 7 has no discovered logs" in json.loads(absent.stdout)["problems"]


def test_fleet_replay_errors_are_one_line(fleet: Path, tmp_path: Path) -> None:
    topology = fleet / "topology.toml"
    one_line_error(cli("fleet", "replay", topology, fleet / "logs", "--goto", "2:plan:99"),
                   "step 99 was not recorded", "0..4")  # fmt: skip
    one_line_error(cli("fleet", "replay", topology, fleet / "logs", "--goto", "9:plan:1"),
                   "is not part of this replay")  # fmt: skip
    one_line_error(cli("fleet", "replay", topology, fleet / "logs", "--goto", "2-plan"),
                   "INSTANCE:SUBSYSTEM:STEP")  # fmt: skip
    bad = tmp_path / "topology.toml"
    bad.write_text("[[subsystems]]\nid = 'x'\ncode = 'not a number'\n")
    one_line_error(cli("fleet", "replay", bad, fleet / "logs"), "topology")
    one_line_error(cli("fleet", "replay", tmp_path / "none.toml", fleet / "logs"), "not a file")


def test_corrupted_fleet_log(fleet: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    import shutil

    shutil.copytree(fleet / "logs", logs)
    slab = logs / "instance_3" / "plan_0.flog"
    data = bytearray(slab.read_bytes())
    data[-3] ^= 0xFF  # inside the last frame's payload: its CRC no longer matches
    slab.write_bytes(bytes(data))
    one_line_error(
        cli("inspect", logs / "instance_3" / "plan.flog"), "plan_0.flog", "at byte", status=1
    )
    folder = cli("inspect", logs, "--json")
    assert folder.returncode == 0
    failures = json.loads(folder.stdout)["summary"]["failures"]
    assert len(failures) == 1 and "plan_0.flog" in failures[0]
    truncated = logs / "instance_1" / "sense_0.flog"
    truncated.write_bytes(truncated.read_bytes()[:10])
    one_line_error(cli("inspect", truncated), "shorter than its 16-byte header", status=1)


def test_diff_fleet_logs(fleet: Path) -> None:
    logs = fleet / "logs"
    same = cli("diff", logs / "instance_1" / "sense.flog", logs / "instance_2" / "sense.flog")
    assert same.returncode == 0, same.stderr
    assert "(5 steps)" in same.stdout
    other = cli("diff", logs / "instance_1" / "plan.flog", logs / "instance_2" / "plan.flog")
    assert other.returncode == 1
    assert (
        "  first divergence: step 0: #0 messages[0].origin: A has (1, 0, 0), B has (2, 0, 0)"
        in other.stdout.splitlines()
    )
    ignored = cli("diff", logs / "instance_1" / "plan.flog", logs / "instance_2" / "plan.flog",
                  "--ignore", "origin")  # fmt: skip
    assert ignored.returncode == 0
    timing = cli("diff", logs / "instance_1" / "sense.flog", logs / "instance_1" / "plan.flog",
                 "--ignore", "origin", "--json")  # fmt: skip
    assert json.loads(timing.stdout)["divergence"]["field"] == "timestamp_ns"
    sense, plan = logs / "instance_1" / "sense.flog", logs / "instance_1" / "plan.flog"
    one_line_error(cli("diff", sense, plan, "--ignore", "nope"), "'nope'")


# --------------------------------------------------------------------------- journals


def entries(seed: int) -> list[DeviceCmd | RngSeed]:
    return [DeviceCmd(5, "reset", "x"), RngSeed("actor/1", seed), DeviceCmd(9, "go", "")]


def test_inspect_journal_file(tmp_path: Path) -> None:
    path = tmp_path / "cmds.jrnl"
    path.write_bytes(encode_journal(entries(42), "robot"))
    report = json.loads(cli("inspect", path, "--json").stdout)
    assert report["format"] == "journal"
    summary = report["summary"]
    assert summary["persistence_ids"] == {
        "robot": {"messages": 3, "deleted": 0, "last_sequence_nr": 3}
    }
    assert summary["entry_types"] == {"DeviceCmd": 2, "RngSeed": 1}
    assert summary["time_range_us"] == [5, 9]
    assert summary["torn_tail"] is None
    second = report["messages"]["items"][1]
    assert second["sequence_nr"] == 2
    assert second["entry"] == {"type": "RngSeed", "actor_path": "actor/1", "seed": 42}
    # A crash mid-append leaves a torn final frame: reported, not an error.
    with open(path, "ab") as fh:
        fh.write(b"\x40\x00\x00\x00\x01\x02")
    torn = json.loads(cli("inspect", path, "--json").stdout)["summary"]["torn_tail"]
    assert torn == {"offset": len(encode_journal(entries(42), "robot")), "dropped_bytes": 6}


def test_corrupted_journal_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "cmds.jrnl"
    data = bytearray(encode_journal(entries(42)))
    data[20] ^= 0xFF  # inside the first frame's header, with frames after it
    path.write_bytes(bytes(data))
    one_line_error(cli("inspect", path), "corrupted at byte offset 16", str(path), status=1)
    one_line_error(cli("diff", path, path), str(path), status=1)


def test_diff_journal_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jrnl", tmp_path / "b.jrnl"
    a.write_bytes(encode_journal(entries(42)))
    b.write_bytes(encode_journal(entries(43)))
    result = cli("diff", a, b)
    assert result.returncode == 1
    assert "  first divergence: #1 seed: A has 42, B has 43" in result.stdout.splitlines()
    assert "ignored fields: ts_micros" in result.stdout
    assert cli("diff", a, b, "--ignore", "seed").returncode == 0
    one_line_error(cli("diff", a, b, "--ignore", "colour"), "'colour'")


# --------------------------------------------------------------------------- reducer


def records(with_result: bool = True) -> list[JournalRecord]:
    out = [
        JournalRecord("r1", 1, JournalRecordKind.RUN, RunLifecycle("running")),
        JournalRecord("r2", 2, JournalRecordKind.EFFECT_INTENT, EffectIntent("e1", "k1")),
        JournalRecord(
            "r3", 3, JournalRecordKind.EFFECT_INTENT, EffectIntent("e2"), content_refs=("blob:1",)
        ),
    ]
    if with_result:
        out.append(JournalRecord("r4", 4, JournalRecordKind.EFFECT_RESULT, EffectResult("e1")))
        out.append(JournalRecord("r5", 5, JournalRecordKind.EFFECT_RESULT, EffectResult("e2")))
    return out


@pytest.mark.parametrize("mode", ["audit", "resume", "repair"])
def test_reduce_prints_the_result_json(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "run.jrecs"
    write_journal_records(path, records(with_result=False))
    result = cli("reduce", path, "--mode", mode)
    assert result.returncode == 0, result.stderr
    expected = reduce_journal(records(with_result=False), ReducerMode[mode.upper()])
    assert result.stdout == result_to_json(expected).decode() + "\n"
    pretty = cli("reduce", path, "--mode", mode, "--pretty")
    assert json.loads(pretty.stdout) == json.loads(result.stdout)
    gated = cli("reduce", path, "--mode", mode, "--fail-on-repair")
    assert gated.returncode == 1


def test_reduce_content_refs(tmp_path: Path) -> None:
    path = tmp_path / "run.jrecs"
    write_journal_records(path, records())
    checked = json.loads(cli("reduce", path, "--content-ref", "blob:2").stdout)
    assert checked["missing_content_refs"] == ["blob:1"]
    policy = ["--missing-content-policy", "omit_with_projection_audit"]
    omitted = json.loads(cli("reduce", path, "--content-ref", "blob:2", *policy).stdout)
    assert omitted["missing_content_refs"] == ["blob:1"]
    assert omitted.get("repair_needed", []) == []
    assert [r["kind"] for r in checked["repair_needed"]] == ["missing_content_ref"]
    present = json.loads(cli("reduce", path, "--content-ref", "blob:1").stdout)
    assert present["status"] == "complete"


def test_reduce_errors_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "run.jrecs"
    write_journal_records(path, records())
    data = path.read_bytes()
    torn = tmp_path / "torn.jrecs"
    torn.write_bytes(data[: -(END_FRAME_BYTES + 5)])
    one_line_error(cli("reduce", torn), "corrupted at byte offset", "record #4", status=1)
    journal = tmp_path / "cmds.jrnl"
    journal.write_bytes(encode_journal(entries(1)))
    one_line_error(cli("reduce", journal), "is a journal file, not a journal record file")
    broken = [*records(), JournalRecord("r9", 2, JournalRecordKind.RUN, RunLifecycle("x"))]
    write_journal_records(path, broken)
    one_line_error(cli("reduce", path), "r9", status=1)


def test_inspect_and_diff_record_files_and_results(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jrecs", tmp_path / "b.jrecs"
    write_journal_records(a, records())
    write_journal_records(b, records(with_result=False))
    report = json.loads(cli("inspect", a, "--json").stdout)
    assert report["format"] == "journal-records"
    assert report["summary"]["records"] == 5 and report["summary"]["last_journal_seq"] == 5
    assert report["summary"]["record_kinds"] == {"effect_intent": 2, "effect_result": 2, "run": 1}
    assert report["records"]["items"][2]["payload"]["type"] == "EffectIntent"
    assert report["records"]["items"][2]["content_refs"] == ["blob:1"]
    diff = cli("diff", a, b, "--json")
    assert diff.returncode == 1
    assert json.loads(diff.stdout)["divergence"]["kind"] == "length"

    full = reduce_journal(records(), ReducerMode.RESUME)
    cut = reduce_journal(records(with_result=False), ReducerMode.RESUME)
    ra, rb, rj = tmp_path / "a.jreduce", tmp_path / "b.jreduce", tmp_path / "a.json"
    ra.write_bytes(result_to_msgpack(full))
    rb.write_bytes(result_to_msgpack(cut))
    rj.write_bytes(result_to_json(full))
    for path in (ra, rj):
        summary = json.loads(cli("inspect", path, "--json").stdout)["summary"]
        assert summary["status"] == "complete" and summary["latest_journal_seq"] == 5
    assert cli("diff", ra, rj).returncode == 0
    different = cli("diff", ra, rb)
    assert different.returncode == 1
    assert "first divergence: status: A has 'complete', B has 'repair_needed'" in different.stdout


def test_an_old_record_file_reduces_with_a_one_line_warning(tmp_path: Path) -> None:
    path = tmp_path / "run.jrecs"
    write_journal_records(path, records())
    data = path.read_bytes()
    old = tmp_path / "old.jrecs"
    old.write_bytes(data[:12] + bytes(4) + data[16:-END_FRAME_BYTES])  # flag clear, no end
    result = cli("reduce", old)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pytest-replay: warning: "), lines
    assert "cannot be detected" in lines[0] and str(old) in lines[0]
