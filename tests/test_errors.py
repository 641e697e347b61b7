"""The one error shape: render_error writes "where: what. Fix: fix", ReplayError keeps the parts."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_replay.cli.common import CliError
from pytest_replay.errors import ReplayError, StoreError, render_error, split_fix
from pytest_replay.fleet.errors import FleetLogError
from pytest_replay.journal.errors import JournalDecodeError, JournalUsageError
from pytest_replay.replication.errors import ScheduleError


def test_what_alone_is_left_as_it_is() -> None:
    assert render_error("the ring is full") == "the ring is full"
    assert render_error("the ring is full", where="ring.vrrl") == "ring.vrrl: the ring is full"


def test_the_fix_follows_a_full_stop_added_after_what() -> None:
    assert render_error("bad magic", fix="re-record it") == "bad magic. Fix: re-record it"
    assert (
        render_error("bad magic", where="'a.vrrl' at byte 0", fix="re-record it")
        == "'a.vrrl' at byte 0: bad magic. Fix: re-record it"
    )


@pytest.mark.parametrize("end", [".", "!", "?", ":"])
def test_no_second_full_stop_after_a_sentence_that_ends(end: str) -> None:
    assert render_error(f"it broke{end}", fix="mend it") == f"it broke{end} Fix: mend it"


def test_trailing_blanks_of_what_are_dropped_before_the_fix() -> None:
    assert render_error("it broke  ", fix="mend it") == "it broke. Fix: mend it"
    assert render_error("it broke.\t", fix="mend it") == "it broke. Fix: mend it"


def test_the_fix_text_is_written_as_given() -> None:
    # No full stop is added after the fix: callers that end it with one keep it.
    assert render_error("x", fix="mend it.") == "x. Fix: mend it."
    assert render_error("x", fix="mend it") == "x. Fix: mend it"


def test_a_what_that_ends_a_line_puts_the_fix_on_a_line_of_its_own() -> None:
    what = "3 problems:\n - one\n - two\n - three\n"
    assert render_error(what, fix="mend them") == what + "Fix: mend them"
    assert render_error(what) == what


def test_replay_error_renders_its_parts_and_keeps_them() -> None:
    error = ReplayError("bad magic", where="ring.vrrl", fix="re-record it")
    assert str(error) == "ring.vrrl: bad magic. Fix: re-record it"
    assert (error.what, error.where, error.fix) == ("bad magic", "ring.vrrl", "re-record it")
    assert error.args == ("ring.vrrl: bad magic. Fix: re-record it",)


def test_replay_error_without_where_or_fix() -> None:
    error = ReplayError("it broke")
    assert str(error) == "it broke"
    assert (error.what, error.where, error.fix) == ("it broke", None, None)


def test_a_path_where_is_kept_as_text() -> None:
    error = StoreError("locked", where=Path("store") / "x", fix="wait")
    assert error.where == str(Path("store") / "x")
    assert str(error) == f"{Path('store') / 'x'}: locked. Fix: wait"
    assert isinstance(error, ReplayError)


def test_subclasses_forward_where_and_fix() -> None:
    usage = JournalUsageError("limit must be >= 1", "pass e.g. 10")
    assert str(usage) == "limit must be >= 1. Fix: pass e.g. 10"
    assert (usage.what, usage.where, usage.fix) == ("limit must be >= 1", None, "pass e.g. 10")
    assert isinstance(usage, ValueError)

    decode = JournalDecodeError("j.jrnl", "bad tag", sequence_nr=3, offset=40, fix="re-record it")
    assert decode.where == "journal 'j.jrnl' (sequence nr 3, byte offset 40)"
    assert (
        str(decode)
        == "journal 'j.jrnl' (sequence nr 3, byte offset 40): bad tag. Fix: re-record it"
    )

    log = FleetLogError("a.flog", 12, "CRC mismatch", "record it again")
    assert str(log) == "fleet log 'a.flog' at byte 12: CRC mismatch. Fix: record it again."
    assert log.where == "fleet log 'a.flog' at byte 12"

    cli = CliError("it broke", "mend it")
    assert str(cli) == "it broke. Fix: mend it."
    assert (cli.detail, cli.what) == ("it broke", "it broke")

    schedule = ScheduleError("end_ms=-1 is negative", fix="use e.g. 5000.")
    assert str(schedule) == "end_ms=-1 is negative. Fix: use e.g. 5000."
    assert isinstance(schedule, ValueError)


@pytest.mark.parametrize(
    ("what", "where", "fix", "before"),
    [
        ("bad magic", None, "re-record it", "bad magic"),
        ("bad magic", "a.vrrl", "re-record it.", "a.vrrl: bad magic"),
        ("is it broken?", None, "look", "is it broken?"),
        ("problems:\n - one\n", None, "mend it", "problems:\n - one\n"),
        ("no hint here", "a.vrrl", None, "a.vrrl: no hint here"),
    ],
)
def test_split_fix_reads_a_rendered_message_back(
    what: str, where: str | None, fix: str | None, before: str
) -> None:
    assert split_fix(render_error(what, where=where, fix=fix)) == (before, fix)


def test_split_fix_takes_the_first_hint() -> None:
    assert split_fix("x. Fix: a. Fix: b") == ("x", "a. Fix: b")
