"""A SIGKILL at every step of a commit: the store holds the complete old recording or the
complete new one, and the next writer cleans up (the commit is instrumented through
``PYTEST_REPLAY_COMMIT_FAULT``, so each kill point is hit exactly, without sleeps)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_replay.store import (
    COMMIT_FAULT_ENV,
    Manifest,
    ManifestEntry,
    ReplayStore,
    digest_bytes,
)

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

OLD = {"a": b"old a" * 50, "b": b"old b", "c": b"old c"}
NEW = {"a": b"new a" * 70, "b": b"old b", "d": b"new d"}
NEIGHBOUR = {"n": b"a recording of another test"}

# The child: one commit of test t's recordings, as a record run makes it.
CHILD = """
import sys
from pathlib import Path
from tests.test_store_crash import write
write(Path(sys.argv[1]), {} if sys.argv[2] == "clear" else dict(NEW))
""".replace("dict(NEW)", "__import__('tests.test_store_crash').test_store_crash.NEW")

REPLACE_STEPS = [
    "stage a.bin",
    "stage b.bin",
    "stage d.bin",
    "stage manifest.json",
    "staged",
    "retired",
    "swapped",
    "drop manifest.json",
    "drop a.bin",
    "drop b.bin",
    "drop c.bin",
    "dropped",
]
CLEAR_STEPS = ["retired", "drop manifest.json", "drop a.bin", "drop b.bin", "drop c.bin", "dropped"]


def write(root: Path, values: dict[str, bytes], test: str = "t") -> None:
    store = ReplayStore(root)
    entries = {
        name: ManifestEntry("data", f"{name}.bin", 1, 1, digest_bytes(data))
        for name, data in values.items()
    }
    files = {f"{name}.bin": data for name, data in values.items()}
    store.write_test(
        store.test_dir(f"t.py::{test}"), Manifest(f"t.py::{test}", "1", entries), files
    )


def read(root: Path, test: str = "t") -> dict[str, bytes] | None:
    store = ReplayStore(root)
    folder = store.test_dir(f"t.py::{test}")
    manifest = store.load_manifest(folder)
    if manifest is None:
        return None
    return {name: store.read_checked(folder, e) for name, e in manifest.recordings.items()}


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store") / "__replay__"
    write(root, OLD)
    write(root, NEIGHBOUR, test="u")
    return root


def child(root: Path, scenario: str, fault: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, COMMIT_FAULT_ENV: fault}
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(root), scenario],
        cwd=Path(__file__).parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("scenario", "steps"), [("replace", REPLACE_STEPS), ("clear", CLEAR_STEPS)]
)
def test_the_commit_steps_are_the_ones_killed_below(
    recorded: Path, tmp_path: Path, scenario: str, steps: list[str]
) -> None:
    root = tmp_path / "__replay__"
    shutil.copytree(recorded, root)
    trace = tmp_path / "trace"
    done = child(root, scenario, f"trace:{trace}")
    assert done.returncode == 0, done.stderr
    assert trace.read_text().splitlines() == steps
    assert read(root) == (NEW if scenario == "replace" else None)


@pytest.mark.parametrize(
    ("scenario", "step"),
    [("replace", step) for step in REPLACE_STEPS] + [("clear", step) for step in CLEAR_STEPS],
)
def test_a_kill_at_every_commit_step_loses_nothing(
    recorded: Path, tmp_path: Path, scenario: str, step: str
) -> None:
    root = tmp_path / "__replay__"
    shutil.copytree(recorded, root)
    neighbour = tree(root / "t" / "u")
    killed = child(root, scenario, f"die:{step}")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    new = NEW if scenario == "replace" else None
    # A reader (verify, store check) finds the old recording or the new one, complete.
    seen = read(root)
    assert seen in (OLD, new), step
    # The next writer finishes or undoes the commit and leaves nothing behind.
    recovered = ReplayStore(root).recover()
    after = read(root)
    assert after == seen, step
    assert tree(root / "t" / "u") == neighbour
    leftovers = [p.name for p in (root / "t").iterdir() if p.name.startswith(".")]
    assert leftovers == []
    assert recovered == ([] if step == "dropped" else [root / "t" / "t"])
