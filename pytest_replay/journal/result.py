"""What a replay reduces to: :class:`ReplayResult`, and its JSON and msgpack forms.

Both forms are mappings with snake_case keys in declaration order, with
``None`` and empty lists left out; equal results give byte-identical output.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack

from pytest_replay._msgpack import unpack_bounded
from pytest_replay.journal.errors import JournalDecodeError
from pytest_replay.journal.plain import PlainError, from_dict, to_dict
from pytest_replay.journal.records import (
    OutputDeliveryReconciliation,
    RetryClassification,
    RunCheckpoint,
)

__all__ = [
    "ReducerMode",
    "ReplayPendingSideEffect",
    "ReplayRepairKind",
    "ReplayRepairNeeded",
    "ReplayResult",
    "ReplayStatus",
    "result_from_dict",
    "result_from_json",
    "result_from_msgpack",
    "result_to_dict",
    "result_to_json",
    "result_to_msgpack",
]

#: msgpack.packb, typed.
_packb: Callable[..., bytes] = msgpack.packb


class ReducerMode(enum.Enum):
    """AUDIT inspects, RESUME gates a resume on COMPLETE, REPAIR plans a repair."""

    AUDIT = "audit_replay"
    RESUME = "resume_replay"
    REPAIR = "repair_replay"


class ReplayStatus(enum.Enum):
    COMPLETE = "complete"
    REPAIR_NEEDED = "repair_needed"


class ReplayRepairKind(enum.Enum):
    MISSING_CONTENT_REF = "missing_content_ref"
    UNSAFE_PENDING_SIDE_EFFECT = "unsafe_pending_side_effect"
    NON_IDEMPOTENT_PENDING_SIDE_EFFECT = "non_idempotent_pending_side_effect"
    OUTPUT_DELIVERY_RECONCILIATION = "output_delivery_reconciliation"
    CURSOR_SCOPE_MISMATCH = "cursor_scope_mismatch"
    CHECKPOINT_INVALID = "checkpoint_invalid"
    REPLAY_INVARIANT_VIOLATION = "replay_invariant_violation"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayRepairNeeded:
    """One thing a repair must address, and the record that revealed it."""

    kind: ReplayRepairKind
    record_id: str
    journal_seq: int
    reason: str
    retry: RetryClassification


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayPendingSideEffect:
    """A side effect with no terminal result; ``retry_allowed`` iff it carries a key."""

    effect_id: str
    intent_record_id: str
    idempotency_key: str | None = None
    dedupe_key: str | None = None
    unsafe_pending_reason: str
    retry_allowed: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayResult:
    """The outcome of replaying one journal."""

    mode: ReducerMode
    status: ReplayStatus
    resume_allowed: bool
    latest_journal_seq: int
    terminal_status: str | None = None
    next_loop_state: str | None = None
    unsafe_pending_side_effects: tuple[ReplayPendingSideEffect, ...] = ()
    missing_content_refs: tuple[str, ...] = ()
    repair_needed: tuple[ReplayRepairNeeded, ...] = ()
    output_delivery_repairs: tuple[OutputDeliveryReconciliation, ...] = ()
    latest_checkpoint: RunCheckpoint | None = None

    def to_dict(self) -> dict[str, Any]:
        return result_to_dict(self)

    def to_json(self) -> bytes:
        return result_to_json(self)

    def to_msgpack(self) -> bytes:
        return result_to_msgpack(self)


def result_to_dict(result: ReplayResult) -> dict[str, Any]:
    """The serde-shaped mapping: snake_case keys, ``None``/empty fields omitted."""
    return to_dict(result)


def result_from_dict(data: Any, name: str = "<result>") -> ReplayResult:
    """Inverse of :func:`result_to_dict`; errors name ``name`` and the field path."""
    try:
        return from_dict(ReplayResult, data)
    except PlainError as exc:
        raise JournalDecodeError(
            name,
            f"not a ReplayResult: {exc}",
            fix="re-record the replay result with this pytest_replay version",
        ) from None


def result_to_json(result: ReplayResult) -> bytes:
    """Compact UTF-8 JSON (no spaces, keys in declaration order)."""
    return json.dumps(result_to_dict(result), separators=(",", ":"), ensure_ascii=False).encode()


def result_from_json(data: bytes | str, name: str = "<result>") -> ReplayResult:
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting too deep to parse
        raise JournalDecodeError(
            name, f"not JSON ({exc})", fix="re-record the replay result"
        ) from exc
    return result_from_dict(parsed, name)


def result_to_msgpack(result: ReplayResult) -> bytes:
    return _packb(result_to_dict(result), use_bin_type=True)


def result_from_msgpack(data: bytes, name: str = "<result>") -> ReplayResult:
    try:
        parsed = unpack_bounded(data)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise JournalDecodeError(
            name, f"not msgpack ({exc})", fix="re-record the replay result"
        ) from exc
    return result_from_dict(parsed, name)
