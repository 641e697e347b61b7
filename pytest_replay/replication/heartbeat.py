"""Heartbeat tracker: what each peer last said, and whether the leader went silent.

The tracker believes in a leader: the last peer whose heartbeat claimed the
Leader role. The belief goes when that peer heartbeats with another role, or
when the runtime clears it (NotLeader NACK, election). A leader is *silent*
once ``miss_threshold`` heartbeat intervals pass without hearing from it; with
no believed leader, silence is counted from when the belief was last cleared
(or the tracker was created), so a replica that never hears a leader also
starts an election.

The tracker also counts how many heartbeats in a row the believed leader
advertised a shorter log than ours (:meth:`note_leader_tail`); the tick turns
``miss_threshold`` of them into a ``LeaderBehind`` candidacy, so a node that
restarts holding the longest log takes the lead instead of staying a replica
that can never catch "down" to its leader.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_replay.replication.config import DEFAULT_MISS_THRESHOLD
from pytest_replay.replication.errors import ScheduleError
from pytest_replay.replication.messages import NodeId, ReplicaRole

__all__ = ["HeartbeatTracker", "PeerState"]


@dataclass(frozen=True, slots=True)
class PeerState:
    """The latest heartbeat heard from one peer."""

    role: ReplicaRole
    tail_seq: int
    last_seen_ms: int


class HeartbeatTracker:
    """Per-channel record of peer heartbeats (times in milliseconds)."""

    __slots__ = (
        "_behind_beats",
        "_believed",
        "_heartbeat_ms",
        "_miss_threshold",
        "_peers",
        "_silent_since_ms",
    )

    def __init__(
        self, heartbeat_ms: int, miss_threshold: int = DEFAULT_MISS_THRESHOLD, *, now_ms: int = 0
    ) -> None:
        if heartbeat_ms < 1 or miss_threshold < 1:
            raise ScheduleError(
                f"tracker needs heartbeat_ms >= 1 and miss_threshold >= 1, got "
                f"{heartbeat_ms} and {miss_threshold}",
                fix="use e.g. 100 and 3.",
            )
        self._heartbeat_ms = heartbeat_ms
        self._miss_threshold = miss_threshold
        # ``(role, tail_seq, last_seen_ms)`` per peer: a plain tuple, as every heartbeat
        # received replaces one; :meth:`peer_state` hands out the frozen value.
        self._peers: dict[NodeId, tuple[ReplicaRole, int, int]] = {}
        self._believed: NodeId | None = None
        self._silent_since_ms = now_ms
        self._behind_beats = 0

    @property
    def heartbeat_ms(self) -> int:
        return self._heartbeat_ms

    @property
    def miss_threshold(self) -> int:
        return self._miss_threshold

    @property
    def silence_window_ms(self) -> int:
        """How long a peer may stay quiet and still count as healthy."""
        return self._heartbeat_ms * self._miss_threshold

    def record_heartbeat(self, peer: NodeId, role: ReplicaRole, tail_seq: int, now_ms: int) -> None:
        """Remember ``peer``'s latest heartbeat; a Leader claim makes it the believed leader."""
        self._peers[peer] = (role, tail_seq, now_ms)
        if role is ReplicaRole.LEADER:
            if self._believed != peer:
                self._behind_beats = 0
            self._believed = peer
        elif self._believed == peer:
            # The peer we followed says it is no longer leader: silence starts now.
            self._believed = None
            self._silent_since_ms = now_ms
            self._behind_beats = 0

    def believed_leader(self) -> NodeId | None:
        return self._believed

    def clear_believed_leader(self, now_ms: int) -> None:
        self._believed = None
        self._silent_since_ms = now_ms
        self._behind_beats = 0

    def note_leader_tail(self, peer: NodeId, leader_tail: int, local_tail: int) -> None:
        """Count consecutive believed-leader heartbeats advertising less than ``local_tail``."""
        if peer != self._believed:
            return
        self._behind_beats = self._behind_beats + 1 if leader_tail < local_tail else 0

    @property
    def leader_behind_beats(self) -> int:
        """Consecutive heartbeats in which the believed leader advertised a shorter log."""
        return self._behind_beats

    def leader_behind(self) -> bool:
        """True once ``miss_threshold`` such heartbeats came in a row."""
        return self._believed is not None and self._behind_beats >= self._miss_threshold

    def peer_state(self, peer: NodeId) -> PeerState | None:
        state = self._peers.get(peer)
        return None if state is None else PeerState(*state)

    def peer_lag(self, peer: NodeId, now_ms: int) -> int | None:
        """Milliseconds since ``peer`` was last heard, or ``None`` if never."""
        state = self._peers.get(peer)
        if state is None:
            return None
        return max(0, now_ms - state[2])

    def peer_tail_seqs(self) -> list[tuple[NodeId, int]]:
        """``(peer, tail_seq)`` for every peer heard from, by node id."""
        return sorted((peer, state[1]) for peer, state in self._peers.items())

    def healthy_peers(self, now_ms: int) -> frozenset[NodeId]:
        """Peers heard from within the silence window."""
        window = self.silence_window_ms
        return frozenset(peer for peer, state in self._peers.items() if now_ms - state[2] < window)

    def leader_silent(self, now_ms: int) -> bool:
        """True once the believed leader (or, with none, anyone) was silent for the window."""
        if self._believed is not None:
            lag = self.peer_lag(self._believed, now_ms)
            return lag is None or lag >= self.silence_window_ms
        return now_ms - self._silent_since_ms >= self.silence_window_ms
