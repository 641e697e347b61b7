"""The run-wide state of pytest_replay: mode, store, kinds, counts, unused recordings.

One :class:`ReplaySession` is registered per pytest process. Under xdist each
worker counts what its tests did and hands the counts to the controller in
``workeroutput``; only the controller (or a plain, non-xdist run) reports,
looks for unused recordings and prunes them.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import pytest

from pytest_replay.store import ReplayStore

if TYPE_CHECKING:
    from pytest_replay.context import ReplayContext  # noqa: F401 - in a StashKey subscript
    from pytest_replay.kinds import KindRegistry

__all__ = ["CONTEXT_KEY", "COUNT_ORDER", "Mode", "ReplaySession", "UsageTally"]

Mode = Literal["off", "record", "verify"]

# The order of the terminal summary line.
COUNT_ORDER: Final = (
    "recorded",
    "verified",
    "diverged",
    "missing",
    "unused",
    "pruned",
    "not recorded (test failed)",
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
    nodeids: set[str] = field(default_factory=set)
    modules: set[str] = field(default_factory=set)
    partial_modules: set[str] = field(default_factory=set)
    used: bool = False

    def add(self, status: str, path: Path | None = None, amount: int = 1) -> None:
        self.counts[status] += amount
        if path is not None:
            self.paths.append((status, str(path)))

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": dict(self.counts),
            "paths": self.paths,
            "nodeids": sorted(self.nodeids),
            "modules": sorted(self.modules),
            "partial_modules": sorted(self.partial_modules),
            "used": self.used,
        }

    def merge(self, data: dict[str, Any]) -> None:
        self.counts.update(data.get("counts", {}))
        self.paths.extend((str(s), str(p)) for s, p in data.get("paths", []))
        self.nodeids.update(data.get("nodeids", []))
        self.modules.update(data.get("modules", []))
        self.partial_modules.update(data.get("partial_modules", []))
        self.used = self.used or bool(data.get("used"))


def _module_of(nodeid: str) -> str:
    return nodeid.partition("::")[0]


class ReplaySession:
    """Run-wide state; created in ``pytest_configure`` and registered as a plugin."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        record = config.getoption("replay_record")
        self.record_mode: str | None = record
        self.mode: Mode = (
            "record" if record else "verify" if config.getoption("replay_verify") else "off"
        )
        self.base_seed: int = config.getoption("replay_seed")
        self.prune: bool = config.getoption("replay_prune")
        self.fail_on_unused: bool = bool(config.getini("replay_fail_on_unused"))
        self.dump_dir: str | None = config.getoption("replay_dump_run")
        option_dir = config.getoption("replay_dir")
        if option_dir:
            root = Path(config.invocation_params.dir, option_dir)
        else:
            root = Path(config.rootpath, str(config.getini("replay_dir")))
        self.store = ReplayStore(Path(os.path.normpath(root)))
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
            self._kinds = registry
        return self._kinds

    def store_label(self) -> str:
        try:
            return str(self.store.root.relative_to(self.config.rootpath))
        except ValueError:
            return str(self.store.root)

    # -- collection: which tests and modules this run knows about

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: Sequence[pytest.Item]) -> None:
        # tryfirst: see every collected item, before -k/-m/--lf deselect some of them.
        if self.mode == "off":
            return
        self.tally.nodeids.update(item.nodeid for item in items)
        self.tally.modules.update(_module_of(item.nodeid) for item in items)
        self.tally.partial_modules.update(self._partially_selected_modules())

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
        considered = self.tally.modules - self.tally.partial_modules
        if not considered:
            return
        for folder, manifest in self.store.iter_manifests():
            if manifest is None:
                continue
            if _module_of(manifest.nodeid) not in considered:
                continue
            if manifest.nodeid in self.tally.nodeids:
                continue
            if self.prune and self.mode == "record":
                self.store.remove_test(folder)
                self.tally.add("pruned", folder)
            else:
                self.unused.append(folder)
                self.tally.add("unused", folder)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker or not (self.tally.used or self.tally.counts):
            return
        counts = self.tally.counts
        parts = [f"{counts[name]} {name}" for name in COUNT_ORDER if counts[name]]
        if not parts:
            parts = ["nothing recorded or verified"]
        markup = {"red": True} if counts["diverged"] or counts["missing"] else {}
        if not markup and counts["unused"] and self.fail_on_unused:
            markup = {"red": True}
        terminalreporter.write_line(
            f"replay: {', '.join(parts)} (store: {self.store_label()})", **markup
        )
        if terminalreporter.config.getoption("verbose") > 0:
            for status, path in sorted(self.tally.paths):
                terminalreporter.write_line(f"  {status}: {path}")
        if self.unused and not self.prune:
            hint = (
                "delete them with: pytest --replay-record --replay-prune"
                if not self.fail_on_unused
                else "the run fails because replay_fail_on_unused = true; "
                "delete them with: pytest --replay-record --replay-prune"
            )
            terminalreporter.write_line(
                f"replay: {len(self.unused)} stored recording folder(s) were not produced by any "
                f"collected test; {hint}"
            )
