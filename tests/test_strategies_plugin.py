"""Strategy examples as recorded fixtures through the real plugin (pytester): a journal
and a ring log drawn deterministically from the public strategies are recorded, verify,
and a broken reduction fails with a readable report."""

from __future__ import annotations

import pytest

# Imported here so the in-process pytester runs reuse these modules (and their enum
# classes) instead of importing fresh copies next to the plugin's.
from pytest_replay import strategies as _strategies  # noqa: F401
from pytest_replay.journal import kind as _journal_kind  # noqa: F401

SOURCE = """
from hypothesis import Phase, find, settings
from pytest_replay import strategies as rst

# derandomize: the same example every run; no shrinking: fast
SETTINGS = settings(database=None, derandomize=True, max_examples=100, phases=[Phase.generate])


def test_generated_run(replay):
    case = find(
        rst.journals(min_records=4, max_records=8, terminal=False),
        lambda c: len(c.expected.repairs) >= 1,
        settings=SETTINGS,
    )
    records = case.records if {intact} else case.records[:-1]
    reduced = replay.reduce(
        "run",
        records,
        case.mode,
        available_content_refs=case.available_content_refs,
        missing_content_policy=case.missing_content_policy,
    )
    if {intact}:
        assert rst.summarize(reduced.result) == case.expected

    ring = find(rst.ring_logs(capacity=4, min_appends=6), lambda c: True, settings=SETTINGS)
    slots = replay.ring("slots")
    for record in ring.expected:
        slots.append(record.slot)
"""


def test_strategy_examples_record_verify_and_break(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_gen=SOURCE.format(intact=True))
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    folder = pytester.path / "__replay__" / "test_gen" / "test_generated_run"
    assert (folder / "run.jreduce").is_file()
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith("slots"))

    pytester.runpytest("--replay-verify").assert_outcomes(passed=1)

    pytester.makepyfile(test_gen=SOURCE.format(intact=False))
    broken = pytester.runpytest("--replay-verify")
    broken.assert_outcomes(failed=1)
    broken.stdout.fnmatch_lines(
        ["*recording 'run' (kind reduce)*", "*replay result of * journal records differs*"]
    )
