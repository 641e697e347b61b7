"""The run-wide state of pytest_replay: mode, store, kinds, counts, unused recordings.

One :class:`ReplaySession` is registered per pytest process. Under xdist each
worker counts what its tests did and hands the counts to the controller in
``workeroutput``; only the controller (or a plain, non-xdist run) reports,
looks for unused recordings and prunes them.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

from pytest_replay.policy import WORKER_INPUT_KEY, Mode, RunPolicy
from pytest_replay.store import ReplayStore

if TYPE_CHECKING:
    from pytest_replay.context import ReplayContext  # noqa: F401 - in a StashKey subscript
    from pytest_replay.kinds import KindRegistry

__all__ = ["CONTEXT_KEY", "COUNT_ORDER", "Mode", "ReplaySession", "UsageTally"]

# The order of the terminal summary line.
COUNT_ORDER: Final = (
    "recorded",
    "verified",
    "diverged",
    "missing",
    "corrupted",
    "unused",
    "pruned",
    "not recorded",
    "not recorded (test failed)",
    "not recorded (store failed)",
)
SESSION_PLUGIN_NAME: Final = "replay-session"
# Where the plugin finds the ReplayContext of a test that requested the fixture.
CONTEXT_KEY = pytest.StashKey["ReplayContext"]()
_WORKER_KEY: Final = "pytest_replay"


@dataclass(slots=True)
class UsageTally:
    """What the tests of one process did with the store (merged on the controller)."""

    counts: Counter[str] = field(default_factory=Counter)
    paths: list[tuple[str, str]] = field(default_factory=list)
    # Store folders, as strings: every store root, every collected test's folder, and the
    # module folders whose whole module was collected (only those can hold unused ones).
    roots: set[str] = field(default_factory=set)
    test_folders: set[str] = field(default_factory=set)
    module_folders: set[str] = field(default_factory=set)
    used: bool = False

    def add(self, status: str, path: Path | None = None, amount: int = 1) -> None:
        self.counts[status] += amount
        if path is not None:
            self.paths.append((status, str(path)))

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": dict(self.counts),
            "paths": self.paths,
            "roots": sorted(self.roots),
            "test_folders": sorted(self.test_folders),
            "module_folders": sorted(self.module_folders),
            "used": self.used,
        }

    def merge(self, data: dict[str, Any]) -> None:
        self.counts.update(data.get("counts", {}))
        self.paths.extend((str(s), str(p)) for s, p in data.get("paths", []))
        self.roots.update(data.get("roots", []))
        self.test_folders.update(data.get("test_folders", []))
        self.module_folders.update(data.get("module_folders", []))
        self.used = self.used or bool(data.get("used"))


def _module_of(nodeid: str) -> str:
    return nodeid.partition("::")[0]


# pytest-repeat's parameter: its repetitions of a test are attempts of one test, which
# share one recording (verified by every attempt), not tests of their own.
_REPEAT_PARAM: Final = "__pytest_repeat_step_number"


def _without_repeat_step(item: pytest.Item, rest: str) -> str:
    """``rest`` (the node id after the file) without pytest-repeat's ``[2-5]`` id part."""
    callspec = getattr(item, "callspec", None)
    if callspec is None or _REPEAT_PARAM not in callspec.params or not rest.endswith("]"):
        return rest
    name, _, ids = rest[:-1].partition("[")
    # pytest-repeat parametrizes last, so its "<step>-<count>" is the last part of the id.
    step = f"{callspec.params[_REPEAT_PARAM] + 1}-"
    head, sep, count = ids.rpartition(step)
    if not sep or not count.isdigit() or (head and not head.endswith("-")):
        return rest
    head = head[:-1]
    return f"{name}[{head}]" if head else name


class ReplaySession:
    """Run-wide state; created in ``pytest_configure`` and registered as a plugin."""

    def __init__(self, config: pytest.Config, policy: RunPolicy) -> None:
        self.config = config
        self.policy = policy
        self.mode: Mode = policy.mode
        self.record_mode: str | None = policy.record_mode
        self.base_seed: int = config.getoption("replay_seed")
        self.prune: bool = policy.prune
        self.fail_on_unused: bool = policy.fail_on_unused
        self.dump_dir: str | None = config.getoption("replay_dump_run")
        option_dir = config.getoption("replay_dir")
        if option_dir:
            root = Path(config.invocation_params.dir, option_dir)
        else:
            root = Path(config.rootpath, str(config.getini("replay_dir")))
        self.store = ReplayStore(Path(os.path.normpath(root)))
        self._stores: dict[Path, ReplayStore] = {self.store.root: self.store}
        self.tally = UsageTally()
        self.unused: list[Path] = []
        self._kinds: KindRegistry | None = None

    @property
    def is_worker(self) -> bool:
        return hasattr(self.config, "workerinput")

    @property
    def kinds(self) -> KindRegistry:
        """Every registered kind; built (and the kind hook called) on first use only."""
        if self._kinds is None:
            from pytest_replay.kinds import KindRegistry

            registry = KindRegistry()
            self.config.hook.pytest_replay_register_kinds(registry=registry)
            _refuse_shadowed_kinds(registry)
            self._kinds = registry
        return self._kinds

    def store_for(self, item: pytest.Item) -> tuple[ReplayStore, str]:
        """The store of ``item`` and the test's id inside it.

        The store is ``replay_dir`` unless a ``pytest_replay_store_dir`` hook in a conftest
        that applies to the test names another folder. The id is the test file's path
        relative to the store's parent folder (so a project's recordings do not depend on
        where pytest was started), plus the rest of the node id.
        """
        chosen = item.ihook.pytest_replay_store_dir(item=item)
        store = self.store
        if chosen is not None:
            root = Path(os.path.normpath(Path(self.config.rootpath, chosen)))
            store = self._stores.setdefault(root, ReplayStore(root))
        path, sep, rest = item.nodeid.partition("::")
        rest = _without_repeat_step(item, rest)
        # A test outside the store's project folder keeps its rootdir-relative path.
        with contextlib.suppress(ValueError):
            path = Path(item.path).resolve().relative_to(store.root.parent.resolve()).as_posix()
        return store, f"{path}{sep}{rest}"

    def _label(self, root: Path) -> str:
        try:
            return str(root.relative_to(self.config.rootpath))
        except ValueError:
            return str(root)

    def store_label(self) -> str:
        roots = sorted(self.tally.roots) or [str(self.store.root)]
        return ", ".join(self._label(Path(root)) for root in roots)

    # -- collection: which tests and modules this run knows about

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: Sequence[pytest.Item]) -> None:
        # tryfirst: see every collected item, before -k/-m/--lf deselect some of them.
        if self.mode == "off" or not self._may_hold_recordings():
            return
        partial = set(self._partially_selected_modules())
        for item in items:
            store, test_id = self.store_for(item)
            folder = store.test_dir(test_id)
            self.tally.roots.add(str(store.root))
            self.tally.test_folders.add(str(folder))
            if _module_of(item.nodeid) not in partial:
                self.tally.module_folders.add(str(folder.parent))

    def _may_hold_recordings(self) -> bool:
        """False when no store folder exists and no conftest names another one: nothing can
        be unused then, and a suite without recordings pays nothing per collected test."""
        hook = self.config.pluginmanager.hook.pytest_replay_store_dir
        return self.store.root.exists() or bool(hook.get_hookimpls())

    def _partially_selected_modules(self) -> Iterable[str]:
        """Modules named with ``::`` on the command line: only some of their tests ran."""
        for arg in self.config.args:
            path, sep, _ = arg.partition("::")
            if not sep:
                continue
            absolute = Path(self.config.invocation_params.dir, path).resolve()
            try:
                yield absolute.relative_to(self.config.rootpath).as_posix()
            except ValueError:
                continue

    # -- the end of the run

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[WORKER_INPUT_KEY] = self.policy.to_json()

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        output = getattr(node, "workeroutput", None) or {}
        data = output.get(_WORKER_KEY)
        if data:
            self.tally.merge(data)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.is_worker:
            self.config.workeroutput[_WORKER_KEY] = self.tally.to_json()  # type: ignore[attr-defined]
            return
        if self.mode == "off" or self.dump_dir:
            return
        self._find_unused()
        if self.unused and self.fail_on_unused and not self.prune and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _find_unused(self) -> None:
        tally = self.tally
        for root in sorted(tally.roots):
            store = self._stores.setdefault(Path(root), ReplayStore(Path(root)))
            for folder, _ in store.iter_manifests():
                if str(folder.parent) not in tally.module_folders:
                    continue
                if str(folder) in tally.test_folders:
                    continue
                if self.prune and self.mode == "record":
                    store.remove_test(folder)
                    tally.add("pruned", folder)
                else:
                    self.unused.append(folder)
                    tally.add("unused", folder)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker or not (self.tally.used or self.tally.counts):
            return
        counts = self.tally.counts
        parts = [f"{counts[name]} {name}" for name in COUNT_ORDER if counts[name]]
        red = counts["diverged"] or counts["missing"] or counts["corrupted"]
        markup = {"red": True} if red or (counts["unused"] and self.fail_on_unused) else {}
        if self.mode == "off":
            # No store was read or written: say how to use one instead of naming it.
            summary = ", ".join(parts) + "; " if parts else ""
            terminalreporter.write_line(
                f"replay: {summary}store not used (--replay-record stores, --replay-verify checks)",
                **markup,
            )
        else:
            summary = ", ".join(parts) if parts else "nothing recorded or verified"
            terminalreporter.write_line(
                f"replay: {summary} (store: {self.store_label()})", **markup
            )
        terminalreporter.write_line(f"replay: mode {self.policy.label} ({self.policy.reason})")
        if counts["not recorded"]:
            terminalreporter.write_line(
                f"replay: {counts['not recorded']} not recorded: pytest --replay-record=new"
            )
        if terminalreporter.config.getoption("verbose") > 0:
            for status, path in sorted(self.tally.paths):
                terminalreporter.write_line(f"  {status}: {path}")
        if self.unused and not self.prune:
            because = (
                "--replay-verify is strict"
                if self.policy.strict
                else ("replay_fail_on_unused = true")
            )
            hint = (
                "delete them with: pytest --replay-record --replay-prune"
                if not self.fail_on_unused
                else f"the run fails because {because}; "
                "delete them with: pytest --replay-record --replay-prune"
            )
            terminalreporter.write_line(
                f"replay: {len(self.unused)} stored recording folder(s) were not produced by any "
                f"collected test; {hint}"
            )


def _refuse_shadowed_kinds(registry: KindRegistry) -> None:
    """A kind named like a ``ReplayContext`` attribute (``path``, ``seed``...) could only be
    opened with ``replay.record(kind, ...)``: ``replay.<kind>`` would reach the attribute."""
    from pytest_replay.context import ReplayContext

    for name in registry.names():
        if name not in ("ring", "data") and (name.startswith("_") or hasattr(ReplayContext, name)):
            raise pytest.UsageError(
                f"recording kind {name!r} is named like an attribute of the replay fixture, so "
                f"replay.{name} would not reach it. Fix: register it under another name."
            )
