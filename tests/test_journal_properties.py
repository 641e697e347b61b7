"""Hypothesis properties of the journal package: codec round trips of every entry and record
kind, reducer determinism, valid journals replaying to COMPLETE or to the documented repairs,
the three stores agreeing with a model, and FileJournal surviving any truncation."""

from __future__ import annotations

import json
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_replay.journal import (
    JOURNAL_SCHEMA_VERSION,
    BatchSize,
    DeviceCmd,
    EffectIntent,
    EffectResult,
    FileJournal,
    InMemoryJournal,
    JournalEntry,
    JournalError,
    JournalRecord,
    JournalRecordKind,
    JournalRecordPayload,
    KernelCmd,
    MissingContentPolicy,
    OpaquePayload,
    OutputDeliveryDedupe,
    OutputDeliveryEvent,
    OutputDeliveryIntent,
    OutputDeliveryReconciliation,
    OutputDeliveryResult,
    OutputDispatchStatus,
    PendingSideEffect,
    PersistentRepr,
    RecoveryMarker,
    ReducerMode,
    ReplayReducer,
    ReplayReducerError,
    ReplayRepairDecision,
    ReplayRepairKind,
    ReplayStatus,
    RngSeed,
    RunCheckpoint,
    RunLifecycle,
    SqliteJournal,
    TerminalAppendStatus,
    TerminalResult,
    TornTailWarning,
    decode_entries,
    decode_entry,
    decode_journal,
    decode_journal_records,
    decode_record,
    encode_entries,
    encode_entry,
    encode_journal,
    encode_journal_records,
    encode_record,
    entry_from_dict,
    entry_to_dict,
    reduce_journal,
    result_from_json,
    result_from_msgpack,
    result_to_json,
    result_to_msgpack,
)
from pytest_replay.journal.records import PAYLOAD_TYPES

U64 = st.integers(0, 2**64 - 1)
TEXT = st.text(max_size=12)
IDS = st.text("abcxyz019", min_size=1, max_size=4)
OPT_KEY = st.none() | IDS

# --------------------------------------------------------------------------- entries

ENTRIES: st.SearchStrategy[JournalEntry] = st.one_of(
    st.builds(DeviceCmd, U64, TEXT, TEXT),
    st.builds(KernelCmd, U64, TEXT, TEXT),
    st.builds(RngSeed, TEXT, U64),
    st.builds(BatchSize, TEXT, U64),
)


@given(ENTRIES)
def test_every_entry_round_trips(entry: JournalEntry) -> None:
    assert decode_entry(encode_entry(entry)) == entry
    assert entry_from_dict(entry_to_dict(entry)) == entry


@given(st.lists(ENTRIES, max_size=20), IDS)
def test_entry_streams_and_recordings_round_trip(entries: list[JournalEntry], pid: str) -> None:
    assert decode_entries(encode_entries(entries)) == entries
    image = encode_journal(entries, pid)
    assert decode_journal(image, "rec") == entries
    assert encode_journal(list(entries), pid) == image


# --------------------------------------------------------------------------- records


def _enum(cls: Any) -> st.SearchStrategy[Any]:
    return st.sampled_from(list(cls))


PENDING = st.builds(PendingSideEffect, IDS, IDS, TEXT, OPT_KEY, OPT_KEY)
PAYLOADS: dict[type, st.SearchStrategy[Any]] = {
    RunCheckpoint: st.builds(
        RunCheckpoint,
        IDS,
        U64,
        U64,
        TEXT,
        U64,
        TEXT,
        st.lists(IDS, max_size=3).map(tuple),
    ),
    RecoveryMarker: st.builds(RecoveryMarker, st.lists(PENDING, max_size=3).map(tuple), TEXT),
    EffectIntent: st.builds(EffectIntent, IDS, OPT_KEY, OPT_KEY, TEXT),
    EffectResult: st.builds(EffectResult, IDS, TEXT),
    OutputDeliveryIntent: st.builds(OutputDeliveryIntent, IDS, TEXT, IDS, OPT_KEY),
    OutputDeliveryResult: st.builds(
        OutputDeliveryResult, IDS, _enum(OutputDispatchStatus), OPT_KEY
    ),
    OutputDeliveryDedupe: st.builds(
        OutputDeliveryDedupe,
        IDS,
        IDS,
        _enum(OutputDispatchStatus),
        _enum(OutputDispatchStatus),
        OPT_KEY,
        OPT_KEY,
    ),
    OutputDeliveryReconciliation: st.builds(
        OutputDeliveryReconciliation,
        delivery_id=IDS,
        intent_record_id=IDS,
        side_effect_kind=TEXT,
        idempotency_key=OPT_KEY,
        dedupe_key=IDS,
        external_operation_id=OPT_KEY,
        terminal_status=_enum(OutputDispatchStatus),
        terminal_append_status=_enum(TerminalAppendStatus),
        reconciliation_adapter=OPT_KEY,
        unsafe_pending_reason=TEXT,
        replay_decision=_enum(ReplayRepairDecision),
        resend_allowed=st.booleans(),
    ),
    OutputDeliveryEvent: st.builds(OutputDeliveryEvent, IDS, TEXT, _enum(OutputDispatchStatus)),
    RunLifecycle: st.builds(RunLifecycle, TEXT, TEXT),
    TerminalResult: st.builds(TerminalResult, IDS, TEXT, TEXT),
    OpaquePayload: st.builds(OpaquePayload, TEXT, st.binary(max_size=16)),
}
assert set(PAYLOADS) == set(PAYLOAD_TYPES.values())

RECORDS = st.builds(
    JournalRecord,
    record_id=IDS,
    journal_seq=U64,
    record_kind=_enum(JournalRecordKind),
    payload=st.one_of(*PAYLOADS.values()),
    content_refs=st.lists(IDS, max_size=3).map(tuple),
    idempotency_key=OPT_KEY,
    dedupe_key=OPT_KEY,
    journal_schema_version=U64,
)


@pytest.mark.parametrize("payload_type", list(PAYLOADS), ids=lambda t: t.__name__)
@settings(max_examples=10)
@given(data=st.data())
def test_every_record_kind_round_trips(payload_type: type, data: st.DataObject) -> None:
    record = data.draw(RECORDS)
    record = JournalRecord(
        record.record_id,
        record.journal_seq,
        record.record_kind,
        data.draw(PAYLOADS[payload_type]),
        record.content_refs,
        record.idempotency_key,
        record.dedupe_key,
        record.journal_schema_version,
    )
    assert decode_record(encode_record(record)) == record


@given(st.lists(RECORDS, max_size=8))
def test_record_files_round_trip(records: list[JournalRecord]) -> None:
    assert decode_journal_records(encode_journal_records(records)) == records


# --------------------------------------------------------------------------- valid journals


@dataclass
class Expected:
    """What the documented rules say a valid journal reduces to, computed independently."""

    repairs: Counter[ReplayRepairKind]
    pending: int
    output_repairs: int
    missing: set[str]


@st.composite
def valid_journals(draw: st.DrawFn) -> tuple[list[JournalRecord], Expected, frozenset[str]]:
    """Records obeying every ordering rule, with the repairs they must produce."""
    available = frozenset(draw(st.lists(st.sampled_from("abcdef"), max_size=6)))
    seq = 0
    out: list[JournalRecord] = []
    repairs: Counter[ReplayRepairKind] = Counter()
    open_effects: dict[str, bool] = {}  # effect id -> keyed
    open_outputs: dict[str, str] = {}  # delivery id -> dedupe key
    proofs: set[str] = set()
    reconciled: set[str] = set()
    delivered: set[str] = set()  # a result counts for a later intent of the same delivery too
    missing: set[str] = set()
    pending = 0
    steps = draw(st.integers(0, 25))
    for step in range(steps):
        seq += draw(st.integers(1, 3))
        rid = f"r{step}"
        refs = tuple(draw(st.lists(st.sampled_from("abcdefgh"), max_size=2)))
        action = draw(
            st.sampled_from(
                [
                    "msg",
                    "intent",
                    "result",
                    "checkpoint",
                    "recovery",
                    "out_intent",
                    "out_result",
                    "out_dedupe",
                    "out_reconcile",
                    "event",
                    "lifecycle",
                ]
            )
        )
        kind = JournalRecordKind.MESSAGE
        payload: JournalRecordPayload
        extra_refs: tuple[str, ...] = ()
        if action == "intent":
            effect = f"e{draw(st.integers(0, 4))}"
            keyed = draw(st.booleans())
            payload = EffectIntent(effect, "k" if keyed else None)
            open_effects[effect] = keyed
            kind = JournalRecordKind.EFFECT_INTENT
        elif action == "result" and open_effects:
            effect = draw(st.sampled_from(sorted(open_effects)))
            payload = EffectResult(effect)
            del open_effects[effect]
            kind = JournalRecordKind.EFFECT_RESULT
        elif action == "checkpoint":
            covers = draw(st.integers(0, seq))
            extra_refs = tuple(draw(st.lists(st.sampled_from("abcdefgh"), max_size=2)))
            payload = RunCheckpoint(rid, step, covers, f"s{step}", step, "", extra_refs)
            kind = JournalRecordKind.CHECKPOINT
        elif action == "recovery":
            items = draw(st.lists(st.booleans(), max_size=2))
            payload = RecoveryMarker(
                tuple(
                    PendingSideEffect(f"x{i}", rid, "crash", "k" if keyed else None)
                    for i, keyed in enumerate(items)
                )
            )
            for keyed in items:
                repairs[
                    ReplayRepairKind.UNSAFE_PENDING_SIDE_EFFECT
                    if keyed
                    else ReplayRepairKind.NON_IDEMPOTENT_PENDING_SIDE_EFFECT
                ] += 1
            pending += len(items)
            kind = JournalRecordKind.RECOVERY
        elif action == "out_intent":
            delivery = f"d{draw(st.integers(0, 4))}"
            dkey = f"dk{draw(st.integers(0, 2))}"
            payload = OutputDeliveryIntent(delivery, "sink", dkey)
            open_outputs[delivery] = dkey
            kind = JournalRecordKind.OUTPUT_DISPATCH
        elif action == "out_result" and open_outputs:
            delivery = draw(st.sampled_from(sorted(open_outputs)))
            payload = OutputDeliveryResult(delivery)
            del open_outputs[delivery]
            delivered.add(delivery)
        elif action == "out_dedupe":
            dkey = f"dk{draw(st.integers(0, 2))}"
            payload = OutputDeliveryDedupe("old", dkey, OutputDispatchStatus.COMPLETED)
            proofs.add(dkey)
        elif action == "out_reconcile" and open_outputs:
            delivery = draw(st.sampled_from(sorted(open_outputs)))
            payload = OutputDeliveryReconciliation(
                delivery_id=delivery,
                intent_record_id="?",
                dedupe_key=open_outputs[delivery],
                terminal_status=OutputDispatchStatus.RECONCILIATION_NEEDED,
                unsafe_pending_reason="host",
                replay_decision=ReplayRepairDecision.REQUIRES_HOST_RECONCILIATION,
            )
            reconciled.add(delivery)
            repairs[ReplayRepairKind.OUTPUT_DELIVERY_RECONCILIATION] += 1
        elif action == "event":
            payload = OutputDeliveryEvent("d", "sent", OutputDispatchStatus.REQUESTED)
        elif action == "lifecycle":
            payload = RunLifecycle(draw(st.sampled_from(["running", "paused", "waiting"])))
        else:
            payload = OpaquePayload("message")
        for ref in refs + extra_refs:
            if ref not in available and ref not in missing:
                missing.add(ref)
                repairs[ReplayRepairKind.MISSING_CONTENT_REF] += 1
        out.append(JournalRecord(rid, seq, kind, payload, refs))
    # A terminal result may close the journal (then only checkpoints could follow).
    if draw(st.booleans()):
        seq += 1
        out.append(
            JournalRecord("final", seq, JournalRecordKind.RUN, TerminalResult("e0", "completed"))
        )
        open_effects.pop("e0", None)
    for keyed in open_effects.values():
        repairs[
            ReplayRepairKind.UNSAFE_PENDING_SIDE_EFFECT
            if keyed
            else ReplayRepairKind.NON_IDEMPOTENT_PENDING_SIDE_EFFECT
        ] += 1
    pending += len(open_effects)
    output_repairs = 0
    for delivery, dkey in open_outputs.items():
        if delivery in delivered:
            continue
        output_repairs += 1
        if delivery not in reconciled and dkey not in proofs:
            repairs[ReplayRepairKind.OUTPUT_DELIVERY_RECONCILIATION] += 1
    return out, Expected(repairs, pending, output_repairs, missing), available


@given(valid_journals(), st.sampled_from(list(ReducerMode)))
def test_valid_journal_replays_to_complete_or_the_documented_repairs(
    case: tuple[list[JournalRecord], Expected, frozenset[str]], mode: ReducerMode
) -> None:
    records, expected, available = case
    out = reduce_journal(records, mode, available_content_refs=available)
    assert Counter(r.kind for r in out.repair_needed) == expected.repairs
    assert len(out.unsafe_pending_side_effects) == expected.pending
    assert len(out.output_delivery_repairs) == expected.output_repairs
    assert set(out.missing_content_refs) == expected.missing
    assert out.latest_journal_seq == (records[-1].journal_seq if records else 0)
    complete = not expected.repairs and not expected.missing
    assert (out.status is ReplayStatus.COMPLETE) == complete
    assert out.resume_allowed == (mode is not ReducerMode.RESUME or complete)
    # Re-applying any record with a key or of kind checkpoint/recovery changes nothing.
    reducer = ReplayReducer(mode).with_available_content_refs(available)
    reducer.apply_all(records)
    for record in records:
        if record.record_kind in (JournalRecordKind.CHECKPOINT, JournalRecordKind.RECOVERY):
            reducer.apply(record)
    assert reducer.finish() == out


@given(valid_journals(), st.sampled_from(list(MissingContentPolicy)))
def test_reducer_is_deterministic(
    case: tuple[list[JournalRecord], Expected, frozenset[str]], policy: MissingContentPolicy
) -> None:
    records, _expected, available = case
    results = [
        reduce_journal(
            list(records),
            ReducerMode.REPAIR,
            available_content_refs=sorted(available, reverse=bool(i)),
            missing_content_policy=policy,
        )
        for i in range(2)
    ]
    assert results[0] == results[1]
    assert result_to_json(results[0]) == result_to_json(results[1])
    assert result_to_msgpack(results[0]) == result_to_msgpack(results[1])
    assert result_from_json(result_to_json(results[0])) == results[0]
    assert result_from_msgpack(result_to_msgpack(results[0])) == results[0]
    assert json.loads(result_to_json(results[0]))["mode"] == "repair_replay"


NEAR_VALID_RECORDS = st.builds(
    JournalRecord,
    record_id=st.sampled_from(["r1", "r2", "r3", "r4"]),
    journal_seq=st.integers(0, 12),
    record_kind=_enum(JournalRecordKind),
    payload=st.one_of(*PAYLOADS.values()),
    content_refs=st.lists(st.sampled_from("ab"), max_size=2).map(tuple),
    idempotency_key=st.none() | st.just("k"),
    dedupe_key=st.none() | st.just("d"),
    journal_schema_version=st.sampled_from([1, 1, 1, 2]),
)


@given(st.lists(NEAR_VALID_RECORDS, max_size=12), st.sampled_from(list(ReducerMode)))
def test_reducer_never_crashes_on_arbitrary_records(
    records: list[JournalRecord], mode: ReducerMode
) -> None:
    """Arbitrary records are applied or rejected with a ReplayReducerError, nothing else,
    and a rejected record leaves the reducer as it was."""
    reducer = ReplayReducer(mode).with_available_content_refs(["a"])
    for record in records:
        before = reducer.finish()
        try:
            reducer.apply(record)
        except ReplayReducerError as exc:
            assert isinstance(exc, JournalError)
            after = reducer.finish()
            # Only an invalid checkpoint leaves traces (as in the reference): its
            # CHECKPOINT_INVALID repair, after the missing refs it was seen to carry.
            extra = [r.kind for r in after.repair_needed[len(before.repair_needed) :]]
            assert after.repair_needed[: len(before.repair_needed)] == before.repair_needed
            if extra:
                assert extra[-1] is ReplayRepairKind.CHECKPOINT_INVALID
                assert set(extra[:-1]) <= {ReplayRepairKind.MISSING_CONTENT_REF}
            assert after.latest_journal_seq == before.latest_journal_seq
    first = reducer.finish()
    assert reducer.finish() == first
    assert result_from_msgpack(result_to_msgpack(first)) == first


# --------------------------------------------------------------------------- stores

OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("write"),
            st.lists(st.tuples(st.sampled_from("pq"), st.integers(-1, 2)), max_size=4),
        ),
        st.tuples(st.just("delete"), st.tuples(st.sampled_from("pq"), st.integers(0, 12))),
    ),
    max_size=12,
)


def _run_ops(store: Any, ops: list[Any]) -> list[Any]:
    """Apply ops; a write names (pid, offset from the next good seq). Returns what was seen."""
    seen: list[Any] = []
    for op, arg in ops:
        if op == "write":
            batch = []
            nexts: dict[str, int] = {}
            for pid, delta in arg:
                nexts.setdefault(pid, store.highest_sequence_nr(pid) + 1)
                batch.append(PersistentRepr(pid, nexts[pid] + delta, f"{pid}{delta}".encode()))
                nexts[pid] += 1
            try:
                store.write_messages(batch)
                seen.append("ok")
            except JournalError as exc:
                seen.append(type(exc).__name__)
        else:
            store.delete_messages_to(*arg)
        for pid in "pq":
            seen.append((pid, store.highest_sequence_nr(pid), store.replay_messages(pid)))
    return seen


@settings(max_examples=15)
@given(OPS)
def test_the_three_stores_agree(ops: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        stores = [
            InMemoryJournal(),
            SqliteJournal(Path(folder) / "j.db", synchronous="OFF"),
            FileJournal(Path(folder) / "j.jrnl", fsync=False),
        ]
        try:
            runs = [_run_ops(store, ops) for store in stores]
        finally:
            for store in stores:
                store.close()
    assert runs[0] == runs[1] == runs[2]


@settings(max_examples=25)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=5), st.data())
def test_file_journal_survives_truncation_at_any_byte(sizes: list[int], data: Any) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "j.jrnl"
        ends = []
        seq = 0
        with FileJournal(path, fsync=False) as journal:
            ends.append((path.stat().st_size, 0))
            for size in sizes:
                journal.write_messages(
                    [PersistentRepr("p", seq + i + 1, b"x" * (seq + i)) for i in range(size)]
                )
                seq += size
                ends.append((path.stat().st_size, seq))
        full = path.read_bytes()
        cut = data.draw(st.integers(16, len(full)))
        path.write_bytes(full[:cut])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TornTailWarning)
            with FileJournal(path) as journal:
                survivors = journal.highest_sequence_nr("p")
                items = journal.replay_messages("p")
        # Exactly the batches that ended at or before the cut survive, intact.
        assert survivors == max(n for end, n in ends if end <= cut)
        assert [m.payload for m in items] == [b"x" * i for i in range(survivors)]
        assert path.stat().st_size == max(end for end, _ in ends if end <= cut)


def test_schema_version_constant() -> None:
    assert JOURNAL_SCHEMA_VERSION == 1
