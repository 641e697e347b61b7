"""The pytest entry point (``pytest11: replay``): options, ini values and markers.

Every command-line option, ini value and marker of pytest_replay is registered
here and nowhere else. A suite that uses neither the ``replay`` fixture nor the
markers runs exactly as before, and pays nothing per test: the per-test hooks
(:mod:`pytest_replay.runtest`) are registered by the first ``replay`` fixture
of a run.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pytest

from pytest_replay import hookspecs
from pytest_replay._lock import DEFAULT_TIMEOUT
from pytest_replay.errors import render_error
from pytest_replay.markers import GPU_MARKER, MARKER
from pytest_replay.packaged import PACKAGED_KINDS, gpu_available
from pytest_replay.policy import MODE_INI, run_policy
from pytest_replay.session import SESSION_PLUGIN_NAME, ReplaySession

if TYPE_CHECKING:
    from pytest_replay.kinds import KindRegistry

# Only light modules are imported above: numpy, msgpack and the recorders are imported the
# first time a test uses replay, so that the plugin costs nothing to suites that do not.
# The plugin acts on these markers (markers.py) and on no other: every one is registered here.
MARKERS = (
    f"{MARKER}(runs=2, subprocess=False): run the test `runs` times with fresh recorders, the "
    "later runs under a shifted wall clock, other temp paths and thread switch interval, and "
    "fail if any run's recordings differ from the first run's; subprocess=True runs the later "
    "runs in child processes (another PYTHONHASHSEED and pid as well).",
    f"{GPU_MARKER}: the test needs CuPy and a CUDA GPU; skipped with the reason when either "
    "is missing.",
)
# `-p no:replay` blocks the plugin itself; `-p no:detreplay` blocks the distribution-named
# alias (pytest_replay.alias), which this plugin then obeys by staying inert.
ALIAS_PLUGIN_NAME = "detreplay"
_ACTIVE = pytest.StashKey[bool]()
# The markers the collection hook acts on.
_OURS = frozenset((MARKER, GPU_MARKER))


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def _record_mode(value: str) -> str:
    if value in ("all", "new"):
        return value
    # The mode is optional, so `pytest --replay-record tests/` hands the path to it.
    raise argparse.ArgumentTypeError(
        render_error(
            f"{value!r} is not a record mode (all, new)",
            fix=f"write --replay-record=all or --replay-record=new; if {value!r} is a path, "
            f"put it before the flag (pytest {value} --replay-record).",
        )
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
        help="one central store for every recording, relative to rootdir (default: the "
        "replay_dir ini value; unset: __replay__ beside each test module); a conftest "
        "pytest_replay_store_dir hook that returns a folder overrides it.",
    )
    group.addoption(
        "--replay-lock-timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="how long a record run waits for another one to release a store (default 60).",
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
        "--replay-diff",
        action="store",
        choices=("first", "full"),
        default="first",
        dest="replay_diff",
        help="first (default): fail at the line that produced the first difference. full: run "
        "the test to its end, then report every difference (summary in the failure, complete "
        "diff under .replay-report/).",
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
        help="one central store for every recording, relative to rootdir "
        "(default: unset, __replay__ beside each test module).",
        default="",
    )
    parser.addini(
        MODE_INI,
        help="the mode of a run without --replay-record / --replay-verify: verify (the "
        "default: check the recordings that exist) or off (use no store).",
        default="",
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
    group.addoption(
        "--replay-perturb",
        action="store",
        default=None,
        dest="replay_perturb",
        help=argparse.SUPPRESS,  # internal: what a child run of replay_determinism changes
    )


def pytest_configure(config: pytest.Config) -> None:
    # Registered even when inert, so that --strict-markers accepts marked tests either way.
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    if config.pluginmanager.is_blocked(ALIAS_PLUGIN_NAME):
        return
    policy = run_policy(config)
    config.stash[_ACTIVE] = True
    # The fixtures live in pytest_replay.fixtures (the top-level fixtures/ folder).
    fixtures = importlib.import_module("pytest_replay.fixtures")
    if not config.pluginmanager.is_registered(fixtures):
        config.pluginmanager.register(fixtures, "pytest_replay.fixtures")
    config.pluginmanager.register(ReplaySession(config, policy), SESSION_PLUGIN_NAME)


def pytest_replay_register_kinds(registry: KindRegistry) -> None:
    from pytest_replay.kinds import builtin_kinds

    for kind in builtin_kinds():
        registry.register(kind)
    for module, names in PACKAGED_KINDS.items():
        registry.register_module(module, names)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: Sequence[pytest.Item]) -> None:
    # Marked at collection, not in a per-test hook: the GPU is probed once, and only
    # when some collected test needs it.
    if not config.stash.get(_ACTIVE, False):
        return
    needs_gpu = []
    determinism = False
    chains: dict[int, frozenset[str]] = {}
    for item in items:
        names = _marker_names(item.parent, chains)
        # Most tests carry markers of their own (parametrize): only ours are looked at.
        for mark in item.own_markers:
            if mark.name in _OURS:
                names = names.union((mark.name,))
        if GPU_MARKER in names:
            needs_gpu.append(item)
        determinism = determinism or MARKER in names
    if determinism:
        # A marked test without the fixture must still be told it has nothing to compare.
        from pytest_replay import runtest

        runtest.register(config)
    if not needs_gpu:
        return
    ok, reason = gpu_available()
    if not ok:
        for item in needs_gpu:
            item.add_marker(pytest.mark.skip(reason=reason))


def _marker_names(
    node: pytest.Collector | None, chains: dict[int, frozenset[str]]
) -> frozenset[str]:
    """The names of our markers on collector ``node`` and its parents, computed once per
    collector (a big suite has few of them), which keeps the collection pass cheap."""
    if node is None:
        return frozenset()
    names = chains.get(id(node))
    if names is None:
        own = (mark.name for mark in node.own_markers if mark.name in _OURS)
        names = _marker_names(node.parent, chains).union(own)
        chains[id(node)] = names
    return names
