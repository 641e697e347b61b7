"""The per-test hooks: determinism reruns, end-of-test checks, storing recordings.

They are registered (:func:`register`) by the first ``replay`` fixture of a run,
so a suite, or an xdist worker, that never uses the fixture pays nothing per test.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Final

import pytest

from pytest_replay.errors import ReplayError, render_error
from pytest_replay.markers import MARKER
from pytest_replay.outcome import Outcome
from pytest_replay.report import ReplayUsageError
from pytest_replay.session import CONTEXT_KEY, SESSION_PLUGIN_NAME, ReplaySession
from pytest_replay.store import Manifest, ManifestEntry, StoreError, digest_bytes, part_name

if TYPE_CHECKING:
    from pytest_replay.context import ReplayContext

__all__ = ["register"]

RUNTEST_PLUGIN_NAME: Final = "replay-runtest"
_PHASES_FAILED = pytest.StashKey[bool]()
# Set when the end-of-test check (after the test body returned) raised our error.
_FAILED_AT_END = pytest.StashKey[bool]()


def register(config: pytest.Config) -> None:
    """Register these hooks with ``config`` (once; later calls do nothing)."""
    manager = config.pluginmanager
    if manager.get_plugin(RUNTEST_PLUGIN_NAME) is None:
        manager.register(_RuntestHooks(), RUNTEST_PLUGIN_NAME)


def _context(item: pytest.Item) -> ReplayContext | None:
    return item.stash.get(CONTEXT_KEY, None)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    marker = pyfuncitem.get_closest_marker(MARKER)
    if marker is None:
        return None
    session = _session(pyfuncitem.config)
    __tracebackhide__ = True
    from pytest_replay import determinism

    context = _context(pyfuncitem)
    if session.dump_dir is not None:
        # A child run: run the body once, under the parent's perturbation; the parent compares.
        perturbation = determinism.child_perturbation(pyfuncitem.config)
        with determinism.perturbed(perturbation):
            pyfuncitem.obj(**_arguments(pyfuncitem))
        return True
    spec = determinism.DeterminismSpec.from_marker(marker, pyfuncitem.nodeid)
    if context is None:
        raise ReplayUsageError(
            f"{pyfuncitem.nodeid} is marked replay_determinism but does not use the replay "
            "fixture, so there is nothing to compare",
            fix="add a `replay` argument and record what the test produces "
            "(replay.ring / replay.data / ...).",
        )
    function = pyfuncitem.obj
    if not callable(function) or getattr(function, "is_hypothesis_test", False):
        raise ReplayUsageError(
            "replay_determinism cannot rerun a Hypothesis test",
            where=pyfuncitem.nodeid,
            fix="mark a plain test instead.",
        )
    arguments = _arguments(pyfuncitem)

    def call() -> object:
        result: object = function(**arguments)
        if hasattr(result, "__await__"):
            raise ReplayUsageError(
                "replay_determinism supports plain (not async) test functions",
                where=pyfuncitem.nodeid,
                fix="drive the event loop inside a plain test.",
            )
        return result

    determinism.run_deterministically(
        pyfuncitem, context, call, context.complete_once, spec, session
    )
    return True


def _arguments(item: pytest.Function) -> dict[str, object]:
    return {name: item.funcargs[name] for name in item._fixtureinfo.argnames}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # A rerun (pytest-rerunfailures, flaky) runs the same item again: it starts with fresh
    # recorders and forgets that an earlier attempt failed, so the passing attempt records.
    if CONTEXT_KEY in item.stash:
        del item.stash[CONTEXT_KEY]
    item.stash[_PHASES_FAILED] = False
    item.stash[_FAILED_AT_END] = False


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    # End-of-test checks run here, so that they fail the test from its call phase.
    __tracebackhide__ = True
    result = yield
    context = _context(item)
    if context is not None:
        try:
            finished = context.complete_once()
        except ReplayError:
            item.stash[_FAILED_AT_END] = True
            raise
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
    if report.when == "call" and call.excinfo is not None and item.stash.get(_FAILED_AT_END, False):
        # The check ran after the test body returned: no line of the test raised it, and
        # the frames are the hook wrappers' (ours, pytest's, other plugins'). The message
        # names the recording, the difference and the re-record command: show only it.
        report.longrepr = call.excinfo.getrepr(style="value")
    if report.when == "teardown":
        _finish_test(item, context, report)
    return report


def _finish_test(item: pytest.Item, context: ReplayContext, report: pytest.TestReport) -> None:
    session = _session(item.config)
    finished = context.finished
    if session.mode == "off" or session.dump_dir is not None or finished is None:
        if session.mode == "record" and item.stash.get(_PHASES_FAILED, False):
            session.tally.add(Outcome.NOT_RECORDED_TEST_FAILED, context.folder)
        return
    if item.stash.get(_PHASES_FAILED, False):
        if session.mode == "record":
            session.tally.add(Outcome.NOT_RECORDED_TEST_FAILED, context.folder)
        return
    if session.mode == "verify":
        for name, (kind, _) in sorted(finished.items()):
            outcome = Outcome.VERIFIED if name in context.checked else Outcome.NOT_RECORDED
            session.tally.add(outcome, context.path(name, kind.name))
        return
    entries: dict[str, ManifestEntry] = {}
    files: dict[str, bytes] = {}
    for name, (kind, result) in sorted(finished.items()):
        file = part_name(name, kind.extension)
        files[file] = result.data
        entries[name] = ManifestEntry(
            kind.name, file, kind.version, result.records, digest_bytes(result.data), result.meta
        )
    manifest = Manifest(context.test_id, _plugin_version(), entries)
    try:
        context.store.write_test(context.folder, manifest, files)
    except (OSError, StoreError) as exc:
        report.outcome = "failed"
        # A refusal of the store names its own fix; an OS error gets the usual one.
        fix = (
            None
            if isinstance(exc, StoreError)
            else "check that the replay_dir is writable and the disk is not full."
        )
        report.longrepr = render_error(
            f"replay: could not store the recordings of {item.nodeid} in {context.folder}: {exc}",
            fix=fix,
        )
        session.tally.add(Outcome.NOT_RECORDED_STORE_FAILED, context.folder)
        return
    for name in finished:
        outcome = Outcome.VERIFIED if name in context.checked else Outcome.RECORDED
        session.tally.add(outcome, context.folder / entries[name].file)


def _plugin_version() -> str:
    from pytest_replay import __version__

    return __version__


def _session(config: pytest.Config) -> ReplaySession:
    session: Any = config.pluginmanager.get_plugin(SESSION_PLUGIN_NAME)
    assert isinstance(session, ReplaySession)
    return session


class _RuntestHooks:
    """The hooks of this module as one plugin object (a module object can leave
    ``sys.modules`` between in-process pytest runs; this cannot)."""

    pytest_pyfunc_call = staticmethod(pytest_pyfunc_call)
    pytest_runtest_setup = staticmethod(pytest_runtest_setup)
    pytest_runtest_call = staticmethod(pytest_runtest_call)
    pytest_runtest_makereport = staticmethod(pytest_runtest_makereport)
