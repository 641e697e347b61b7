"""The record model the replay reducer folds: :class:`JournalRecord` and its payloads.

Identifiers, keys and content refs are plain strings. Enum values are the
snake_case names of the reference's serde encoding, so serialised records
and results read the same in every language.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

__all__ = [
    "JOURNAL_SCHEMA_VERSION",
    "PAYLOAD_TYPES",
    "TERMINAL_LIFECYCLE_STATUSES",
    "EffectIntent",
    "EffectResult",
    "JournalRecord",
    "JournalRecordKind",
    "JournalRecordPayload",
    "MissingContentPolicy",
    "OpaquePayload",
    "OutputDeliveryDedupe",
    "OutputDeliveryEvent",
    "OutputDeliveryIntent",
    "OutputDeliveryReconciliation",
    "OutputDeliveryResult",
    "OutputDispatchStatus",
    "PendingSideEffect",
    "RecoveryMarker",
    "ReplayRepairDecision",
    "RetryClassification",
    "RunCheckpoint",
    "RunLifecycle",
    "TerminalAppendStatus",
    "TerminalResult",
]

#: The only record schema version this reducer replays.
JOURNAL_SCHEMA_VERSION: Final = 1

#: RunLifecycle statuses that seal the run: later records (other than
#: Checkpoint and Recovery) are errors.
TERMINAL_LIFECYCLE_STATUSES: Final = frozenset(
    {"completed", "failed", "cancelled", "run_completed", "run_failed", "run_cancelled"}
)


class JournalRecordKind(enum.Enum):
    """What a record is about; only CHECKPOINT and RECOVERY change reducer rules."""

    RUN = "run"
    TURN = "turn"
    CONTEXT = "context"
    MESSAGE = "message"
    MODEL_ATTEMPT = "model_attempt"
    STRUCTURED_OUTPUT = "structured_output"
    STREAM_RULE = "stream_rule"
    REALTIME_SESSION = "realtime_session"
    HOOK = "hook"
    APPROVAL = "approval"
    TOOL = "tool"
    ISOLATION = "isolation"
    CHILD_LIFECYCLE = "child_lifecycle"
    AGENT_POOL = "agent_pool"
    RUN_MESSAGE = "run_message"
    WAKE = "wake"
    OUTPUT_DISPATCH = "output_dispatch"
    SUBAGENT = "subagent"
    EXTENSION_ACTION = "extension_action"
    TELEMETRY = "telemetry"
    RECOVERY = "recovery"
    CHECKPOINT = "checkpoint"
    EFFECT_INTENT = "effect_intent"
    EFFECT_RESULT = "effect_result"


class RetryClassification(enum.Enum):
    """Whether and how a failed step may be retried."""

    RETRYABLE = "retryable"
    NOT_RETRYABLE = "not_retryable"
    REPAIR_NEEDED = "repair_needed"
    USER_ACTION_NEEDED = "user_action_needed"


class MissingContentPolicy(enum.Enum):
    """What a missing content ref means: all but OMIT_WITH_PROJECTION_AUDIT add a repair."""

    FAIL = "fail"
    RECOVERABLE_REPLAY_GAP = "recoverable_replay_gap"
    OMIT_WITH_PROJECTION_AUDIT = "omit_with_projection_audit"
    REQUEST_HOST_REPAIR = "request_host_repair"


class OutputDispatchStatus(enum.Enum):
    REQUESTED = "requested"
    COMPLETED = "completed"
    FAILED = "failed"
    DEDUPED = "deduped"
    HOST_CONFIGURATION_NEEDED = "host_configuration_needed"
    POLICY_DENIED = "policy_denied"
    SKIPPED_OPTIONAL = "skipped_optional"
    RECONCILIATION_NEEDED = "reconciliation_needed"


class TerminalAppendStatus(enum.Enum):
    NOT_ATTEMPTED = "not_attempted"
    APPENDED = "appended"
    APPEND_FAILED = "append_failed"


class ReplayRepairDecision(enum.Enum):
    COMPLETED_BY_DEDUPE_PROOF = "completed_by_dedupe_proof"
    REQUIRES_HOST_RECONCILIATION = "requires_host_reconciliation"
    UNSAFE_PENDING = "unsafe_pending"


# --------------------------------------------------------------------------- payloads


@dataclass(frozen=True, slots=True)
class PendingSideEffect:
    """A side effect that started and may or may not have happened."""

    effect_id: str
    intent_record_id: str
    unsafe_pending_reason: str
    idempotency_key: str | None = None
    dedupe_key: str | None = None


@dataclass(frozen=True, slots=True)
class RunCheckpoint:
    """A snapshot of the run loop; it may cover journal records up to its own seq."""

    checkpoint_id: str
    checkpoint_seq: int
    covers_journal_seq: int
    loop_state: str
    created_at_millis: int
    state_hash: str = ""
    content_ref_manifest: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RecoveryMarker:
    """Written by a recovery: the side effects it could not prove done."""

    unsafe_pending: tuple[PendingSideEffect, ...]
    recovery_reason: str = ""


@dataclass(frozen=True, slots=True)
class EffectIntent:
    """A side effect is about to happen; a key makes a retry safe."""

    effect_id: str
    idempotency_key: str | None = None
    dedupe_key: str | None = None
    summary: str = ""


@dataclass(frozen=True, slots=True)
class EffectResult:
    """A side effect finished (``terminal_status``: completed, failed, unknown, ...)."""

    effect_id: str
    terminal_status: str = "completed"


@dataclass(frozen=True, slots=True)
class OutputDeliveryIntent:
    """An output is about to be sent to ``sink_ref``."""

    delivery_id: str
    sink_ref: str
    dedupe_key: str
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class OutputDeliveryResult:
    """The sink answered for a delivery."""

    delivery_id: str
    dispatch_status: OutputDispatchStatus = OutputDispatchStatus.COMPLETED
    external_operation_id: str | None = None


@dataclass(frozen=True, slots=True)
class OutputDeliveryDedupe:
    """Proof that an equal delivery (same dedupe key) already reached a terminal status."""

    delivery_id: str
    dedupe_key: str
    prior_terminal_status: OutputDispatchStatus
    current_status: OutputDispatchStatus = OutputDispatchStatus.DEDUPED
    prior_delivery_id: str | None = None
    prior_external_operation_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputDeliveryReconciliation:
    """A delivery whose outcome must be reconciled with the sink before resuming.

    Keyword-only so the fields keep the reference's serialised order.
    """

    delivery_id: str
    intent_record_id: str
    side_effect_kind: str = "output_delivery"
    idempotency_key: str | None = None
    dedupe_key: str
    external_operation_id: str | None = None
    terminal_status: OutputDispatchStatus
    terminal_append_status: TerminalAppendStatus = TerminalAppendStatus.NOT_ATTEMPTED
    reconciliation_adapter: str | None = None
    unsafe_pending_reason: str
    replay_decision: ReplayRepairDecision
    resend_allowed: bool = False


@dataclass(frozen=True, slots=True)
class OutputDeliveryEvent:
    """An informational delivery event; the reducer only orders it."""

    delivery_id: str
    event_kind: str
    dispatch_status: OutputDispatchStatus


@dataclass(frozen=True, slots=True)
class RunLifecycle:
    """A run status change; a terminal status seals the run."""

    status: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class TerminalResult:
    """The terminal result of the run, closing ``effect_id``."""

    effect_id: str
    terminal_status: str
    result_record_id: str = ""


@dataclass(frozen=True, slots=True)
class OpaquePayload:
    """Any other record (messages, tools, telemetry, ...): the reducer only orders it."""

    payload_type: str
    data: bytes = b""


JournalRecordPayload = (
    RunCheckpoint
    | RecoveryMarker
    | EffectIntent
    | EffectResult
    | OutputDeliveryIntent
    | OutputDeliveryResult
    | OutputDeliveryDedupe
    | OutputDeliveryReconciliation
    | OutputDeliveryEvent
    | RunLifecycle
    | TerminalResult
    | OpaquePayload
)

#: Payload classes by their stable msgpack tag (never reused).
PAYLOAD_TYPES: Final[dict[int, type]] = {
    1: RunCheckpoint,
    2: RecoveryMarker,
    3: EffectIntent,
    4: EffectResult,
    5: OutputDeliveryIntent,
    6: OutputDeliveryResult,
    7: OutputDeliveryDedupe,
    8: OutputDeliveryReconciliation,
    9: OutputDeliveryEvent,
    10: RunLifecycle,
    11: TerminalResult,
    12: OpaquePayload,
}


@dataclass(frozen=True, slots=True)
class JournalRecord:
    """One record of a run journal, as the reducer sees it."""

    record_id: str
    journal_seq: int
    record_kind: JournalRecordKind
    payload: JournalRecordPayload
    content_refs: tuple[str, ...] = ()
    idempotency_key: str | None = None
    dedupe_key: str | None = None
    journal_schema_version: int = JOURNAL_SCHEMA_VERSION
