"""The agent run under pytest_replay: its input journal and the reduction of its run journal."""

from __future__ import annotations

import pytest
from agent import (
    TASKS,
    Agent,
    Ledger,
    Outbox,
    RunJournal,
    SimulatedCrash,
    next_task,
    resume,
)

from pytest_replay.journal import (
    KernelCmd,
    ReplayRepairDecision,
    ReplayRepairKind,
    ReplayStatus,
    RngSeed,
)


def test_agent_run_completes(replay, tmp_path):
    inputs = replay.journal("inputs")
    journal = RunJournal(tmp_path / "run.journal")
    ledger, outbox = Ledger(), Outbox()
    try:
        Agent(journal, inputs, ledger, outbox, seed=replay.seed).run()
        records = journal.export(tmp_path / "run.jrec")
    finally:
        journal.close()

    audit = replay.reduce("audit", records, mode="audit").result
    assert audit.status is ReplayStatus.COMPLETE
    assert audit.latest_checkpoint is not None
    assert audit.latest_checkpoint.loop_state == f"next_task={len(TASKS)}"
    assert len(ledger.charges) == len(outbox.posted) == len(TASKS)
    # The input journal: the seed, then a charge and a delivery per task.
    assert inputs.recorded[0] == RngSeed("/agent/planner", replay.seed)
    assert len(inputs) == 1 + 2 * len(TASKS)


def test_resume_after_crash(replay, tmp_path):
    inputs = replay.journal("inputs")
    ledger, outbox = Ledger(), Outbox()  # the outside world outlives the crash
    path = tmp_path / "run.journal"

    journal = RunJournal(path)
    try:
        with pytest.raises(SimulatedCrash):
            Agent(
                journal, inputs, ledger, outbox, seed=replay.seed, crash_after_send="invoice-8"
            ).run()
    finally:
        journal.close()  # the process is gone: its lock is released
    assert len(ledger.charges) == len(outbox.posted) == 3  # task 3 acted, but never committed

    # What the crash left, as the reducer sees it (recorded: the repairs are part of the
    # contract between the agent and the reducer).
    journal = RunJournal(path)
    try:
        crashed = replay.reduce("after_crash", journal.records(), mode="resume").result
        assert crashed.status is ReplayStatus.REPAIR_NEEDED
        assert not crashed.resume_allowed
        assert next_task(crashed) == TASKS.index("invoice-8")
        (pending,) = crashed.unsafe_pending_side_effects
        assert pending.effect_id == "charge/invoice-8" and pending.retry_allowed
        (delivery,) = crashed.output_delivery_repairs
        assert delivery.delivery_id == "notify/invoice-8"
        assert delivery.replay_decision is ReplayRepairDecision.UNSAFE_PENDING
        assert {r.kind for r in crashed.repair_needed} == {
            ReplayRepairKind.UNSAFE_PENDING_SIDE_EFFECT,
            ReplayRepairKind.OUTPUT_DELIVERY_RECONCILIATION,
        }

        resume(journal, inputs, ledger, outbox)
        resumed = replay.reduce("resumed", journal.records(), mode="resume").result
    finally:
        journal.close()

    assert resumed.status is ReplayStatus.COMPLETE
    assert resumed.resume_allowed
    # Exactly once outside: no second charge, no second message, for every task.
    assert len(ledger.charges) == len(outbox.posted) == len(TASKS)
    assert sorted(text.split(":")[0] for _room, text in outbox.posted) == sorted(TASKS)
    # The resumed run replayed its seed from the input journal and retried the charge.
    charges = [e.payload for e in inputs.recorded if isinstance(e, KernelCmd)]
    assert charges.count(charges[2]) == 2 and charges[2].startswith("invoice-8 ")

    # The same world as a run that never crashed.
    clean_ledger, clean_outbox = Ledger(), Outbox()
    clean = RunJournal(tmp_path / "clean.journal")
    try:
        Agent(clean, _Discard(), clean_ledger, clean_outbox, seed=replay.seed).run()
    finally:
        clean.close()
    assert clean_ledger == ledger
    assert clean_outbox.posted == outbox.posted


class _Discard:
    """An input journal that keeps nothing (the clean comparison run is not recorded)."""

    def record(self, entry):
        return entry
