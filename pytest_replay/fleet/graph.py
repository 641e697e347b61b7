"""The causal graph of a fleet replay, built as flat integer arrays.

Nodes are recorded steps. Node numbers are assigned in the order of the scheduling key
(instance id, subsystem code, step id, build order), so "the smallest ready node" is
simply the smallest ready node number and the scheduler's heap holds plain ints.
Edges: consecutive steps of one session (local order, stored as ``local_next``), and
from the step named by a message's origin to the step holding the message (provenance,
stored once each in CSR form ``indptr``/``indices``, minus those the local order
already implies).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np
import numpy.typing as npt

from pytest_replay.fleet.errors import ReplayGraphError
from pytest_replay.fleet.reader import StepTable

__all__ = ["CausalGraph", "SessionNodes", "build_causal_graph"]

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class SessionNodes:
    """The identity and recorded steps of one session, as the graph builder sees them."""

    instance_id: int
    subsystem_id: str
    subsystem_code: int
    table: StepTable


@dataclass(frozen=True, slots=True)
class CausalGraph:
    """Nodes in scheduling-key order; ``node_of_session_step[offset[s] + i]`` is the node
    of step ``i`` (log order) of session ``s``."""

    node_session: IntArray
    node_local: IntArray
    node_step: npt.NDArray[np.uint64]
    local_next: IntArray
    indptr: IntArray
    indices: IntArray
    indegree: IntArray
    session_offset: IntArray
    node_of_session_step: IntArray

    @property
    def total_nodes(self) -> int:
        return len(self.node_session)

    @property
    def total_edges(self) -> int:
        """Distinct edges: local order plus provenance not already implied by it."""
        return int((self.local_next >= 0).sum()) + len(self.indices)

    def successors(self, node: int) -> list[int]:
        """Every node that waits on ``node`` (local successor first)."""
        out = [int(self.local_next[node])] if self.local_next[node] >= 0 else []
        out.extend(self.indices[self.indptr[node] : self.indptr[node + 1]].tolist())
        return out


def _node_text(sessions: Sequence[SessionNodes], session: int, step: int) -> str:
    spec = sessions[session]
    return f"instance {spec.instance_id} subsystem '{spec.subsystem_id}' step {step}"


def build_causal_graph(sessions: Sequence[SessionNodes]) -> CausalGraph:
    """Build and check the graph; errors name instance, subsystem and step ids."""
    counts = np.array([len(spec.table.step_ids) for spec in sessions], np.int64)
    offsets = np.zeros(len(sessions) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    total = int(offsets[-1])
    session_of = np.repeat(np.arange(len(sessions), dtype=np.int64), counts)
    local = np.arange(total, dtype=np.int64) - offsets[session_of]
    steps = (
        np.concatenate([spec.table.step_ids for spec in sessions])
        if sessions
        else np.zeros(0, np.uint64)
    ).astype(np.uint64, copy=False)
    session_hi = np.array(
        [(spec.instance_id << 16) | spec.subsystem_code for spec in sessions], np.uint64
    )

    # Dense ranks make (instance, code, step) one int64 key that sorts the same way.
    unique_hi = _sorted_unique(session_hi)
    hi_rank = np.searchsorted(unique_hi, session_hi).astype(np.int64)[session_of]
    ranks = _step_ranks(steps)
    unique_steps = ranks.unique
    width = max(len(unique_steps), 1)
    key = hi_rank * width + _locate(ranks, steps)[0]
    del hi_rank
    # Scratch columns are dropped as soon as they are used: at 10M nodes each is 80 MB
    # of the replay's peak memory.
    in_key_order = total < 2 or bool(np.all(key[1:] > key[:-1]))
    if in_key_order:
        order = np.arange(total, dtype=np.int64)  # the usual case
        sorted_key = key
    else:
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
    if total > 1:
        same = np.flatnonzero(sorted_key[1:] == sorted_key[:-1])
        if same.size:
            first, second = int(order[same[0]]), int(order[same[0] + 1])
            a, b = sessions[int(session_of[first])], sessions[int(session_of[second])]
            raise ReplayGraphError(
                f"duplicate replay node: instance {a.instance_id} subsystem code "
                f"{a.subsystem_code} step {int(steps[first])} is recorded by both "
                f"'{a.subsystem_id}' and '{b.subsystem_id}'",
                "each (instance, subsystem code) must have one log with unique step ids",
            )
    _check_duplicate_cursors(sessions)

    if in_key_order:
        # Node i is build entry i, and the node columns are the build columns
        # themselves, not copies.
        node_of = order
        node_session, node_local, node_step = session_of, local, steps
    else:
        node_of = np.empty(total, np.int64)
        node_of[order] = np.arange(total, dtype=np.int64)
        node_session, node_local, node_step = session_of[order], local[order], steps[order]
    del key

    # Local order, kept implicit: every step but a session's last precedes the next one.
    local_next = np.full(total, -1, np.int64)
    if total > 1:
        chained = np.flatnonzero(session_of[1:] == session_of[:-1])
        local_next[node_of[chained]] = node_of[chained + 1]
        del chained

    src, dst = _provenance_edges(sessions, offsets, node_of, unique_hi, ranks, width, sorted_key)
    del sorted_key
    # An origin in the previous step of the same session repeats the local edge.
    distinct = local_next[src] != dst
    if not distinct.all():
        src, dst = src[distinct], dst[distinct]
    del distinct
    stride = max(total, 1)
    combined = _sorted_unique(src * stride + dst)
    del src, dst
    src = combined // stride
    dst = combined % stride
    del combined
    indptr = np.zeros(total + 1, np.int64)
    np.cumsum(np.bincount(src, minlength=total), out=indptr[1:])
    del src
    indegree = np.bincount(dst, minlength=total).astype(np.int64)
    # Plus the local-order edge into every step but a session's first (each node is
    # the local successor of one node at most, so the fancy-indexed add counts once).
    indegree[local_next[local_next >= 0]] += 1
    graph = CausalGraph(
        node_session=node_session,
        node_local=node_local,
        node_step=node_step,
        local_next=local_next,
        indptr=indptr,
        indices=dst.astype(np.int64, copy=False),
        indegree=indegree,
        session_offset=offsets,
        node_of_session_step=node_of,
    )
    if total and not bool((indegree == 0).any()):
        waiting = [
            _node_text(sessions, int(graph.node_session[n]), int(graph.node_step[n]))
            for n in range(min(total, 3))
        ]
        raise ReplayGraphError(
            f"the causal graph of {total} recorded steps has no causally ready starting point: "
            f"every step waits on another (e.g. {'; '.join(waiting)})",
            "the recorded provenance forms a cycle; record the fleet again",
        )
    return graph


@dataclass(frozen=True, slots=True)
class _StepRanks:
    """The distinct step ids of a fleet, sorted, and how to find an id among them: a
    table over ``[low, low + len(present))`` when the ids lie close together (a fleet's
    sessions usually log the same few ids), else a binary search."""

    unique: npt.NDArray[np.uint64]
    low: int
    present: npt.NDArray[np.bool_] | None
    rank: IntArray | None


def _step_ranks(steps: npt.NDArray[np.uint64]) -> _StepRanks:
    if len(steps):
        low, high = int(steps.min()), int(steps.max())
        span = high - low + 1
        if span <= 4 * len(steps) + 64:
            present = np.zeros(span, bool)
            present[(steps - np.uint64(low)).astype(np.int64)] = True
            unique = np.flatnonzero(present).astype(np.uint64) + np.uint64(low)
            rank = np.cumsum(present, dtype=np.int64) - 1
            return _StepRanks(unique, low, present, rank)
    return _StepRanks(_sorted_unique(steps), 0, None, None)


def _locate(
    ranks: _StepRanks, values: npt.NDArray[np.uint64]
) -> tuple[IntArray, npt.NDArray[np.bool_]]:
    """Each value's position among ``ranks.unique`` and whether it is there (the
    position of a value that is not there is of no use)."""
    unique, present, rank = ranks.unique, ranks.present, ranks.rank
    if present is None or rank is None:
        position = np.searchsorted(unique, values)
        found = position < len(unique)
        found[found] = unique[position[found]] == values[found]
        return position.astype(np.int64), found
    low = np.uint64(ranks.low)
    offset = values - low  # wraps around for a value below low: then not inside
    inside = (values >= low) & (offset < np.uint64(len(present)))
    index = np.where(inside, offset, np.uint64(0)).astype(np.int64)
    return rank[index], inside & present[index]


def _sorted_unique(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
    # np.unique may pick a hash table, which is far slower than a sort on large int arrays.
    ordered = np.sort(values)
    if len(ordered) < 2:
        return ordered
    keep = np.empty(len(ordered), bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def _check_duplicate_cursors(sessions: Sequence[SessionNodes]) -> None:
    by_target: defaultdict[tuple[int, str], list[int]] = defaultdict(list)
    for index, spec in enumerate(sessions):
        by_target[(spec.instance_id, spec.subsystem_id)].append(index)
    for (instance_id, subsystem_id), members in sorted(by_target.items()):
        for position, left in enumerate(members):
            for right in members[position + 1 :]:
                common = np.intersect1d(
                    sessions[left].table.step_ids, sessions[right].table.step_ids
                )
                if common.size:
                    raise ReplayGraphError(
                        f"duplicate replay cursor: instance {instance_id} subsystem "
                        f"'{subsystem_id}' step {int(common[0])} comes from two sessions",
                        "select one log per (instance, subsystem)",
                    )


#: Origins resolved per pass of :func:`_provenance_edges`: the passes' scratch arrays
#: (about 70 bytes an origin) stay this size however large the fleet is.
EDGE_CHUNK_ORIGINS = 1 << 17


@dataclass(frozen=True, slots=True)
class _NodeLookup:
    """What turns a recorded origin into the node that recorded it: the build columns'
    session offsets and node numbers, and the sorted keys of every node."""

    sessions: Sequence[SessionNodes]
    offsets: IntArray
    node_of: IntArray
    unique_hi: npt.NDArray[np.uint64]
    ranks: _StepRanks
    width: int
    sorted_key: IntArray
    #: key -> node, when the keys are dense enough for a table (else a binary search).
    slot: IntArray | None


def _provenance_edges(
    sessions: Sequence[SessionNodes],
    offsets: IntArray,
    node_of: IntArray,
    unique_hi: npt.NDArray[np.uint64],
    ranks: _StepRanks,
    width: int,
    sorted_key: IntArray,
) -> tuple[IntArray, IntArray]:
    """The (source, target) node of every recorded origin, in build order."""
    tables = [spec.table for spec in sessions]
    sizes = np.array([len(table.origin_step_index) for table in tables], np.int64)
    total = int(sizes.sum())
    source = np.empty(total, np.int64)
    target = np.empty(total, np.int64)
    if not total:
        return source, target
    slot = None
    if len(unique_hi) * width <= 4 * len(sorted_key) + 64:
        # Dense keys (the usual fleet: every session logs the same step ids): one gather
        # through a key -> node table instead of a binary search per message.
        slot = np.full(len(unique_hi) * width, -1, np.int64)
        slot[sorted_key] = np.arange(len(sorted_key), dtype=np.int64)
    lookup = _NodeLookup(sessions, offsets, node_of, unique_hi, ranks, width, sorted_key, slot)
    # Sessions are taken in runs of about EDGE_CHUNK_ORIGINS origins, in build order, so
    # the first run with a bad edge holds the first bad edge of all.
    ends = np.cumsum(sizes)
    group = (ends - sizes) // EDGE_CHUNK_ORIGINS
    cuts = [0, *(np.flatnonzero(group[1:] != group[:-1]) + 1).tolist(), len(tables)]
    for lo, hi in itertools.pairwise(cuts):
        if lo < hi:
            part = slice(int(ends[lo] - sizes[lo]), int(ends[hi - 1]))
            source[part], target[part] = _resolve_origins(lookup, lo, hi, sizes[lo:hi])
    return source, target


def _resolve_origins(
    lookup: _NodeLookup, lo: int, hi: int, sizes: IntArray
) -> tuple[IntArray, IntArray]:
    """Source and target nodes of the origins of sessions ``lo..hi-1``."""
    sessions, offsets, unique_hi = lookup.sessions, lookup.offsets, lookup.unique_hi
    width, sorted_key, slot = lookup.width, lookup.sorted_key, lookup.slot
    tables = [spec.table for spec in sessions[lo:hi]]
    target_old = np.concatenate([table.origin_step_index for table in tables]).astype(
        np.int64, copy=False
    ) + np.repeat(offsets[lo:hi], sizes)
    origin_hi = (
        np.concatenate([table.origin_instance for table in tables]).astype(np.uint64)
        << np.uint64(16)
    ) | np.concatenate([table.origin_code for table in tables]).astype(np.uint64)
    origin_step = np.concatenate([table.origin_step for table in tables]).astype(
        np.uint64, copy=False
    )
    target = lookup.node_of[target_old]

    hi_pos = np.searchsorted(unique_hi, origin_hi)
    step_pos, found = _locate(lookup.ranks, origin_step)
    found &= hi_pos < len(unique_hi)
    found[found] &= unique_hi[hi_pos[found]] == origin_hi[found]
    origin_key = hi_pos.astype(np.int64) * width + step_pos
    del hi_pos, step_pos
    origin_key[~found] = 0
    if slot is not None:
        source = slot[origin_key]
        found &= source >= 0
    else:
        source = np.searchsorted(sorted_key, origin_key)
        inside = found & (source < len(sorted_key))
        found[found] = inside[found]
        found[found] &= sorted_key[source[found]] == origin_key[found]
    looped = source == target
    if not bool(found.all()) or bool(looped.any()):
        _raise_first_bad_edge(
            sessions, offsets, target_old, origin_hi, origin_step, ~found | looped, found
        )
    return source, target


def _raise_first_bad_edge(
    sessions: Sequence[SessionNodes],
    offsets: IntArray,
    target_old: IntArray,
    origin_hi: npt.NDArray[np.uint64],
    origin_step: npt.NDArray[np.uint64],
    bad: npt.NDArray[np.bool_],
    found: npt.NDArray[np.bool_],
) -> NoReturn:
    """Raise for the first bad provenance edge in build order: targets in the order the
    sessions were given and, within a session, log order; a target's origins sorted by
    (instance, subsystem code, step). Whichever problem comes first is the one reported:
    an origin no given session recorded, or an origin that is the target step itself."""
    candidates = np.flatnonzero(bad)
    pick = int(
        candidates[
            np.lexsort((origin_step[candidates], origin_hi[candidates], target_old[candidates]))[0]
        ]
    )
    session = int(np.searchsorted(offsets, target_old[pick], side="right")) - 1
    step = int(sessions[session].table.step_ids[target_old[pick] - offsets[session]])
    into = _node_text(sessions, session, step)
    if not found[pick]:
        o_hi = int(origin_hi[pick])
        raise ReplayGraphError(
            f"unresolved recorded provenance edge into {into} from instance {o_hi >> 16} "
            f"subsystem code {o_hi & 0xFFFF} step {int(origin_step[pick])}",
            "replay the logs of every instance and subsystem the messages came from, "
            "and check the origin step was recorded",
        )
    raise ReplayGraphError(
        f"recorded provenance on {into} points to itself",
        "a message's origin must be an earlier step; fix the recorder",
    )
