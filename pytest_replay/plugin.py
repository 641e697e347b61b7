"""The pytest entry point (``pytest11: replay``): options, ini values and markers.

Every command-line option and ini value of pytest_replay is registered here
and nowhere else. Registering them costs nothing at run time: a suite that
does not use the ``replay`` fixture or the markers runs exactly as before.
"""

from __future__ import annotations

import pytest

MARKERS = (
    "replay_determinism(runs=2): run the test `runs` times with fresh recorders and fail "
    "if any run's recordings differ from the first run's.",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("replay", "deterministic record / replay (pytest_replay)")
    group.addoption(
        "--replay-record",
        action="store",
        nargs="?",
        const="all",
        default=None,
        choices=("all", "new"),
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


def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    if config.getoption("replay_record") and config.getoption("replay_verify"):
        raise pytest.UsageError(
            "--replay-record and --replay-verify cannot be used together. "
            "Fix: record first (pytest --replay-record), then verify (pytest --replay-verify)."
        )
