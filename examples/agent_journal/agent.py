"""An agent run that journals every step, so that it can resume after a crash.

The agent works through a list of tasks. Each task has two steps with effects outside the
process:

* an **effect**: charge an account on the payment ``Ledger`` (idempotent: a charge
  repeated with the same idempotency key returns the first receipt and moves no money);
* an **output delivery**: post a message to a chat room through the ``Outbox`` (not
  idempotent: sending twice posts twice, but the outbox can say whether a message with a
  given dedupe key was already delivered).

Everything the agent does goes into its **run journal**: ``JournalRecord``s in a
``FileJournal`` (append-only, one fsynced frame per batch). The journal is written ahead.
The *intent* of an effect or delivery is durable before it happens. The *outcomes* are
committed together with a checkpoint, as one atomic batch, after it happened. A crash in
between leaves intents without outcomes. ``reduce_journal(records, ReducerMode.RESUME)``
turns those into repairs: an unsafe pending side effect (retry allowed, because the
charge has an idempotency key) and an output delivery to reconcile.

``resume`` reads the journal, refuses to go on when a repair cannot be done safely, and
runs the same task code again from the last checkpoint. That code skips what the journal
shows as done. It retries the keyed charge, and it proves an already-sent message with an
``OutputDeliveryDedupe`` record instead of posting it twice.

The agent's inputs go to a second journal, the replay harness (``replay.journal`` in the
tests): the planner's seed (``RngSeed``), then one command per tool call (``KernelCmd``)
and per delivery (``DeviceCmd``). A resumed run gets its seed back by replaying that
journal, so it charges the same amounts as the run that crashed.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pytest_replay.journal import (
    DeviceCmd,
    EffectIntent,
    EffectResult,
    FileJournal,
    JournalEntry,
    JournalRecord,
    JournalRecordKind,
    JournalRecordPayload,
    KernelCmd,
    OpaquePayload,
    OutputDeliveryDedupe,
    OutputDeliveryIntent,
    OutputDeliveryResult,
    OutputDispatchStatus,
    PersistentRepr,
    ReducerMode,
    ReplayMode,
    ReplayResult,
    RngSeed,
    RunCheckpoint,
    RunLifecycle,
    decode_record,
    encode_record,
    reduce_journal,
    write_journal_records,
)

PERSISTENCE_ID = "agent-run-1"
ROOM = "chat://ops-room"
TASKS = ("refund-17", "refund-23", "invoice-8", "refund-31", "invoice-12")
PLANNER = "/agent/planner"
MANIFEST = "examples.agent_journal.Record/1"


class SimulatedCrash(Exception):
    """Raised at the crash point a test asks for (the process 'dies' there)."""


class CannotResume(Exception):
    """The journal holds a repair that cannot be done safely (a human must look)."""


# --------------------------------------------------------------------------- the outside world


@dataclass
class Ledger:
    """The payment system: charges are idempotent by key."""

    receipts: dict[str, str] = field(default_factory=dict)
    charges: list[tuple[str, int]] = field(default_factory=list)  # money actually moved

    def charge(self, idempotency_key: str, account: str, amount: int) -> str:
        if idempotency_key not in self.receipts:
            self.receipts[idempotency_key] = f"rcpt-{len(self.receipts) + 1}"
            self.charges.append((account, amount))
        return self.receipts[idempotency_key]


@dataclass
class Outbox:
    """The chat room: every send posts (no dedupe), but deliveries can be looked up."""

    posted: list[tuple[str, str]] = field(default_factory=list)
    delivered: dict[str, str] = field(default_factory=dict)  # dedupe key -> operation id

    def send(self, room: str, dedupe_key: str, text: str) -> str:
        self.posted.append((room, text))
        operation = f"op-{len(self.posted)}"
        self.delivered[dedupe_key] = operation
        return operation

    def lookup(self, dedupe_key: str) -> str | None:
        return self.delivered.get(dedupe_key)


class Inputs(Protocol):
    """The input journal: a ``ReplayHarness`` with a store (``replay.journal(...)``)."""

    def record(self, entry: JournalEntry) -> JournalEntry | None: ...

    def flush(self) -> None: ...

    def set_mode(self, mode: ReplayMode) -> None: ...

    def load_from_journal(self) -> int: ...

    def replay_all(self, sink: Callable[[JournalEntry], object]) -> int: ...


# --------------------------------------------------------------------------- the run journal


class RunJournal:
    """The run's ``JournalRecord``s in a ``FileJournal``, one persistence id."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._store = FileJournal(self.path)
        self._seq = self._store.highest_sequence_nr(PERSISTENCE_ID)

    def append(self, *items: tuple[JournalRecordKind, JournalRecordPayload, str | None]) -> None:
        """Append (kind, payload, idempotency key) records as ONE atomic batch."""
        batch = []
        for kind, payload, key in items:
            self._seq += 1
            record = JournalRecord(f"r{self._seq}", self._seq, kind, payload, idempotency_key=key)
            batch.append(PersistentRepr(PERSISTENCE_ID, self._seq, encode_record(record), MANIFEST))
        self._store.write_messages(batch)

    @property
    def last_seq(self) -> int:
        """The journal seq of the last record appended (0 for an empty journal)."""
        return self._seq

    def records(self) -> list[JournalRecord]:
        stored = self._store.replay_messages(PERSISTENCE_ID)
        return [
            decode_record(m.payload, str(self.path), record_index=m.sequence_nr) for m in stored
        ]

    def export(self, path: str | Path) -> Path:
        """Write the records as a record file (what ``replay.reduce`` can read)."""
        write_journal_records(path, self.records())
        return Path(path)

    def close(self) -> None:
        self._store.close()


@dataclass
class Progress:
    """What the journal shows as done, by effect and delivery id."""

    effect_intents: set[str] = field(default_factory=set)
    effects_done: set[str] = field(default_factory=set)
    delivery_intents: set[str] = field(default_factory=set)
    deliveries_done: set[str] = field(default_factory=set)
    checkpoints: int = 0

    @classmethod
    def of(cls, records: Iterable[JournalRecord]) -> Progress:
        progress = cls()
        for record in records:
            payload = record.payload
            if isinstance(payload, EffectIntent):
                progress.effect_intents.add(payload.effect_id)
            elif isinstance(payload, EffectResult):
                progress.effects_done.add(payload.effect_id)
            elif isinstance(payload, OutputDeliveryIntent):
                progress.delivery_intents.add(payload.delivery_id)
            elif isinstance(payload, (OutputDeliveryResult, OutputDeliveryDedupe)):
                progress.deliveries_done.add(payload.delivery_id)
            elif isinstance(payload, RunCheckpoint):
                progress.checkpoints += 1
        return progress


# --------------------------------------------------------------------------- the agent


@dataclass
class Agent:
    journal: RunJournal
    inputs: Inputs
    ledger: Ledger
    outbox: Outbox
    seed: int
    crash_after_send: str | None = None  # a task id: die right after posting its message
    progress: Progress = field(default_factory=Progress)

    def run(self, start: int = 0) -> None:
        if start == 0:
            self.inputs.record(RngSeed(PLANNER, self.seed))
            self.journal.append((JournalRecordKind.RUN, RunLifecycle("running"), None))
        for index in range(start, len(TASKS)):
            self._task(index)
        self.journal.append((JournalRecordKind.RUN, RunLifecycle("completed"), None))

    def _task(self, index: int) -> None:
        task = TASKS[index]
        rng = random.Random(f"{self.seed}/{task}")  # str seeds hash with SHA-512: stable
        amount = rng.randrange(5, 500)
        account = f"acct-{rng.randrange(100, 1000)}"
        effect_id, delivery_id = f"charge/{task}", f"notify/{task}"
        key, dedupe_key = f"{PERSISTENCE_ID}/{effect_id}", f"{PERSISTENCE_ID}/{delivery_id}"
        done = self.progress

        # Write-ahead: the intent is durable before the ledger is touched.
        if effect_id not in done.effect_intents:
            self.journal.append(
                (JournalRecordKind.TURN, OpaquePayload("turn", task.encode()), None),
                (
                    JournalRecordKind.EFFECT_INTENT,
                    EffectIntent(effect_id, key, summary=f"charge {amount} to {account}"),
                    key,
                ),
            )
        self.inputs.record(KernelCmd(0, "tool:charge", f"{task} {account} {amount}"))
        receipt = self.ledger.charge(key, account, amount)  # safe to repeat: keyed

        if delivery_id not in done.delivery_intents:
            self.journal.append(
                (
                    JournalRecordKind.OUTPUT_DISPATCH,
                    OutputDeliveryIntent(delivery_id, ROOM, dedupe_key),
                    None,
                )
            )
        operation = self.outbox.lookup(dedupe_key)
        if operation is None:
            self.inputs.record(DeviceCmd(0, "deliver", f"{ROOM} {task}"))
            operation = self.outbox.send(ROOM, dedupe_key, f"{task}: charged {amount} ({receipt})")
            delivered: JournalRecordPayload = OutputDeliveryResult(
                delivery_id, OutputDispatchStatus.COMPLETED, operation
            )
        else:
            # Sent before a crash: prove it instead of posting the message twice.
            delivered = OutputDeliveryDedupe(
                delivery_id,
                dedupe_key,
                OutputDispatchStatus.COMPLETED,
                prior_external_operation_id=operation,
            )
        if self.crash_after_send == task:
            raise SimulatedCrash(f"crashed after posting the message of {task}")

        # The outcomes and the checkpoint commit together, as one atomic batch.
        outcomes: list[tuple[JournalRecordKind, JournalRecordPayload, str | None]] = []
        if effect_id not in done.effects_done:
            outcomes.append(
                (JournalRecordKind.EFFECT_RESULT, EffectResult(effect_id, "completed"), key)
            )
        if delivery_id not in done.deliveries_done:
            outcomes.append((JournalRecordKind.OUTPUT_DISPATCH, delivered, None))
        done.checkpoints += 1
        checkpoint = RunCheckpoint(
            checkpoint_id=f"cp-{done.checkpoints}",
            checkpoint_seq=done.checkpoints,
            covers_journal_seq=self.journal.last_seq + len(outcomes) + 1,  # itself
            loop_state=f"next_task={index + 1}",
            created_at_millis=(index + 1) * 1_000,  # mock time: one second per task
            state_hash=hashlib.sha256(f"{index}:{receipt}:{operation}".encode()).hexdigest()[:16],
        )
        self.journal.append(*outcomes, (JournalRecordKind.CHECKPOINT, checkpoint, None))


def next_task(result: ReplayResult) -> int:
    """The task to continue with, from the latest checkpoint's loop state."""
    if result.latest_checkpoint is None:
        return 0
    name, _, value = result.latest_checkpoint.loop_state.partition("=")
    assert name == "next_task", result.latest_checkpoint.loop_state
    return int(value)


def recovered_seed(inputs: Inputs) -> int:
    """Replay the input journal and return the planner's seed (its ``RngSeed`` entry)."""
    seeds: list[int] = []

    def sink(entry: JournalEntry) -> None:
        if isinstance(entry, RngSeed) and entry.actor_path == PLANNER:
            seeds.append(entry.seed)

    inputs.flush()
    inputs.set_mode(ReplayMode.REPLAY)
    try:
        inputs.load_from_journal()
        inputs.replay_all(sink)
    finally:
        inputs.set_mode(ReplayMode.RECORD)
    if len(seeds) != 1:
        raise CannotResume(f"the input journal holds {len(seeds)} planner seeds, expected 1")
    return seeds[0]


def resume(journal: RunJournal, inputs: Inputs, ledger: Ledger, outbox: Outbox) -> ReplayResult:
    """Check that the crashed run may resume, then finish it.

    Returns the RESUME-mode reduction of the journal as the crash left it. Every pending
    effect must be retry-allowed (keyed). Pending deliveries are reconciled by the task
    code, which asks the outbox before sending.
    """
    records = journal.records()
    result = reduce_journal(records, ReducerMode.RESUME)
    for pending in result.unsafe_pending_side_effects:
        if not pending.retry_allowed:
            raise CannotResume(f"effect {pending.effect_id} has no key: it cannot be retried")
    agent = Agent(journal, inputs, ledger, outbox, recovered_seed(inputs))
    agent.progress = Progress.of(records)
    agent.run(start=next_task(result))
    return result
