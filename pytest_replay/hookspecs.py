"""The hooks pytest_replay adds to pytest (registered with ``pytest_addhooks``).

Implement them in a ``conftest.py`` or a plugin, like any pytest hook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_replay.kinds import KindRegistry
    from pytest_replay.report import Mismatch


@pytest.hookspec
def pytest_replay_register_kinds(registry: KindRegistry) -> None:
    """Add recording kinds to ``registry`` (called once, the first time a test records).

    A registered kind named ``events`` is then available in tests as
    ``replay.record("events", name, ...)`` and as ``replay.events(name, ...)``::

        from pytest_replay.kinds import sequence_kind

        def pytest_replay_register_kinds(registry):
            registry.register(sequence_kind("events", ".events"))
    """


@pytest.hookspec
def pytest_replay_divergence(item: pytest.Item, divergence: Mismatch) -> None:
    """Called when ``item`` produced something other than its stored recording (or than its
    first run, under ``replay_determinism``), just before the test fails.

    ``divergence`` is a :class:`pytest_replay.report.Mismatch`: the recording's name, kind
    and stored path, the first :class:`~pytest_replay.diff.Divergence` and the context
    records. Use it to dump artefacts; the return value is ignored.
    """
