"""Which tests a store's recordings belong to, from pytest's own collection.

``pytest-replay store prune`` runs ``pytest --collect-only`` in-process on the folder
holding the tests (the parent of a ``__replay__`` store, or ``--rootdir``), with the
project's own ini file and conftests, and maps every collected test to its store folder
exactly as a record run would (``ReplaySession.store_for``). Nothing is guessed by
parsing test files, and nothing is decided when collection fails.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_replay.cli.common import CliError

__all__ = ["StoreTests", "collect_store_tests"]


@dataclass(slots=True)
class StoreTests:
    """The collected tests of one store: their folders, their modules' folders, and the
    folder node ids are relative to."""

    root: Path
    base: Path
    test_folders: set[Path] = field(default_factory=set)
    module_folders: set[Path] = field(default_factory=set)

    def verdict(self, folder: Path, nodeid: str) -> tuple[bool | None, str]:
        """(True, why) to keep, (False, why) to delete, (None, why) when unsure (kept)."""
        folder = _real(folder)
        if folder in self.test_folders:
            return True, "collected"
        if folder.parent in self.module_folders:
            return False, "its module was collected and holds no such test"
        module = nodeid.partition("::")[0]
        if not (self.base / module).exists():
            return False, f"test module '{module}' no longer exists"
        return None, f"test module '{module}' exists but was not collected; kept"


class _Collector:
    """A pytest plugin that maps the collected tests to store folders."""

    def __init__(self, root: Path) -> None:
        self.root = _real(root)
        self.errors: list[str] = []
        self.found: StoreTests | None = None

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self.errors.append(report.nodeid or ".")

    def pytest_collection_finish(self, session: Any) -> None:
        from pytest_replay.session import SESSION_PLUGIN_NAME

        replay = session.config.pluginmanager.get_plugin(SESSION_PLUGIN_NAME)
        for item in session.items:
            store, test_id = replay.store_for(item)
            if _real(store.root) != self.root:
                continue
            if self.found is None:
                # Node ids in a central store start at rootdir, elsewhere at its parent.
                central = replay.central is not None and _real(replay.central) == self.root
                base = Path(session.config.rootpath) if central else store.root.parent
                self.found = StoreTests(self.root, base)
            folder = _real(store.test_dir(test_id))
            self.found.test_folders.add(folder)
            self.found.module_folders.add(folder.parent)


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def collect_store_tests(root: Path, tests: Path) -> StoreTests:
    """The tests under ``tests`` whose recordings live in the store ``root``; a
    :class:`CliError` when collection fails or finds none."""
    import pytest

    collector = _Collector(root)
    args = ["--collect-only", "-q", "-p", "no:cacheprovider", str(tests)]
    # pytest reports on stdout; the command's own output (--json) must stay clean, and
    # pytest's report is only worth showing when collection failed.
    report = io.StringIO()
    with contextlib.redirect_stdout(report):
        status = pytest.main(args, plugins=[collector])
    if collector.errors or status not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        sys.stderr.write(report.getvalue())
        where = ", ".join(collector.errors[:3]) or f"exit status {int(status)}"
        raise CliError(
            f"collecting the tests under '{tests}' failed ({where}); nothing was pruned",
            "fix the collection errors pytest printed above, then prune again",
        )
    if collector.found is None:
        raise CliError(
            f"no collected test under '{tests}' keeps its recordings in '{root}', so nothing "
            "can be told unused",
            "pass the store the tests use, or --rootdir with the folder of the tests "
            "(for a central replay_dir, the folder of your ini file)",
        )
    return collector.found
