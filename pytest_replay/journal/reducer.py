"""The journal replay reducer: fold a run journal into a :class:`ReplayResult`.

Rules, in the order :meth:`ReplayReducer.apply` checks them:

1. A record equal to one already applied (same ``record_id``) is a no-op if
   it carries an idempotency key or a dedupe key, or is a CHECKPOINT or
   RECOVERY record.
2. Schema version other than :data:`JOURNAL_SCHEMA_VERSION`: error.
3. Any other reuse of a ``record_id``: error.
4. ``journal_seq`` not above the previous record's: error.
5. After a terminal state (terminal RunLifecycle or a TerminalResult), only
   CHECKPOINT and RECOVERY records are accepted.
6. Content refs (the record's, and a checkpoint's manifest) missing from the
   available set are reported once each; every policy but
   OMIT_WITH_PROJECTION_AUDIT also adds a MISSING_CONTENT_REF repair.
7. A checkpoint covering a journal seq past its own record is recorded as a
   CHECKPOINT_INVALID repair and raised. The newest checkpoint is the largest
   (covers_journal_seq, checkpoint_seq, created_at_millis).

:meth:`ReplayReducer.finish` turns effect intents without a result into
pending side effects (UNSAFE_... when keyed, NON_IDEMPOTENT_... otherwise)
and output intents without a result into reconciliations (completed by a
dedupe proof, or unsafe and needing repair).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from pytest_replay.journal.errors import JournalUsageError, ReplayReducerError
from pytest_replay.journal.records import (
    JOURNAL_SCHEMA_VERSION,
    TERMINAL_LIFECYCLE_STATUSES,
    EffectIntent,
    EffectResult,
    JournalRecord,
    JournalRecordKind,
    MissingContentPolicy,
    OutputDeliveryDedupe,
    OutputDeliveryIntent,
    OutputDeliveryReconciliation,
    OutputDeliveryResult,
    OutputDispatchStatus,
    PendingSideEffect,
    RecoveryMarker,
    ReplayRepairDecision,
    RetryClassification,
    RunCheckpoint,
    RunLifecycle,
    TerminalAppendStatus,
    TerminalResult,
)
from pytest_replay.journal.result import (
    ReducerMode,
    ReplayPendingSideEffect,
    ReplayRepairKind,
    ReplayRepairNeeded,
    ReplayResult,
    ReplayStatus,
)

__all__ = [
    "EFFECT_PENDING_REASON",
    "OUTPUT_DEDUPE_REASON",
    "OUTPUT_UNSAFE_REASON",
    "ReducerErrorKind",
    "ReplayReducer",
    "reduce_journal",
]

EFFECT_PENDING_REASON: Final = "effect intent has no terminal result in replay"
OUTPUT_DEDUPE_REASON: Final = "repair replay found completed dedupe proof"
OUTPUT_UNSAFE_REASON: Final = (
    "repair replay cannot resend output delivery without completed dedupe proof"
)
_CHECKPOINT_PAST_SEQ: Final = (
    "checkpoint covers_journal_seq cannot point past latest committed journal record"
)
_IDEMPOTENT_KINDS: Final = (JournalRecordKind.CHECKPOINT, JournalRecordKind.RECOVERY)


class ReducerErrorKind(enum.Enum):
    RECOVERY_REPAIR_NEEDED = "recovery_repair_needed"
    INVALID_STATE_TRANSITION = "invalid_state_transition"
    CONTRACT_VIOLATION = "contract_violation"


@dataclass(frozen=True, slots=True)
class _OutputIntentState:
    record_id: str
    journal_seq: int
    intent: OutputDeliveryIntent


def _pending_from_marker(pending: PendingSideEffect) -> ReplayPendingSideEffect:
    return ReplayPendingSideEffect(
        effect_id=pending.effect_id,
        intent_record_id=pending.intent_record_id,
        idempotency_key=pending.idempotency_key,
        dedupe_key=pending.dedupe_key,
        unsafe_pending_reason=pending.unsafe_pending_reason,
        retry_allowed=pending.idempotency_key is not None or pending.dedupe_key is not None,
    )


def _pending_repair_kind(pending: ReplayPendingSideEffect) -> ReplayRepairKind:
    if pending.retry_allowed:
        return ReplayRepairKind.UNSAFE_PENDING_SIDE_EFFECT
    return ReplayRepairKind.NON_IDEMPOTENT_PENDING_SIDE_EFFECT


def _checkpoint_key(checkpoint: RunCheckpoint) -> tuple[int, int, int]:
    return (checkpoint.covers_journal_seq, checkpoint.checkpoint_seq, checkpoint.created_at_millis)


def _idempotent_duplicate_allowed(record: JournalRecord) -> bool:
    return (
        record.idempotency_key is not None
        or record.dedupe_key is not None
        or record.record_kind in _IDEMPOTENT_KINDS
    )


class ReplayReducer:
    """Apply journal records in order, then :meth:`finish` into a :class:`ReplayResult`.

    ``finish`` does not change the reducer: it may be called at any point,
    any number of times, and equal inputs give equal results.
    """

    def __init__(self, mode: ReducerMode) -> None:
        if not isinstance(mode, ReducerMode):
            raise JournalUsageError(
                f"mode must be a ReducerMode, got {mode!r}", "pass ReducerMode.AUDIT/RESUME/REPAIR"
            )
        self.mode = mode
        self._last_seq: int | None = None
        self._seen: dict[str, JournalRecord] = {}
        self._available: frozenset[str] | None = None
        self._policy = MissingContentPolicy.FAIL
        self._missing: set[str] = set()
        self._repairs: list[ReplayRepairNeeded] = []
        self._unsafe_pending: list[ReplayPendingSideEffect] = []
        self._pending_effects: dict[str, ReplayPendingSideEffect] = {}
        self._output_intents: dict[str, _OutputIntentState] = {}
        self._output_results: dict[str, OutputDeliveryResult] = {}
        self._output_dedupes: dict[str, OutputDeliveryDedupe] = {}
        self._output_reconciliations: dict[str, OutputDeliveryReconciliation] = {}
        self._terminal_status: str | None = None
        self._latest_checkpoint: RunCheckpoint | None = None

    # ------------------------------------------------------------------ configuration

    def with_available_content_refs(self, refs: Iterable[str]) -> ReplayReducer:
        """Check content refs against ``refs`` (without this call nothing is checked)."""
        self._available = frozenset(refs)
        return self

    def with_missing_content_policy(self, policy: MissingContentPolicy) -> ReplayReducer:
        if not isinstance(policy, MissingContentPolicy):
            raise JournalUsageError(
                f"policy must be a MissingContentPolicy, got {policy!r}",
                "pass MissingContentPolicy.FAIL (the default) or another member",
            )
        self._policy = policy
        return self

    @property
    def latest_journal_seq(self) -> int:
        return 0 if self._last_seq is None else self._last_seq

    # ------------------------------------------------------------------ applying

    def apply(self, record: JournalRecord) -> None:
        """Fold one record; raises :class:`ReplayReducerError` when a rule rejects it."""
        record_id = record.record_id
        seen = self._seen.get(record_id)
        if seen is not None and seen == record and _idempotent_duplicate_allowed(record):
            return
        self._validate_ordering(record, seen is not None)
        if self._terminal_status is not None and record.record_kind not in _IDEMPOTENT_KINDS:
            raise self._error(
                ReducerErrorKind.INVALID_STATE_TRANSITION,
                "journal record appears after sealed terminal replay state",
                record,
            )
        seq = record.journal_seq
        if record.content_refs:
            self._observe_content_refs(record_id, seq, record.content_refs)
        payload = record.payload
        kind = type(payload)
        if kind is EffectIntent:
            assert isinstance(payload, EffectIntent)
            self._pending_effects[payload.effect_id] = ReplayPendingSideEffect(
                effect_id=payload.effect_id,
                intent_record_id=record_id,
                idempotency_key=payload.idempotency_key,
                dedupe_key=payload.dedupe_key,
                unsafe_pending_reason=EFFECT_PENDING_REASON,
                retry_allowed=payload.idempotency_key is not None or payload.dedupe_key is not None,
            )
        elif kind is EffectResult:
            assert isinstance(payload, EffectResult)
            self._pending_effects.pop(payload.effect_id, None)
        elif kind is RunCheckpoint:
            assert isinstance(payload, RunCheckpoint)
            self._apply_checkpoint(payload, record)
        elif kind is RecoveryMarker:
            assert isinstance(payload, RecoveryMarker)
            for pending in payload.unsafe_pending:
                self._add_unsafe_pending(_pending_from_marker(pending), record_id, seq)
        elif kind is OutputDeliveryIntent:
            assert isinstance(payload, OutputDeliveryIntent)
            self._output_intents[payload.delivery_id] = _OutputIntentState(record_id, seq, payload)
        elif kind is OutputDeliveryResult:
            assert isinstance(payload, OutputDeliveryResult)
            self._output_results[payload.delivery_id] = payload
        elif kind is OutputDeliveryDedupe:
            assert isinstance(payload, OutputDeliveryDedupe)
            self._output_dedupes[payload.dedupe_key] = payload
        elif kind is OutputDeliveryReconciliation:
            assert isinstance(payload, OutputDeliveryReconciliation)
            self._output_reconciliations[payload.delivery_id] = payload
            self._repair(
                ReplayRepairKind.OUTPUT_DELIVERY_RECONCILIATION,
                record_id,
                seq,
                payload.unsafe_pending_reason,
                RetryClassification.REPAIR_NEEDED,
            )
        elif kind is RunLifecycle:
            assert isinstance(payload, RunLifecycle)
            if payload.status in TERMINAL_LIFECYCLE_STATUSES:
                self._terminal_status = payload.status
        elif kind is TerminalResult:
            assert isinstance(payload, TerminalResult)
            self._pending_effects.pop(payload.effect_id, None)
            self._terminal_status = payload.terminal_status
        self._last_seq = seq
        self._seen[record_id] = record

    def apply_all(self, records: Iterable[JournalRecord]) -> None:
        for record in records:
            self.apply(record)

    def _error(
        self,
        kind: ReducerErrorKind,
        message: str,
        record: JournalRecord,
        retry: RetryClassification = RetryClassification.REPAIR_NEEDED,
    ) -> ReplayReducerError:
        return ReplayReducerError(
            kind, retry, message, record_id=record.record_id, journal_seq=record.journal_seq
        )

    def _validate_ordering(self, record: JournalRecord, duplicate: bool) -> None:
        if record.journal_schema_version != JOURNAL_SCHEMA_VERSION:
            raise self._error(
                ReducerErrorKind.RECOVERY_REPAIR_NEEDED,
                "journal record schema version is not supported by replay reducer "
                f"(got {record.journal_schema_version}, supported {JOURNAL_SCHEMA_VERSION})",
                record,
            )
        if duplicate:
            raise self._error(
                ReducerErrorKind.INVALID_STATE_TRANSITION,
                "duplicate non-idempotent journal record during replay",
                record,
            )
        if self._last_seq is not None and record.journal_seq <= self._last_seq:
            raise self._error(
                ReducerErrorKind.INVALID_STATE_TRANSITION,
                "journal records must be strictly increasing during replay "
                f"(previous journal_seq {self._last_seq})",
                record,
            )

    def _apply_checkpoint(self, checkpoint: RunCheckpoint, record: JournalRecord) -> None:
        if checkpoint.covers_journal_seq > record.journal_seq:
            self._repair(
                ReplayRepairKind.CHECKPOINT_INVALID,
                record.record_id,
                record.journal_seq,
                _CHECKPOINT_PAST_SEQ,
                RetryClassification.REPAIR_NEEDED,
            )
            raise self._error(
                ReducerErrorKind.CONTRACT_VIOLATION,
                f"{_CHECKPOINT_PAST_SEQ} (covers_journal_seq {checkpoint.covers_journal_seq})",
                record,
                RetryClassification.NOT_RETRYABLE,
            )
        if checkpoint.content_ref_manifest:
            self._observe_content_refs(
                record.record_id, record.journal_seq, checkpoint.content_ref_manifest
            )
        current = self._latest_checkpoint
        if current is None or _checkpoint_key(checkpoint) > _checkpoint_key(current):
            self._latest_checkpoint = checkpoint

    def _observe_content_refs(self, record_id: str, seq: int, refs: Iterable[str]) -> None:
        available = self._available
        if available is None:
            return
        adds_repair = self._policy is not MissingContentPolicy.OMIT_WITH_PROJECTION_AUDIT
        for ref in refs:
            if ref in available or ref in self._missing:
                continue
            self._missing.add(ref)
            if adds_repair:
                self._repair(
                    ReplayRepairKind.MISSING_CONTENT_REF,
                    record_id,
                    seq,
                    f"content ref {ref} is missing for replay",
                    RetryClassification.USER_ACTION_NEEDED,
                )

    def _add_unsafe_pending(
        self, pending: ReplayPendingSideEffect, record_id: str, seq: int
    ) -> None:
        self._repair(
            _pending_repair_kind(pending),
            record_id,
            seq,
            pending.unsafe_pending_reason,
            RetryClassification.REPAIR_NEEDED,
        )
        self._unsafe_pending.append(pending)

    def _repair(
        self,
        kind: ReplayRepairKind,
        record_id: str,
        seq: int,
        reason: str,
        retry: RetryClassification,
        into: list[ReplayRepairNeeded] | None = None,
    ) -> None:
        (self._repairs if into is None else into).append(
            ReplayRepairNeeded(
                kind=kind, record_id=record_id, journal_seq=seq, reason=reason, retry=retry
            )
        )

    # ------------------------------------------------------------------ finishing

    def finish(self) -> ReplayResult:
        repairs = list(self._repairs)
        unsafe = list(self._unsafe_pending)
        last_seq = self.latest_journal_seq
        for effect_id in sorted(self._pending_effects):
            pending = self._pending_effects[effect_id]
            self._repair(
                _pending_repair_kind(pending),
                pending.intent_record_id,
                last_seq,
                pending.unsafe_pending_reason,
                RetryClassification.REPAIR_NEEDED,
                repairs,
            )
            unsafe.append(pending)
        output_repairs: list[OutputDeliveryReconciliation] = []
        for delivery_id in sorted(self._output_intents):
            state = self._output_intents[delivery_id]
            if delivery_id in self._output_results:
                continue
            reconciliation = self._output_reconciliations.get(delivery_id)
            if reconciliation is not None:
                output_repairs.append(reconciliation)
                continue
            dedupe = self._output_dedupes.get(state.intent.dedupe_key)
            if dedupe is not None:
                output_repairs.append(_output_reconciliation(state, dedupe))
                continue
            unsafe_output = _output_reconciliation(state, None)
            self._repair(
                ReplayRepairKind.OUTPUT_DELIVERY_RECONCILIATION,
                state.record_id,
                state.journal_seq,
                unsafe_output.unsafe_pending_reason,
                RetryClassification.REPAIR_NEEDED,
                repairs,
            )
            output_repairs.append(unsafe_output)
        missing = sorted(self._missing)
        complete = not repairs and not missing and all(p.retry_allowed for p in unsafe)
        status = ReplayStatus.COMPLETE if complete else ReplayStatus.REPAIR_NEEDED
        checkpoint = self._latest_checkpoint
        return ReplayResult(
            mode=self.mode,
            status=status,
            resume_allowed=self.mode is not ReducerMode.RESUME or complete,
            latest_journal_seq=last_seq,
            terminal_status=self._terminal_status,
            next_loop_state=None if checkpoint is None else checkpoint.loop_state,
            unsafe_pending_side_effects=tuple(unsafe),
            missing_content_refs=tuple(missing),
            repair_needed=tuple(repairs),
            output_delivery_repairs=tuple(output_repairs),
            latest_checkpoint=checkpoint,
        )


def _output_reconciliation(
    state: _OutputIntentState,
    dedupe: OutputDeliveryDedupe | None,
) -> OutputDeliveryReconciliation:
    """The reconciliation of an output intent left without a result.

    With a dedupe proof for its key the delivery is complete (the prior
    outcome is carried over); without one it is unsafe to resend and needs a
    host reconciliation. Neither may resend.
    """
    intent = state.intent
    if dedupe is None:
        operation_id, status = None, OutputDispatchStatus.RECONCILIATION_NEEDED
        reason, decision = OUTPUT_UNSAFE_REASON, ReplayRepairDecision.UNSAFE_PENDING
    else:
        operation_id, status = dedupe.prior_external_operation_id, dedupe.prior_terminal_status
        reason, decision = OUTPUT_DEDUPE_REASON, ReplayRepairDecision.COMPLETED_BY_DEDUPE_PROOF
    return OutputDeliveryReconciliation(
        delivery_id=intent.delivery_id,
        intent_record_id=state.record_id,
        idempotency_key=intent.idempotency_key,
        dedupe_key=intent.dedupe_key,
        external_operation_id=operation_id,
        terminal_status=status,
        terminal_append_status=TerminalAppendStatus.NOT_ATTEMPTED,
        reconciliation_adapter=intent.sink_ref,
        unsafe_pending_reason=reason,
        replay_decision=decision,
        resend_allowed=False,
    )


def reduce_journal(
    records: Iterable[JournalRecord],
    mode: ReducerMode = ReducerMode.AUDIT,
    *,
    available_content_refs: Iterable[str] | None = None,
    missing_content_policy: MissingContentPolicy = MissingContentPolicy.FAIL,
) -> ReplayResult:
    """Apply every record and finish: the one call the pytest plugin needs."""
    reducer = ReplayReducer(mode).with_missing_content_policy(missing_content_policy)
    if available_content_refs is not None:
        reducer.with_available_content_refs(available_content_refs)
    reducer.apply_all(records)
    return reducer.finish()
