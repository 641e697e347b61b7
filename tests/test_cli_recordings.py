"""Every CLI verb on every kind of recording the plugin writes; exit statuses; suggestions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pytest_replay.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
#: One stored recording of each kind the committed examples hold (found by name, wherever
#: the store keeps it).
EXAMPLE_FILES = {
    "journal": ("agent_journal", "inputs.jrnl"),
    "reduce": ("agent_journal", "audit.jreduce"),
    "megakernel": ("megakernel", "ring.mkvrrl"),
    "fleet": ("robot_fleet", "fleet.fleet"),
}


def stored(root: Path, name: str) -> Path:
    return sorted(root.rglob(name))[0]


SOURCE = """
import dataclasses, datetime, decimal, enum, os
from pytest_replay import RecordedSlot
from pytest_replay.replication import LinkSpec, NetworkSchedule, WriteStream

EPOCH = int(os.environ.get("EPOCH", "0"))

class Mode(enum.Enum):
    FAST = "fast"

@dataclasses.dataclass(frozen=True)
class Summary:
    when: datetime.datetime
    price: decimal.Decimal
    mode: Mode
    tags: frozenset

def test_all(replay):
    ring = replay.ring()
    for i in range(5):
        ring.append(RecordedSlot(timestamp_ns=i, slot_idx=i, tenant_id=1, opcode=3,
                                 args=(i, 0, 0, 0), epoch=i + (EPOCH if i == 2 else 0)))
    replay.data("summary", Summary(datetime.datetime(2024, 5, 1, 12), decimal.Decimal("1.50"),
                                   Mode.FAST, frozenset({"b", "a"})))
    schedule = NetworkSchedule(seed=1, nodes=(1, 2), end_ms=600, quiet_after_ms=300,
                               link=LinkSpec(latency_ms=2), writes=(WriteStream(50, 50, 1, 3),))
    replay.replication("cluster", schedule).run()
"""


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    status = main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """kind -> a stored file; the plugin's own recordings come from a real record run."""
    root = tmp_path_factory.mktemp("recordings")
    found = {}
    for kind, (example, name) in EXAMPLE_FILES.items():
        found[kind] = shutil.copy(stored(EXAMPLES / example, name), root / name)
    return {kind: Path(path) for kind, path in found.items()}


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    pytester.makepyfile(test_all=SOURCE)
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    folder = stored(pytester.path, "ring.vrrl").parent
    old = pytester.path / "old"
    shutil.copytree(folder, old)
    monkeypatch.setenv("EPOCH", "9")
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    return {
        "ring": folder / "ring.vrrl",
        "data": folder / "summary.msgpack",
        "replication": folder / "cluster.rpltrace",
        "old-ring": old / "ring.vrrl",
        "old-data": old / "summary.msgpack",
        "store": folder.parent.parent,
    }


def facts_agree(text: str, report: dict[str, object]) -> None:
    """Every fact of ``inspect --json`` is in the text, and the text has no others."""
    lines = text.splitlines()
    assert lines[0] == f"{report['path']}: {report['label']}"
    summary = report["summary"]
    assert isinstance(summary, dict)
    facts = [line for line in lines[1:] if line.startswith("  ") and not line.startswith("  #")]
    keys = [line.split(":", 1)[0].strip() for line in facts]
    assert keys == list(summary)
    for key, value in summary.items():
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            assert f"  {key}: {value}" in lines


def check_every_verb(capsys: pytest.CaptureFixture[str], path: Path) -> None:
    status, text, err = run(capsys, "inspect", path, "-n", "3")
    assert status == 0, err
    status, body, err = run(capsys, "inspect", path, "-n", "3", "--json")
    assert status == 0, err
    facts_agree(text, json.loads(body))
    status, out, err = run(capsys, "textconv", path)
    assert status == 0 and "not a recording" not in out, (out, err)
    assert out == run(capsys, "textconv", path)[1]  # stable
    status, out, err = run(capsys, "diff", path, path)
    assert status == 0 and out.startswith("same:"), (out, err)


@pytest.mark.parametrize("kind", sorted(EXAMPLE_FILES))
def test_every_verb_on_the_example_recordings(
    kind: str, recordings: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    check_every_verb(capsys, recordings[kind])


def test_every_verb_on_a_recorded_ring_data_and_replication(
    project: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    for kind in ("ring", "data", "replication"):
        check_every_verb(capsys, project[kind])
    status, out, _err = run(capsys, "inspect", project["data"])
    assert '  #1 path=.when value="datetime.datetime(2024, 5, 1, 12, 0)"' in out
    assert "  #3 path=.mode value=test_all:Mode.FAST" in out
    assert "  #4 path=.tags value=\"frozenset({'a', 'b'})\"" in out
    status, out, _err = run(capsys, "diff", project["old-ring"], project["ring"])
    assert status == 1
    assert "  first divergence: #2 epoch: A has 2, B has 11" in out
    assert "  summary: 1 of 5 records differ" in out
    status, out, _err = run(capsys, "diff", project["old-data"], project["data"])
    assert status == 0  # the data value did not change
    status, out, _err = run(capsys, "inspect", project["store"], "--test", "test_all.py::test_al")
    assert status == 2 and "(did you mean 'test_all.py::test_all'?)" in _err


def test_fleet_verbs_read_the_stored_fleet_recording(
    recordings: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fleet = recordings["fleet"]
    status, out, err = run(capsys, "fleet", "replay", fleet, "--steps", "2", "--json")
    assert status == 0, err
    report = json.loads(out)
    assert report["valid"] and report["nodes"] == 720 and len(report["order"]) == 2
    status, out, err = run(capsys, "fleet", "graph", fleet)
    assert status == 0 and out.startswith("digraph fleet {") and out.endswith("}\n"), err
    assert out.count(" -> ") == report["edges"]
    status, near, err = run(
        capsys, "fleet", "graph", fleet, "--around", "1:plan:2", "--radius", "1"
    )
    assert status == 0, err
    assert "n" in near and "fillcolor=salmon" in near and near.count("[label=") < 10
    status, _out, err = run(capsys, "fleet", "graph", fleet, "-o", tmp_path / "g.dot")
    assert status == 0 and (tmp_path / "g.dot").read_text() == out
    # Usage errors: status 2 with a hint that fits.
    status, _out, err = run(capsys, "fleet", "replay", fleet, tmp_path)
    assert status == 2 and "pass the recording alone" in err
    status, _out, err = run(capsys, "fleet", "replay", tmp_path / "topology.toml")
    assert status == 2 and "no fleet logs given" in err
    status, _out, err = run(capsys, "fleet", "graph", fleet, "--around", "1:plan:99999")
    assert status == 2 and "was not recorded" in err


@pytest.mark.parametrize(
    ("argv", "status", "needle"),
    [
        (["inspct", "x"], 2, "(did you mean 'inspect'?)"),
        (["fleet", "grph", "x"], 2, "(did you mean 'graph'?)"),
        (["inspect", "x", "--jsn"], 2, "(did you mean '--json'?)"),
        (["reduce", "x", "--mode", "adit"], 2, "(did you mean 'audit'?)"),
        (["inspect", "missing.vrrl"], 2, "'missing.vrrl' does not exist"),
    ],
)
def test_usage_errors_exit_2_with_a_suggestion(
    argv: list[str], status: int, needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    got, _out, err = run(capsys, *argv)
    assert got == status and needle in err and err.count("\n") == 1, err


def test_a_corrupt_recording_exits_1_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "summary.msgpack"
    path.write_bytes(b"\xc1")
    status, _out, err = run(capsys, "inspect", path)
    assert status == 1
    assert err.startswith(f"pytest-replay: error: '{path}' does not decode as a recording of kind")
    assert "'recording'" not in err


def test_an_unknown_kind_suggests_the_close_one() -> None:
    from pytest_replay.cli.detect import kind_registry
    from pytest_replay.report import ReplayUsageError

    with pytest.raises(ReplayUsageError, match="Fix: did you mean 'ring'"):
        kind_registry().get("rign")
