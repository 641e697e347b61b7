"""Symlinks, FIFOs and devices in a store: never followed, read, written through or deleted
through, by record, verify or any ``store`` command; two record runs at once."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from test_cli import cli as cli_subprocess

from pytest_replay._lock import StoreLocked, store_lock
from pytest_replay.cli import main

needs_posix = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and symlinks")

TESTS = """
def test_rec(replay):
    replay.data("v", {"value": 1})
    replay.data("w", [1, 2, 3])
"""


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The command line; in-process (cheap) unless it runs a pytest collection (prune)."""
    if "prune" in args:
        return cli_subprocess(*args, cwd=cwd)
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, redirect_stdout(out), redirect_stderr(err):
        mp.chdir(cwd)
        status = main([str(arg) for arg in args])
    return subprocess.CompletedProcess(args, status, out.getvalue(), err.getvalue())


def _folder_link(test: Path, outside: Path) -> None:
    for path in test.iterdir():
        (outside / path.name).write_bytes(path.read_bytes())
        path.unlink()
    test.rmdir()
    test.symlink_to(outside, target_is_directory=True)


def _module_link(test: Path, outside: Path) -> None:
    module = test.parent
    (outside / "test_rec").mkdir()
    for path in test.iterdir():
        (outside / "test_rec" / path.name).write_bytes(path.read_bytes())
        path.unlink()
    test.rmdir()
    module.rmdir()
    module.symlink_to(outside, target_is_directory=True)


def _part_link(test: Path, outside: Path) -> None:
    (outside / "v.msgpack").write_bytes((test / "v.msgpack").read_bytes())
    (test / "v.msgpack").unlink()
    (test / "v.msgpack").symlink_to(outside / "v.msgpack")


def _manifest_link(test: Path, outside: Path) -> None:
    (outside / "manifest.json").write_bytes((test / "manifest.json").read_bytes())
    (test / "manifest.json").unlink()
    (test / "manifest.json").symlink_to(outside / "manifest.json")


def _part_fifo(test: Path, outside: Path) -> None:
    (test / "v.msgpack").unlink()
    os.mkfifo(test / "v.msgpack")


def _manifest_fifo(test: Path, outside: Path) -> None:
    (test / "manifest.json").unlink()
    os.mkfifo(test / "manifest.json")


def _part_device(test: Path, outside: Path) -> None:
    (test / "v.msgpack").unlink()
    (test / "v.msgpack").symlink_to("/dev/zero")


PLANTS: dict[str, Callable[[Path, Path], None]] = {
    "folder-symlink": _folder_link,
    "module-symlink": _module_link,
    "part-symlink": _part_link,
    "manifest-symlink": _manifest_link,
    "part-fifo": _part_fifo,
    "manifest-fifo": _manifest_fifo,
    "part-dev-zero": _part_device,
}


@needs_posix
@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_nothing_outside_the_store_changes_and_every_error_is_clear(
    pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory, plant: str
) -> None:
    pytester.makepyfile(test_rec=TESTS)
    pytester.runpytest("--replay-record", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    store = pytester.path / "__replay__"
    outside = tmp_path_factory.mktemp("outside")
    (outside / "precious.txt").write_text("the user's own file")
    PLANTS[plant](store / "test_rec" / "test_rec", outside)
    before = snapshot(outside)

    verify = pytester.runpytest("--replay-verify", "-p", "no:cacheprovider")
    verify.assert_outcomes(failed=1)
    verify.stdout.fnmatch_lines(["*is a *Fix:*"])
    assert "Traceback" not in verify.stdout.str()
    record = pytester.runpytest("--replay-record", "-p", "no:cacheprovider")
    record.assert_outcomes(passed=1, errors=1)
    record.stdout.fnmatch_lines(["*could not store the recordings*is a *Fix:*"])
    # The error is reported once; the short summary repeats it (in full on a wide terminal).
    report = record.stdout.str().partition("short test summary info")[0]
    assert report.count("Fix:") == 1
    for args, status in (
        (("store", "check", "__replay__"), 1),
        (("store", "list", "__replay__"), 0),
        (("store", "prune", "__replay__", "--yes"), None),
        (("inspect", "__replay__"), None),
        (("diff", "__replay__", "__replay__"), None),
    ):
        done = cli(*args, cwd=pytester.path)
        assert "Traceback" not in done.stderr, (args, done.stderr)
        if status is not None:
            assert done.returncode == status, (args, done.stdout, done.stderr)
    checked = cli("store", "check", "__replay__", cwd=pytester.path)
    assert "problem:" in checked.stdout and "Fix:" in checked.stdout
    # One planted thing, one problem: the tree walk reports it, reading its recording
    # does not report it a second time.
    assert checked.stdout.count("problem:") == 1, checked.stdout
    assert snapshot(outside) == before
    assert os.path.lexists(store / "test_rec")


def test_a_recording_name_that_would_overwrite_the_manifest_is_refused(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("def test_m(replay):\n    replay.data('manifest', 1)\n")
    result = pytester.runpytest("--replay-record")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*recording name 'manifest' is reserved by the store*Fix:*"])
    assert not (pytester.path / "__replay__").exists()


# --------------------------------------------------------------------------- the lock


def test_a_second_writer_waits_says_so_then_times_out(tmp_path: Path) -> None:
    said: list[str] = []
    refused = pytest.raises(StoreLocked, match=r"still locked.*1.2 s.*Fix:")
    with store_lock(tmp_path), refused, store_lock(tmp_path, timeout=1.2, notify=said.append):
        pass  # pragma: no cover - never reached
    assert len(said) == 1 and "waiting for store" in said[0]
    with store_lock(tmp_path, timeout=0.1):  # released: taken at once
        pass


def test_a_waiting_writer_goes_on_once_the_lock_is_released(tmp_path: Path) -> None:
    said: list[str] = []
    entered = threading.Event()

    def hold() -> None:
        with store_lock(tmp_path):
            entered.set()
            time.sleep(1.3)

    holder = threading.Thread(target=hold)
    holder.start()
    entered.wait()
    with store_lock(tmp_path, timeout=30, notify=said.append):
        pass
    holder.join()
    assert len(said) == 1


CONCURRENT = """
import pytest

@pytest.mark.parametrize("n", range(20))
def test_many(replay, n):
    replay.data("v", {"n": n, "run": RUN})
    replay.data("w", list(range(n)))
"""


def test_two_concurrent_record_runs_leave_every_folder_complete(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_many=CONCURRENT.replace("RUN", "0"))
    pytester.runpytest("--replay-record").assert_outcomes(passed=20)
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    command = [sys.executable, "-m", "pytest", "--replay-record", "-q", "-p", "no:cacheprovider"]
    runs = [
        subprocess.Popen(command, cwd=pytester.path, env=env, stdout=subprocess.PIPE)
        for _ in range(2)
    ]
    for run in runs:
        out, _err = run.communicate(timeout=240)
        assert run.returncode == 0, out
    checked = cli("store", "check", "__replay__", "--deep", cwd=pytester.path)
    assert checked.returncode == 0, checked.stdout
    assert "checked 40 recording(s)" in checked.stdout
    pytester.runpytest("--replay-verify").assert_outcomes(passed=20)


def test_a_record_run_fails_clearly_when_the_store_stays_locked(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_rec=TESTS + TESTS.replace("test_rec", "test_rec2"))
    store = pytester.path / "__replay__"
    store.mkdir()
    with store_lock(store):
        result = pytester.runpytest_subprocess("--replay-record", "--replay-lock-timeout", "1.5")
    # The second test's store step fails at once: the run waits for the lock only once.
    result.assert_outcomes(passed=2, errors=2)
    assert result.stderr.str().count("waiting for store") == 1
    result.stderr.fnmatch_lines(["*waiting for store*locked by another record run*"])
    result.stdout.fnmatch_lines(["*still locked by another record run*--replay-lock-timeout*"])
    assert sorted(store.iterdir()) == []
