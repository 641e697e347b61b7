"""The outbound side: where the runtime ships its messages.

A dispatcher returning normally means "queued to the transport", not
"delivered": a lossy transport drops silently and the budget is not refunded.
Only a synchronous :class:`DispatchError` (e.g. the peer is unreachable) makes
the runtime refund the bytes of a response.
"""

from __future__ import annotations

from typing import Protocol

from pytest_replay.replication.errors import DispatchError
from pytest_replay.replication.messages import (
    NodeId,
    SyncHeartbeat,
    SyncNack,
    SyncRequest,
    SyncResponse,
)

__all__ = ["RecordingDispatcher", "ReplicationDispatcher"]


class ReplicationDispatcher(Protocol):
    """Sends wire messages; raises :class:`DispatchError` when a send cannot be queued."""

    def send_heartbeat(self, target: NodeId, msg: SyncHeartbeat) -> None: ...

    def send_sync_request(self, target: NodeId, msg: SyncRequest) -> None: ...

    def send_sync_response(self, target: NodeId, msg: SyncResponse) -> None: ...

    def send_sync_nack(self, target: NodeId, msg: SyncNack) -> None: ...


class RecordingDispatcher:
    """Keeps every outbound message, per kind, in send order.

    ``fail_responses`` makes ``send_sync_response`` raise (after recording the
    attempt in ``failed_responses``), to exercise the budget refund.
    """

    def __init__(self, *, fail_responses: bool = False) -> None:
        self.heartbeats: list[tuple[NodeId, SyncHeartbeat]] = []
        self.sync_requests: list[tuple[NodeId, SyncRequest]] = []
        self.sync_responses: list[tuple[NodeId, SyncResponse]] = []
        self.sync_nacks: list[tuple[NodeId, SyncNack]] = []
        self.failed_responses: list[tuple[NodeId, SyncResponse]] = []
        self.fail_responses = fail_responses

    def send_heartbeat(self, target: NodeId, msg: SyncHeartbeat) -> None:
        self.heartbeats.append((target, msg))

    def send_sync_request(self, target: NodeId, msg: SyncRequest) -> None:
        self.sync_requests.append((target, msg))

    def send_sync_response(self, target: NodeId, msg: SyncResponse) -> None:
        if self.fail_responses:
            self.failed_responses.append((target, msg))
            raise DispatchError(
                f"send of response {msg.request_id:#x} to node {target:#x} failed (test)",
                fix="set fail_responses=False.",
            )
        self.sync_responses.append((target, msg))

    def send_sync_nack(self, target: NodeId, msg: SyncNack) -> None:
        self.sync_nacks.append((target, msg))
