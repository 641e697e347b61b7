"""The pytest entry point (``pytest11: replay``): options, ini values and markers.

Every command-line option, ini value, marker and hook of pytest_replay is
registered here and nowhere else. A suite that uses neither the ``replay``
fixture nor the markers runs exactly as before: no store access, no files,
and the per-test hooks below return at their first line.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_replay import hookspecs
from pytest_replay.report import ReplayUsageError
from pytest_replay.session import CONTEXT_KEY, SESSION_PLUGIN_NAME, ReplaySession
from pytest_replay.store import Manifest, ManifestEntry, digest_bytes, safe_component

if TYPE_CHECKING:
    from pytest_replay.context import ReplayContext
    from pytest_replay.kinds import KindRegistry

# Only light modules are imported above: numpy, msgpack and the recorders are imported the
# first time a test uses replay, so that the plugin costs nothing to suites that do not.
MARKER = "replay_determinism"

MARKERS = (
    "replay_determinism(runs=2, subprocess=False): run the test `runs` times with fresh "
    "recorders and fail if any run's recordings differ from the first run's; subprocess=True "
    "runs the later runs in child processes with other PYTHONHASHSEEDs.",
    "gpu: the test needs CuPy and a CUDA GPU; skipped with the reason when either is missing.",
)
# Kinds that ship with pytest_replay beyond ring/data: their modules are imported on first use.
PACKAGED_KINDS = {
    "pytest_replay.fleet.kind": ("fleet",),
    "pytest_replay.journal.kind": ("journal", "reduce"),
    "pytest_replay.megakernel.kind": ("megakernel",),
    "pytest_replay.replication.kind": ("replication",),
}
_PHASES_FAILED = pytest.StashKey[bool]()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def _record_mode(value: str) -> str:
    if value in ("all", "new"):
        return value
    # The mode is optional, so `pytest --replay-record tests/` hands the path to it.
    raise argparse.ArgumentTypeError(
        f"{value!r} is not a record mode (all, new). "
        f"Fix: put paths before the flag (pytest {value} --replay-record) "
        f"or give the mode (--replay-record=all {value})."
    )


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("replay", "deterministic record / replay (pytest_replay)")
    group.addoption(
        "--replay-record",
        action="store",
        nargs="?",
        const="all",
        default=None,
        type=_record_mode,
        metavar="{all,new}",
        dest="replay_record",
        help="write the recordings of every test that ran and passed. 'all' (default) "
        "rewrites existing recordings; 'new' writes only missing ones and verifies the rest.",
    )
    group.addoption(
        "--replay-verify",
        action="store_true",
        default=False,
        dest="replay_verify",
        help="read-only store: compare every recording a test produces with the stored one.",
    )
    group.addoption(
        "--replay-dir",
        action="store",
        default=None,
        metavar="PATH",
        dest="replay_dir",
        help="where recordings are stored (default: the replay_dir ini value, '.replay').",
    )
    group.addoption(
        "--replay-seed",
        action="store",
        type=int,
        default=0,
        metavar="N",
        dest="replay_seed",
        help="base of every per-test seed (replay.seed); default 0.",
    )
    group.addoption(
        "--replay-prune",
        action="store_true",
        default=False,
        dest="replay_prune",
        help="with --replay-record: delete stored recordings that no collected test produced.",
    )
    parser.addini(
        "replay_dir",
        help="folder of stored recordings, relative to rootdir (default: .replay).",
        default=".replay",
    )
    parser.addini(
        "replay_fail_on_unused",
        help="fail the run when stored recordings were not produced by any collected test.",
        type="bool",
        default=False,
    )
    group.addoption(
        "--replay-dump-run",
        action="store",
        default=None,
        dest="replay_dump_run",
        help=argparse.SUPPRESS,  # internal: child runs of replay_determinism(subprocess=True)
    )


def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    if config.getoption("replay_record") and config.getoption("replay_verify"):
        raise pytest.UsageError(
            "--replay-record and --replay-verify cannot be used together. "
            "Fix: record first (pytest --replay-record), then verify (pytest --replay-verify)."
        )
    if config.getoption("replay_prune") and not config.getoption("replay_record"):
        raise pytest.UsageError(
            "--replay-prune only works together with --replay-record. "
            "Fix: run pytest --replay-record --replay-prune."
        )
    # The fixtures live in pytest_replay.fixtures (the top-level fixtures/ folder).
    fixtures = importlib.import_module("pytest_replay.fixtures")
    if not config.pluginmanager.is_registered(fixtures):
        config.pluginmanager.register(fixtures, "pytest_replay.fixtures")
    config.pluginmanager.register(ReplaySession(config), SESSION_PLUGIN_NAME)


def pytest_replay_register_kinds(registry: KindRegistry) -> None:
    from pytest_replay.kinds import builtin_kinds

    for kind in builtin_kinds():
        registry.register(kind)
    for module, names in PACKAGED_KINDS.items():
        registry.register_module(module, names)


def _context(item: pytest.Item) -> ReplayContext | None:
    return item.stash.get(CONTEXT_KEY, None)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("gpu") is not None:
        from pytest_replay.megakernel.backend import gpu_available

        ok, reason = gpu_available()
        if not ok:
            pytest.skip(reason)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    marker = pyfuncitem.get_closest_marker(MARKER)
    if marker is None:
        return None
    session = _session(pyfuncitem.config)
    if session.dump_dir is not None:
        return None  # a child run: run the body once, the parent compares
    __tracebackhide__ = True
    from pytest_replay.determinism import DeterminismSpec, run_deterministically

    spec = DeterminismSpec.from_marker(marker, pyfuncitem.nodeid)
    context = _context(pyfuncitem)
    if context is None:
        raise ReplayUsageError(
            f"{pyfuncitem.nodeid} is marked replay_determinism but does not use the replay "
            "fixture, so there is nothing to compare. Fix: add a `replay` argument and record "
            "what the test produces (replay.ring / replay.data / ...)."
        )
    function = pyfuncitem.obj
    if not callable(function) or getattr(function, "is_hypothesis_test", False):
        raise ReplayUsageError(
            f"{pyfuncitem.nodeid}: replay_determinism cannot rerun a Hypothesis test. "
            "Fix: mark a plain test instead."
        )
    names = pyfuncitem._fixtureinfo.argnames
    arguments = {name: pyfuncitem.funcargs[name] for name in names}

    def call() -> object:
        result: object = function(**arguments)
        if hasattr(result, "__await__"):
            raise ReplayUsageError(
                f"{pyfuncitem.nodeid}: replay_determinism supports plain (not async) test "
                "functions. Fix: drive the event loop inside a plain test."
            )
        return result

    run_deterministically(pyfuncitem, context, call, context.complete_once, spec, session)
    return True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    # End-of-test checks run here, so that they fail the test from its call phase.
    __tracebackhide__ = True
    result = yield
    context = _context(item)
    if context is not None:
        finished = context.complete_once()
        session = _session(item.config)
        if session.dump_dir is not None:
            from pathlib import Path

            from pytest_replay.determinism import dump_run

            dump_run(Path(session.dump_dir), finished)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    context = _context(item)
    if context is None:
        return report
    if report.failed:
        item.stash[_PHASES_FAILED] = True
    if report.when == "teardown":
        _finish_test(item, context, report)
    return report


def _finish_test(item: pytest.Item, context: ReplayContext, report: pytest.TestReport) -> None:
    session = _session(item.config)
    finished = context.finished
    if session.mode == "off" or session.dump_dir is not None or finished is None:
        if session.mode == "record" and item.stash.get(_PHASES_FAILED, False):
            session.tally.add("not recorded (test failed)", context.folder)
        return
    if item.stash.get(_PHASES_FAILED, False):
        if session.mode == "record":
            session.tally.add("not recorded (test failed)", context.folder)
        return
    if session.mode == "verify":
        session.tally.add("verified", context.folder, len(finished))
        return
    entries: dict[str, ManifestEntry] = {}
    files: dict[str, bytes] = {}
    for name, (kind, result) in sorted(finished.items()):
        file = safe_component(name) + kind.extension
        files[file] = result.data
        entries[name] = ManifestEntry(
            kind.name, file, kind.version, result.records, digest_bytes(result.data), result.meta
        )
    manifest = Manifest(context.test_id, _plugin_version(), entries)
    try:
        context.store.write_test(context.folder, manifest, files)
    except OSError as exc:
        report.outcome = "failed"
        report.longrepr = (
            f"replay: could not store the recordings of {item.nodeid} in {context.folder}: "
            f"{exc}. Fix: check that the replay_dir is writable and the disk is not full."
        )
        session.tally.add("not recorded (store failed)", context.folder)
        return
    for name in finished:
        status = "verified" if name in context.checked else "recorded"
        session.tally.add(status, context.folder / entries[name].file)


def _plugin_version() -> str:
    from pytest_replay import __version__

    return __version__


def _session(config: pytest.Config) -> ReplaySession:
    session: Any = config.pluginmanager.get_plugin(SESSION_PLUGIN_NAME)
    assert isinstance(session, ReplaySession)
    return session
