"""Role transitions: which signal may move a channel from one role to another.

::

    Idle ──CapabilitySelected──▶ Replica ──MissedHeartbeats──▶ Candidate
                                   ▲  ▲                          │   │
                   PeerLeaderObserved  └──────ElectionLost───────┘   │ElectionWon
                                   │                                 ▼
                                   └──────────────────────────── Leader

    any ──ChannelClose──▶ Idle (Idle → Idle is an idempotent no-op)
    Replica ──LeaderBehind──▶ Candidate (the followed leader holds less than we do)
    Replica ──DiskPressureWithdraw──▶ Idle
    Leader ──LeaderDiskPressureWithdraw / GracefulRelinquish──▶ Idle
    Candidate ──CandidateDiskPressureWithdraw──▶ Idle
"""

from __future__ import annotations

import enum

from pytest_replay.replication.errors import InvalidTransitionError
from pytest_replay.replication.messages import ReplicaRole

__all__ = ["TransitionSignal", "allowed_transitions", "is_idempotent", "validate_transition"]


class TransitionSignal(enum.Enum):
    """Why a role changes."""

    CAPABILITY_SELECTED = "CapabilitySelected"
    MISSED_HEARTBEATS = "MissedHeartbeats"
    #: A replica's followed leader kept advertising a shorter log than the replica's
    #: own (a node that held the longest log restarted as a replica): it stands for
    #: election so the longest log leads (our extension, see docs/replication.md).
    LEADER_BEHIND = "LeaderBehind"
    ELECTION_WON = "ElectionWon"
    ELECTION_LOST = "ElectionLost"
    PEER_LEADER_OBSERVED = "PeerLeaderObserved"
    CHANNEL_CLOSE = "ChannelClose"
    GRACEFUL_RELINQUISH = "GracefulRelinquish"
    DISK_PRESSURE_WITHDRAW = "DiskPressureWithdraw"
    LEADER_DISK_PRESSURE_WITHDRAW = "LeaderDiskPressureWithdraw"
    CANDIDATE_DISK_PRESSURE_WITHDRAW = "CandidateDiskPressureWithdraw"


_R = ReplicaRole
_S = TransitionSignal
_ALLOWED: frozenset[tuple[ReplicaRole, ReplicaRole, TransitionSignal]] = frozenset(
    {
        (_R.IDLE, _R.REPLICA, _S.CAPABILITY_SELECTED),
        (_R.REPLICA, _R.CANDIDATE, _S.MISSED_HEARTBEATS),
        (_R.REPLICA, _R.CANDIDATE, _S.LEADER_BEHIND),
        (_R.CANDIDATE, _R.LEADER, _S.ELECTION_WON),
        (_R.CANDIDATE, _R.REPLICA, _S.ELECTION_LOST),
        (_R.LEADER, _R.REPLICA, _S.PEER_LEADER_OBSERVED),
        (_R.LEADER, _R.IDLE, _S.GRACEFUL_RELINQUISH),
        (_R.REPLICA, _R.IDLE, _S.DISK_PRESSURE_WITHDRAW),
        (_R.LEADER, _R.IDLE, _S.LEADER_DISK_PRESSURE_WITHDRAW),
        (_R.CANDIDATE, _R.IDLE, _S.CANDIDATE_DISK_PRESSURE_WITHDRAW),
    }
    | {(role, _R.IDLE, _S.CHANNEL_CLOSE) for role in ReplicaRole}
)


def is_idempotent(current: ReplicaRole, target: ReplicaRole, signal: TransitionSignal) -> bool:
    """Closing an already idle channel changes nothing and has no side effect."""
    return current is target is ReplicaRole.IDLE and signal is TransitionSignal.CHANNEL_CLOSE


def validate_transition(
    current: ReplicaRole, target: ReplicaRole, signal: TransitionSignal
) -> None:
    """Raise :class:`InvalidTransitionError` unless the matrix allows the move."""
    if (current, target, signal) not in _ALLOWED:
        raise InvalidTransitionError(
            f"transition {current.name} -> {target.name} on {signal.value} is not allowed",
            fix=f"from {current.name} use one of: "
            + ", ".join(f"{t.name} on {s.value}" for t, s in allowed_transitions(current))
            + ".",
        )


def allowed_transitions(current: ReplicaRole) -> list[tuple[ReplicaRole, TransitionSignal]]:
    """Every ``(target, signal)`` allowed from ``current``, in a stable order."""
    return sorted(
        ((t, s) for c, t, s in _ALLOWED if c is current), key=lambda pair: (pair[0], pair[1].value)
    )
