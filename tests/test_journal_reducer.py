"""The replay reducer: one test per rule of the reference and per repair kind, the status
rules, cursor helpers, and the serde shape of ReplayResult."""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest

from pytest_replay.errors import ReplayError
from pytest_replay.journal import (
    JOURNAL_SCHEMA_VERSION,
    CursorCompatibility,
    DurableReplaySupport,
    EffectIntent,
    EffectResult,
    EventCursor,
    EventStreamScope,
    JournalDecodeError,
    JournalRecord,
    JournalRecordKind,
    JournalRecordPayload,
    JournalUsageError,
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
    ReducerErrorKind,
    ReducerMode,
    ReplayPendingSideEffect,
    ReplayReducer,
    ReplayReducerError,
    ReplayRepairDecision,
    ReplayRepairKind,
    ReplayRepairNeeded,
    ReplayResult,
    ReplayStatus,
    RetryClassification,
    RunCheckpoint,
    RunLifecycle,
    TerminalAppendStatus,
    TerminalResult,
    check_cursor_compatibility,
    durable_replay_support,
    journal_cursor_for_seq,
    reduce_journal,
    result_from_json,
    result_from_msgpack,
    result_to_json,
    result_to_msgpack,
)
from pytest_replay.journal.reducer import (
    EFFECT_PENDING_REASON,
    OUTPUT_DEDUPE_REASON,
    OUTPUT_UNSAFE_REASON,
)

K = JournalRecordKind


def rec(
    seq: int,
    payload: JournalRecordPayload,
    kind: JournalRecordKind = K.MESSAGE,
    *,
    record_id: str | None = None,
    refs: tuple[str, ...] = (),
    idem: str | None = None,
    dedupe: str | None = None,
    version: int = JOURNAL_SCHEMA_VERSION,
) -> JournalRecord:
    return JournalRecord(
        record_id=f"r{seq}" if record_id is None else record_id,
        journal_seq=seq,
        record_kind=kind,
        payload=payload,
        content_refs=refs,
        idempotency_key=idem,
        dedupe_key=dedupe,
        journal_schema_version=version,
    )


def msg(seq: int, **kw: Any) -> JournalRecord:
    return rec(seq, OpaquePayload("message", b"hi"), **kw)


def checkpoint(
    seq: int, covers: int, cp_seq: int = 1, created: int = 0, state: str = "s", **kw: Any
) -> JournalRecord:
    return rec(seq, RunCheckpoint(f"cp{seq}", cp_seq, covers, state, created, **kw), K.CHECKPOINT)


def intent(
    seq: int, effect: str, idem: str | None = None, dedupe: str | None = None
) -> JournalRecord:
    return rec(seq, EffectIntent(effect, idem, dedupe), K.EFFECT_INTENT)


def result(seq: int, effect: str) -> JournalRecord:
    return rec(seq, EffectResult(effect), K.EFFECT_RESULT)


def out_intent(
    seq: int, delivery: str, dedupe: str = "dk", idem: str | None = None
) -> JournalRecord:
    return rec(seq, OutputDeliveryIntent(delivery, "sink://x", dedupe, idem), K.OUTPUT_DISPATCH)


def reduce(records: list[JournalRecord], mode: ReducerMode = ReducerMode.AUDIT) -> ReplayResult:
    return reduce_journal(records, mode)


def apply_error(records: list[JournalRecord], bad: JournalRecord) -> ReplayReducerError:
    reducer = ReplayReducer(ReducerMode.AUDIT)
    reducer.apply_all(records)
    with pytest.raises(ReplayReducerError) as info:
        reducer.apply(bad)
    assert isinstance(info.value, ReplayError)
    assert "Fix:" in str(info.value)
    return info.value


# --------------------------------------------------------------------------- empty / complete


def test_empty_journal_is_complete() -> None:
    for mode in ReducerMode:
        out = reduce([], mode)
        assert out.status is ReplayStatus.COMPLETE
        assert out.resume_allowed is True
        assert out.latest_journal_seq == 0
        assert out.terminal_status is None and out.latest_checkpoint is None


def test_ordinary_journal_is_complete() -> None:
    out = reduce([msg(1), intent(2, "e", idem="k"), result(3, "e"), msg(7)])
    assert out.status is ReplayStatus.COMPLETE
    assert out.latest_journal_seq == 7
    assert out.repair_needed == () and out.unsafe_pending_side_effects == ()


# --------------------------------------------------------------------------- duplicates


@pytest.mark.parametrize(
    "dup",
    [
        msg(2, idem="key"),
        msg(2, dedupe="dd"),
        checkpoint(2, 1),
        rec(2, RecoveryMarker(()), K.RECOVERY),
    ],
    ids=["idempotency-key", "dedupe-key", "checkpoint", "recovery"],
)
def test_identical_idempotent_duplicate_is_a_no_op(dup: JournalRecord) -> None:
    reducer = ReplayReducer(ReducerMode.AUDIT)
    reducer.apply_all([msg(1), dup, msg(3)])
    before = reducer.finish()
    reducer.apply(dup)  # same record again, even after later records: ignored
    assert reducer.finish() == before
    assert before.latest_journal_seq == 3


def test_identical_duplicate_without_key_is_an_error() -> None:
    err = apply_error([msg(1), msg(2)], msg(2))
    assert err.kind is ReducerErrorKind.INVALID_STATE_TRANSITION
    assert err.retry_classification is RetryClassification.REPAIR_NEEDED
    assert "duplicate non-idempotent journal record" in err.message
    assert err.record_id == "r2" and err.journal_seq == 2


def test_keyed_duplicate_that_differs_is_an_error() -> None:
    first = msg(2, idem="key")
    changed = rec(3, OpaquePayload("message", b"other"), record_id="r2", idem="key")
    err = apply_error([msg(1), first], changed)
    assert "duplicate non-idempotent" in err.message


# --------------------------------------------------------------------------- ordering


def test_schema_version_mismatch_is_an_error() -> None:
    err = apply_error([msg(1)], msg(2, version=JOURNAL_SCHEMA_VERSION + 1))
    assert err.kind is ReducerErrorKind.RECOVERY_REPAIR_NEEDED
    assert err.retry_classification is RetryClassification.REPAIR_NEEDED
    assert "schema version is not supported" in err.message


def test_schema_version_is_checked_before_duplicates() -> None:
    err = apply_error([msg(1)], msg(1, version=0))
    assert err.kind is ReducerErrorKind.RECOVERY_REPAIR_NEEDED


@pytest.mark.parametrize("seq", [5, 4])
def test_non_increasing_journal_seq_is_an_error(seq: int) -> None:
    err = apply_error([msg(1), msg(5)], msg(seq, record_id="new"))
    assert err.kind is ReducerErrorKind.INVALID_STATE_TRANSITION
    assert "strictly increasing" in err.message


def test_gaps_in_journal_seq_are_fine() -> None:
    assert reduce([msg(3), msg(10), msg(11)]).latest_journal_seq == 11


def test_rejected_record_leaves_the_reducer_unchanged() -> None:
    reducer = ReplayReducer(ReducerMode.AUDIT)
    reducer.apply_all([msg(1), msg(5)])
    before = reducer.finish()
    with pytest.raises(ReplayReducerError):
        reducer.apply(intent(3, "late"))
    assert reducer.finish() == before
    reducer.apply(msg(6))
    assert reducer.latest_journal_seq == 6


# --------------------------------------------------------------------------- terminal sealing


@pytest.mark.parametrize(
    "status", ["completed", "failed", "cancelled", "run_completed", "run_failed", "run_cancelled"]
)
def test_terminal_lifecycle_seals_the_run(status: str) -> None:
    sealed = [msg(1), rec(2, RunLifecycle(status), K.RUN)]
    assert reduce(sealed).terminal_status == status
    err = apply_error(sealed, msg(3))
    assert err.kind is ReducerErrorKind.INVALID_STATE_TRANSITION
    assert "after sealed terminal" in err.message


def test_non_terminal_lifecycle_does_not_seal() -> None:
    out = reduce([rec(1, RunLifecycle("running"), K.RUN), msg(2), rec(3, RunLifecycle("paused"))])
    assert out.terminal_status is None and out.status is ReplayStatus.COMPLETE


def test_terminal_result_seals_and_closes_its_effect() -> None:
    records = [intent(1, "final"), rec(2, TerminalResult("final", "succeeded"), K.RUN)]
    out = reduce(records)
    assert out.terminal_status == "succeeded"
    assert out.unsafe_pending_side_effects == ()
    assert out.status is ReplayStatus.COMPLETE
    apply_error(records, result(3, "final"))


def test_checkpoint_and_recovery_are_accepted_after_terminal() -> None:
    out = reduce(
        [
            msg(1),
            rec(2, RunLifecycle("completed"), K.RUN),
            checkpoint(3, 2, state="done"),
            rec(4, RecoveryMarker(()), K.RECOVERY),
        ]
    )
    assert out.latest_journal_seq == 4 and out.next_loop_state == "done"
    assert out.terminal_status == "completed"


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_past_its_record_is_invalid() -> None:
    reducer = ReplayReducer(ReducerMode.REPAIR)
    reducer.apply(msg(1))
    with pytest.raises(ReplayReducerError) as info:
        reducer.apply(checkpoint(2, covers=3))
    assert info.value.kind is ReducerErrorKind.CONTRACT_VIOLATION
    assert "covers_journal_seq" in info.value.message
    out = reducer.finish()
    assert [r.kind for r in out.repair_needed] == [ReplayRepairKind.CHECKPOINT_INVALID]
    assert out.repair_needed[0].record_id == "r2"
    assert out.repair_needed[0].retry is RetryClassification.REPAIR_NEEDED
    assert out.status is ReplayStatus.REPAIR_NEEDED
    assert out.latest_checkpoint is None and out.latest_journal_seq == 1


def test_checkpoint_covering_its_own_seq_is_valid() -> None:
    out = reduce([msg(1), checkpoint(2, covers=2, state="here")])
    assert out.next_loop_state == "here"
    assert out.latest_checkpoint is not None and out.latest_checkpoint.covers_journal_seq == 2


def test_newest_checkpoint_orders_by_covers_then_seq_then_created() -> None:
    records = [
        checkpoint(1, covers=1, cp_seq=9, created=9, state="old-cover"),
        checkpoint(2, covers=2, cp_seq=1, created=1, state="a"),
        checkpoint(3, covers=2, cp_seq=2, created=0, state="b"),
        checkpoint(4, covers=2, cp_seq=2, created=5, state="c"),
        checkpoint(5, covers=2, cp_seq=2, created=4, state="not-newer"),
        checkpoint(6, covers=1, cp_seq=99, created=99, state="older-cover"),
    ]
    out = reduce(records)
    assert out.next_loop_state == "c"
    assert out.latest_checkpoint == records[3].payload


def test_equal_checkpoint_key_keeps_the_first() -> None:
    out = reduce([checkpoint(1, 1, 1, 1, "first"), checkpoint(2, 1, 1, 1, "second")])
    assert out.next_loop_state == "first"


# --------------------------------------------------------------------------- content refs


def test_content_refs_are_not_checked_without_an_available_set() -> None:
    assert reduce([msg(1, refs=("blob:1",))]).status is ReplayStatus.COMPLETE


def test_missing_content_ref_repair() -> None:
    reducer = ReplayReducer(ReducerMode.AUDIT).with_available_content_refs(["blob:1"])
    reducer.apply_all(
        [
            msg(1, refs=("blob:1", "blob:2")),
            msg(2, refs=("blob:2", "blob:0")),
        ]
    )
    out = reducer.finish()
    assert out.missing_content_refs == ("blob:0", "blob:2")  # sorted, each once
    assert [(r.kind, r.record_id, r.journal_seq) for r in out.repair_needed] == [
        (ReplayRepairKind.MISSING_CONTENT_REF, "r1", 1),
        (ReplayRepairKind.MISSING_CONTENT_REF, "r2", 2),
    ]
    assert out.repair_needed[0].reason == "content ref blob:2 is missing for replay"
    assert out.repair_needed[0].retry is RetryClassification.USER_ACTION_NEEDED
    assert out.status is ReplayStatus.REPAIR_NEEDED


def test_checkpoint_manifest_refs_are_checked() -> None:
    reducer = ReplayReducer(ReducerMode.AUDIT).with_available_content_refs(["a"])
    reducer.apply(checkpoint(1, 1, content_ref_manifest=("a", "snap")))
    out = reducer.finish()
    assert out.missing_content_refs == ("snap",)
    assert out.repair_needed[0].record_id == "r1"


@pytest.mark.parametrize(
    ("policy", "repairs"),
    [
        (MissingContentPolicy.FAIL, 1),
        (MissingContentPolicy.RECOVERABLE_REPLAY_GAP, 1),
        (MissingContentPolicy.REQUEST_HOST_REPAIR, 1),
        (MissingContentPolicy.OMIT_WITH_PROJECTION_AUDIT, 0),
    ],
)
def test_missing_content_policy(policy: MissingContentPolicy, repairs: int) -> None:
    out = reduce_journal(
        [msg(1, refs=("gone",))],
        available_content_refs=[],
        missing_content_policy=policy,
    )
    assert out.missing_content_refs == ("gone",)
    assert len(out.repair_needed) == repairs
    # A missing ref alone keeps the replay from COMPLETE, whatever the policy.
    assert out.status is ReplayStatus.REPAIR_NEEDED


def test_bad_configuration_is_a_usage_error() -> None:
    with pytest.raises(JournalUsageError):
        ReplayReducer("audit")  # type: ignore[arg-type]
    with pytest.raises(JournalUsageError):
        ReplayReducer(ReducerMode.AUDIT).with_missing_content_policy("fail")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- effects


def test_effect_result_closes_the_intent() -> None:
    assert reduce([intent(1, "e"), result(2, "e")]).status is ReplayStatus.COMPLETE


def test_pending_keyed_effect_is_unsafe_pending_repair() -> None:
    out = reduce([intent(1, "e1", idem="k1"), intent(2, "e2", dedupe="d2"), msg(5)])
    kinds = [(r.kind, r.record_id, r.journal_seq) for r in out.repair_needed]
    assert kinds == [
        (ReplayRepairKind.UNSAFE_PENDING_SIDE_EFFECT, "r1", 5),  # seq: the last record's
        (ReplayRepairKind.UNSAFE_PENDING_SIDE_EFFECT, "r2", 5),
    ]
    assert out.repair_needed[0].reason == EFFECT_PENDING_REASON
    assert [p.retry_allowed for p in out.unsafe_pending_side_effects] == [True, True]
    assert out.unsafe_pending_side_effects[0] == ReplayPendingSideEffect(
        effect_id="e1",
        intent_record_id="r1",
        idempotency_key="k1",
        unsafe_pending_reason=EFFECT_PENDING_REASON,
        retry_allowed=True,
    )
    assert out.status is ReplayStatus.REPAIR_NEEDED


def test_pending_unkeyed_effect_is_non_idempotent_repair() -> None:
    out = reduce([intent(1, "e")])
    assert [r.kind for r in out.repair_needed] == [
        ReplayRepairKind.NON_IDEMPOTENT_PENDING_SIDE_EFFECT
    ]
    assert out.unsafe_pending_side_effects[0].retry_allowed is False
    assert out.status is ReplayStatus.REPAIR_NEEDED


def test_pending_effects_are_reported_in_effect_id_order() -> None:
    out = reduce([intent(1, "zeta"), intent(2, "alpha"), intent(3, "mid")])
    assert [p.effect_id for p in out.unsafe_pending_side_effects] == ["alpha", "mid", "zeta"]


def test_a_second_intent_for_the_same_effect_replaces_the_first() -> None:
    out = reduce([intent(1, "e"), intent(2, "e", idem="k")])
    (pending,) = out.unsafe_pending_side_effects
    assert pending.intent_record_id == "r2" and pending.retry_allowed


def test_recovery_marker_pending_effects() -> None:
    marker = RecoveryMarker(
        (
            PendingSideEffect("e1", "r0", "crashed mid-call", idempotency_key="k"),
            PendingSideEffect("e2", "r0", "no proof"),
        )
    )
    out = reduce([msg(1), rec(2, marker, K.RECOVERY)])
    assert [(r.kind, r.journal_seq, r.reason) for r in out.repair_needed] == [
        (ReplayRepairKind.UNSAFE_PENDING_SIDE_EFFECT, 2, "crashed mid-call"),
        (ReplayRepairKind.NON_IDEMPOTENT_PENDING_SIDE_EFFECT, 2, "no proof"),
    ]
    assert [p.retry_allowed for p in out.unsafe_pending_side_effects] == [True, False]


def test_recovery_repairs_come_before_finish_repairs() -> None:
    marker = RecoveryMarker((PendingSideEffect("x", "r0", "why", dedupe_key="d"),))
    out = reduce([intent(1, "open"), rec(2, marker, K.RECOVERY)])
    assert [p.effect_id for p in out.unsafe_pending_side_effects] == ["x", "open"]


# --------------------------------------------------------------------------- output delivery


def test_output_with_result_needs_nothing() -> None:
    out = reduce([out_intent(1, "d1"), rec(2, OutputDeliveryResult("d1"), K.OUTPUT_DISPATCH)])
    assert out.output_delivery_repairs == () and out.status is ReplayStatus.COMPLETE


def test_output_without_result_needs_reconciliation() -> None:
    out = reduce([out_intent(1, "d1", dedupe="dk1", idem="ik")], ReducerMode.REPAIR)
    (repair,) = out.output_delivery_repairs
    assert repair == OutputDeliveryReconciliation(
        delivery_id="d1",
        intent_record_id="r1",
        idempotency_key="ik",
        dedupe_key="dk1",
        terminal_status=OutputDispatchStatus.RECONCILIATION_NEEDED,
        reconciliation_adapter="sink://x",
        unsafe_pending_reason=OUTPUT_UNSAFE_REASON,
        replay_decision=ReplayRepairDecision.UNSAFE_PENDING,
        resend_allowed=False,
    )
    assert [(r.kind, r.record_id, r.journal_seq) for r in out.repair_needed] == [
        (ReplayRepairKind.OUTPUT_DELIVERY_RECONCILIATION, "r1", 1)
    ]
    assert out.status is ReplayStatus.REPAIR_NEEDED


def test_output_completed_by_dedupe_proof() -> None:
    proof = OutputDeliveryDedupe(
        "d0", "dk1", OutputDispatchStatus.COMPLETED, prior_external_operation_id="op-7"
    )
    out = reduce(
        [out_intent(1, "d1", dedupe="dk1"), rec(2, proof, K.OUTPUT_DISPATCH)], ReducerMode.REPAIR
    )
    (repair,) = out.output_delivery_repairs
    assert repair.replay_decision is ReplayRepairDecision.COMPLETED_BY_DEDUPE_PROOF
    assert repair.external_operation_id == "op-7"
    assert repair.terminal_status is OutputDispatchStatus.COMPLETED
    assert repair.terminal_append_status is TerminalAppendStatus.NOT_ATTEMPTED
    assert repair.unsafe_pending_reason == OUTPUT_DEDUPE_REASON
    assert out.repair_needed == ()
    assert out.status is ReplayStatus.COMPLETE


def test_dedupe_proof_for_another_key_does_not_help() -> None:
    proof = OutputDeliveryDedupe("d0", "other", OutputDispatchStatus.COMPLETED)
    out = reduce([out_intent(1, "d1", dedupe="dk1"), rec(2, proof, K.OUTPUT_DISPATCH)])
    assert out.output_delivery_repairs[0].replay_decision is ReplayRepairDecision.UNSAFE_PENDING


def test_recorded_reconciliation_is_a_repair_and_is_reused() -> None:
    stored = OutputDeliveryReconciliation(
        delivery_id="d1",
        intent_record_id="r1",
        dedupe_key="dk",
        terminal_status=OutputDispatchStatus.RECONCILIATION_NEEDED,
        unsafe_pending_reason="host must confirm",
        replay_decision=ReplayRepairDecision.REQUIRES_HOST_RECONCILIATION,
    )
    out = reduce([out_intent(1, "d1"), rec(2, stored, K.OUTPUT_DISPATCH)])
    assert out.output_delivery_repairs == (stored,)
    assert [(r.kind, r.record_id, r.reason) for r in out.repair_needed] == [
        (ReplayRepairKind.OUTPUT_DELIVERY_RECONCILIATION, "r2", "host must confirm")
    ]


def test_reconciliation_takes_precedence_over_dedupe_proof() -> None:
    stored = OutputDeliveryReconciliation(
        delivery_id="d1",
        intent_record_id="r1",
        dedupe_key="dk",
        terminal_status=OutputDispatchStatus.FAILED,
        unsafe_pending_reason="r",
        replay_decision=ReplayRepairDecision.REQUIRES_HOST_RECONCILIATION,
    )
    proof = OutputDeliveryDedupe("d0", "dk", OutputDispatchStatus.COMPLETED)
    out = reduce(
        [out_intent(1, "d1"), rec(2, proof, K.OUTPUT_DISPATCH), rec(3, stored, K.OUTPUT_DISPATCH)]
    )
    assert out.output_delivery_repairs == (stored,)


def test_output_events_are_only_ordered() -> None:
    event = OutputDeliveryEvent("d1", "sent", OutputDispatchStatus.REQUESTED)
    out = reduce([rec(1, event, K.OUTPUT_DISPATCH)])
    assert out.status is ReplayStatus.COMPLETE and out.latest_journal_seq == 1


def test_output_repairs_are_in_delivery_id_order() -> None:
    out = reduce([out_intent(1, "d9"), out_intent(2, "d1", dedupe="x")])
    assert [r.delivery_id for r in out.output_delivery_repairs] == ["d1", "d9"]


# --------------------------------------------------------------------------- status and modes


def test_resume_allowed_only_false_for_resume_when_not_complete() -> None:
    broken = [intent(1, "e")]
    assert reduce(broken, ReducerMode.RESUME).resume_allowed is False
    assert reduce(broken, ReducerMode.AUDIT).resume_allowed is True
    assert reduce(broken, ReducerMode.REPAIR).resume_allowed is True
    assert reduce([msg(1)], ReducerMode.RESUME).resume_allowed is True


def test_mode_is_reported() -> None:
    for mode in ReducerMode:
        assert reduce([], mode).mode is mode


def test_finish_is_repeatable_and_does_not_change_the_reducer() -> None:
    reducer = ReplayReducer(ReducerMode.REPAIR)
    reducer.apply_all([intent(1, "e"), out_intent(2, "d")])
    first = reducer.finish()
    assert reducer.finish() == first
    reducer.apply(result(3, "e"))
    reducer.apply(rec(4, OutputDeliveryResult("d"), K.OUTPUT_DISPATCH))
    assert reducer.finish().status is ReplayStatus.COMPLETE


def test_error_message_names_kind_retry_and_record() -> None:
    err = apply_error([msg(1)], msg(1))
    text = str(err)
    assert text.startswith("invalid_state_transition [repair_needed]:")
    assert "record 'r1', journal_seq 1" in text


# --------------------------------------------------------------------------- cursors


def test_journal_cursor_for_seq() -> None:
    assert journal_cursor_for_seq(0) == "journal.0"
    assert journal_cursor_for_seq(42) == "journal.42"
    with pytest.raises(JournalUsageError):
        journal_cursor_for_seq(-1)


def test_cursor_compatibility() -> None:
    run = EventStreamScope.run("run-1")
    assert check_cursor_compatibility(run, None) is CursorCompatibility.COMPATIBLE
    assert (
        check_cursor_compatibility(run, EventCursor(EventStreamScope.run("run-1"), "journal.3"))
        is CursorCompatibility.COMPATIBLE
    )
    for other in (
        EventStreamScope.run("run-2"),
        EventStreamScope.agent("run-1"),
        EventStreamScope.all(),
    ):
        assert (
            check_cursor_compatibility(run, EventCursor(other, "journal.3"))
            is CursorCompatibility.SCOPE_MISMATCH
        )
    everything = EventStreamScope.all()
    assert (
        check_cursor_compatibility(everything, EventCursor(EventStreamScope.all(), "x"))
        is CursorCompatibility.COMPATIBLE
    )


def test_durable_replay_support() -> None:
    assert durable_replay_support(EventStreamScope.run("r")) is DurableReplaySupport.RUN_JOURNAL
    for scope in (
        EventStreamScope.all(),
        EventStreamScope.agent("a"),
        EventStreamScope.filter("f"),
    ):
        assert durable_replay_support(scope) is DurableReplaySupport.HOST_ARCHIVE_REQUIRED


# --------------------------------------------------------------------------- serialisation


def full_result() -> ReplayResult:
    reducer = ReplayReducer(ReducerMode.RESUME).with_available_content_refs(["a"])
    reducer.apply_all(
        [
            checkpoint(1, 1, state="loop-1", content_ref_manifest=("a", "m")),
            intent(2, "e", idem="k"),
            out_intent(3, "d"),
            rec(4, RunLifecycle("completed"), K.RUN),
        ]
    )
    return reducer.finish()


def test_result_json_has_serde_shape() -> None:
    out = full_result()
    data = json.loads(result_to_json(out))
    assert list(data) == [
        "mode",
        "status",
        "resume_allowed",
        "latest_journal_seq",
        "terminal_status",
        "next_loop_state",
        "unsafe_pending_side_effects",
        "missing_content_refs",
        "repair_needed",
        "output_delivery_repairs",
        "latest_checkpoint",
    ]
    assert data["mode"] == "resume_replay" and data["status"] == "repair_needed"
    assert data["resume_allowed"] is False
    assert data["repair_needed"][0] == {
        "kind": "missing_content_ref",
        "record_id": "r1",
        "journal_seq": 1,
        "reason": "content ref m is missing for replay",
        "retry": "user_action_needed",
    }
    pending = data["unsafe_pending_side_effects"][0]
    assert "dedupe_key" not in pending and pending["idempotency_key"] == "k"
    assert data["output_delivery_repairs"][0]["replay_decision"] == "unsafe_pending"


def test_empty_fields_are_omitted() -> None:
    data = json.loads(result_to_json(reduce([])))
    assert data == {
        "mode": "audit_replay",
        "status": "complete",
        "resume_allowed": True,
        "latest_journal_seq": 0,
    }


def test_result_round_trips_and_is_byte_identical() -> None:
    out = full_result()
    assert result_from_json(result_to_json(out)) == out
    assert result_from_msgpack(result_to_msgpack(out)) == out
    assert result_to_json(full_result()) == result_to_json(out)
    assert result_to_msgpack(full_result()) == result_to_msgpack(out)
    assert msgpack.unpackb(result_to_msgpack(out)) == json.loads(result_to_json(out))
    assert out.to_dict() == json.loads(out.to_json())
    assert out.to_msgpack() == result_to_msgpack(out)


@pytest.mark.parametrize("kind", list(ReplayRepairKind))
def test_every_repair_kind_serialises(kind: ReplayRepairKind) -> None:
    """CURSOR_SCOPE_MISMATCH and REPLAY_INVARIANT_VIOLATION are for hosts (the reducer, like
    the reference, never emits them) but results carrying them must still round-trip."""
    out = ReplayResult(
        mode=ReducerMode.REPAIR,
        status=ReplayStatus.REPAIR_NEEDED,
        resume_allowed=True,
        latest_journal_seq=3,
        repair_needed=(
            ReplayRepairNeeded(
                kind=kind,
                record_id="r3",
                journal_seq=3,
                reason="why",
                retry=RetryClassification.NOT_RETRYABLE,
            ),
        ),
    )
    assert json.loads(result_to_json(out))["repair_needed"][0]["kind"] == kind.value
    assert result_from_msgpack(result_to_msgpack(out)) == out


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\xc1", "not msgpack"),
        (msgpack.packb([1, 2]), "needs a mapping"),
        (msgpack.packb({"mode": "audit_replay"}), "missing field 'status'"),
        (
            msgpack.packb(
                {
                    "mode": "sideways",
                    "status": "complete",
                    "resume_allowed": True,
                    "latest_journal_seq": 0,
                }
            ),
            "not a ReducerMode value",
        ),
        (
            msgpack.packb(
                {
                    "mode": "audit_replay",
                    "status": "complete",
                    "resume_allowed": True,
                    "latest_journal_seq": -1,
                }
            ),
            "unsigned",
        ),
        (
            msgpack.packb(
                {
                    "mode": "audit_replay",
                    "status": "complete",
                    "resume_allowed": True,
                    "latest_journal_seq": 0,
                    "surprise": 1,
                }
            ),
            "unknown field",
        ),
    ],
)
def test_bad_result_bytes_are_decode_errors(data: bytes, match: str) -> None:
    with pytest.raises(JournalDecodeError, match=match) as info:
        result_from_msgpack(data, "stored.jreduce")
    assert "stored.jreduce" in str(info.value) and "Fix:" in str(info.value)


def test_bad_result_json() -> None:
    with pytest.raises(JournalDecodeError, match="not JSON"):
        result_from_json(b"{nope")
    with pytest.raises(JournalDecodeError, match="not JSON"):
        result_from_json(b"[" * 100_000)  # nested past the parser's depth: no RecursionError
