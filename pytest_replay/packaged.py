"""The recording kinds that ship with pytest_replay beyond ``ring`` and ``data``, and the
probe behind the ``replay_gpu`` marker.

The plugin and the CLI both build a kind registry from :data:`PACKAGED_KINDS`; each module
is imported the first time one of its kinds is used, so that neither pays for kinds a run
never touches.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = ["PACKAGED_KINDS", "gpu_available"]

PACKAGED_KINDS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "pytest_replay.fleet.kind": ("fleet",),
        "pytest_replay.journal.kind": ("journal", "reduce"),
        "pytest_replay.megakernel.kind": ("megakernel",),
        "pytest_replay.replication.kind": ("replication",),
    }
)


def gpu_available() -> tuple[bool, str]:
    """Whether the megakernel's CuPy backend can run here, and if not, why (the skip reason
    of tests marked ``replay_gpu``). Imports the megakernel only when called."""
    from pytest_replay.megakernel.selection import gpu_available as probe

    return probe()
