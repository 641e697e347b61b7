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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

from pytest_replay.errors import StoreError, render_error
from pytest_replay.narrowing import Narrowing
from pytest_replay.outcome import Outcome
from pytest_replay.policy import WORKER_INPUT_KEY, Mode, RunPolicy
from pytest_replay.store import STORE_DIR_NAME, ReplayStore

if TYPE_CHECKING:
    from pytest_replay.context import ReplayContext  # noqa: F401 - in a StashKey subscript
    from pytest_replay.kinds import KindRegistry

__all__ = ["CONTEXT_KEY", "Mode", "ReplaySession", "UsageTally"]

SESSION_PLUGIN_NAME: Final = "replay-session"
# Where the plugin finds the ReplayContext of a test that requested the fixture.
CONTEXT_KEY = pytest.StashKey["ReplayContext"]()
_WORKER_KEY: Final = "pytest_replay"
# Outcomes by the text a worker sends them as.
_OUTCOMES: Final = {outcome.value: outcome for outcome in Outcome}
# The summary line names at most this many stores.
_LABELLED_STORES: Final = 3


@dataclass(slots=True)
class UsageTally:
    """What the tests of one process did with the store (merged on the controller)."""

    counts: Counter[Outcome] = field(default_factory=Counter)
    paths: list[tuple[Outcome, str]] = field(default_factory=list)
    # Outcomes a worker sent that this process does not know (a worker running another
    # pytest-replay version), by their text: reported apart, never mixed into the counts.
    unknown: Counter[str] = field(default_factory=Counter)
    # Store folders, as strings: every store root, every collected test's folder, and the
    # module folders whose whole module was collected (only those can hold unused ones).
    roots: set[str] = field(default_factory=set)
    test_folders: set[str] = field(default_factory=set)
    module_folders: set[str] = field(default_factory=set)
    # Modules some filter narrowed (their folders, and the filters): nothing there is unused.
    narrowed_folders: set[str] = field(default_factory=set)
    filters: set[str] = field(default_factory=set)
    used: bool = False

    def add(self, outcome: Outcome, path: Path | None = None, amount: int = 1) -> None:
        self.counts[outcome] += amount
        if path is not None:
            self.paths.append((outcome, str(path)))

    def to_json(self) -> dict[str, Any]:
        """The tally as JSON for the controller: outcomes as their text."""
        counts = {outcome.value: amount for outcome, amount in self.counts.items()}
        return {
            "counts": {**self.unknown, **counts},
            "paths": [[outcome.value, path] for outcome, path in self.paths],
            "roots": sorted(self.roots),
            "test_folders": sorted(self.test_folders),
            "module_folders": sorted(self.module_folders),
            "narrowed_folders": sorted(self.narrowed_folders),
            "filters": sorted(self.filters),
            "used": self.used,
        }

    def merge(self, data: dict[str, Any]) -> None:
        """Add a worker's :meth:`to_json`. An outcome text this process does not know is
        counted in :attr:`unknown` (and its paths left out) instead of failing the run."""
        for text, amount in data.get("counts", {}).items():
            outcome = _OUTCOMES.get(str(text))
            if outcome is None:
                self.unknown[str(text)] += int(amount)
            else:
                self.counts[outcome] += int(amount)
        for text, path in data.get("paths", []):
            outcome = _OUTCOMES.get(str(text))
            if outcome is not None:
                self.paths.append((outcome, str(path)))
        self.roots.update(data.get("roots", []))
        self.test_folders.update(data.get("test_folders", []))
        self.module_folders.update(data.get("module_folders", []))
        self.narrowed_folders.update(data.get("narrowed_folders", []))
        self.filters.update(data.get("filters", []))
        self.used = self.used or bool(data.get("used"))


def _unknown_line(unknown: Counter[str]) -> str:
    """The summary's line about outcomes a worker sent that this process does not know."""
    named = ", ".join(f"{text!r} ({amount})" for text, amount in sorted(unknown.items()))
    return render_error(
        f"{unknown.total()} outcome(s) from an xdist worker are unknown here and not "
        f"counted: {named}",
        fix="run the same pytest-replay version on every worker.",
    )


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
        self.lock_timeout: float = config.getoption("replay_lock_timeout")
        self.central = _central_root(config)
        self.store = ReplayStore(self.central or Path(config.rootpath, STORE_DIR_NAME))
        self._stores: dict[Path, ReplayStore] = {}
        self._module_ids: dict[tuple[Path, Path, str], str] = {}
        # The tests collection left, mapped to their store folders at the end of the run.
        self._collected: list[pytest.Item] = []
        self._narrowed: set[str] = set()
        self.narrowing = Narrowing(config)
        if self.prune and self.narrowing.collect_only:
            raise pytest.UsageError(
                render_error(
                    "--replay-prune cannot be used with --collect-only, which never writes",
                    fix="drop --collect-only to prune.",
                )
            )
        self.tally = UsageTally()
        self.unused: list[Path] = []
        self.refused: str | None = None
        self.store_errors: list[str] = []
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

        By default the store is ``__replay__`` beside the test module and the id is the
        module's file name plus the rest of the node id. A central store (``replay_dir``)
        takes the file's path relative to rootdir; a store a ``pytest_replay_store_dir``
        hook names takes it relative to the store's parent folder. Either way the id does
        not depend on where pytest was started or which paths it was given.
        """
        chosen = item.ihook.pytest_replay_store_dir(item=item)
        path, sep, rest = item.nodeid.partition("::")
        root, base = self._root_and_base(Path(item.path), chosen)
        store = self._store(root)
        module = self._module_id(Path(item.path), base, path)
        return store, f"{module}{sep}{_without_repeat_step(item, rest)}"

    def _root_and_base(
        self, module: Path, chosen: str | os.PathLike[str] | None
    ) -> tuple[Path, Path]:
        """The store root of a test in ``module`` and the folder its ids are relative to;
        ``chosen`` is what the ``pytest_replay_store_dir`` hook returned for it."""
        if chosen is not None:
            root = Path(os.path.normpath(Path(self.config.rootpath, chosen)))
            return root, root.parent
        if self.central is not None:
            return self.central, Path(self.config.rootpath)
        return module.parent / STORE_DIR_NAME, module.parent

    def _module_id(self, module: Path, base: Path, nodeid_path: str) -> str:
        """The test file's part of a test id: its path relative to ``base``; a file outside
        ``base`` keeps its node id path (rootdir-relative). Cached per file and base: a big
        suite has few of them, and resolving paths costs system calls per test otherwise."""
        key = (module, base, nodeid_path)
        found = self._module_ids.get(key)
        if found is None:
            found = nodeid_path
            with contextlib.suppress(ValueError):
                found = module.resolve().relative_to(base.resolve()).as_posix()
            self._module_ids[key] = found
        return found

    def _label(self, root: Path) -> str:
        # Relative to where pytest was started, as the divergence report names the files.
        for start in (self.config.invocation_params.dir, self.config.rootpath):
            with contextlib.suppress(ValueError):
                return str(root.relative_to(start))
        return str(root)

    def store_label(self) -> str:
        # Every collected test has a store folder; name only those that hold something.
        roots = [root for root in sorted(self.tally.roots) if os.path.isdir(root)]
        if len(roots) > _LABELLED_STORES:
            return f"{len(roots)} stores, {self._label(Path(roots[0]))} ..."
        return ", ".join(self._label(Path(root)) for root in roots or [str(self.store.root)])

    # -- collection: which tests and modules this run knows about

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if self.mode != "off":  # a suite run without a store flag pays nothing here
            self.narrowing.collected(report)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # trylast: after every plugin (-k, -m, --lf, --sw, pytest-split...) chose the items.
        if self.mode == "off":
            return
        narrowed = self.narrowing.narrowed_modules(session.items)
        self.tally.filters.update(self.narrowing.filters() if narrowed else ())
        # Mapped to store folders at the end of the run (_map_collected), when the stores
        # the tests wrote exist: only stores that exist then can hold unused recordings.
        self._collected = list(session.items)
        self._narrowed = narrowed
        if narrowed and self.prune and self.mode == "record" and not self.is_worker:
            raise pytest.UsageError(self._prune_refusal())

    def _map_collected(self) -> None:
        """Add the collected tests' store roots, module folders and test folders to the tally.

        A test's folder is what tells its recording from an unused one, so it is needed only
        in a store that exists: the stores of a suite that never records cost one look-up per
        module, not per test. Under xdist every worker collects every test, and a worker whose
        tests wrote to a store sees it at its own end, so the controller still learns every
        test folder of every store that exists.
        """
        items, self._collected = self._collected, []
        groups: dict[tuple[Path, str], list[pytest.Item]] = {}
        for item in items:
            groups.setdefault((item.path, _module_of(item.nodeid)), []).append(item)
        stored: dict[Path, bool] = {}
        for (module, nodeid_path), group in groups.items():
            if group[0].ihook.pytest_replay_store_dir.get_hookimpls():
                # A hook may put each test elsewhere: every test on its own.
                for item in group:
                    store, test_id = self.store_for(item)
                    self._map_test(store, test_id, nodeid_path, stored)
                continue
            root, base = self._root_and_base(module, None)
            store = self._store(root)
            module_id = self._module_id(module, base, nodeid_path)
            # Without a hook the module's tests share one store and one module folder, so
            # where nothing is stored (yet) one of them tells all the map needs.
            for item in group if self._exists(root, stored) else group[:1]:
                _, sep, rest = item.nodeid.partition("::")
                test_id = f"{module_id}{sep}{_without_repeat_step(item, rest)}"
                self._map_test(store, test_id, nodeid_path, stored)

    @staticmethod
    def _exists(root: Path, stored: dict[Path, bool]) -> bool:
        """Whether the store ``root`` exists (a folder, or a link to one, as the store reads
        it), looked up once per root."""
        found = stored.get(root)
        if found is None:
            found = stored[root] = os.path.isdir(root)
        return found

    def _map_test(
        self, store: ReplayStore, test_id: str, nodeid_path: str, stored: dict[Path, bool]
    ) -> None:
        tally = self.tally
        folder = store.test_dir(test_id)
        tally.roots.add(str(store.root))
        if self._exists(store.root, stored):
            tally.test_folders.add(str(folder))
        target = tally.narrowed_folders if nodeid_path in self._narrowed else tally.module_folders
        target.add(str(folder.parent))

    def _prune_refusal(self) -> str:
        filters = ", ".join(sorted(self.tally.filters)) or "a filter"
        return render_error(
            f"--replay-prune refused: this run did not collect every test of its modules "
            f"({filters}), so it cannot tell which recordings are unused",
            fix="run --replay-record --replay-prune on whole test modules, without filters.",
        )

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
        self._map_collected()
        writes = self.mode == "record" and not self.dump_dir and not self.narrowing.collect_only
        if writes and not self.is_worker:
            for root in sorted(self.tally.roots):
                self._refused_by_store(self._store(Path(root)).recover)
        for store in self._stores.values():
            for folder in store.recovered:
                self.tally.add(Outcome.RECOVERED, folder)
            store.recovered.clear()
        if self.is_worker:
            self.config.workeroutput[_WORKER_KEY] = self.tally.to_json()  # type: ignore[attr-defined]
            return
        if self.mode == "off" or self.dump_dir or self.narrowing.collect_only:
            return
        if self.prune and self.tally.narrowed_folders:
            # Under xdist the workers collect: the controller refuses here instead.
            self.prune = False
            self.refused = self._prune_refusal()
            if session.exitstatus == 0:
                session.exitstatus = pytest.ExitCode.USAGE_ERROR
        self._find_unused()
        if self.unused and self.fail_on_unused and not self.prune and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _refused_by_store(self, change: Callable[..., object], *args: Path) -> bool:
        """Run a store change at the end of the run; a refusal (a link, a file the store did
        not write, the lock) is reported in the summary instead of ending pytest."""
        try:
            change(*args)
        except (StoreError, OSError) as exc:
            self.store_errors.append(str(exc))
            return True
        return False

    def _store(self, root: Path) -> ReplayStore:
        store = self._stores.get(root)
        if store is None:
            store = self._stores[root] = ReplayStore(root, self.lock_timeout)
        return store

    def _find_unused(self) -> None:
        tally = self.tally
        complete = tally.module_folders - tally.narrowed_folders
        for root in sorted(tally.roots):
            store = self._store(Path(root))
            for folder, manifest in store.iter_manifests():
                if str(folder.parent) not in complete or str(folder) in tally.test_folders:
                    continue
                if manifest is None:
                    # An unreadable manifest, or one that names another test (a folder moved
                    # by hand), is damage to report, as `store check` does: never pruned.
                    tally.add(Outcome.CORRUPTED, folder)
                    continue
                if self.prune and self.mode == "record":
                    if self._refused_by_store(store.remove_test, folder):
                        tally.add(Outcome.UNUSED, folder)
                    else:
                        tally.add(Outcome.PRUNED, folder)
                else:
                    self.unused.append(folder)
                    tally.add(Outcome.UNUSED, folder)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker or not (self.tally.used or self.tally.counts or self.tally.unknown):
            return
        counts = self.tally.counts
        parts = [f"{counts[outcome]} {outcome.value}" for outcome in Outcome if counts[outcome]]
        red = any(counts[outcome] for outcome in Outcome if outcome.fails)
        unused = counts[Outcome.UNUSED]
        markup = {"red": True} if red or (unused and self.fail_on_unused) else {}
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
        if counts[Outcome.NOT_RECORDED]:
            terminalreporter.write_line(
                f"replay: {counts[Outcome.NOT_RECORDED]} not recorded: pytest --replay-record=new"
            )
        if self.tally.unknown:
            terminalreporter.write_line(f"replay: {_unknown_line(self.tally.unknown)}", yellow=True)
        if terminalreporter.config.getoption("verbose") > 0:
            for outcome, path in sorted(self.tally.paths, key=lambda p: (p[0].value, p[1])):
                terminalreporter.write_line(f"  {outcome.value}: {path}")
        if self.refused:
            terminalreporter.write_line(f"replay: {self.refused}", red=True)
        for error in self.store_errors:
            terminalreporter.write_line(f"replay: {error}", red=True)
        if self.unused and not self.prune:
            strict = self.policy.strict
            because = "--replay-verify is strict" if strict else "replay_fail_on_unused = true"
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


def _central_root(config: pytest.Config) -> Path | None:
    """The central store ``--replay-dir`` or ini ``replay_dir`` names, resolved against
    rootdir; None for the default, a ``__replay__`` store beside each test module."""
    chosen = config.getoption("replay_dir") or str(config.getini("replay_dir"))
    if not chosen:
        return None
    root = Path(os.path.normpath(Path(config.rootpath, chosen)))
    if root.name == STORE_DIR_NAME:
        raise pytest.UsageError(
            render_error(
                f"replay_dir '{chosen}' ends in {STORE_DIR_NAME}, the name of the stores kept "
                "beside test modules",
                fix="leave replay_dir unset to keep recordings beside the tests, or name the "
                "central store otherwise (e.g. .replay).",
            )
        )
    return root


def _refuse_shadowed_kinds(registry: KindRegistry) -> None:
    """A kind named like a ``ReplayContext`` attribute (``path``, ``seed``...) could only be
    opened with ``replay.record(kind, ...)``: ``replay.<kind>`` would reach the attribute."""
    from pytest_replay.context import ReplayContext

    for name in registry.names():
        if name not in ("ring", "data") and (name.startswith("_") or hasattr(ReplayContext, name)):
            raise pytest.UsageError(
                render_error(
                    f"recording kind {name!r} is named like an attribute of the replay fixture, "
                    f"so replay.{name} would not reach it",
                    fix="register it under another name.",
                )
            )
