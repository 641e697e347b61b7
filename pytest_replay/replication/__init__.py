"""Replicated journals: the replication runtime of one channel, on a deterministic simulator.

The runtime (:mod:`.runtime`) follows the reference design: heartbeats, a
silence tracker and a deterministic election, catch-up sync with NACKs,
request tokens, back-off, bandwidth admission, skip-ahead, disk-pressure
policies and a two-lane inbox. The simulator (:mod:`.sim`) runs N such nodes
over a seeded network described by a :class:`NetworkSchedule` and writes a
trace that the ``replication`` recording kind (:mod:`.kind`) records and
verifies. See ``docs/replication.md``.
"""

from __future__ import annotations

from pytest_replay.replication.config import ReplicationConfig, UnderCapacity
from pytest_replay.replication.coordinator import (
    ChannelIdentity,
    NoopTagSink,
    ReplicationCoordinator,
)
from pytest_replay.replication.errors import ReplicationError, ScheduleError, TraceFormatError
from pytest_replay.replication.log import SequencedLog
from pytest_replay.replication.messages import ReplicaRole
from pytest_replay.replication.properties import convergence_problems, safety_problems
from pytest_replay.replication.roles import TransitionSignal
from pytest_replay.replication.runtime import ReplicationRuntime, RuntimeInputs
from pytest_replay.replication.schedule import (
    Crash,
    Forgery,
    LinkSpec,
    NetworkSchedule,
    Partition,
    WriteStream,
)
from pytest_replay.replication.sim import Simulation, verify_trace
from pytest_replay.replication.trace import TraceEvent, decode_trace, encode_trace

__all__ = [
    "ChannelIdentity",
    "Crash",
    "Forgery",
    "LinkSpec",
    "NetworkSchedule",
    "NoopTagSink",
    "Partition",
    "ReplicaRole",
    "ReplicationConfig",
    "ReplicationCoordinator",
    "ReplicationError",
    "ReplicationRuntime",
    "RuntimeInputs",
    "ScheduleError",
    "SequencedLog",
    "Simulation",
    "TraceEvent",
    "TraceFormatError",
    "TransitionSignal",
    "UnderCapacity",
    "WriteStream",
    "convergence_problems",
    "decode_trace",
    "encode_trace",
    "safety_problems",
    "verify_trace",
]
