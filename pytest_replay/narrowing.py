"""Which test modules a run collected only in part.

A stored recording is "unused" only when its whole test module was collected and no
test of it maps to the recording. A run narrowed by ``-k``, ``-m``, ``--lf``, ``--sw``,
``--deselect``, node ids, ``--collect-only`` or a sharding plugin (pytest-split, ...)
must report nothing unused for the modules it narrowed, and must not prune. Rather than
knowing every filter, the tests a module's collectors produced (``pytest_collectreport``)
are compared with the tests left at the end of collection: a module that lost any was
narrowed. Command-line node ids count too, since pytest collects only the named classes
of a module, and so does ``--lf`` with failures on record, which filters the collect
reports themselves.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

__all__ = ["Narrowing"]


def _module_of(nodeid: str) -> str:
    return nodeid.partition("::")[0]


class Narrowing:
    """What collection produced, per module, to tell which modules a run narrowed."""

    def __init__(self, config: pytest.Config) -> None:
        self._config = config
        self._collected: Counter[str] = Counter()

    @property
    def collect_only(self) -> bool:
        return bool(self._config.getoption("collectonly", False))

    def collected(self, report: pytest.CollectReport) -> None:
        """Count the tests a collector produced (before any plugin deselects some)."""
        items = [node for node in report.result if isinstance(node, pytest.Item)]
        self._collected.update([_module_of(item.nodeid) for item in items])

    def narrowed_modules(self, items: Sequence[pytest.Item]) -> set[str]:
        """The modules (node id paths) of ``items`` that lost tests, or were named with
        ``::``; every module when the run only collects."""
        kept = Counter([_module_of(item.nodeid) for item in items])
        if self.collect_only or self._last_failed_only():
            # --lf filters the modules' collect reports themselves: nothing to compare with.
            return set(kept)
        narrowed = {module for module, n in kept.items() if n < self._collected[module]}
        return narrowed | (self._named_with_ids() & set(kept))

    def _last_failed_only(self) -> bool:
        if not getattr(self._config.option, "lf", False):
            return False
        plugin = self._config.pluginmanager.get_plugin("lfplugin")
        return bool(getattr(plugin, "lastfailed", None))

    def _named_with_ids(self) -> set[str]:
        config = self._config
        named = set()
        for arg in config.args:
            path, sep, _ = arg.partition("::")
            if not sep:
                continue
            absolute = Path(config.invocation_params.dir, path).resolve()
            try:
                named.add(absolute.relative_to(config.rootpath).as_posix())
            except ValueError:
                continue
        return named

    def filters(self) -> list[str]:
        """The options that narrow a run, as the user wrote them, for messages."""
        option = self._config.option
        stepwise = getattr(option, "stepwise", False) or getattr(option, "stepwise_skip", False)
        found = [
            flag
            for flag, on in (
                ("-k", getattr(option, "keyword", "")),
                ("-m", getattr(option, "markexpr", "")),
                ("--lf", self._last_failed_only()),
                ("--sw", stepwise),
                ("--deselect", getattr(option, "deselect", None)),
                ("--collect-only", self.collect_only),
                ("node ids", bool(self._named_with_ids())),
            )
            if on
        ]
        return found or ["a plugin that deselects tests (e.g. pytest-split)"]
