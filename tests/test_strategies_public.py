"""The public strategies themselves: their values are valid, every label is reachable,
docstring examples run, bad arguments fail with a Fix: hint, and no Hypothesis health
check fails under the default settings."""

from __future__ import annotations

import doctest
import importlib
import random
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import FailedHealthCheck, NonInteractiveExampleWarning

from pytest_replay import strategies as rst
from pytest_replay.fleet import FleetLogReader, ReplayCatalog, Step, load_topology
from pytest_replay.journal import (
    decode_entry,
    decode_journal,
    decode_record,
    encode_entry,
    encode_record,
)
from pytest_replay.ringlog import encode_ring_image, read_ring_image, records_from_array

DEFAULT = settings(
    settings.get_profile("default"), max_examples=15, deadline=None, database=None, derandomize=True
)


@pytest.mark.parametrize(
    "module", ["ring", "journal", "fleet", "corrupt", "__init__"], ids=lambda m: m
)
def test_docstring_examples_run(module: str) -> None:
    name = "pytest_replay.strategies" + ("" if module == "__init__" else f".{module}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonInteractiveExampleWarning)
        result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0


HEALTH_STRATEGIES = {
    "recorded_slots": rst.recorded_slots(),
    "failure_evidence": rst.failure_evidence(),
    "ring_logs": rst.ring_logs(),
    "journal_entries": rst.journal_entries(),
    "journal_records": rst.journal_records(),
    "journals": rst.journals(),
    "reordered_journals": rst.reordered_journals(),
    "steps": rst.steps(),
    "provenance_graphs": rst.provenance_graphs(),
    "provenance_graphs_at_the_size_limit": rst.provenance_graphs(
        instances=5, subsystems=4, steps=rst.PROVENANCE_GRAPH_NODE_LIMIT // 20
    ),
    "journals_1000": rst.journals(min_records=1000, max_records=1000),
    "faulty_provenance_graphs": rst.faulty_provenance_graphs(),
    "fleet_log_cases": rst.fleet_log_cases(),
    "corrupted_ring": rst.corrupted_logs("ring"),
    "corrupted_journal": rst.corrupted_logs("journal"),
    "corrupted_fleet": rst.corrupted_logs("fleet"),
}


@pytest.mark.parametrize("name", sorted(HEALTH_STRATEGIES))
def test_no_health_check_fails_under_default_settings(name: str) -> None:
    seen = []

    @DEFAULT
    @given(HEALTH_STRATEGIES[name])
    def run(value: object) -> None:
        seen.append(value)

    run()
    assert seen


def test_the_stated_graph_size_limit_is_where_the_health_check_starts_failing() -> None:
    # Just past the limit the smallest example is too large for the default settings
    # (the limit itself passes in test_no_health_check_fails_under_default_settings).
    @DEFAULT
    @given(rst.provenance_graphs(instances=1, subsystems=1, steps=1_025))
    def run(spec: rst.FleetSpec) -> None:
        pass

    with pytest.raises(FailedHealthCheck, match="smallest natural input"):
        run()


def _has_a_node_with_two_parents(spec: rst.FleetSpec) -> bool:
    return max(Counter(after for _before, after in spec.edges()).values(), default=0) >= 2


@pytest.mark.parametrize("seed", [None, 0, 1, 2, 3], ids=lambda s: f"seed={s}")
def test_a_bug_needing_two_parents_shrinks_to_three_nodes(seed: int | None) -> None:
    # Nodes are list elements, so the shrinker deletes what the failure does not need:
    # two nodes and one with both as parents (local order or provenance).
    smallest = find(
        rst.provenance_graphs(),
        _has_a_node_with_two_parents,
        settings=settings(
            max_examples=1_000,
            database=None,
            derandomize=seed is None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
        random=None if seed is None else random.Random(seed),
    )
    assert smallest.total_nodes <= 4, smallest
    if seed is None:
        assert smallest.total_nodes == 3, smallest


@given(case=rst.ring_logs())
def test_ring_logs_replay_their_expected_records(case: rst.RingLogCase) -> None:
    image = read_ring_image(case.data)
    assert records_from_array(image.records) == list(case.expected)
    assert image.cursor == case.cursor


@given(entry=rst.journal_entries(), record=rst.journal_records())
def test_values_round_trip_through_their_codecs(entry, record) -> None:
    assert decode_entry(encode_entry(entry)) == entry
    assert decode_record(encode_record(record)) == record


@given(case=rst.fleet_log_cases())
def test_fleet_log_cases_read_back_as_their_original(tmp_path_factory, case) -> None:
    folder = tmp_path_factory.mktemp("log")
    for name, data in case.files():
        (folder / name).write_bytes(data)
    reader = FleetLogReader(folder / case.base_name)
    steps = [Step(s.step_id, s.timestamp_ns, tuple(s.messages)) for s in reader.iter_steps()]
    assert (*reader.lifecycle, *steps, *reader.keyframes) == case.original


@given(case=rst.corrupted_logs("journal", corruptions=["rewritten_entry", "delete_marker"]))
def test_undetectable_journal_damage_still_decodes(case: rst.Corrupted) -> None:
    assert case.expected_error is None
    assert decode_journal(case.data, "x") != list(case.original)


@given(spec=rst.provenance_graphs(cross_instance=False))
def test_cross_instance_false_keeps_provenance_inside_an_instance(spec: rst.FleetSpec) -> None:
    assert all(a[0] == b[0] for a, b in spec.edges())


@given(spec=rst.provenance_graphs())
def test_graphs_are_acyclic_and_every_edge_goes_forward_in_the_hidden_order(
    spec: rst.FleetSpec,
) -> None:
    rank = {node: k for k, node in enumerate(spec.hidden_order)}
    assert sorted(rank) == spec.nodes()
    assert all(rank[a] < rank[b] for a, b in spec.edges())
    assert len(spec.expected_order()) == spec.total_nodes


def test_materialize_writes_logs_the_catalog_and_topology_read(tmp_path: Path) -> None:
    spec = rst.FleetSpec(
        subsystems=(("sub1", 1), ("sub0", 4)),
        sessions=(
            rst.SessionSpec(1, "sub1", 1, (Step(0, 0), Step(2, 1)), ()),
            rst.SessionSpec(1, "sub0", 4, (Step(1, 0),), ()),
        ),
        hidden_order=((1, 1, 0), (1, 4, 1), (1, 1, 2)),
    )
    fleet = rst.materialize(spec, tmp_path)
    topology = load_topology(fleet.topology_path)
    assert [(s.id, s.code) for s in topology.subsystems] == [("sub1", 1), ("sub0", 4)]
    catalog = ReplayCatalog.discover_under(fleet.logs_root)
    assert [(log.instance_id, log.subsystem_id) for log in catalog.logs] == [
        (1, "sub1"),
        (1, "sub0"),
    ]
    assert not catalog.failures
    assert FleetLogReader(fleet.log_paths[0]).total_steps == 2


@pytest.mark.parametrize("fault", rst.FAULTS)
def test_every_fault_is_reachable(fault: str) -> None:
    @settings(max_examples=5)
    @given(rst.faulty_provenance_graphs(instances=2, subsystems=2, steps=2, faults=[fault]))
    def run(case: rst.FaultyFleet) -> None:
        assert case.fault == fault

    run()


@pytest.mark.parametrize("name", rst.REORDERINGS)
def test_every_reordering_is_reachable(name: str) -> None:
    hits = []

    @settings(max_examples=25)
    @given(rst.reordered_journals(transformations=[name], min_records=8))
    def run(case: rst.ReorderedJournal) -> None:
        hits.append(case.transformation == name)

    run()
    assert any(hits)


@given(case=rst.journals(terminal=True, min_records=1))
def test_terminal_true_seals_the_run(case: rst.JournalCase) -> None:
    assert case.expected.terminal_status is not None


@pytest.mark.parametrize(
    "make",
    [
        lambda: rst.corrupted_logs("tape"),  # type: ignore[arg-type]
        lambda: rst.corrupted_logs("ring", corruptions=["crc_mismatch"]),
        lambda: rst.corrupted_logs("fleet", corruptions=[]),
        lambda: rst.ring_logs(capacity=0),
        lambda: rst.ring_logs(min_appends=5, max_appends=2),
        lambda: rst.journals(min_records=3, max_records=1),
        lambda: rst.reordered_journals(transformations=["shuffle"]),
        lambda: rst.reordered_journals(min_records=0),
        lambda: rst.provenance_graphs(instances=0),
        lambda: rst.provenance_graphs(max_origins=9),
        lambda: rst.faulty_provenance_graphs(faults=["bitrot"]),
        lambda: rst.corrupt_journal([], batch_size=0),
        lambda: rst.corrupt_ring(encode_ring_image(2, []), [], ["erased_record"]),
        lambda: rst.corrupt_journal([], kinds=["unknown_entry_tag"]),
    ],
)
def test_bad_arguments_fail_with_a_fix_hint(make) -> None:
    with pytest.raises(rst.StrategyArgumentError, match="Fix:") as caught:
        make()
    assert isinstance(caught.value, ValueError)


def test_strategies_are_deterministic_under_a_fixed_seed() -> None:
    def collect() -> list[bytes]:
        out: list[bytes] = []

        @settings(max_examples=10, database=None, derandomize=True)
        @given(rst.corrupted_logs("journal"), rst.provenance_graphs())
        def run(case: rst.Corrupted, spec: rst.FleetSpec) -> None:
            out.append(case.data + repr(spec.expected_order()).encode())

        run()
        return out

    assert collect() == collect()


@given(st.data())
def test_corrupt_ring_only_draws_kinds_that_apply(data: st.DataObject) -> None:
    case = data.draw(rst.ring_logs(max_appends=0))
    corrupted = data.draw(rst.corrupt_ring(case.data, case.expected))
    assert corrupted.corruption.kind not in ("erased_record", "payload_bit_flip")


@settings(max_examples=5, database=None)
@given(
    rst.corrupted_logs("ring", corruptions="truncate_header"),
    rst.reordered_journals(transformations="swap", min_records=2),
    rst.faulty_provenance_graphs(faults="self_origin"),
)
def test_a_bare_label_is_one_label_not_its_characters(
    ring: rst.Corrupted, journal: Any, fleet: Any
) -> None:
    assert ring.corruption.kind == "truncate_header"
    assert journal.transformation in rst.REORDERINGS
    assert fleet.fault in rst.FAULTS


def test_network_schedule_bounds_are_checked_when_the_strategy_is_built() -> None:
    with pytest.raises(rst.StrategyArgumentError, match=r"min_nodes=0.*Fix:"):
        rst.network_schedules(min_nodes=0)
