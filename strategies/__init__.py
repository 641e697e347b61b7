"""Hypothesis strategies for replay systems (installed as ``pytest_replay.strategies``).

>>> from pytest_replay import strategies as rst
>>> case = rst.ring_logs(capacity=4).example()
>>> len(case.expected) <= 4
True
"""

from __future__ import annotations

from pytest_replay.strategies.ring import (
    RingLogCase,
    failure_evidence,
    recorded_slots,
    replay_records,
    ring_logs,
)

__all__ = ["RingLogCase", "failure_evidence", "recorded_slots", "replay_records", "ring_logs"]
