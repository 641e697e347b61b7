"""Strategies for journals: harness entries, reducer records, whole reducer journals with
their expected outcome, and journals damaged by one labelled reordering.

:func:`journals` builds a valid run journal operation by operation (effects,
output deliveries, checkpoints, recovery markers, content refs, a terminal
record) and computes the expected :class:`ReplaySummary` from what it
generated, never by running the reducer. :func:`reordered_journals` applies
one labelled transformation to such a journal and says what must happen:
the :class:`~pytest_replay.journal.ReducerErrorKind` that ``apply`` raises and
the record it names, or the repairs ``finish`` must add.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Final, TypeVar

from hypothesis import strategies as st

from pytest_replay.journal.entries import BatchSize, DeviceCmd, JournalEntry, KernelCmd, RngSeed
from pytest_replay.journal.records import (
    JOURNAL_SCHEMA_VERSION,
    TERMINAL_LIFECYCLE_STATUSES,
    EffectIntent,
    EffectResult,
    JournalRecord,
    JournalRecordKind,
    JournalRecordPayload,
    MissingContentPolicy,
    OpaquePayload,
    OutputDeliveryDedupe,
    OutputDeliveryEvent,
    OutputDeliveryIntent,
    OutputDeliveryReconciliation,
    OutputDeliveryResult,
    OutputDispatchStatus,
    PendingSideEffect,
    RecoveryMarker,
    ReplayRepairDecision,
    RunCheckpoint,
    RunLifecycle,
    TerminalAppendStatus,
    TerminalResult,
)
from pytest_replay.journal.reducer import ReducerErrorKind, reduce_journal
from pytest_replay.journal.result import (
    ReducerMode,
    ReplayRepairKind,
    ReplayResult,
    ReplayStatus,
)

from .errors import StrategyArgumentError

__all__ = [
    "REORDERINGS",
    "ExpectedOutcome",
    "JournalCase",
    "ReorderedJournal",
    "ReplaySummary",
    "journal_entries",
    "journal_records",
    "journals",
    "reordered_journals",
    "summarize",
]

_T = TypeVar("_T")
_U64 = st.integers(0, 2**64 - 1)
_TEXT = st.text(max_size=12)
_NAMES = st.sampled_from(["dev0", "dev1", "gpu", "nic", "ctl"])


# --------------------------------------------------------------------------- entries


def journal_entries() -> st.SearchStrategy[JournalEntry]:
    """Any harness :data:`~pytest_replay.journal.JournalEntry` the codec can store.

    >>> from pytest_replay.journal import decode_entry, encode_entry
    >>> entry = journal_entries().example()
    >>> decode_entry(encode_entry(entry)) == entry
    True
    """
    return st.one_of(
        st.builds(RngSeed, actor_path=_TEXT, seed=_U64),
        st.builds(BatchSize, actor_path=_TEXT, size=_U64),
        st.builds(DeviceCmd, ts_micros=_U64, name=_TEXT, payload=_TEXT),
        st.builds(KernelCmd, ts_micros=_U64, kind=_TEXT, payload=_TEXT),
    )


# --------------------------------------------------------------------------- records

_KEY = st.none() | st.text(min_size=1, max_size=6)
_STATUS = st.sampled_from(OutputDispatchStatus)
_ORDINARY_KINDS: Final = tuple(
    kind
    for kind in JournalRecordKind
    if kind
    not in (
        JournalRecordKind.CHECKPOINT,
        JournalRecordKind.RECOVERY,
        JournalRecordKind.EFFECT_INTENT,
        JournalRecordKind.EFFECT_RESULT,
    )
)


def _payloads() -> st.SearchStrategy[JournalRecordPayload]:
    pending = st.builds(PendingSideEffect, _TEXT, _TEXT, _TEXT, _KEY, _KEY)
    return st.one_of(
        st.builds(OpaquePayload, _TEXT, st.binary(max_size=16)),
        st.builds(RunLifecycle, st.sampled_from(["running", "paused", "completed", "failed"])),
        st.builds(EffectIntent, _TEXT, _KEY, _KEY, _TEXT),
        st.builds(EffectResult, _TEXT, st.sampled_from(["completed", "failed", "unknown"])),
        st.builds(
            RunCheckpoint,
            _TEXT,
            st.integers(0, 2**31),
            st.integers(0, 2**31),
            _TEXT,
            st.integers(0, 2**53),
            _TEXT,
            st.lists(_TEXT, max_size=3).map(tuple),
        ),
        st.builds(RecoveryMarker, st.lists(pending, max_size=2).map(tuple), _TEXT),
        st.builds(OutputDeliveryIntent, _TEXT, _TEXT, _TEXT, _KEY),
        st.builds(OutputDeliveryResult, _TEXT, _STATUS, _KEY),
        st.builds(OutputDeliveryDedupe, _TEXT, _TEXT, _STATUS, _STATUS, _KEY, _KEY),
        st.builds(OutputDeliveryEvent, _TEXT, _TEXT, _STATUS),
        st.builds(TerminalResult, _TEXT, _TEXT, _TEXT),
        st.builds(
            OutputDeliveryReconciliation,
            delivery_id=_TEXT,
            intent_record_id=_TEXT,
            dedupe_key=_TEXT,
            terminal_status=_STATUS,
            unsafe_pending_reason=_TEXT,
            replay_decision=st.sampled_from(ReplayRepairDecision),
            terminal_append_status=st.sampled_from(TerminalAppendStatus),
            resend_allowed=st.booleans(),
        ),
    )


def journal_records() -> st.SearchStrategy[JournalRecord]:
    """One :class:`~pytest_replay.journal.JournalRecord` with any payload the record file stores.

    >>> from pytest_replay.journal import decode_record, encode_record
    >>> record = journal_records().example()
    >>> decode_record(encode_record(record)) == record
    True
    """
    return st.builds(
        JournalRecord,
        record_id=st.text(min_size=1, max_size=10),
        journal_seq=st.integers(1, 2**63 - 1),
        record_kind=st.sampled_from(JournalRecordKind),
        payload=_payloads(),
        content_refs=st.lists(_TEXT, max_size=3).map(tuple),
        idempotency_key=_KEY,
        dedupe_key=_KEY,
    )


# --------------------------------------------------------------------------- summaries


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    """The parts of a :class:`~pytest_replay.journal.ReplayResult` a journal determines.

    ``repairs`` are ``(kind, record_id, journal_seq)`` in result order,
    ``unsafe_pending`` ``(effect_id, intent_record_id, retry_allowed)``,
    ``output_repairs`` ``(delivery_id, replay_decision)``.
    """

    status: ReplayStatus
    resume_allowed: bool
    latest_journal_seq: int
    terminal_status: str | None
    next_loop_state: str | None
    latest_checkpoint_id: str | None
    unsafe_pending: tuple[tuple[str, str, bool], ...]
    missing_content_refs: tuple[str, ...]
    repairs: tuple[tuple[ReplayRepairKind, str, int], ...]
    output_repairs: tuple[tuple[str, ReplayRepairDecision], ...]


def summarize(result: ReplayResult) -> ReplaySummary:
    """The :class:`ReplaySummary` of a reducer's result, to compare with an expected one.

    >>> case = journals(max_records=5).example()
    >>> summarize(case.reduce()) == case.expected
    True
    """
    checkpoint = result.latest_checkpoint
    return ReplaySummary(
        status=result.status,
        resume_allowed=result.resume_allowed,
        latest_journal_seq=result.latest_journal_seq,
        terminal_status=result.terminal_status,
        next_loop_state=result.next_loop_state,
        latest_checkpoint_id=None if checkpoint is None else checkpoint.checkpoint_id,
        unsafe_pending=tuple(
            (p.effect_id, p.intent_record_id, p.retry_allowed)
            for p in result.unsafe_pending_side_effects
        ),
        missing_content_refs=result.missing_content_refs,
        repairs=tuple((r.kind, r.record_id, r.journal_seq) for r in result.repair_needed),
        output_repairs=tuple(
            (o.delivery_id, o.replay_decision) for o in result.output_delivery_repairs
        ),
    )


@dataclass(frozen=True, slots=True)
class JournalCase:
    """A valid reducer journal, the reducer configuration, and the expected summary."""

    records: tuple[JournalRecord, ...]
    mode: ReducerMode
    available_content_refs: frozenset[str] | None
    missing_content_policy: MissingContentPolicy
    expected: ReplaySummary

    def reduce(self) -> ReplayResult:
        """Run pytest_replay's own reducer on this case (handy for comparisons)."""
        return reduce_journal(
            self.records,
            self.mode,
            available_content_refs=self.available_content_refs,
            missing_content_policy=self.missing_content_policy,
        )


# --------------------------------------------------------------------------- generation

_REF_POOL: Final = tuple(f"blob-{k}" for k in range(6))
_LOOP_STATES: Final = ("idle", "planning", "acting", "waiting")
_PENDING_REASON: Final = "effect intent has no terminal result in replay"


class _Chunk:
    """The few bits that decide one generated record.

    A choice among ``n`` options reads just enough bits ``v`` (``k`` of them) and
    maps them to ``(v * n) >> k``, so zero bits (what Hypothesis shrinks towards)
    mean "the first option"; a chunk read past its end keeps answering 0.
    """

    __slots__ = ("bits", "left")

    def __init__(self, data: bytes) -> None:
        self.bits = int.from_bytes(data, "little")
        self.left = 8 * len(data)

    def pick(self, n: int) -> int:
        width = (n - 1).bit_length()
        if width == 0:
            return 0
        take = min(width, self.left)
        value = (self.bits & ((1 << take) - 1)) << (width - take)
        self.bits >>= take
        self.left -= take
        return (value * n) >> width

    def flag(self) -> bool:
        return self.pick(2) == 1

    def between(self, low: int, high: int) -> int:
        return low + self.pick(min(high - low + 1, 256))

    def choice(self, options: Sequence[_T]) -> _T:
        return options[self.pick(len(options))]

    def some(self, options: Sequence[_T], most: int) -> tuple[_T, ...]:
        return tuple(self.choice(options) for _ in range(self.pick(most + 1)))

    def blob(self) -> bytes:
        return bytes(self.pick(256) for _ in range(self.pick(3)))


_STATUSES: Final = tuple(OutputDispatchStatus)
_DECISIONS: Final = tuple(ReplayRepairDecision)
#: Bytes of Hypothesis' choice budget one generated record uses (a 1,000-record journal
#: stays under half of the 8 KiB budget, so no health check fires).
_CHUNK: Final = 4


@dataclass(slots=True)
class _Effect:
    intent_record_id: str
    keyed: bool


@dataclass(slots=True)
class _Delivery:
    intent_record_id: str
    intent_seq: int
    dedupe_key: str
    outcome: str | None = None  # None (open), "result", "dedupe", "reconciled"
    decision: ReplayRepairDecision | None = None


@dataclass(slots=True)
class _Model:
    """The journal being generated and everything the reducer must conclude from it."""

    available: frozenset[str] | None
    policy: MissingContentPolicy
    records: list[JournalRecord] = field(default_factory=list)
    seq: int = 0
    missing: set[str] = field(default_factory=set)
    repairs: list[tuple[ReplayRepairKind, str, int]] = field(default_factory=list)
    unsafe: list[tuple[str, str, bool]] = field(default_factory=list)
    effects: dict[str, _Effect] = field(default_factory=dict)
    deliveries: dict[str, _Delivery] = field(default_factory=dict)
    checkpoint: RunCheckpoint | None = None
    terminal: str | None = None
    counter: int = 0

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter:05d}"

    def observe(self, record_id: str, seq: int, refs: Iterable[str]) -> None:
        if self.available is None:
            return
        for ref in refs:
            if ref in self.available or ref in self.missing:
                continue
            self.missing.add(ref)
            if self.policy is not MissingContentPolicy.OMIT_WITH_PROJECTION_AUDIT:
                self.repairs.append((ReplayRepairKind.MISSING_CONTENT_REF, record_id, seq))

    def add(
        self,
        c: _Chunk,
        kind: JournalRecordKind,
        payload: JournalRecordPayload,
        *,
        refs: bool = True,
        keyed: bool = False,
        seq: int | None = None,
    ) -> JournalRecord:
        self.seq = self.seq + c.between(1, 3) if seq is None else seq
        content_refs: tuple[str, ...] = ()
        if refs and c.flag():
            content_refs = tuple(c.some(_REF_POOL, 2))
        key = self.fresh("ik-") if keyed else None
        record = JournalRecord(
            record_id=self.fresh("r-"),
            journal_seq=self.seq,
            record_kind=kind,
            payload=payload,
            content_refs=content_refs,
            idempotency_key=key,
        )
        self.records.append(record)
        self.observe(record.record_id, record.journal_seq, content_refs)
        return record


def _op_opaque(c: _Chunk, m: _Model) -> None:
    kind = c.choice(_ORDINARY_KINDS)
    payload = OpaquePayload(kind.value, c.blob())
    m.add(c, kind, payload, keyed=c.flag())


def _op_running(c: _Chunk, m: _Model) -> None:
    m.add(c, JournalRecordKind.RUN, RunLifecycle(c.choice(["running", "paused"])))


def _op_effect_intent(c: _Chunk, m: _Model) -> None:
    effect_id = m.fresh("fx-")
    idem = m.fresh("key-") if c.flag() else None
    dedupe = m.fresh("dd-") if c.flag() else None
    record = m.add(
        c,
        JournalRecordKind.EFFECT_INTENT,
        EffectIntent(effect_id, idem, dedupe),
        keyed=c.flag(),
    )
    m.effects[effect_id] = _Effect(record.record_id, idem is not None or dedupe is not None)


def _open_effects(m: _Model) -> list[str]:
    return sorted(m.effects)


def _op_effect_result(c: _Chunk, m: _Model) -> None:
    effect_id = c.choice(_open_effects(m))
    status = c.choice(["completed", "failed", "unknown"])
    m.add(c, JournalRecordKind.EFFECT_RESULT, EffectResult(effect_id, status), refs=False)
    del m.effects[effect_id]


def _op_output_intent(c: _Chunk, m: _Model) -> None:
    delivery_id = m.fresh("out-")
    dedupe_key = m.fresh("odk-")
    idem = m.fresh("oik-") if c.flag() else None
    payload = OutputDeliveryIntent(delivery_id, c.choice(["slack", "mail"]), dedupe_key, idem)
    record = m.add(c, JournalRecordKind.OUTPUT_DISPATCH, payload)
    m.deliveries[delivery_id] = _Delivery(record.record_id, record.journal_seq, dedupe_key)


def _open_deliveries(m: _Model) -> list[str]:
    return sorted(d for d, state in m.deliveries.items() if state.outcome is None)


def _op_output_result(c: _Chunk, m: _Model) -> None:
    delivery_id = c.choice(_open_deliveries(m))
    status = c.choice(_STATUSES)
    m.add(
        c,
        JournalRecordKind.OUTPUT_DISPATCH,
        OutputDeliveryResult(delivery_id, status),
        refs=False,
    )
    m.deliveries[delivery_id].outcome = "result"


def _op_output_dedupe(c: _Chunk, m: _Model) -> None:
    delivery_id = c.choice(_open_deliveries(m))
    state = m.deliveries[delivery_id]
    payload = OutputDeliveryDedupe(m.fresh("prior-"), state.dedupe_key, c.choice(_STATUSES))
    m.add(c, JournalRecordKind.OUTPUT_DISPATCH, payload, refs=False)
    state.outcome = "dedupe"
    state.decision = ReplayRepairDecision.COMPLETED_BY_DEDUPE_PROOF


def _op_output_reconciliation(c: _Chunk, m: _Model) -> None:
    delivery_id = c.choice(_open_deliveries(m))
    state = m.deliveries[delivery_id]
    decision = c.choice(_DECISIONS)
    reason = c.choice(["sink timed out", "unknown sink state"])
    payload = OutputDeliveryReconciliation(
        delivery_id=delivery_id,
        intent_record_id=state.intent_record_id,
        dedupe_key=state.dedupe_key,
        terminal_status=c.choice(_STATUSES),
        unsafe_pending_reason=reason,
        replay_decision=decision,
    )
    record = m.add(c, JournalRecordKind.OUTPUT_DISPATCH, payload)
    m.repairs.append(
        (ReplayRepairKind.OUTPUT_DELIVERY_RECONCILIATION, record.record_id, record.journal_seq)
    )
    state.outcome = "reconciled"
    state.decision = decision


def _checkpoint_key(checkpoint: RunCheckpoint) -> tuple[int, int, int]:
    return (checkpoint.covers_journal_seq, checkpoint.checkpoint_seq, checkpoint.created_at_millis)


def _op_checkpoint(c: _Chunk, m: _Model) -> None:
    seq = m.seq + c.between(1, 3)
    checkpoint = RunCheckpoint(
        checkpoint_id=m.fresh("cp-"),
        checkpoint_seq=c.between(0, 4),
        covers_journal_seq=seq - c.between(0, seq),
        loop_state=c.choice(_LOOP_STATES),
        created_at_millis=c.between(0, 4),
        content_ref_manifest=tuple(c.some(_REF_POOL, 2)),
    )
    record = m.add(c, JournalRecordKind.CHECKPOINT, checkpoint, seq=seq)
    m.observe(record.record_id, record.journal_seq, checkpoint.content_ref_manifest)
    if m.checkpoint is None or _checkpoint_key(checkpoint) > _checkpoint_key(m.checkpoint):
        m.checkpoint = checkpoint


def _op_recovery(c: _Chunk, m: _Model) -> None:
    pending = []
    for _ in range(c.between(0, 2)):
        keyed = c.flag()
        pending.append(
            PendingSideEffect(
                effect_id=m.fresh("lost-"),
                intent_record_id=m.fresh("gone-"),
                unsafe_pending_reason="host crashed mid-effect",
                idempotency_key=m.fresh("rk-") if keyed else None,
            )
        )
    record = m.add(c, JournalRecordKind.RECOVERY, RecoveryMarker(tuple(pending), "restart"))
    for item in pending:
        keyed = item.idempotency_key is not None
        kind = (
            ReplayRepairKind.UNSAFE_PENDING_SIDE_EFFECT
            if keyed
            else ReplayRepairKind.NON_IDEMPOTENT_PENDING_SIDE_EFFECT
        )
        m.repairs.append((kind, record.record_id, record.journal_seq))
        m.unsafe.append((item.effect_id, item.intent_record_id, keyed))


def _op_terminal(c: _Chunk, m: _Model) -> None:
    open_effects = _open_effects(m)
    if open_effects and c.flag():
        effect_id = c.choice(open_effects)
        status = c.choice(["succeeded", "failed"])
        m.add(c, JournalRecordKind.RUN, TerminalResult(effect_id, status, m.fresh("res-")))
        del m.effects[effect_id]
    else:
        status = c.choice(sorted(TERMINAL_LIFECYCLE_STATUSES))
        m.add(c, JournalRecordKind.RUN, RunLifecycle(status, "done"))
    m.terminal = status


_OPS: Final[tuple[tuple[str, Callable[[_Chunk, _Model], None], Callable[[_Model], bool]], ...]] = (
    ("opaque", _op_opaque, lambda m: True),
    ("running", _op_running, lambda m: True),
    ("effect_intent", _op_effect_intent, lambda m: True),
    ("effect_result", _op_effect_result, lambda m: bool(m.effects)),
    ("output_intent", _op_output_intent, lambda m: True),
    ("output_result", _op_output_result, lambda m: bool(_open_deliveries(m))),
    ("output_dedupe", _op_output_dedupe, lambda m: bool(_open_deliveries(m))),
    ("output_reconciliation", _op_output_reconciliation, lambda m: bool(_open_deliveries(m))),
    ("checkpoint", _op_checkpoint, lambda m: True),
    ("recovery", _op_recovery, lambda m: True),
)
_AFTER_TERMINAL: Final = ("checkpoint", "recovery")


def _finish(m: _Model, mode: ReducerMode) -> ReplaySummary:
    repairs = list(m.repairs)
    unsafe = list(m.unsafe)
    for effect_id in sorted(m.effects):
        effect = m.effects[effect_id]
        kind = (
            ReplayRepairKind.UNSAFE_PENDING_SIDE_EFFECT
            if effect.keyed
            else ReplayRepairKind.NON_IDEMPOTENT_PENDING_SIDE_EFFECT
        )
        repairs.append((kind, effect.intent_record_id, m.seq))
        unsafe.append((effect_id, effect.intent_record_id, effect.keyed))
    outputs: list[tuple[str, ReplayRepairDecision]] = []
    for delivery_id in sorted(m.deliveries):
        state = m.deliveries[delivery_id]
        if state.outcome == "result":
            continue
        if state.outcome is None:
            repairs.append(
                (
                    ReplayRepairKind.OUTPUT_DELIVERY_RECONCILIATION,
                    state.intent_record_id,
                    state.intent_seq,
                )
            )
            outputs.append((delivery_id, ReplayRepairDecision.UNSAFE_PENDING))
        else:
            assert state.decision is not None
            outputs.append((delivery_id, state.decision))
    complete = not repairs and not m.missing and all(keyed for _, _, keyed in unsafe)
    return ReplaySummary(
        status=ReplayStatus.COMPLETE if complete else ReplayStatus.REPAIR_NEEDED,
        resume_allowed=mode is not ReducerMode.RESUME or complete,
        latest_journal_seq=m.seq,
        terminal_status=m.terminal,
        next_loop_state=None if m.checkpoint is None else m.checkpoint.loop_state,
        latest_checkpoint_id=None if m.checkpoint is None else m.checkpoint.checkpoint_id,
        unsafe_pending=tuple(unsafe),
        missing_content_refs=tuple(sorted(m.missing)),
        repairs=tuple(repairs),
        output_repairs=tuple(outputs),
    )


@st.composite
def _journals(
    draw: st.DrawFn,
    min_records: int,
    max_records: int,
    modes: tuple[ReducerMode, ...],
    terminal: bool | None,
) -> JournalCase:
    mode = draw(st.sampled_from(modes))
    available: frozenset[str] | None = None
    if draw(st.booleans()):
        available = frozenset(draw(st.lists(st.sampled_from(_REF_POOL), unique=True)))
    policy = draw(st.sampled_from(MissingContentPolicy))
    model = _Model(available, policy)
    count = draw(st.integers(min_records, max_records))
    ends = terminal if terminal is not None else count > 0 and draw(st.booleans())
    body = count - 1 if ends else count
    tail = draw(st.integers(0, body)) if ends else 0  # checkpoints/recoveries after terminal
    raw = draw(st.binary(min_size=count * _CHUNK, max_size=count * _CHUNK))
    for position in range(count):
        chunk = _Chunk(raw[position * _CHUNK : (position + 1) * _CHUNK])
        if ends and position == body - tail:
            _op_terminal(chunk, model)
            continue
        after = ends and position > body - tail
        usable = [op for op in _OPS if op[2](model) and (not after or op[0] in _AFTER_TERMINAL)]
        _name, run, _applies = chunk.choice(usable)
        run(chunk, model)
    return JournalCase(tuple(model.records), mode, available, policy, _finish(model, mode))


def journals(
    *,
    min_records: int = 0,
    max_records: int = 30,
    modes: Iterable[ReducerMode] = tuple(ReducerMode),
    terminal: bool | None = None,
) -> st.SearchStrategy[JournalCase]:
    """A valid reducer journal with its expected :class:`ReplaySummary`.

    ``terminal=True`` always seals the run (only checkpoints and recovery
    markers may follow), ``False`` never does, ``None`` draws it::

        >>> case = journals(min_records=3, max_records=3, terminal=True).example()
        >>> case.expected.terminal_status is not None
        True
        >>> summarize(case.reduce()) == case.expected
        True
    """
    chosen = tuple(modes)
    if not 0 <= min_records <= max_records or not chosen:
        raise StrategyArgumentError(
            f"need 0 <= min_records ({min_records}) <= max_records ({max_records}) and at "
            "least one mode",
            fix="correct the bounds.",
        )
    if terminal and max_records < 1:
        raise StrategyArgumentError("terminal=True needs max_records >= 1", fix="allow a record.")
    low = max(min_records, 1) if terminal else min_records
    return _journals(low, max_records, chosen, terminal)


# --------------------------------------------------------------------------- reorderings


@dataclass(frozen=True, slots=True)
class ExpectedOutcome:
    """What the reducer must do with a transformed journal.

    Either ``apply`` raises :class:`~pytest_replay.journal.ReplayReducerError` with
    ``error_kind`` naming ``error_record_id``; or ``finish`` succeeds and its repairs
    are the base journal's plus ``added_repairs`` (``(kind, record_id)``, compared as
    multisets), its missing refs gain ``added_missing_refs``, and, where ``summary`` is
    set, the whole summary equals it.
    """

    error_kind: ReducerErrorKind | None = None
    error_record_id: str | None = None
    added_repairs: tuple[tuple[ReplayRepairKind, str], ...] = ()
    added_missing_refs: tuple[str, ...] = ()
    summary: ReplaySummary | None = None

    def check(self, base: ReplaySummary, result: ReplayResult) -> str | None:
        """``None`` when a finished ``result`` matches this outcome, else what differs."""
        if self.error_kind is not None:
            return f"expected {self.error_kind.value} at {self.error_record_id}, got a result"
        got = summarize(result)
        if self.summary is not None and got != self.summary:
            return f"summary differs: expected {self.summary}, got {got}"
        want = Counter((kind, rid) for kind, rid, _seq in base.repairs)
        want.update(self.added_repairs)
        have = Counter((kind, rid) for kind, rid, _seq in got.repairs)
        if want != have:
            return f"repairs differ: expected {sorted(want.items())}, got {sorted(have.items())}"
        missing = set(base.missing_content_refs) | set(self.added_missing_refs)
        if missing != set(got.missing_content_refs):
            return (
                f"missing refs differ: expected {sorted(missing)}, got {got.missing_content_refs}"
            )
        return None


@dataclass(frozen=True, slots=True)
class ReorderedJournal:
    """A valid journal (``base``) after one labelled ``transformation``."""

    base: JournalCase
    transformation: str
    detail: str
    records: tuple[JournalRecord, ...]
    available_content_refs: frozenset[str] | None
    expected: ExpectedOutcome

    @property
    def mode(self) -> ReducerMode:
        return self.base.mode

    @property
    def missing_content_policy(self) -> MissingContentPolicy:
        return self.base.missing_content_policy


def _keys_allow_duplicate(record: JournalRecord) -> bool:
    return (
        record.idempotency_key is not None
        or record.dedupe_key is not None
        or record.record_kind in (JournalRecordKind.CHECKPOINT, JournalRecordKind.RECOVERY)
    )


def _reordered(
    case: JournalCase,
    name: str,
    detail: str,
    records: list[JournalRecord],
    expected: ExpectedOutcome,
    available: frozenset[str] | None = None,
    keep_available: bool = True,
) -> ReorderedJournal:
    refs = case.available_content_refs if keep_available else available
    return ReorderedJournal(case, name, detail, tuple(records), refs, expected)


def _t_swap(draw: st.DrawFn, case: JournalCase) -> ReorderedJournal:
    records = list(case.records)
    i = draw(st.integers(0, len(records) - 2))
    j = draw(st.integers(i + 1, len(records) - 1))
    records[i], records[j] = records[j], records[i]
    at = case.records[i + 1] if j > i + 1 else case.records[i]
    return _reordered(
        case,
        "swap",
        f"records #{i} and #{j} swapped",
        records,
        ExpectedOutcome(ReducerErrorKind.INVALID_STATE_TRANSITION, at.record_id),
    )


def _t_duplicate(draw: st.DrawFn, case: JournalCase, idempotent: bool) -> ReorderedJournal:
    eligible = [k for k, r in enumerate(case.records) if _keys_allow_duplicate(r) == idempotent]
    k = draw(st.sampled_from(eligible))
    at = draw(st.integers(k + 1, len(case.records)))
    records = list(case.records)
    records.insert(at, case.records[k])
    rid = case.records[k].record_id
    if idempotent:
        return _reordered(
            case,
            "idempotent_duplicate",
            f"record #{k} ({rid}) repeated at #{at}",
            records,
            ExpectedOutcome(summary=case.expected),
        )
    return _reordered(
        case,
        "non_idempotent_duplicate",
        f"record #{k} ({rid}, no key) repeated at #{at}",
        records,
        ExpectedOutcome(ReducerErrorKind.INVALID_STATE_TRANSITION, rid),
    )


def _closers(case: JournalCase, payload_type: type) -> list[int]:
    return [k for k, r in enumerate(case.records) if type(r.payload) is payload_type]


def _intent_of(case: JournalCase, payload_type: type, attr: str, value: str) -> JournalRecord:
    for record in case.records:
        if type(record.payload) is payload_type and getattr(record.payload, attr) == value:
            return record
    raise AssertionError(f"no {payload_type.__name__} with {attr}={value!r}")  # pragma: no cover


def _t_dropped_effect_result(draw: st.DrawFn, case: JournalCase) -> ReorderedJournal:
    k = draw(st.sampled_from(_closers(case, EffectResult)))
    payload = case.records[k].payload
    assert isinstance(payload, EffectResult)
    intent = _intent_of(case, EffectIntent, "effect_id", payload.effect_id)
    effect = intent.payload
    assert isinstance(effect, EffectIntent)
    keyed = effect.idempotency_key is not None or effect.dedupe_key is not None
    kind = (
        ReplayRepairKind.UNSAFE_PENDING_SIDE_EFFECT
        if keyed
        else ReplayRepairKind.NON_IDEMPOTENT_PENDING_SIDE_EFFECT
    )
    records = list(case.records)
    del records[k]
    return _reordered(
        case,
        "dropped_effect_result",
        f"EffectResult #{k} of {payload.effect_id} removed",
        records,
        ExpectedOutcome(added_repairs=((kind, intent.record_id),)),
    )


def _t_dropped_output_result(draw: st.DrawFn, case: JournalCase) -> ReorderedJournal:
    k = draw(st.sampled_from(_closers(case, OutputDeliveryResult)))
    payload = case.records[k].payload
    assert isinstance(payload, OutputDeliveryResult)
    intent = _intent_of(case, OutputDeliveryIntent, "delivery_id", payload.delivery_id)
    records = list(case.records)
    del records[k]
    added = ((ReplayRepairKind.OUTPUT_DELIVERY_RECONCILIATION, intent.record_id),)
    return _reordered(
        case,
        "dropped_output_result",
        f"OutputDeliveryResult #{k} of {payload.delivery_id} removed",
        records,
        ExpectedOutcome(added_repairs=added),
    )


def _t_record_after_terminal(draw: st.DrawFn, case: JournalCase) -> ReorderedJournal:
    records = list(case.records)
    seq = case.expected.latest_journal_seq
    if case.expected.terminal_status is None:
        seq += 1
        records.append(
            JournalRecord("t-terminal", seq, JournalRecordKind.RUN, RunLifecycle("completed"))
        )
    kind = draw(st.sampled_from(_ORDINARY_KINDS))
    late = JournalRecord("t-late", seq + draw(st.integers(1, 3)), kind, OpaquePayload("late"))
    records.append(late)
    return _reordered(
        case,
        "record_after_terminal",
        f"{kind.value} record after the terminal",
        records,
        ExpectedOutcome(ReducerErrorKind.INVALID_STATE_TRANSITION, late.record_id),
    )


def _t_schema_version(draw: st.DrawFn, case: JournalCase) -> ReorderedJournal:
    k = draw(st.integers(0, len(case.records) - 1))
    version = draw(st.integers(0, 9).map(lambda v: v if v != JOURNAL_SCHEMA_VERSION else 2))
    records = list(case.records)
    records[k] = replace(records[k], journal_schema_version=version)
    return _reordered(
        case,
        "schema_version_change",
        f"record #{k} claims schema version {version}",
        records,
        ExpectedOutcome(ReducerErrorKind.RECOVERY_REPAIR_NEEDED, records[k].record_id),
    )


_MISSING_REF: Final = "blob-missing"


def _t_missing_content_ref(draw: st.DrawFn, case: JournalCase) -> ReorderedJournal:
    k = draw(st.integers(0, len(case.records) - 1))
    records = list(case.records)
    records[k] = replace(records[k], content_refs=(*records[k].content_refs, _MISSING_REF))
    available = case.available_content_refs
    if available is None:  # nothing was checked: make every ref the base uses available
        available = frozenset(
            ref
            for record in case.records
            for ref in (*record.content_refs, *getattr(record.payload, "content_ref_manifest", ()))
        )
    added: tuple[tuple[ReplayRepairKind, str], ...] = ()
    if case.missing_content_policy is not MissingContentPolicy.OMIT_WITH_PROJECTION_AUDIT:
        added = ((ReplayRepairKind.MISSING_CONTENT_REF, records[k].record_id),)
    return _reordered(
        case,
        "missing_content_ref",
        f"record #{k} names {_MISSING_REF}",
        records,
        ExpectedOutcome(added_repairs=added, added_missing_refs=(_MISSING_REF,)),
        available,
        keep_available=False,
    )


def _t_checkpoint_past_seq(draw: st.DrawFn, case: JournalCase) -> ReorderedJournal:
    k = draw(st.sampled_from(_closers(case, RunCheckpoint)))
    record = case.records[k]
    assert isinstance(record.payload, RunCheckpoint)
    covers = record.journal_seq + draw(st.integers(1, 5))
    records = list(case.records)
    records[k] = replace(record, payload=replace(record.payload, covers_journal_seq=covers))
    return _reordered(
        case,
        "checkpoint_past_seq",
        f"checkpoint #{k} covers seq {covers} past its own {record.journal_seq}",
        records,
        ExpectedOutcome(ReducerErrorKind.CONTRACT_VIOLATION, record.record_id),
    )


_REORDERINGS: Final = (
    ("swap", lambda c: len(c.records) >= 2, _t_swap),
    (
        "non_idempotent_duplicate",
        lambda c: any(not _keys_allow_duplicate(r) for r in c.records),
        lambda d, c: _t_duplicate(d, c, False),
    ),
    (
        "idempotent_duplicate",
        lambda c: any(_keys_allow_duplicate(r) for r in c.records),
        lambda d, c: _t_duplicate(d, c, True),
    ),
    ("dropped_effect_result", lambda c: bool(_closers(c, EffectResult)), _t_dropped_effect_result),
    (
        "dropped_output_result",
        lambda c: bool(_closers(c, OutputDeliveryResult)),
        _t_dropped_output_result,
    ),
    ("record_after_terminal", lambda c: True, _t_record_after_terminal),
    ("schema_version_change", lambda c: bool(c.records), _t_schema_version),
    ("missing_content_ref", lambda c: bool(c.records), _t_missing_content_ref),
    ("checkpoint_past_seq", lambda c: bool(_closers(c, RunCheckpoint)), _t_checkpoint_past_seq),
)

#: Every transformation :func:`reordered_journals` applies.
REORDERINGS: Final = tuple(name for name, _applies, _build in _REORDERINGS)


@st.composite
def _reordered_journals(
    draw: st.DrawFn, allowed: frozenset[str], min_records: int, max_records: int
) -> ReorderedJournal:
    case = draw(journals(min_records=min_records, max_records=max_records))
    usable = [item for item in _REORDERINGS if item[0] in allowed and item[1](case)]
    if not usable:  # only when a narrow ``transformations`` needs what this journal lacks
        usable = [item for item in _REORDERINGS if item[0] == "record_after_terminal"]
    _name, _applies, build = draw(st.sampled_from(usable))
    result: ReorderedJournal = build(draw, case)
    return result


def reordered_journals(
    *,
    transformations: Iterable[str] | None = None,
    min_records: int = 1,
    max_records: int = 30,
) -> st.SearchStrategy[ReorderedJournal]:
    """A valid journal after one labelled transformation, with the expected outcome.

    Transformations (:data:`REORDERINGS`): swap of two records, non-idempotent
    duplicate, idempotent duplicate, dropped EffectResult, dropped output
    Result, record after terminal, schema-version change, missing content ref,
    checkpoint covering a later seq. Only those that apply to the drawn journal
    are chosen; ``record_after_terminal`` applies to every journal and is the
    fallback when none of ``transformations`` does::

        >>> from pytest_replay.journal import ReplayReducer, ReplayReducerError
        >>> case = reordered_journals(transformations=["swap"], min_records=2).example()
        >>> reducer = ReplayReducer(case.mode)
        >>> try:
        ...     reducer.apply_all(case.records)
        ... except ReplayReducerError as exc:
        ...     assert (exc.kind, exc.record_id) == (case.expected.error_kind,
        ...                                          case.expected.error_record_id)
    """
    if isinstance(transformations, str):  # one label, not its characters
        transformations = [transformations]
    allowed = frozenset(REORDERINGS if transformations is None else transformations)
    unknown = sorted(allowed - set(REORDERINGS))
    if unknown or not allowed:
        raise StrategyArgumentError(
            f"unknown transformations {unknown or '(none)'}",
            fix=f"pick from {', '.join(REORDERINGS)}.",
        )
    if not 1 <= min_records <= max_records:
        raise StrategyArgumentError(
            f"need 1 <= min_records ({min_records}) <= max_records ({max_records})",
            fix="correct the bounds.",
        )
    return _reordered_journals(allowed, min_records, max_records)
