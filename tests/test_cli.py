"""The ``pytest-replay`` command line: general behaviour, ring logs and the store.

Most tests run ``python -m pytest_replay`` in a subprocess on real files (including
corrupted ones), exactly as a user would; a few call ``main(argv)`` in-process.
"""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_replay import __version__
from pytest_replay.cli import main
from pytest_replay.cli.common import CliError, jsonable, parse_range
from pytest_replay.cli.progress import Progress
from pytest_replay.ringlog import (
    RecordedSlot,
    ReplayFailureClass,
    ReplayFailureEvidence,
    RingLog,
)


def cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_replay", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def assert_one_line_error(
    result: subprocess.CompletedProcess[str], *needles: str, status: int = 2
) -> str:
    """One line on stderr; status 2 for a usage error, 1 for a recording that is corrupt."""
    assert result.returncode == status, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("pytest-replay: error: ")
    assert "Fix:" in line
    for needle in needles:
        assert needle in line, line
    return line


def slot(i: int, epoch: int | None = None, ts: int | None = None) -> RecordedSlot:
    return RecordedSlot(1000 + i if ts is None else ts, i % 8, i % 3, 7, (i, 1, 2, 3),
                        i if epoch is None else epoch)  # fmt: skip


def write_ring(path: Path, capacity: int, count: int, *, failure_at: int | None = None,
               epoch_at: dict[int, int] | None = None, ts_base: int = 1000) -> Path:  # fmt: skip
    epochs = epoch_at or {}
    with RingLog.open(path, capacity) as log:
        for i in range(count):
            s = slot(i, epochs.get(i), ts_base + i)
            if i == failure_at:
                evidence = ReplayFailureEvidence(2, ReplayFailureClass.DEVICE_LOSS, 9, 0xABC)
                log.append_with_failure(s, evidence)
            else:
                log.append(s)
    return path


# --------------------------------------------------------------------------- general


def test_help_and_version() -> None:
    result = cli("--help")
    assert result.returncode == 0
    for command in ("inspect", "diff", "fleet", "reduce", "store"):
        assert command in result.stdout
    version = cli("--version")
    assert version.returncode == 0
    assert version.stdout.strip() == f"pytest-replay {__version__}"


def test_subcommand_help_lists_options() -> None:
    result = cli("diff", "--help")
    assert result.returncode == 0
    assert "--ignore" in result.stdout and "--strict" in result.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ((), "required: COMMAND"),
        (("inspect",), "required: PATH"),
        (("frobnicate",), "invalid choice"),
        (("diff", "a", "b", "--ignore", "x", "--strict"), "not allowed with"),
        (("store", "list", "--bogus"), "unrecognized arguments"),
    ],
)
def test_usage_errors_are_one_line(args: tuple[str, ...], needle: str) -> None:
    assert_one_line_error(cli(*args), needle, "--help")


def test_missing_path_is_one_line(tmp_path: Path) -> None:
    assert_one_line_error(cli("inspect", tmp_path / "nope.vrrl"), "does not exist")


def test_folder_of_nothing_is_one_line(tmp_path: Path) -> None:
    assert_one_line_error(cli("inspect", tmp_path), "no store manifests")


def test_unknown_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    line = assert_one_line_error(cli("inspect", path), "not a recording", "68656c6c6f")
    assert "VRRL ring log" in line


def test_empty_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "empty.bin"
    path.write_bytes(b"")
    assert_one_line_error(cli("inspect", path), "the file is empty")


def test_in_process_main_returns_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_ring(tmp_path / "a.vrrl", 4, 2)
    assert main(["inspect", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["summary"]["records"] == 2
    assert main(["inspect", str(tmp_path / "missing.vrrl")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Fix:" in err


# --------------------------------------------------------------------------- inspect: rings


def test_inspect_wrapped_ring(tmp_path: Path) -> None:
    path = write_ring(tmp_path / "a.vrrl", 8, 11, failure_at=5)
    result = cli("inspect", path, "-n", "3")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.splitlines()[0] == f"{path}: VRRL ring log"
    for line in (
        "  capacity: 8",
        "  cursor: 3",
        "  records: 8",
        "  wrap_state: wrapped (older records were overwritten)",
        "  time_range_ns: [1003, 1010]",
        "  last_epoch: 10",
        "  failure_evidence: 1",
        '  failure_classes: {"device_loss": 1}',
        '  tenants: {"0": 3, "1": 3, "2": 2}',
        "records 0..2 of 8:",
        "  #0 timestamp_ns=1003 slot_idx=3 tenant_id=0 opcode=7 args=[3,1,2,3] epoch=3",
    ):
        assert line in out.splitlines(), out
    assert (
        "#2 timestamp_ns=1005 slot_idx=5 tenant_id=2 opcode=7 args=[5,1,2,3] epoch=5 failure="
        '{"slot_status":2,"failure_class":"device_loss","backend_code":9,'
        '"output_digest":"0000000000000abc"}' in out
    )
    assert "#3 " not in out
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("count", "state"),
    [
        (0, "empty"),
        (3, "partial (never wrapped)"),
        (8, "full (the next append overwrites the oldest record)"),
        (9, "wrapped (older records were overwritten)"),
    ],
)
def test_inspect_wrap_states(tmp_path: Path, count: int, state: str) -> None:
    path = write_ring(tmp_path / "a.vrrl", 8, count)
    result = cli("inspect", path, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["format"] == "vrrl"
    assert report["summary"]["wrap_state"] == state
    assert report["summary"]["records"] == min(count, 8)
    assert report["records"]["total"] == min(count, 8)


def test_inspect_records_range_json(tmp_path: Path) -> None:
    path = write_ring(tmp_path / "a.vrrl", 16, 12)
    report = json.loads(cli("inspect", path, "--json", "--records", "4:7").stdout)
    items = report["records"]["items"]
    assert [item["index"] for item in items] == [4, 5, 6]
    assert [item["epoch"] for item in items] == [4, 5, 6]
    assert items[0] == {
        "index": 4,
        "timestamp_ns": 1004,
        "slot_idx": 4,
        "tenant_id": 1,
        "opcode": 7,
        "args": [4, 1, 2, 3],
        "epoch": 4,
    }
    tail = json.loads(cli("inspect", path, "--json", "--records=-2:").stdout)
    assert [item["index"] for item in tail["records"]["items"]] == [10, 11]


def test_inspect_bad_range_is_one_line(tmp_path: Path) -> None:
    path = write_ring(tmp_path / "a.vrrl", 4, 2)
    assert_one_line_error(cli("inspect", path, "--records", "3"), "not a range")
    assert_one_line_error(cli("inspect", path, "--records", "a:b"), "not an integer")


def _corrupt_magic(data: bytearray) -> None:
    data[0:8] = b"XXXX0001"


def _truncate(data: bytearray) -> None:
    del data[-100:]


def _bad_record(data: bytearray) -> None:
    struct.pack_into("<I", data, 32 + 64 * 2, 0x12345678)


def _zero_capacity(data: bytearray) -> None:
    struct.pack_into("<Q", data, 16, 0)


def _huge_capacity(data: bytearray) -> None:
    struct.pack_into("<Q", data, 16, 1 << 40)


def _bad_version(data: bytearray) -> None:
    struct.pack_into("<I", data, 8, 7)


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (_corrupt_magic, "does not decode as a recording of kind 'ring' (.vrrl): replay log"),
        (_truncate, "truncated"),
        (_bad_record, "record 2 at byte offset 160"),
        (_zero_capacity, "capacity must be > 0"),
        (_huge_capacity, "exceeds max"),
        (_bad_version, "unsupported version 7"),
    ],
)
def test_corrupted_ring_is_one_line(
    tmp_path: Path, damage: object, needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_ring(tmp_path / "a.vrrl", 8, 5)
    good = write_ring(tmp_path / "good.vrrl", 8, 5)
    data = bytearray(path.read_bytes())
    damage(data)  # type: ignore[operator]
    path.write_bytes(bytes(data))
    result = cli("inspect", path)
    assert_one_line_error(result, needle, status=1)
    assert result.stdout == ""
    # The same through main() in-process, for diff in both argument orders.
    for args in (["diff", str(path), str(good)], ["diff", str(good), str(path)]):
        # Without its magic the file is no VRRL log any more: two formats, a usage error.
        assert main(args) == (2 if damage is _corrupt_magic else 1)
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and "Fix:" in err
        assert str(path) in err or "replay log" in err


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    path = write_ring(tmp_path / "a.vrrl", 8, 5)
    data = bytearray(path.read_bytes())
    _truncate(data)
    path.write_bytes(bytes(data))
    result = cli("inspect", path, "--debug")
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "TruncatedLog" in result.stderr


def test_output_to_a_closed_pipe_stops_quietly(tmp_path: Path) -> None:
    path = write_ring(tmp_path / "a.vrrl", 4096, 4096)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_replay", "inspect", str(path), "-n", "4096"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(10)
    proc.stdout.close()
    err = proc.stderr.read()
    proc.wait(timeout=60)
    assert b"Traceback" not in err


# --------------------------------------------------------------------------- diff: rings


def test_diff_same_ring_ignores_timestamps(tmp_path: Path) -> None:
    a = write_ring(tmp_path / "a.vrrl", 8, 6)
    b = write_ring(tmp_path / "b.vrrl", 8, 6, ts_base=5000)
    result = cli("diff", a, b)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"same: {a} and {b} hold the same VRRL ring log (6 records)")
    assert "ignored fields: timestamp_ns" in result.stdout
    strict = cli("diff", a, b, "--strict")
    assert strict.returncode == 1
    assert "first divergence: #0 timestamp_ns: A has 1000, B has 5000" in strict.stdout


def test_diff_rings_reports_first_divergence_with_context(tmp_path: Path) -> None:
    a = write_ring(tmp_path / "a.vrrl", 16, 10)
    b = write_ring(tmp_path / "b.vrrl", 16, 10, epoch_at={4: 99, 7: 98})
    result = cli("diff", a, b)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"different: {a} and {b} (VRRL ring log)"
    assert lines[1] == "  first divergence: #4 epoch: A has 4, B has 99"
    assert lines[3].startswith("    #2 timestamp_ns=1002 ")
    assert lines[4].startswith("    #3 timestamp_ns=1003 ")
    ignored = cli("diff", a, b, "--ignore", "epoch")
    assert ignored.returncode == 0
    report = json.loads(cli("diff", a, b, "--json").stdout)
    assert report["same"] is False
    assert report["divergence"] == {
        "index": 4,
        "field": "epoch",
        "expected": 4,
        "actual": 99,
        "kind": "value",
        "where": "",
    }


def test_diff_rings_length(tmp_path: Path) -> None:
    a = write_ring(tmp_path / "a.vrrl", 16, 10)
    b = write_ring(tmp_path / "b.vrrl", 16, 7)
    result = cli("diff", a, b, "--json")
    assert result.returncode == 1
    found = json.loads(result.stdout)["divergence"]
    assert (found["kind"], found["index"], found["expected"], found["actual"]) == (
        "length", 7, 10, 7,
    )  # fmt: skip


def test_diff_unknown_ignore_field_is_an_error(tmp_path: Path) -> None:
    a = write_ring(tmp_path / "a.vrrl", 8, 3)
    assert_one_line_error(cli("diff", a, a, "--ignore", "bogus"), "'bogus'", "epoch")


def test_diff_of_two_kinds_is_an_error(tmp_path: Path) -> None:
    a = write_ring(tmp_path / "a.vrrl", 8, 3)
    other = tmp_path / "j.jrnl"
    other.write_bytes(b"PRJOURNL" + bytes(8))
    assert_one_line_error(cli("diff", a, other), "is a VRRL ring log but", "journal file")


# --------------------------------------------------------------------------- the store

STORE_TESTS = """
import pytest
from pytest_replay.ringlog import RecordedSlot

def test_ring(replay):
    ring = replay.ring("slots", capacity=8)
    for i in range({count}):
        ring.append(RecordedSlot(i, i % 8, 0, 3, (i, 0, 0, 0), i))

def test_data(replay):
    replay.data("value", {{"a": [1, 2, {last}]}})

@pytest.mark.parametrize("n", [1, 2])
def test_param(replay, n):
    replay.data("v", n)

class TestGroup:
    def test_in_class(self, replay):
        replay.data("v", 1)
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    """A project with a recorded central store (.replay) of five tests."""
    pytester.makeini("[pytest]\nreplay_dir = .replay\n")
    pytester.makepyfile(test_things=STORE_TESTS.format(count=10, last=3))
    pytester.runpytest("--replay-record", "-p", "no:cacheprovider").assert_outcomes(passed=5)
    return pytester.path


def test_store_list(project: Path) -> None:
    result = cli("store", "list", ".replay", cwd=project)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "test_things.py::test_ring\n  slots  kind=ring  records=8  544 bytes" in out
    assert "test_things.py::test_param[1]" in out
    assert out.splitlines()[-1].startswith("5 recording(s) of 5 test(s) in '.replay', ")
    report = json.loads(cli("store", "list", ".replay", "--json", cwd=project).stdout)
    assert report["tests"] == 5
    kinds = {(row["nodeid"], row["kind"], row["records"]) for row in report["recordings"]}
    assert ("test_things.py::test_ring", "ring", 8) in kinds
    assert ("test_things.py::TestGroup::test_in_class", "data", 1) in kinds


def test_inspect_store_and_stored_files(project: Path) -> None:
    report = json.loads(cli("inspect", ".replay", "--json", cwd=project).stdout)
    assert report["format"] == "store"
    assert report["summary"]["recordings"] == 5
    assert report["summary"]["kinds"] == {"data": 4, "ring": 1}
    ring = json.loads(cli("inspect", ".replay/test_things.py/test_ring/slots.vrrl", "--json",
                          cwd=project).stdout)  # fmt: skip
    # The stored image holds the live records from slot 0: full, not wrapped.
    assert ring["summary"]["wrap_state"].startswith("full")
    assert ring["summary"]["time_range_ns"] == [0, 0]  # volatile timestamps are stored as zero
    data = json.loads(cli("inspect", ".replay/test_things.py/test_data/value.msgpack", "--json",
                          cwd=project).stdout)  # fmt: skip
    assert data["kind"] == "data"
    assert data["summary"]["records"] == 1
    assert data["summary"]["manifest"]["nodeid"] == "test_things.py::test_data"


def test_store_check_ok_then_corrupted(project: Path) -> None:
    ok = cli("store", "check", ".replay", "--deep", cwd=project)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.strip() == ("checked 5 recording(s) in '.replay' (digest and contents): ok")
    store = project / ".replay" / "test_things.py"
    with open(store / "test_data" / "value.msgpack", "ab") as fh:
        fh.write(b"x")
    (store / "test_ring" / "slots.vrrl").unlink()
    (store / "test_param[2]" / "manifest.json").write_text("{not json")
    (store / "test_param[1]" / "stray.bin").write_bytes(b"left over")
    bad = cli("store", "check", ".replay", cwd=project)
    assert bad.returncode == 1
    problems = [line for line in bad.stdout.splitlines() if line.startswith("problem: ")]
    assert len(problems) == 4
    text = "\n".join(problems)
    assert "test_things.py::test_data recording 'value': recording file" in text
    assert "value.msgpack' is larger than its manifest says" in text
    assert "recording file missing or unreadable" in text and "slots.vrrl" in text
    assert "manifest.json' cannot be read" in text
    assert "stray.bin' is not listed in its manifest" in text
    assert bad.stdout.splitlines()[-1].endswith("(digest): 4 problem(s)")
    report = json.loads(cli("store", "check", ".replay", "--json", cwd=project).stdout)
    assert report["ok"] is False and len(report["problems"]) == 4
    listing = json.loads(cli("inspect", ".replay", "--json", cwd=project).stdout)
    assert len(listing["summary"]["unreadable_manifests"]) == 1
    assert listing["summary"]["missing_files"] == 1


def test_store_check_reports_a_stranded_old_folder_and_reads_it(project: Path) -> None:
    # A record run killed between its two renames leaves only `.<test>.old`: readers take
    # it as the recording, and `store check` reports the leftover (exit 1), not a crash.
    tests = project / ".replay" / "test_things.py"
    (tests / "test_ring").rename(tests / ".test_ring.old")
    result = cli("store", "check", ".replay", cwd=project)
    assert result.returncode == 1, result.stdout + result.stderr
    problems = [line for line in result.stdout.splitlines() if line.startswith("problem: ")]
    assert len(problems) == 1 and ".test_ring.old' is left over" in problems[0]
    assert result.stdout.splitlines()[-1] == (
        "checked 5 recording(s) in '.replay' (digest): 1 problem(s)"
    )
    listing = cli("store", "list", ".replay", cwd=project)
    assert "missing" not in listing.stdout


def test_store_check_deep_finds_a_wrong_record_count(project: Path) -> None:
    manifest = project / ".replay" / "test_things.py" / "test_ring" / "manifest.json"
    body = json.loads(manifest.read_text())
    body["recordings"]["slots"]["records"] = 99
    manifest.write_text(json.dumps(body))
    assert cli("store", "check", ".replay", cwd=project).returncode == 0  # digests still match
    deep = cli("store", "check", ".replay", "--deep", cwd=project)
    assert deep.returncode == 1
    assert "holds 8 records but its manifest says 99" in deep.stdout


def test_store_prune_dry_run_then_yes(project: Path) -> None:
    source = project / "test_things.py"
    text = source.read_text()
    source.write_text(text.replace("def test_data(", "def test_data_renamed(").replace(
        "class TestGroup:", "class TestOther:"))  # fmt: skip
    dry = cli("store", "prune", ".replay", cwd=project)
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert (
        "would delete: test_things.py/test_data  (test_things.py::test_data: its module was "
        "collected and holds no such test)"
    ) in lines
    assert any("TestGroup" in line and "holds no such test" in line for line in lines)
    assert lines[-1] == "would delete 2 test folder(s), kept 3; run again with --yes to delete them"
    assert (project / ".replay" / "test_things.py" / "test_data").is_dir()
    done = cli("store", "prune", ".replay", "--yes", "--json", cwd=project)
    report = json.loads(done.stdout)
    assert report["deleted"] is True and report["kept"] == 3
    assert sorted(item["nodeid"] for item in report["prune"]) == [
        "test_things.py::TestGroup::test_in_class",
        "test_things.py::test_data",
    ]
    assert not (project / ".replay" / "test_things.py" / "test_data").exists()
    remaining = json.loads(cli("store", "list", ".replay", "--json", cwd=project).stdout)
    assert remaining["tests"] == 3
    # Without any test module left, nothing can be told unused: prune refuses.
    source.unlink()
    assert_one_line_error(
        cli("store", "prune", ".replay", "--yes", cwd=project), "no collected test under"
    )
    assert remaining == json.loads(cli("store", "list", ".replay", "--json", cwd=project).stdout)


def test_store_errors_are_one_line(tmp_path: Path) -> None:
    assert_one_line_error(cli("store", "list", cwd=tmp_path), "store '__replay__' does not exist")
    assert_one_line_error(cli("store", "check", cwd=tmp_path), "no recordings found under")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(
        cli("store", "check", tmp_path / "empty"), "no recordings found under", "Fix:"
    )
    (tmp_path / "file").write_text("x")
    assert_one_line_error(cli("store", "check", tmp_path / "file"), "is not a folder")
    (tmp_path / "s").mkdir()
    assert_one_line_error(
        cli("store", "prune", tmp_path / "s", "--rootdir", tmp_path / "nowhere"), "rootdir"
    )


def test_diff_two_stores_and_their_files(project: Path, pytester: pytest.Pytester) -> None:
    shutil.copytree(project / ".replay", project / "before")
    pytester.makepyfile(test_things=STORE_TESTS.format(count=10, last=4))
    pytester.runpytest("--replay-record", "-p", "no:cacheprovider").assert_outcomes(passed=5)
    same = cli("diff", "before/test_things.py/test_ring/slots.vrrl",
               ".replay/test_things.py/test_ring/slots.vrrl", cwd=project)  # fmt: skip
    assert same.returncode == 0
    result = cli("diff", "before", ".replay", cwd=project)
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines()[1] == (
        '  first divergence: test_things.py::test_data :: value: ["a"][2]: A has 3, B has 4'
    )
    data = cli("diff", "before/test_things.py/test_data/value.msgpack",
               ".replay/test_things.py/test_data/value.msgpack", "--json", cwd=project)  # fmt: skip
    report = json.loads(data.stdout)
    assert data.returncode == 1 and report["kind"] == "data"
    assert report["divergence"]["field"] == '["a"][2]'
    assert cli("diff", "before", "before", cwd=project).returncode == 0


# --------------------------------------------------------------------------- progress


def _run_on_terminal(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal; return (status, what the terminal got)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_replay", *args],
        stdout=subprocess.DEVNULL,
        stderr=slave,
        cwd=cwd,
    )
    os.close(slave)
    chunks = []
    while True:
        ready, _w, _x = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal (EIO on Linux)
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode()


def test_progress_bar_on_a_terminal_only(project: Path) -> None:
    status, seen = _run_on_terminal(["store", "check", ".replay"], project)
    assert status == 0
    assert "checking recordings [" in seen and "100% 5/5" in seen
    piped = cli("store", "check", ".replay", cwd=project)
    assert piped.returncode == 0 and piped.stderr == ""
    forced = cli("store", "check", ".replay", "--progress", "always", cwd=project)
    assert "100% 5/5" in forced.stderr
    status, seen = _run_on_terminal(["store", "check", ".replay", "--progress", "never"], project)
    assert status == 0 and seen == ""


def test_progress_draws_on_percent_changes_only() -> None:
    class Terminal:
        def __init__(self) -> None:
            self.text = ""

        def write(self, text: str) -> None:
            self.text += text

        def flush(self) -> None:
            pass

        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    with Progress("work", 1000, "auto", terminal) as bar:  # type: ignore[arg-type]
        for _ in range(1000):
            bar.advance()
    assert terminal.text.count("\r") == 101 + 1  # 0..100 percent, then the clearing return
    assert "100% 1000/1000" in terminal.text
    assert terminal.text.endswith("\r\x1b[K")
    quiet = Terminal()
    quiet.isatty = lambda: False  # type: ignore[method-assign]
    with Progress("work", 10, "auto", quiet) as bar:  # type: ignore[arg-type]
        bar.advance(10)
    assert quiet.text == ""


# --------------------------------------------------------------------------- helpers


@given(st.integers(0, 50), st.integers(-60, 60) | st.none(), st.integers(-60, 60) | st.none())
def test_parse_range_is_python_slicing(total: int, a: int | None, b: int | None) -> None:
    text = f"{'' if a is None else a}:{'' if b is None else b}"
    start, stop = parse_range(text, total)
    assert list(range(start, stop)) == list(range(total))[a:b]


def test_jsonable_and_cli_error() -> None:
    assert jsonable({"b": b"\x01\xff", "p": Path("x/y"), "t": (1, [2])}) == {
        "b": "01ff",
        "p": "x/y",
        "t": [1, [2]],
    }
    error = CliError("it broke", "mend it")
    assert str(error) == "it broke. Fix: mend it."


def test_commands_import_only_what_they_need(tmp_path: Path) -> None:
    path = write_ring(tmp_path / "a.vrrl", 4, 2)
    code = (
        "import sys\n"
        "from pytest_replay.cli import main\n"
        f"assert main(['inspect', {str(path)!r}]) == 0\n"
        "heavy = [m for m in ('pytest_replay.fleet', 'pytest_replay.journal', "
        "'pytest_replay.megakernel', 'pytest_replay.replication', 'pytest') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    help_only = subprocess.run(
        [sys.executable, "-c",
         "import sys\nfrom pytest_replay.cli import build_parser\nbuild_parser()\n"
         "assert 'numpy' not in sys.modules"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert help_only.returncode == 0, help_only.stderr
