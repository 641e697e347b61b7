"""The journal reducer against generated journals: valid journals reduce to the summary
the generator computed, every labelled reordering has its labelled outcome, and
reduction is deterministic down to the bytes of the result."""

from __future__ import annotations

from hypothesis import given

from pytest_replay import strategies as rst
from pytest_replay.journal import (
    ReplayReducer,
    ReplayReducerError,
    decode_journal_records,
    encode_journal_records,
    reduce_journal,
    result_to_msgpack,
)


def _reducer(case: rst.ReorderedJournal) -> ReplayReducer:
    reducer = ReplayReducer(case.mode).with_missing_content_policy(case.missing_content_policy)
    if case.available_content_refs is not None:
        reducer.with_available_content_refs(case.available_content_refs)
    return reducer


@given(case=rst.journals())
def test_valid_journals_reduce_to_the_generated_summary(case: rst.JournalCase) -> None:
    result = case.reduce()
    assert rst.summarize(result) == case.expected
    again = case.reduce()
    assert result_to_msgpack(result) == result_to_msgpack(again)


@given(case=rst.journals())
def test_finish_is_repeatable_and_record_files_round_trip(case: rst.JournalCase) -> None:
    records = decode_journal_records(encode_journal_records(case.records))
    assert tuple(records) == case.records
    reducer = ReplayReducer(case.mode).with_missing_content_policy(case.missing_content_policy)
    if case.available_content_refs is not None:
        reducer.with_available_content_refs(case.available_content_refs)
    reducer.apply_all(records)
    first, second = reducer.finish(), reducer.finish()
    assert result_to_msgpack(first) == result_to_msgpack(second)
    assert rst.summarize(first) == case.expected


@given(case=rst.reordered_journals())
def test_reordered_journals_have_their_labelled_outcome(case: rst.ReorderedJournal) -> None:
    reducer = _reducer(case)
    expected = case.expected
    try:
        reducer.apply_all(case.records)
    except ReplayReducerError as exc:
        assert expected.error_kind is not None, f"{case.transformation}: unexpected {exc}"
        assert (exc.kind, exc.record_id) == (expected.error_kind, expected.error_record_id), (
            case.transformation,
            case.detail,
            str(exc),
        )
        assert "Fix:" in str(exc)
        return
    assert expected.error_kind is None, f"{case.transformation} ({case.detail}) was accepted"
    problem = expected.check(case.base.expected, reducer.finish())
    assert problem is None, f"{case.transformation} ({case.detail}): {problem}"


@given(case=rst.reordered_journals())
def test_reduction_is_deterministic(case: rst.ReorderedJournal) -> None:
    outcomes = []
    for _ in range(2):
        try:
            result = reduce_journal(
                case.records,
                case.mode,
                available_content_refs=case.available_content_refs,
                missing_content_policy=case.missing_content_policy,
            )
        except ReplayReducerError as exc:
            outcomes.append(str(exc).encode())
        else:
            outcomes.append(result_to_msgpack(result))
    assert outcomes[0] == outcomes[1]
