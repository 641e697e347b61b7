"""The properties a simulated run must have, checked from the outside.

* :func:`convergence_problems` looks at the nodes: exactly one leader, every
  other live node a replica whose log equals the leader's retained range.
* :func:`safety_problems` reads only the trace, independently of the
  runtime's own gates: every applied response came from a member of the
  replica set that was Leader when it sent it, was not forged, answered a
  request the replica really sent to that peer (token minted, not expired,
  used once), and was applied while the replica was a Replica; and each
  node's log tail only moves forward.

Both return a list of readable problems; an empty list means the property
holds.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol

from pytest_replay.replication.log import SequencedLog
from pytest_replay.replication.messages import NodeId, ReplicaRole
from pytest_replay.replication.tokens import REQUEST_TTL_MS

__all__ = ["ClusterView", "NodeView", "convergence_problems", "safety_problems"]


class NodeView(Protocol):
    """What :func:`convergence_problems` reads of one node (a simulator ``SimNode``)."""

    @property
    def id(self) -> NodeId: ...
    @property
    def log(self) -> SequencedLog: ...
    @property
    def runtime(self) -> object | None: ...
    @property
    def role(self) -> ReplicaRole | None: ...


class ClusterView(Protocol):
    """What :func:`convergence_problems` reads of a cluster (a
    :class:`~pytest_replay.replication.sim.Simulation`, which checks itself with it)."""

    @property
    def now_ms(self) -> int: ...
    @property
    def nodes(self) -> Mapping[NodeId, NodeView]: ...


def convergence_problems(sim: ClusterView) -> list[str]:
    """Why the cluster has not converged (empty when it has)."""
    now = sim.now_ms
    up = [node for node in sim.nodes.values() if node.runtime is not None]
    leaders = [node for node in up if node.role is ReplicaRole.LEADER]
    problems: list[str] = []
    if len(leaders) != 1:
        problems.append(
            f"t={now}ms: {len(leaders)} leaders ({', '.join(hex(n.id) for n in leaders)}); "
            "expected exactly one"
        )
    for node in up:
        if node.role not in (ReplicaRole.LEADER, ReplicaRole.REPLICA):
            problems.append(f"t={now}ms: node {node.id:#x} is {node.role}, not Leader or Replica")
    if not leaders:
        return problems
    leader = leaders[0]
    lo, hi = leader.log.first_retained_seq, leader.log.next_seq
    expected = leader.log.payloads(lo, hi)
    for node in up:
        if node is leader:
            continue
        log = node.log
        if log.next_seq != hi:
            problems.append(
                f"t={now}ms: node {node.id:#x} log ends at seq {log.next_seq}, "
                f"leader {leader.id:#x} at {hi}"
            )
        elif log.first_retained_seq > lo:
            problems.append(
                f"t={now}ms: node {node.id:#x} retains from seq {log.first_retained_seq}, "
                f"leader {leader.id:#x} from {lo}"
            )
        else:
            got = log.payloads(lo, hi)
            if got != expected:
                seq = lo + next(
                    i for i, (a, b) in enumerate(zip(expected, got, strict=True)) if a != b
                )
                problems.append(
                    f"t={now}ms: node {node.id:#x} differs from leader {leader.id:#x} at seq "
                    f"{seq}: {got[seq - lo]!r} != {expected[seq - lo]!r}"
                )
    return problems


def _at(event: Sequence[Any]) -> str:
    return f"t={event[0]}ms {event[1]} at node {event[2]:#x}"


def safety_problems(events: Sequence[Sequence[Any]], replica_set: Collection[NodeId]) -> list[str]:
    """Safety violations found in a raw trace (see the module docstring)."""
    members = set(replica_set)
    problems: list[str] = []
    roles: dict[int, str] = {}
    tails: dict[int, int] = {}
    # Message id -> (source, dest, attrs) of every delivered message.
    delivered: dict[int, tuple[int, int, dict[str, Any]]] = {}
    # (replica, leader, token) -> minting time, from the requests seen on the wire.
    minted: dict[tuple[int, int, int], int] = {}
    used: set[tuple[int, int, int]] = set()
    for event in events:
        _time_ms, kind, node, peer, attrs = event
        if kind == "role":
            roles[node] = attrs["to"]
        elif kind == "crash":
            roles[node] = "DOWN"
        elif kind == "start":
            roles[node] = "IDLE"
            tails.setdefault(node, attrs["tail"])
            if attrs["tail"] != tails[node]:
                problems.append(
                    f"{_at(event)}: restarted with tail {attrs['tail']}, "
                    f"but its log ended at {tails[node]}"
                )
        elif kind in ("deliver", "drop"):
            if attrs["type"] == "sync_request" and "forged" not in attrs:
                minted.setdefault((peer, node, attrs["token"]), attrs["sent"])
            if kind == "deliver":
                delivered[attrs["wire"]] = (peer, node, attrs)
        elif kind == "write":
            _advance(problems, event, tails, attrs["first"], attrs["first"] + attrs["count"])
        elif kind == "skip_ahead":
            _advance(problems, event, tails, attrs["from_seq"], attrs["to_seq"])
        elif kind == "apply":
            _advance(problems, event, tails, attrs["prev_tail"], attrs["new_tail"])
            _check_apply(problems, event, members, roles, delivered, minted, used)
    return problems


def _advance(
    problems: list[str], event: Sequence[Any], tails: dict[int, int], old: int, new: int
) -> None:
    node = event[2]
    known = tails.get(node, 0)
    if old != known:
        problems.append(f"{_at(event)}: starts from seq {old} but the log tail was {known}")
    if new < old:
        problems.append(f"{_at(event)}: tail moved backwards from {old} to {new}")
    tails[node] = new


def _check_apply(
    problems: list[str],
    event: Sequence[Any],
    members: set[NodeId],
    roles: dict[int, str],
    delivered: dict[int, tuple[int, int, dict[str, Any]]],
    minted: dict[tuple[int, int, int], int],
    used: set[tuple[int, int, int]],
) -> None:
    time_ms, _kind, node, peer, attrs = event
    where = _at(event)
    if peer not in members:
        problems.append(f"{where}: applied a response from {peer:#x}, outside the replica set")
    if roles.get(node) != "REPLICA":
        problems.append(f"{where}: applied a response while {roles.get(node, 'unknown')}")
    wire = attrs.get("wire")
    found = delivered.get(wire) if isinstance(wire, int) else None
    if found is None:
        problems.append(f"{where}: applied a response that was never delivered (wire {wire})")
        return
    source, dest, message = found
    if (source, dest) != (peer, node) or message["type"] != "sync_response":
        problems.append(
            f"{where}: applied wire {wire}, which is {message['type']} {source}->{dest}"
        )
    if "forged" in message:
        problems.append(f"{where}: applied forged wire {wire} from {source:#x}")
    elif message.get("sender_role") != "LEADER":
        problems.append(
            f"{where}: applied wire {wire} sent by {source:#x} while {message.get('sender_role')}"
        )
    key = (node, peer, message["token"])
    if attrs.get("request_id") != message["token"]:
        problems.append(f"{where}: applied token {attrs.get('request_id')} != wire token")
    minted_at = minted.get(key)
    if minted_at is None:
        problems.append(f"{where}: token {message['token']:#x} was never sent to {peer:#x}")
    elif time_ms - minted_at >= REQUEST_TTL_MS:
        problems.append(f"{where}: token {message['token']:#x} minted at {minted_at}ms had expired")
    if key in used:
        problems.append(f"{where}: token {message['token']:#x} admitted a second response")
    used.add(key)
