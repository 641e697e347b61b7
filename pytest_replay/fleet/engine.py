"""ReplayEngine: executes a fleet's recorded steps in one stable causal order."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from pytest_replay.fleet.errors import ReplayGraphError
from pytest_replay.fleet.graph import CausalGraph, IntArray, SessionNodes, build_causal_graph
from pytest_replay.fleet.session import EngineSession

__all__ = ["FleetCursor", "ReplayEngine"]


def _all_successors(graph: CausalGraph) -> tuple[IntArray, IntArray]:
    """CSR of every successor of each node, its local successor first, so the hot loop
    walks one list per executed node."""
    total = graph.total_nodes
    has_local = (graph.local_next >= 0).astype(np.int64)
    provenance = np.diff(graph.indptr)
    indptr = np.zeros(total + 1, np.int64)
    np.cumsum(has_local + provenance, out=indptr[1:])
    indices = np.empty(int(indptr[-1]), np.int64)
    chained = has_local.astype(bool)
    indices[indptr[:-1][chained]] = graph.local_next[chained]
    owner = np.repeat(np.arange(total, dtype=np.int64), provenance)
    within = np.arange(len(graph.indices), dtype=np.int64) - graph.indptr[owner]
    indices[indptr[owner] + has_local[owner] + within] = graph.indices
    return indptr, indices


def _in_order_prefix(graph: CausalGraph) -> int:
    """How many nodes, from node 0 on, run in plain number order.

    Nodes are numbered in scheduling-key order, so as long as every edge into a node
    comes from a smaller number, the smallest causally ready node is simply the next
    number. The prefix ends at the first node that waits on a larger one; local-order
    edges always point forward.
    """
    sources = np.repeat(np.arange(graph.total_nodes, dtype=np.int64), np.diff(graph.indptr))
    backward = graph.indices[sources > graph.indices]
    return int(backward.min()) if backward.size else graph.total_nodes


@dataclass(frozen=True, slots=True)
class _HeapLists:
    """The graph as plain lists for the general scheduler's hot loop."""

    node_session: list[int]
    node_local: list[int]
    indptr: list[int]
    indices: list[int]


@dataclass(frozen=True, slots=True)
class FleetCursor:
    """One recorded step of one session: where the engine is, or what it just ran."""

    instance_id: int
    subsystem_id: str
    step_id: int
    subsystem_code: int


class ReplayEngine:
    """Causal replay of many sessions.

    The next step executed is always the causally ready step (all its local-order and
    provenance predecessors executed) that is smallest by (instance id, subsystem code,
    step id, build order). Sessions are touched only when one of their steps runs; a
    session with a true ``ignores_steps`` attribute (a
    :class:`~pytest_replay.fleet.stepblind.StepBlindSession`) may be moved straight to
    the last of several consecutive steps of its own.
    Build it with :meth:`ReplayPlan.start`, or directly from sessions that follow
    :class:`~pytest_replay.fleet.session.EngineSession`.
    """

    def __init__(self, sessions: Sequence[EngineSession]):
        self._sessions = list(sessions)
        self._graph = build_causal_graph(
            [
                SessionNodes(s.instance_id, s.subsystem_id, s.subsystem_code, s.step_table())
                for s in self._sessions
            ]
        )
        graph = self._graph
        # The hot-loop lists are built on first use: a replay that stays inside the
        # in-order prefix (the usual fleet) never needs them.
        self._lists: _HeapLists | None = None
        self._in_order_until = _in_order_prefix(graph)
        self._node_session_array = graph.node_session
        self._target_sessions: dict[tuple[int, str], list[int]] = {}
        for index, session in enumerate(self._sessions):
            key = (session.instance_id, session.subsystem_id)
            self._target_sessions.setdefault(key, []).append(index)
        self._output_paths: dict[tuple[int, str], Path] = {}
        for session in self._sessions:
            if session.output_log_path is None:
                continue
            key = (session.instance_id, session.subsystem_id)
            if key in self._output_paths:
                raise ReplayGraphError(
                    f"duplicate replay output log for instance {key[0]} subsystem '{key[1]}'",
                    "select one log per (instance, subsystem)",
                )
            self._output_paths[key] = session.output_log_path
        self._restart_schedule()

    # ----------------------------------------------------------------- state

    def _restart_schedule(self) -> None:
        # While ``_heap is None`` the executed nodes are exactly 0..count-1 and every one
        # of them ran in the in-order prefix: no ready set needs to be kept yet.
        self._heap: list[int] | None = None
        self._remaining: list[int] = []
        self._executed = bytearray(self._graph.total_nodes)
        self._executed_count = 0
        self._frontier: list[int] = [-1] * len(self._sessions)

    def _heap_lists(self) -> _HeapLists:
        if self._lists is None:
            graph = self._graph
            indptr, indices = _all_successors(graph)
            self._lists = _HeapLists(
                graph.node_session.tolist(),
                graph.node_local.tolist(),
                indptr.tolist(),
                indices.tolist(),
            )
        return self._lists

    def _leave_prefix(self) -> list[int]:
        """Switch from the in-order prefix to the general scheduler: the heap of ready
        nodes and the per-node count of predecessors still to run."""
        heap = self._heap
        if heap is not None:
            return heap
        graph, done = self._graph, self._executed_count
        remaining = graph.indegree.copy()
        if done:
            # Every successor edge out of a node that ran is satisfied.
            edges_done = int(graph.indptr[done])
            np.subtract.at(remaining, graph.indices[:edges_done], 1)
            chained = graph.local_next[:done]
            np.subtract.at(remaining, chained[chained >= 0], 1)
        ready = np.flatnonzero(remaining[done:] == 0) + done
        self._remaining = remaining.tolist()
        ready_heap: list[int] = ready.tolist()  # ascending, so already a valid heap
        self._heap = ready_heap
        return ready_heap

    @property
    def graph(self) -> CausalGraph:
        return self._graph

    @property
    def sessions(self) -> tuple[EngineSession, ...]:
        return tuple(self._sessions)

    @property
    def total_nodes(self) -> int:
        return self._graph.total_nodes

    @property
    def executed_nodes(self) -> int:
        return self._executed_count

    def cursor_of(self, node: int) -> FleetCursor:
        session = self._sessions[int(self._node_session_array[node])]
        return FleetCursor(
            session.instance_id,
            session.subsystem_id,
            int(self._graph.node_step[node]),
            session.subsystem_code,
        )

    def current_frontier(self) -> list[FleetCursor]:
        """The latest executed step of every session that has executed one, in session
        order (sessions are sorted by instance id, subsystem code, subsystem id)."""
        return [self.cursor_of(node) for node in self._frontier if node >= 0]

    def output_log_path(self, instance_id: int, subsystem_id: str) -> Path | None:
        return self._output_paths.get((instance_id, subsystem_id))

    # ----------------------------------------------------------------- stepping

    def _deadlock(self) -> ReplayGraphError:
        left = [n for n in range(self._graph.total_nodes) if not self._executed[n]][:5]
        names = "; ".join(
            f"instance {c.instance_id} subsystem '{c.subsystem_id}' step {c.step_id}"
            for c in map(self.cursor_of, left)
        )
        return ReplayGraphError(
            f"fleet replay is deadlocked after {self._executed_count} of "
            f"{self._graph.total_nodes} steps: no causally ready step remains; steps left "
            f"include {names}",
            "the recorded provenance forms a cycle; record the fleet again",
        )

    def _execute(self, node: int) -> None:
        heap = self._leave_prefix()
        lists = self._heap_lists()
        session = lists.node_session[node]
        try:
            self._sessions[session].goto_index(lists.node_local[node])
        except BaseException:
            heapq.heappush(heap, node)
            raise
        self._executed[node] = 1
        self._executed_count += 1
        self._frontier[session] = node
        remaining, indices, indptr = self._remaining, lists.indices, lists.indptr
        for k in range(indptr[node], indptr[node + 1]):
            successor = indices[k]
            left = remaining[successor] - 1
            remaining[successor] = left
            if left == 0:
                heapq.heappush(heap, successor)

    def step_causal(self) -> FleetCursor | None:
        """Execute the next causally ready step and return it; ``None`` once all ran."""
        done = self._executed_count
        if self._heap is None and done < self._in_order_until:
            # Inside the in-order prefix the next node is the next number.
            session = int(self._node_session_array[done])
            self._sessions[session].goto_index(int(self._graph.node_local[done]))
            self._executed[done] = 1
            self._executed_count = done + 1
            self._frontier[session] = done
            return self.cursor_of(done)
        heap = self._leave_prefix()
        if not heap:
            if self._executed_count == self._graph.total_nodes:
                return None
            raise self._deadlock()
        node = heapq.heappop(heap)
        self._execute(node)
        return self.cursor_of(node)

    def run_all(self) -> None:
        """Execute every remaining step."""
        if self._heap is None:
            self._run_in_order(self._in_order_until)
            if self._executed_count == self._graph.total_nodes:
                return
        heap = self._leave_prefix()
        if heap:
            self._run(heapq.heappop(heap))
        if self._executed_count != self._graph.total_nodes:
            raise self._deadlock()

    def _run_in_order(self, stop: int) -> None:
        """Execute nodes ``executed_count .. stop - 1``, all inside the in-order prefix.

        There every node's predecessors have smaller numbers, so the smallest ready node
        is always the next number: no ready set is needed. Consecutive nodes of one
        session form a run; a session that ignores steps (``ignores_steps``) is moved
        to a run's first and last step only, every other session to each step in turn.
        """
        graph = self._graph
        start = self._executed_count
        if stop <= start:
            return
        owner = graph.node_session[start:stop]
        local = graph.node_local[start:stop]
        cuts = np.flatnonzero(owner[1:] != owner[:-1]) + 1
        firsts = np.concatenate(([0], cuts)).tolist()
        lasts = np.concatenate((cuts - 1, [len(owner) - 1])).tolist()
        sessions, frontier, executed = self._sessions, self._frontier, self._executed
        blind = [getattr(session, "ignores_steps", False) for session in sessions]
        try:
            for first, session, lo, hi in zip(
                firsts,
                owner[firsts].tolist(),
                local[firsts].tolist(),
                local[lasts].tolist(),
                strict=True,
            ):
                goto = sessions[session].goto_index
                moves = (lo, hi) if blind[session] and hi > lo else range(lo, hi + 1)
                node_of_lo = start + first - lo
                for index in moves:
                    goto(index)  # an error leaves the nodes before this one executed
                    frontier[session] = node_of_lo + index
                    self._executed_count = node_of_lo + index + 1
        finally:
            # Nodes a blind session jumped over ran too: mark the whole range at once.
            done = self._executed_count
            executed[start:done] = b"\x01" * (done - start)

    def _run(self, node: int) -> None:
        # The hot loop of a replay: plain ints and lists only, and one heap operation per
        # step (heappushpop hands back the new ready step itself when it is the smallest).
        heap, remaining = self._leave_prefix(), self._remaining
        lists = self._heap_lists()
        indptr, indices = lists.indptr, lists.indices
        node_session, node_local = lists.node_session, lists.node_local
        gotos = [session.goto_index for session in self._sessions]
        executed, frontier = self._executed, self._frontier
        pop, push, pushpop = heapq.heappop, heapq.heappush, heapq.heappushpop
        count = self._executed_count
        try:
            while True:
                session = node_session[node]
                try:
                    gotos[session](node_local[node])
                except BaseException:
                    push(heap, node)
                    raise
                executed[node] = 1
                count += 1
                frontier[session] = node
                ready = -1
                for k in range(indptr[node], indptr[node + 1]):
                    successor = indices[k]
                    left = remaining[successor] - 1
                    remaining[successor] = left
                    if left == 0:
                        if ready >= 0:
                            push(heap, ready)
                        ready = successor
                if ready >= 0:
                    node = pushpop(heap, ready)
                elif heap:
                    node = pop(heap)
                else:
                    return
        finally:
            self._executed_count = count

    def _node_for(self, instance_id: int, subsystem_id: str, step_id: int) -> int:
        graph = self._graph
        for session in self._target_sessions.get((instance_id, subsystem_id), ()):
            lo, hi = int(graph.session_offset[session]), int(graph.session_offset[session + 1])
            ids = self._sessions[session].step_table().step_ids
            if step_id < 0 or hi == lo:
                continue
            local = int(np.searchsorted(ids, np.uint64(min(step_id, (1 << 64) - 1))))
            if local < hi - lo and int(ids[local]) == step_id:
                return int(graph.node_of_session_step[lo + local])
        raise ReplayGraphError(
            f"replay target instance {instance_id} subsystem '{subsystem_id}' step {step_id} "
            "does not exist",
            "pass an instance, subsystem and step id that were recorded",
        )

    def goto(self, instance_id: int, subsystem_id: str, step_id: int) -> None:
        """Bring the fleet to the state a fresh replay has right after executing the target.

        Moves forward without a reset when the target has not run yet; resets and replays
        from the start when it has.
        """
        target = self._node_for(instance_id, subsystem_id, step_id)
        if self._executed[target]:
            self.reset()
        if self._heap is None and target < self._in_order_until:
            self._run_in_order(target + 1)
        while not self._executed[target]:
            if self.step_causal() is None:
                raise ReplayGraphError(
                    f"fleet replay ran out of steps before instance {instance_id} subsystem "
                    f"'{subsystem_id}' step {step_id}",
                    "the target is unreachable; check the recorded provenance",
                )

    def reset(self) -> None:
        """Stop every session and go back to the state before any step ran; output logs
        are removed, so they hold only what the steps executed from now on write."""
        self._each_session(lambda session: session.reset())

    def close(self) -> None:
        """Stop every app and finish every output log, which keeps what was replayed."""
        self._each_session(lambda session: session.close())

    def _each_session(self, action: Callable[[EngineSession], None]) -> None:
        errors: list[BaseException] = []
        for session in self._sessions:
            try:
                action(session)
            except Exception as exc:  # reach every session even when one fails
                errors.append(exc)
        self._restart_schedule()
        if errors:
            raise errors[0]

    def __enter__(self) -> ReplayEngine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
