"""``@pytest.mark.replay_determinism``: run a test several times and compare its recordings.

``runs=N`` runs the test body N times in this process with fresh recorders.
``subprocess=True`` runs every run after the first in a child pytest process
with its own ``PYTHONHASHSEED`` (1, 2, ...), which is the only way to catch
recordings that depend on the iteration order of sets of strings.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import pytest

from pytest_replay._atomic import atomic_write_bytes
from pytest_replay.context import ReplayContext, nondeterminism
from pytest_replay.kinds import FinishedRecording, RecordingKind
from pytest_replay.report import Mismatch, ReplayDivergence, ReplayUsageError
from pytest_replay.session import ReplaySession

__all__ = ["DeterminismSpec", "dump_run", "load_run", "run_deterministically"]

Finished = Mapping[str, tuple[RecordingKind, FinishedRecording]]


@dataclass(frozen=True, slots=True)
class DeterminismSpec:
    runs: int
    subprocess: bool

    @classmethod
    def from_marker(cls, marker: pytest.Mark, nodeid: str) -> DeterminismSpec:
        if marker.args:
            raise ReplayUsageError(
                f"{nodeid}: replay_determinism takes keyword arguments only. "
                "Fix: write @pytest.mark.replay_determinism(runs=3)."
            )
        unknown = set(marker.kwargs) - {"runs", "subprocess"}
        if unknown:
            raise ReplayUsageError(
                f"{nodeid}: unknown replay_determinism argument(s) {sorted(unknown)}. "
                "Fix: use runs=N and subprocess=True|False."
            )
        runs = marker.kwargs.get("runs", 2)
        if not isinstance(runs, int) or isinstance(runs, bool) or not 2 <= runs <= 100:
            raise ReplayUsageError(
                f"{nodeid}: replay_determinism(runs={runs!r}) must be an int from 2 to 100. "
                "Fix: pass e.g. runs=2."
            )
        return cls(runs, bool(marker.kwargs.get("subprocess", False)))


def run_deterministically(
    item: pytest.Function,
    context: ReplayContext,
    call: Callable[[], object],
    complete: Callable[[], Finished],
    spec: DeterminismSpec,
    session: ReplaySession,
) -> None:
    """Run the test body ``spec.runs`` times; raise at the first run that differs."""
    __tracebackhide__ = True
    call()
    first = complete()
    for run in range(2, spec.runs + 1):
        if spec.subprocess:
            later = _run_in_child(item, session, run, first)
            how = f" (child process, PYTHONHASHSEED={run - 1})"
        else:
            context.new_run()
            call()
            later = {name: (o.kind, o.recorder.finish()) for name, o in context.entries().items()}
            how = ""
        mismatch = nondeterminism(item.nodeid, run, first, later, context.folder, how)
        if mismatch is not None:
            _fail(item, mismatch, session)


def _fail(item: pytest.Item, mismatch: Mismatch, session: ReplaySession) -> None:
    __tracebackhide__ = True
    session.tally.add("diverged")
    item.config.hook.pytest_replay_divergence(item=item, divergence=mismatch)
    raise ReplayDivergence(mismatch)


# --------------------------------------------------------------------------- child runs


def dump_run(path: Path, finished: Finished) -> None:
    """Write one run's recordings for the parent process (hidden ``--replay-dump-run``)."""
    body = {
        name: {"kind": kind.name, "data": result.data, "meta": dict(result.meta)}
        for name, (kind, result) in sorted(finished.items())
    }
    atomic_write_bytes(path, msgpack.packb(body, use_bin_type=True))


def load_run(
    path: Path, session: ReplaySession
) -> dict[str, tuple[RecordingKind, FinishedRecording]]:
    body: dict[str, Any] = msgpack.unpackb(path.read_bytes(), raw=False, strict_map_key=False)
    return {
        name: (
            session.kinds.get(str(entry["kind"])),
            FinishedRecording(bytes(entry["data"]), 0, dict(entry["meta"])),
        )
        for name, entry in body.items()
    }


def _run_in_child(
    item: pytest.Function, session: ReplaySession, run: int, first: Finished
) -> dict[str, tuple[RecordingKind, FinishedRecording]]:
    __tracebackhide__ = True
    config = item.config
    with tempfile.TemporaryDirectory(prefix="replay-run-") as scratch:
        dump = Path(scratch, "run.msgpack")
        command = [
            sys.executable,
            "-m",
            "pytest",
            item.nodeid,
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=",
            f"--rootdir={config.rootpath}",
            f"--replay-dump-run={dump}",
            f"--replay-seed={session.base_seed}",
        ]
        if config.inipath is not None:
            command.append(f"-c={config.inipath}")
        if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
            command += ["-p", "pytest_replay.plugin"]
        env = dict(os.environ, PYTHONHASHSEED=str(run - 1))
        env.pop("PYTEST_XDIST_WORKER", None)
        done = subprocess.run(
            command,
            cwd=config.rootpath,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0 or not dump.is_file():
            output = (done.stdout + done.stderr)[-3000:]
            raise ReplayUsageError(
                f"{item.nodeid}: run {run} in a child process (PYTHONHASHSEED={run - 1}) did not "
                f"complete (exit status {done.returncode}):\n{output}\n"
                "Fix: make the test pass on its own (pytest NODEID), or use subprocess=False."
            )
        return load_run(dump, session)
