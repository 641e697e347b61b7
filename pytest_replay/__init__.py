"""pytest_replay: record and deterministically replay ring slots, journals and fleet logs.

The pytest plugin lives in :mod:`pytest_replay.plugin`; the VRRL ring log in
:mod:`pytest_replay.ringlog`; first-divergence search in :mod:`pytest_replay.diff`.
"""

from __future__ import annotations

from pytest_replay.diff import Divergence, first_divergence
from pytest_replay.errors import ReplayError
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

__all__ = [
    "RING_RECORD_DTYPE",
    "Divergence",
    "RecordedSlot",
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
