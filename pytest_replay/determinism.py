"""``@pytest.mark.replay_determinism``: run a test several times and compare its recordings.

``runs=N`` runs the test body N times with fresh recorders. Every run after the first
is *perturbed*, so that what leaks into a recording shows up as a difference: the
wall clock is shifted by days (forward, then backward; ``time.time``, ``time_ns``,
``datetime.now``/``utcnow`` and ``date.today`` through time-machine, at C level), the
temp folder (``tempfile`` and ``TMPDIR``) is another one, and so is the thread switch
interval. ``subprocess=True`` runs those runs in child pytest processes, which adds
another ``PYTHONHASHSEED`` (never the parent's) and another process id. When a run
differs, the report names the perturbation that exposed it, found by rerunning the body
under each one alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgpack
import pytest

from pytest_replay._atomic import atomic_write_bytes
from pytest_replay.context import ReplayContext, nondeterminism
from pytest_replay.errors import render_error
from pytest_replay.kinds import FinishedRecording, RecordingKind
from pytest_replay.report import Mismatch, ReplayDivergence, ReplayUsageError
from pytest_replay.session import ReplaySession

__all__ = [
    "DeterminismSpec",
    "Perturbation",
    "child_perturbation",
    "dump_run",
    "load_run",
    "perturbed",
    "run_deterministically",
]

Finished = Mapping[str, tuple[RecordingKind, FinishedRecording]]
_DAY: Final = 86_400
_TEMP_VARIABLES: Final = ("TMPDIR", "TEMP", "TMP")
_HASH_SEEDS: Final = 2**32
# The command-line options a child run repeats (with their value as the next argument).
_FORWARDED: Final = ("-p", "-o", "--override-ini")


@dataclass(frozen=True, slots=True)
class Perturbation:
    """What a later run changes compared with the first one (zero/None: unchanged)."""

    run: int
    clock_shift_s: int = 0
    switch_interval: float | None = None
    other_temp: bool = False
    # Child processes only: their PYTHONHASHSEED (their pid differs anyway).
    hash_seed: int | None = None

    @classmethod
    def for_run(cls, run: int) -> Perturbation:
        """Run 2 is a day ahead, run 3 two days behind, run 4 three days ahead..."""
        sign = 1 if run % 2 == 0 else -1
        return cls(run, sign * (run - 1) * _DAY, 0.0001 * (run - 1), True)

    def parts(self) -> list[Perturbation]:
        """Each perturbation of this one alone (to find which one exposes a leak)."""
        return [
            dataclasses.replace(self, switch_interval=None, other_temp=False),
            dataclasses.replace(self, clock_shift_s=0, other_temp=False),
            dataclasses.replace(self, clock_shift_s=0, switch_interval=None),
        ]

    def describe(self) -> str:
        parts = []
        if self.clock_shift_s:
            days = self.clock_shift_s / _DAY
            parts.append(f"wall clock shifted {days:+g} day(s)")
        if self.other_temp:
            parts.append("another temp folder")
        if self.switch_interval is not None:
            parts.append(f"thread switch interval {self.switch_interval:g} s")
        if self.hash_seed is not None:
            parts.append(f"child process (PYTHONHASHSEED={self.hash_seed}, another pid)")
        return ", ".join(parts) or "no perturbation"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Perturbation:
        try:
            fields = json.loads(text)
            return cls(
                run=int(fields["run"]),
                clock_shift_s=int(fields["clock_shift_s"]),
                switch_interval=(
                    None if fields["switch_interval"] is None else float(fields["switch_interval"])
                ),
                other_temp=bool(fields["other_temp"]),
                hash_seed=None if fields["hash_seed"] is None else int(fields["hash_seed"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise pytest.UsageError(
                render_error(
                    f"--replay-perturb={text!r} is not a perturbation ({exc})",
                    fix="this internal option is written by replay_determinism(subprocess=True); "
                    "do not pass it.",
                )
            ) from None


def child_hash_seed(run: int, parent: str | None = None) -> int:
    """A ``PYTHONHASHSEED`` for child run ``run``, never the parent's own value."""
    parent = os.environ.get("PYTHONHASHSEED") if parent is None else parent
    base = int(parent) if parent is not None and parent.isdigit() else 0
    # Unset or "random": the parent's seed is unknown but random, so any fixed value differs.
    return (base + run - 1) % _HASH_SEEDS


def child_perturbation(config: pytest.Config) -> Perturbation | None:
    text = config.getoption("replay_perturb")
    return None if not text else Perturbation.from_json(text)


@contextlib.contextmanager
def perturbed(perturbation: Perturbation | None) -> Iterator[None]:
    """Run the body under ``perturbation``; everything is restored afterwards."""
    if perturbation is None:
        yield
        return
    with contextlib.ExitStack() as stack:
        if perturbation.switch_interval is not None:
            previous = sys.getswitchinterval()
            sys.setswitchinterval(perturbation.switch_interval)
            stack.callback(sys.setswitchinterval, previous)
        if perturbation.other_temp:
            stack.enter_context(_other_temp_folder(perturbation.run))
        if perturbation.clock_shift_s:
            import time_machine

            now = datetime.datetime.now(datetime.timezone.utc)
            shift = datetime.timedelta(seconds=perturbation.clock_shift_s)
            stack.enter_context(time_machine.travel(now + shift, tick=True))
        yield


@contextlib.contextmanager
def _other_temp_folder(run: int) -> Iterator[None]:
    folder = tempfile.mkdtemp(prefix=f"replay-determinism-run{run}-")
    saved = {name: os.environ.get(name) for name in _TEMP_VARIABLES}
    previous = tempfile.tempdir
    try:
        tempfile.tempdir = folder
        os.environ.update(dict.fromkeys(_TEMP_VARIABLES, folder))
        yield
    finally:
        tempfile.tempdir = previous
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        # Only this folder, which this function created for the run.
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True, slots=True)
class DeterminismSpec:
    runs: int
    subprocess: bool

    @classmethod
    def from_marker(cls, marker: pytest.Mark, nodeid: str) -> DeterminismSpec:
        if marker.args:
            raise ReplayUsageError(
                "replay_determinism takes keyword arguments only",
                where=nodeid,
                fix="write @pytest.mark.replay_determinism(runs=3).",
            )
        unknown = set(marker.kwargs) - {"runs", "subprocess"}
        if unknown:
            raise ReplayUsageError(
                f"unknown replay_determinism argument(s) {sorted(unknown)}",
                where=nodeid,
                fix="use runs=N and subprocess=True|False.",
            )
        runs = marker.kwargs.get("runs", 2)
        if not isinstance(runs, int) or isinstance(runs, bool) or not 2 <= runs <= 100:
            raise ReplayUsageError(
                f"replay_determinism(runs={runs!r}) must be an int from 2 to 100",
                where=nodeid,
                fix="pass e.g. runs=2.",
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

    def in_process(perturbation: Perturbation | None) -> Finished:
        context.new_run()
        with perturbed(perturbation):
            call()
        return {name: (o.kind, o.recorder.finish()) for name, o in context.entries().items()}

    for run in range(2, spec.runs + 1):
        perturbation = Perturbation.for_run(run)
        later: Finished
        if spec.subprocess:
            perturbation = dataclasses.replace(perturbation, hash_seed=child_hash_seed(run))
            later = _run_in_child(item, session, perturbation)
        else:
            later = in_process(perturbation)
        how = f" ({perturbation.describe()})"
        mismatch = nondeterminism(item.nodeid, run, first, later, context.folder, how)
        if mismatch is not None:
            exposed = _exposed_by(perturbation, first, in_process)
            mismatch = dataclasses.replace(mismatch, note=f"{mismatch.note}; {exposed}")
            _fail(item, mismatch, session)


def _exposed_by(
    perturbation: Perturbation,
    first: Finished,
    in_process: Callable[[Perturbation | None], Finished],
) -> str:
    """Which perturbation exposes the difference: rerun the body without any, then under
    each one alone (in this process, so a child's hash seed and pid are what is left)."""
    candidates: list[Perturbation | None] = [None, *perturbation.parts()]
    for candidate in candidates:
        try:
            later = in_process(candidate)
        except Exception:  # the body failed under it: that is no attribution
            continue
        if later.keys() != first.keys() or any(
            later[name][1].data != first[name][1].data for name in first
        ):
            if candidate is None:
                return (
                    "exposed without any perturbation: unseeded randomness, id(), or state "
                    "kept between runs"
                )
            return f"exposed by: {candidate.describe()}"
    if perturbation.hash_seed is not None:
        return (
            "exposed by: the child process (another PYTHONHASHSEED: hash()/set order, or "
            "another pid)"
        )
    return f"exposed by: the perturbations together ({perturbation.describe()})"


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
    item: pytest.Function, session: ReplaySession, perturbation: Perturbation
) -> dict[str, tuple[RecordingKind, FinishedRecording]]:
    """One run of ``item`` in a child pytest process with the parent's ini, addopts,
    command-line plugins and overrides and store settings, under ``perturbation``."""
    __tracebackhide__ = True
    config = item.config
    run = perturbation.run
    with tempfile.TemporaryDirectory(prefix="replay-run-") as scratch:
        dump = Path(scratch, "run.msgpack")
        command = [
            sys.executable,
            "-m",
            "pytest",
            item.nodeid,
            *_parent_options(config),
            "-q",
            # The child must not touch the parent's cache (--lf/--sw) or numbered temp dirs.
            "-o",
            f"cache_dir={Path(scratch, 'cache')}",
            f"--basetemp={Path(scratch, 'tmp')}",
            f"--rootdir={config.rootpath}",
            f"--replay-seed={session.base_seed}",
            f"--replay-dump-run={dump}",
            f"--replay-perturb={perturbation.to_json()}",
        ]
        if session.central is not None:  # the default (beside each module) needs nothing
            command.append(f"--replay-dir={session.central}")
        if config.pluginmanager.has_plugin("xdist"):
            command += ["-n", "0"]  # an `-n` in addopts would spread one test over workers
        env = dict(os.environ, PYTHONHASHSEED=str(perturbation.hash_seed))
        for name in [name for name in env if name.startswith("PYTEST_XDIST_")]:
            del env[name]
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
                f"run {run} in a child process ({perturbation.describe()}) did "
                f"not complete (exit status {done.returncode}):\n{output}\n",
                where=item.nodeid,
                fix="make the test pass on its own (pytest NODEID), or use subprocess=False.",
            )
        return load_run(dump, session)


def _parent_options(config: pytest.Config) -> list[str]:
    """What the child needs to load the same plugins, ini and overrides as this process.

    The ini file (with its addopts) and PYTEST_ADDOPTS reach the child as they are; from
    the command line only ``-p``, ``-o``/``--override-ini`` and ``-c`` are passed (test
    selection, output and mode options belong to the parent's run, not to one test).
    """
    options: list[str] = []
    if config.inipath is not None:
        options += ["-c", str(config.inipath)]
    args = list(config.invocation_params.args)
    index = 0
    while index < len(args):
        arg = args[index]
        if arg in _FORWARDED and index + 1 < len(args):
            options += [arg, args[index + 1]]
            index += 2
            continue
        if arg.startswith("--override-ini=") or (arg[:2] in ("-p", "-o") and len(arg) > 2):
            options.append(arg)
        index += 1
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD") and "pytest_replay.plugin" not in args:
        options += ["-p", "pytest_replay.plugin"]
    return options
