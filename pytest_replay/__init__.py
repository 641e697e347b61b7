"""pytest_replay: record and deterministically replay ring slots, journals and fleet logs.

The pytest plugin lives in :mod:`pytest_replay.plugin`; the VRRL ring log in
:mod:`pytest_replay.ringlog`; first-divergence search in :mod:`pytest_replay.diff`.

The names below are imported on first access (PEP 562), so that loading the
plugin, which imports this package, does not import numpy for suites that
never record anything.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pytest_replay.errors import ReplayError

if TYPE_CHECKING:
    from pytest_replay.diff import first_divergence
    from pytest_replay.divergence import Divergence
    from pytest_replay.report import ReplayDivergence
    from pytest_replay.ringlog import (
        RING_RECORD_DTYPE,
        RecordedSlot,
        ReplayFailureClass,
        ReplayFailureEvidence,
        ReplayLogError,
        ReplayRecord,
        RingLog,
        output_digest,
    )

__version__ = "0.1.0"

_LAZY = {
    "Divergence": "pytest_replay.divergence",
    "first_divergence": "pytest_replay.diff",
    "ReplayDivergence": "pytest_replay.report",
    "RING_RECORD_DTYPE": "pytest_replay.ringlog",
    "RecordedSlot": "pytest_replay.ringlog",
    "ReplayFailureClass": "pytest_replay.ringlog",
    "ReplayFailureEvidence": "pytest_replay.ringlog",
    "ReplayLogError": "pytest_replay.ringlog",
    "ReplayRecord": "pytest_replay.ringlog",
    "RingLog": "pytest_replay.ringlog",
    "output_digest": "pytest_replay.ringlog",
}

__all__ = [
    "RING_RECORD_DTYPE",
    "Divergence",
    "RecordedSlot",
    "ReplayDivergence",
    "ReplayError",
    "ReplayFailureClass",
    "ReplayFailureEvidence",
    "ReplayLogError",
    "ReplayRecord",
    "RingLog",
    "__version__",
    "first_divergence",
    "output_digest",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_replay' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
