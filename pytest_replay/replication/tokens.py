"""Request tokens: the replica only accepts responses to requests it actually sent.

Every outbound sync request carries a random 64-bit token recorded against the
leader it went to. A response or NACK must present a live token from that
leader; it is consumed on use, so a duplicate or replay finds nothing.
"""

from __future__ import annotations

from pytest_replay.replication.messages import NodeId

__all__ = ["REQUEST_REGISTRY_SOFT_CAP", "REQUEST_TTL_MS", "OutstandingRequests"]

#: A token older than this no longer admits a response.
REQUEST_TTL_MS = 30_000
#: At this many entries, recording first drops the expired ones.
REQUEST_REGISTRY_SOFT_CAP = 256


class OutstandingRequests:
    """In-flight ``(leader, token)`` pairs with their minting time."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        # Insertion-ordered dict: iteration (and so any GC) is deterministic.
        self._entries: dict[tuple[NodeId, int], int] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def record(self, leader: NodeId, request_id: int, now_ms: int) -> None:
        if len(self._entries) >= REQUEST_REGISTRY_SOFT_CAP:
            self._entries = {
                key: minted
                for key, minted in self._entries.items()
                if now_ms - minted < REQUEST_TTL_MS
            }
        self._entries[(leader, request_id)] = now_ms

    def take(self, leader: NodeId, request_id: int, now_ms: int) -> bool:
        """Consume the token; True only if it existed and had not expired."""
        minted = self._entries.pop((leader, request_id), None)
        return minted is not None and now_ms - minted < REQUEST_TTL_MS

    def contains(self, leader: NodeId, request_id: int) -> bool:
        return (leader, request_id) in self._entries

    def clear_leader(self, leader: NodeId) -> None:
        """Forget every token minted for ``leader`` (the belief in it is gone)."""
        self._entries = {key: t for key, t in self._entries.items() if key[0] != leader}

    def leaders(self) -> list[NodeId]:
        return sorted({leader for leader, _ in self._entries})
