"""The hooks pytest_replay adds to pytest (registered with ``pytest_addhooks``).

Implement them in a ``conftest.py`` or a plugin, like any pytest hook, marked
``@pytest.hookimpl(optionalhook=True)``: pytest then accepts the hook when pytest_replay
is disabled (``-p no:replay``) instead of failing on an unknown hook.
"""

from __future__ import annotations

import os
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

        import pytest
        from pytest_replay.kinds import sequence_kind

        @pytest.hookimpl(optionalhook=True)
        def pytest_replay_register_kinds(registry):
            registry.register(sequence_kind("events", ".events"))
    """


@pytest.hookspec(firstresult=True)
def pytest_replay_store_dir(item: pytest.Item) -> str | os.PathLike[str] | None:
    """The store folder for ``item``'s recordings, or ``None`` for the default
    (``__replay__`` beside the test module, or the central ``replay_dir``).

    Only ``conftest.py`` files that apply to the test are asked, so a sub-project can keep
    one store of its own, whichever folder pytest is started from::

        # conftest.py
        from pathlib import Path

        import pytest

        @pytest.hookimpl(optionalhook=True)
        def pytest_replay_store_dir(item):
            return Path(__file__).parent / ".replay"

    A relative path is taken relative to rootdir. Test folders inside that store are named
    after the test file's path relative to the store's parent folder.
    """


@pytest.hookspec
def pytest_replay_divergence(item: pytest.Item, divergence: Mismatch) -> None:
    """Called when ``item`` produced something other than its stored recording (or than its
    first run, under ``replay_determinism``), just before the test fails.

    ``divergence`` is a :class:`pytest_replay.report.Mismatch`: the recording's name, kind
    and stored path, and the first :class:`~pytest_replay.divergence.Divergence` with the
    stored records before it. Use it to dump artefacts; the return value is ignored.
    """
