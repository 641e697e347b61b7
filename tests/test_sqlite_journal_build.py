"""The fast build of replayed messages (a PersistentReprDraft switched to PersistentRepr)
gives values indistinguishable from PersistentRepr(...) built the plain way: type,
equality, hash, repr, frozenness, pickling and the dataclasses functions."""

from __future__ import annotations

import copy
import dataclasses
import gc
import pickle
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_replay.journal import PersistentRepr, SqliteJournal
from pytest_replay.journal.persistent import MAX_SEQUENCE_NR, PersistentReprDraft, stored_repr

_fields = st.tuples(
    st.text(min_size=1, max_size=8),
    st.integers(min_value=1, max_value=MAX_SEQUENCE_NR),
    st.binary(max_size=64),
    st.text(max_size=6),
    st.text(max_size=6),
    st.lists(st.text(max_size=4), max_size=3).map(tuple),
)


def _assert_same_value(fast: PersistentRepr, plain: PersistentRepr) -> None:
    assert type(fast) is PersistentRepr
    assert isinstance(fast, PersistentRepr)
    assert not isinstance(fast, PersistentReprDraft)
    assert fast == plain
    assert plain == fast
    assert hash(fast) == hash(plain)
    assert repr(fast) == repr(plain)
    assert dataclasses.astuple(fast) == dataclasses.astuple(plain)
    assert dataclasses.asdict(fast) == dataclasses.asdict(plain)
    assert dataclasses.fields(fast) == dataclasses.fields(plain)
    assert dataclasses.replace(fast, sequence_nr=1) == dataclasses.replace(plain, sequence_nr=1)
    for clone in (
        pickle.loads(pickle.dumps(fast)),
        copy.copy(fast),
        copy.deepcopy(fast),
    ):
        assert type(clone) is PersistentRepr
        assert clone == plain
    assert gc.is_tracked(fast) == gc.is_tracked(plain)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.sequence_nr = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del fast.payload  # type: ignore[misc]


@settings(max_examples=200, deadline=None)
@given(_fields)
def test_stored_repr_is_the_plain_value(
    values: tuple[str, int, bytes, str, str, tuple[str, ...]],
) -> None:
    pid, seq, payload, manifest, writer, tags = values
    _assert_same_value(
        stored_repr(pid, seq, payload, manifest, writer, tags),
        PersistentRepr(pid, seq, payload, manifest, writer, False, tags),
    )


@settings(max_examples=30, deadline=None)
@given(st.lists(_fields, min_size=1, max_size=12))
def test_replayed_messages_are_the_plain_values(
    rows: list[tuple[str, int, bytes, str, str, tuple[str, ...]]],
) -> None:
    written = [
        PersistentRepr("p", seq, payload, manifest, writer, False, tags)
        for seq, (_, _, payload, manifest, writer, tags) in enumerate(rows, start=1)
    ]
    with (
        tempfile.TemporaryDirectory() as folder,
        SqliteJournal(Path(folder) / "journal.db", synchronous="OFF") as journal,
    ):
        journal.write_messages(written)
        replayed = journal.replay_messages("p")
    assert len(replayed) == len(written)
    for fast, plain in zip(replayed, written, strict=True):
        _assert_same_value(fast, plain)


def test_the_draft_has_exactly_the_slots_of_persistent_repr() -> None:
    names = tuple(field.name for field in dataclasses.fields(PersistentRepr))
    assert PersistentReprDraft.__slots__ == PersistentRepr.__slots__ == names
    assert PersistentReprDraft.__basicsize__ == PersistentRepr.__basicsize__


def test_a_draft_of_another_layout_cannot_become_a_persistent_repr() -> None:
    # What the import-time build in persistent.py relies on: CPython refuses the
    # __class__ switch as soon as the layouts differ, so a drifted draft fails loudly.
    class ShortDraft:
        __slots__ = PersistentRepr.__slots__[:-1]

    item = ShortDraft()
    with pytest.raises(TypeError, match="layout"):
        item.__class__ = PersistentRepr  # type: ignore[assignment]


def test_tags_decoded_once_per_value_replay_as_written(tmp_path: Path) -> None:
    # More distinct tag values than a replay keeps decoded, then values seen before, in
    # runs and alternating: every message replays with exactly the tags it was written with.
    distinct = [(f"event-{i}", "run") for i in range(1500)]
    tags = [*distinct, *[distinct[i % 3] for i in range(300)], *distinct[:50], ("x",), ()]
    written = [
        PersistentRepr("p", seq, b"x", "m", "w", False, value)
        for seq, value in enumerate(tags, start=1)
    ]
    with SqliteJournal(tmp_path / "journal.db", synchronous="OFF") as journal:
        journal.write_messages(written)
        assert journal.replay_messages("p") == written
        assert journal.replay_messages("p", from_seq=1400, max=200) == written[1399:1599]
