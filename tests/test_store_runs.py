"""The store across whole runs: partial runs never call recordings unused nor prune them,
the same recordings are found from any starting folder, and an interrupted commit is
recovered (and reported) by the next record run."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from pytest_replay.store import COMMIT_FAULT_ENV

MODULE = """
import os
import pytest

def test_a1(replay):
    replay.data("v", 1)

@pytest.mark.slow
def test_a2(replay):
    replay.data("v", 2)
    assert not os.environ.get("FAIL_A2")
"""

SHARDING = """
def pytest_addoption(parser):
    parser.addoption("--shard", action="store_true")

def pytest_collection_modifyitems(config, items):
    if config.getoption("shard"):
        dropped = items[1:]
        items[:] = items[:1]
        if DESELECT:
            config.hook.pytest_deselected(items=dropped)
"""


def summary_line(result: pytest.RunResult) -> str:
    lines = [line for line in result.outlines if line.startswith("replay: ")]
    return lines[0] if lines else ""


def tree(folder: Path) -> dict[str, bytes]:
    """Every file of the stores under ``folder`` (or of the store ``folder``)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in folder.rglob("*")
        if (p.is_file() and "__replay__" in p.parts) or "goldens" in p.parts
    }


@pytest.fixture
def stale(pytester: pytest.Pytester) -> Path:
    """test_a.py recorded with a third test, test_gone, since removed: one unused recording."""
    pytester.makeini("[pytest]\nmarkers = slow\n")
    pytester.makepyfile(test_a=MODULE + "\ndef test_gone(replay):\n    replay.data('v', 3)\n")
    pytester.runpytest("--replay-record").assert_outcomes(passed=3)
    pytester.makepyfile(test_a=MODULE)
    full = pytester.runpytest("--replay-verify")
    assert "1 unused" in summary_line(full)
    return pytester.path / "__replay__"


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["-k", "a1"], "-k"),
        (["-m", "slow"], "-m"),
        (["--deselect", "test_a.py::test_a1"], "--deselect"),
        (["test_a.py::test_a1"], "node ids"),
        (["-p", "sharding", "--shard"], "a plugin that deselects tests"),
        (["-p", "sharding_quiet", "--shard"], "a plugin that deselects tests"),
    ],
    ids=["k", "m", "deselect", "node-id", "sharding", "sharding-without-deselected-hook"],
)
def test_a_narrowed_run_reports_nothing_unused_and_refuses_to_prune(
    pytester: pytest.Pytester, stale: Path, args: list[str], named: str
) -> None:
    pytester.makepyfile(
        sharding=SHARDING.replace("DESELECT", "True"),
        sharding_quiet=SHARDING.replace("DESELECT", "False"),
    )
    pytester.syspathinsert()
    before = tree(stale)
    verify = pytester.runpytest("--replay-verify", *args)
    verify.assert_outcomes(passed=1)
    assert "unused" not in summary_line(verify)
    prune = pytester.runpytest("--replay-record", "--replay-prune", *args)
    assert prune.ret == pytest.ExitCode.USAGE_ERROR
    prune.stderr.fnmatch_lines([f"*--replay-prune refused*{named}*Fix:*"])
    assert tree(stale) == before


def test_last_failed_and_stepwise_narrow_but_failed_first_does_not(
    pytester: pytest.Pytester, stale: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = tree(stale)
    monkeypatch.setenv("FAIL_A2", "1")
    pytester.runpytest("--replay-verify").assert_outcomes(passed=1, failed=1)
    pytester.runpytest("--replay-verify", "--sw").assert_outcomes(passed=1, failed=1)
    monkeypatch.delenv("FAIL_A2")
    for flag in ("--lf", "--sw"):  # a pass of test_a2 ends each one's narrowing
        prune = pytester.runpytest("--replay-record", "--replay-prune", flag)
        prune.stderr.fnmatch_lines([f"*--replay-prune refused*{flag}*"])
        narrowed = pytester.runpytest("--replay-verify", flag)
        narrowed.assert_outcomes(passed=1)
        assert "unused" not in summary_line(narrowed), flag
    reordered = pytester.runpytest("--replay-verify", "--ff")
    reordered.assert_outcomes(passed=2)
    assert "1 unused" in summary_line(reordered)
    assert tree(stale) == before


def test_collect_only_never_writes(pytester: pytest.Pytester, stale: Path) -> None:
    before = tree(stale)
    listed = pytester.runpytest("--replay-record", "--co")
    assert listed.ret == 0
    assert "unused" not in summary_line(listed)
    refused = pytester.runpytest("--replay-record", "--replay-prune", "--co")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["*--replay-prune cannot be used with --collect-only*Fix:*"])
    assert tree(stale) == before
    pruned = pytester.runpytest("--replay-record", "--replay-prune")
    assert "1 pruned" in summary_line(pruned)
    assert not (stale / "test_a" / "test_gone").exists()


def test_cli_prune_decides_from_pytest_collection(pytester: pytest.Pytester, stale: Path) -> None:
    from pytest_replay.cli import main

    os.chdir(pytester.path)
    assert main(["store", "prune", "__replay__"]) == 0
    assert (stale / "test_a" / "test_gone").is_dir()
    assert main(["store", "prune", "__replay__", "--yes"]) == 0
    assert not (stale / "test_a" / "test_gone").exists()
    assert sorted(p.name for p in (stale / "test_a").iterdir()) == ["test_a1", "test_a2"]


# --------------------------------------------------------------------------- location


def test_the_same_recordings_are_found_from_any_folder(pytester: pytest.Pytester) -> None:
    tests = pytester.mkpydir("tests")
    (tests / "test_p.py").write_text("def test_p(replay):\n    replay.data('v', replay.seed)\n")
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    stored = tests / "__replay__" / "test_p" / "test_p" / "v.msgpack"
    assert stored.is_file()
    before = tree(pytester.path)
    for cwd, args in ((tests, []), (pytester.path, ["tests/test_p.py"]), (tests, ["test_p.py"])):
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(cwd)
            result = pytester.runpytest_subprocess(
                "--replay-verify", "-p", "no:cacheprovider", *args
            )
        result.assert_outcomes(passed=1)
    assert tree(pytester.path) == before


def test_the_summary_names_the_store_as_the_report_does_from_a_subfolder(
    pytester: pytest.Pytester,
) -> None:
    # From tests/, the report says "stored at __replay__/..." (relative to where pytest was
    # started): the summary line must name the same folder, not the rootdir-relative one.
    pytester.makeini("[pytest]\n")
    tests = pytester.mkpydir("tests")
    (tests / "test_p.py").write_text("def test_p(replay):\n    replay.data('v', 1)\n")
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    (tests / "test_p.py").write_text("def test_p(replay):\n    replay.data('v', 2)\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tests)
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*stored at __replay__/test_p/test_p/v.msgpack", "replay: 1 diverged (store: __replay__)"]
    )


def test_a_central_store_is_resolved_against_rootdir(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nreplay_dir = goldens\n")
    sub = pytester.mkpydir("sub")
    (sub / "test_c.py").write_text("def test_c(replay):\n    replay.data('v', 1)\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(sub)
        pytester.runpytest_subprocess("--replay-record", "-p", "no:cacheprovider")
        option = pytester.runpytest_subprocess(
            "--replay-verify", "--replay-dir", "goldens", "-p", "no:cacheprovider"
        )
    option.assert_outcomes(passed=1)
    assert (pytester.path / "goldens" / "sub" / "test_c.py" / "test_c").is_dir()
    assert not (sub / "goldens").exists() and not (sub / "__replay__").exists()


# --------------------------------------------------------------------------- recovery


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_killed_record_run_is_read_by_verify_and_recovered_by_the_next_record(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_k="def test_k(replay):\n    replay.data('v', VALUE)\n".replace("VALUE", "1")
    )
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    store = pytester.path / "__replay__"
    before = tree(store)
    pytester.makepyfile(test_k="def test_k(replay):\n    replay.data('v', 2)\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(COMMIT_FAULT_ENV, "die:retired")
        killed = pytester.runpytest_subprocess("--replay-record", "-p", "no:cacheprovider")
    assert killed.ret == -signal.SIGKILL
    assert (store / "test_k" / ".test_k.old").is_dir()
    assert not (store / "test_k" / "test_k").exists()
    pytester.makepyfile(test_k="def test_k(replay):\n    replay.data('v', 1)\n")
    stranded = tree(store)
    pytester.runpytest("--replay-verify").assert_outcomes(passed=1)
    assert tree(store) == stranded  # verify reads the .old and writes nothing
    recorded = pytester.runpytest("--replay-record", "-v")
    assert summary_line(recorded) == "replay: 1 recorded, 1 recovered (store: __replay__)"
    recorded.stdout.fnmatch_lines(["*recovered: *test_k*"])
    assert tree(store) == before


def test_prune_keeps_a_folder_holding_a_file_the_store_did_not_write(
    pytester: pytest.Pytester, stale: Path
) -> None:
    (stale / "test_a" / "test_gone" / "notes.txt").write_text("mine")
    pruned = pytester.runpytest("--replay-record", "--replay-prune")
    assert pruned.ret == 0
    assert "INTERNALERROR" not in pruned.stdout.str()
    assert "1 unused" in summary_line(pruned)
    pruned.stdout.fnmatch_lines(["replay: *notes.txt' is a regular file the store did not write*"])
    assert (stale / "test_a" / "test_gone" / "notes.txt").read_text() == "mine"


def test_a_folder_whose_manifest_names_another_test_is_corrupted_never_pruned(
    pytester: pytest.Pytester, stale: Path
) -> None:
    # A manifest that does not belong to its folder (moved by hand, or damaged) is reported
    # as corrupted, as `pytest-replay store check` reports it; prune never deletes it.
    manifest = stale / "test_a" / "test_gone" / "manifest.json"
    manifest.write_text(manifest.read_text().replace("test_a.py::test_gone", "test_a.py::test_a1"))
    before = tree(stale)
    verified = pytester.runpytest()
    assert "1 corrupted" in summary_line(verified) and "unused" not in summary_line(verified)
    pruned = pytester.runpytest("--replay-record", "--replay-prune")
    assert "1 corrupted" in summary_line(pruned) and "pruned" not in summary_line(pruned)
    assert tree(stale)["test_a/test_gone/manifest.json"] == before["test_a/test_gone/manifest.json"]
    assert (stale / "test_a" / "test_gone").is_dir()
