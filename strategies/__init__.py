"""Hypothesis strategies for replay systems (installed as ``pytest_replay.strategies``).

Use them to stress your own replay engine, reducer, or log reader::

    >>> from pytest_replay import strategies as rst
    >>> case = rst.ring_logs(capacity=4).example()
    >>> len(case.expected) <= 4
    True

* values: :func:`recorded_slots`, :func:`failure_evidence`, :func:`replay_records`,
  :func:`journal_entries`, :func:`journal_records`, :func:`steps`, :func:`messages`,
  :func:`origins`;
* whole logs: :func:`ring_logs`, :func:`fleet_log_cases`, :func:`corrupted_logs`;
* reducer journals: :func:`journals`, :func:`reordered_journals` (with :func:`summarize`);
* fleets: :func:`provenance_graphs`, :func:`materialize`, :func:`faulty_provenance_graphs`;
* networks: :func:`network_schedules`, :func:`link_specs` (replication fault schedules).
"""

from __future__ import annotations

from .corrupt import (
    CORRUPTION_KINDS,
    Corrupted,
    Corruption,
    LogFormat,
    corrupt_fleet_log,
    corrupt_journal,
    corrupt_ring,
    corrupted_logs,
)
from .errors import StrategyArgumentError
from .fleet import (
    FAULTS,
    PROVENANCE_GRAPH_NODE_LIMIT,
    FaultyFleet,
    FleetLogCase,
    FleetSpec,
    MaterializedFleet,
    NodeKey,
    SessionSpec,
    faulty_provenance_graphs,
    fleet_log_cases,
    materialize,
    messages,
    origins,
    provenance_graphs,
    steps,
)
from .journal import (
    REORDERINGS,
    ExpectedOutcome,
    JournalCase,
    ReorderedJournal,
    ReplaySummary,
    journal_entries,
    journal_records,
    journals,
    reordered_journals,
    summarize,
)
from .replication import link_specs, network_schedules
from .ring import (
    RingLogCase,
    failure_evidence,
    recorded_slots,
    replay_records,
    ring_logs,
)

__all__ = [
    "CORRUPTION_KINDS",
    "FAULTS",
    "PROVENANCE_GRAPH_NODE_LIMIT",
    "REORDERINGS",
    "Corrupted",
    "Corruption",
    "ExpectedOutcome",
    "FaultyFleet",
    "FleetLogCase",
    "FleetSpec",
    "JournalCase",
    "LogFormat",
    "MaterializedFleet",
    "NodeKey",
    "ReorderedJournal",
    "ReplaySummary",
    "RingLogCase",
    "SessionSpec",
    "StrategyArgumentError",
    "corrupt_fleet_log",
    "corrupt_journal",
    "corrupt_ring",
    "corrupted_logs",
    "failure_evidence",
    "faulty_provenance_graphs",
    "fleet_log_cases",
    "journal_entries",
    "journal_records",
    "journals",
    "link_specs",
    "materialize",
    "messages",
    "network_schedules",
    "origins",
    "provenance_graphs",
    "recorded_slots",
    "reordered_journals",
    "replay_records",
    "ring_logs",
    "steps",
    "summarize",
]
