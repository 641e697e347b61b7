"""Modes and their precedence, disabling the plugin, optional hooks, reruns and repeats."""

from __future__ import annotations

import pytest

VALUE_TEST = """
import os

def test_value(replay):
    replay.data("v", {"value": int(os.environ.get("REPLAY_VALUE", "1"))})
"""


def replay_lines(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if line.startswith("replay: ")]


def test_no_flag_verifies_what_exists_and_lists_what_is_not_recorded(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_value=VALUE_TEST)
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    pytester.makepyfile(test_new="def test_new(replay):\n    replay.data('n', 1)\n")
    plain = pytester.runpytest()
    plain.assert_outcomes(passed=2)
    assert replay_lines(plain) == [
        "replay: 1 verified, 1 not recorded (store: __replay__)",
        "replay: mode verify (the default: no mode flag)",
        "replay: 1 not recorded: pytest --replay-record=new",
    ]
    assert not (pytester.path / "__replay__" / "test_new").exists()  # verify never writes
    monkeypatch.setenv("REPLAY_VALUE", "2")
    diverged = pytester.runpytest()
    diverged.assert_outcomes(passed=1, failed=1)
    diverged.stdout.fnmatch_lines(["*replay diverged: test_value.py::test_value*"])


def test_strict_verify_fails_missing_recordings(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_new="def test_new(replay):\n    replay.data('n', 1)\n")
    strict = pytester.runpytest("--replay-verify")
    strict.assert_outcomes(failed=1)
    assert "replay: mode strict verify (--replay-verify from the command line)" in (
        replay_lines(strict)
    )


def test_ini_mode_off_and_a_bad_ini_mode(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_value=VALUE_TEST)
    pytester.makeini("[pytest]\nreplay_mode = off\n")
    off = pytester.runpytest()
    off.assert_outcomes(passed=1)
    assert replay_lines(off)[-1] == "replay: mode off (ini replay_mode = off)"
    pytester.makeini("[pytest]\nreplay_mode = check\n")
    bad = pytester.runpytest()
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*replay_mode = 'check' is not a mode (verify, off)*Fix:*"])


def test_the_command_line_overrides_addopts_and_the_environment(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_value=VALUE_TEST)
    pytester.makeini("[pytest]\naddopts = --replay-verify\n")
    recorded = pytester.runpytest("--replay-record")
    recorded.assert_outcomes(passed=1)
    assert "replay: mode record=all (--replay-record from the command line)" in (
        replay_lines(recorded)
    )
    verified = pytester.runpytest()
    assert "replay: mode strict verify (--replay-verify from addopts)" in replay_lines(verified)
    monkeypatch.setenv("PYTEST_ADDOPTS", "--replay-record=new")
    from_env = pytester.runpytest()
    assert "replay: mode record=new (--replay-record from PYTEST_ADDOPTS)" in (
        replay_lines(from_env)
    )
    both = pytester.runpytest("--replay-record", "--replay-verify")
    assert both.ret == pytest.ExitCode.USAGE_ERROR
    both.stderr.fnmatch_lines(["*cannot be used together (the command line)*"])


def test_both_modes_in_addopts_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_value=VALUE_TEST)
    pytester.makeini("[pytest]\naddopts = --replay-verify --replay-record\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*cannot be used together (addopts)*"])


@pytest.mark.parametrize("name", ["replay", "detreplay"])
def test_either_plugin_name_disables_it_and_optional_hooks_stay_valid(
    pytester: pytest.Pytester, name: str
) -> None:
    pytester.makeconftest(
        """
        import pytest

        @pytest.hookimpl(optionalhook=True)
        def pytest_replay_store_dir(item):
            return "elsewhere"
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.replay_determinism(runs=2)
        def test_plain():
            pass

        def test_uses_fixture(replay):
            pass
        """
    )
    result = pytester.runpytest("-p", f"no:{name}")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*fixture 'replay' not found*"])
    assert not replay_lines(result)
    assert not (pytester.path / "elsewhere").exists()


def test_a_rerun_starts_fresh_and_the_passing_attempt_is_recorded(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import pathlib

        def test_flaky(replay):
            counter = pathlib.Path("attempts")
            attempt = int(counter.read_text()) if counter.exists() else 0
            counter.write_text(str(attempt + 1))
            replay.data("v", {"first_attempt": attempt == 0})
            assert attempt % 2 == 1, "every other attempt fails"
        """
    )
    # flaky and pytest-rerunfailures both rerun tests; with both loaded neither reruns, and
    # flaky patches pytest's runner when imported: a fresh process without it.
    recorded = pytester.runpytest_subprocess("-p", "no:flaky", "--reruns", "1", "--replay-record")
    assert recorded.parseoutcomes() == {"passed": 1, "rerun": 1}
    (stored,) = (pytester.path / "__replay__").rglob("v.msgpack")
    assert b"first_attempt\xc2" in stored.read_bytes()  # False: the second attempt's value
    # Verify checks every attempt: the first one diverges (and fails), the rerun matches.
    (pytester.path / "attempts").unlink()
    verified = pytester.runpytest_subprocess("-p", "no:flaky", "--reruns", "1", "--replay-verify")
    assert verified.parseoutcomes() == {"passed": 1, "rerun": 1}
    assert replay_lines(verified)[0].startswith("replay: 1 verified, 1 diverged")


def test_flaky_reruns_start_fresh(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pathlib
        from flaky import flaky

        @flaky(max_runs=2)
        def test_flaky(replay):
            counter = pathlib.Path("attempts")
            attempt = int(counter.read_text()) if counter.exists() else 0
            counter.write_text(str(attempt + 1))
            replay.data("v", {"first_attempt": attempt == 0})
            assert attempt == 1
        """
    )
    # A process of its own: flaky keeps its report in module state, which would leak into
    # this session's terminal summary.
    recorded = pytester.runpytest_subprocess("-p", "no:rerunfailures", "--replay-record")
    recorded.assert_outcomes(passed=1)
    (stored,) = (pytester.path / "__replay__").rglob("v.msgpack")
    assert b"first_attempt\xc2" in stored.read_bytes()


def test_repeated_tests_share_one_recording(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("n", [1, 2])
        def test_value(replay, n):
            replay.data("v", n)
        """
    )
    pytester.runpytest("--count", "3", "--replay-record").assert_outcomes(passed=6)
    folders = sorted(p.parent.name for p in (pytester.path / "__replay__").rglob("manifest.json"))
    assert folders == ["test_value[1]", "test_value[2]"]
    verified = pytester.runpytest("--count", "3", "--replay-verify")
    verified.assert_outcomes(passed=6)
    assert replay_lines(verified)[0] == "replay: 6 verified (store: __replay__)"


GIVEN_TEST = """
import os

from hypothesis import given, settings, strategies as st

@settings(max_examples=8)
@given(st.integers(0, 1000))
def test_square(replay, n):
    with replay.example():
        replay.data("square", {"n": n, "square": n * n + int(os.environ.get("BUMP", "0"))})

class TestText:
    @given(st.text(max_size=4))
    def test_text(self, replay, text):
        with replay.example():
            replay.data("text", text)
"""


def test_given_records_each_example_and_verifies_them(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_given=GIVEN_TEST)
    # No health-check suppression anywhere: the plugin scopes it to these tests.
    recorded = pytester.runpytest("--replay-record")
    recorded.assert_outcomes(passed=2)
    store = pytester.path / "__replay__" / "test_given"
    squares = sorted(p.name for p in (store / "test_square").glob("*.msgpack"))
    assert squares == sorted(f"square[{k}].msgpack" for k in range(8))
    before = {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}
    # Seeded with replay.seed, no example database: the same examples and bytes, every run.
    pytester.runpytest("--replay-record").assert_outcomes(passed=2)
    assert {p: p.read_bytes() for p in store.rglob("*") if p.is_file()} == before
    pytester.runpytest("--replay-verify").assert_outcomes(passed=2)
    monkeypatch.setenv("BUMP", "1")
    diverged = pytester.runpytest("--replay-verify", "-k", "square")
    diverged.assert_outcomes(failed=1)
    diverged.stdout.fnmatch_lines(
        ["*replay diverged: test_given.py::test_square*", "*square[[]0]*"]
    )
    assert "FlakyFailure" not in diverged.stdout.str()
    # Shrinking replays the diverging example many times: it is counted once.
    assert replay_lines(diverged)[0] == "replay: 1 diverged (store: __replay__)"


EDITED_GIVEN_TEST = """
from hypothesis import given, settings, strategies as st

@settings(max_examples=20)
@given(st.integers(0, 1000))
def test_square(replay, n):
    with replay.example():
        replay.data("square", {"n": n, "square": n * n})
"""


def test_given_examples_survive_an_edit_of_the_test_body(pytester: pytest.Pytester) -> None:
    # Hypothesis's derandomize seeds from the test's source: the examples (so the stored
    # recordings) must not change when the body is edited without changing what it records.
    pytester.makepyfile(test_given=EDITED_GIVEN_TEST)
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    edited = EDITED_GIVEN_TEST.replace(
        "    with replay.example():", "    unused = 1  # an edit\n    with replay.example():"
    )
    pytester.makepyfile(test_given=edited)
    result = pytester.runpytest("--replay-verify")
    result.assert_outcomes(passed=1)
    assert replay_lines(result)[0] == "replay: 20 verified (store: __replay__)"


def test_given_divergence_reports_the_generated_example_not_a_shrunk_one(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_given=EDITED_GIVEN_TEST)
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    changed = EDITED_GIVEN_TEST.replace('"square": n * n}', '"square": n * n if n < 500 else 0}')
    pytester.makepyfile(test_given=changed)
    result = pytester.runpytest("--replay-verify")
    result.assert_outcomes(failed=1)
    # Shrinking against one stored example would end on another n (a divergence at ["n"]).
    result.stdout.fnmatch_lines(['*first divergence at [[]"square"]*', "*actual:   0*"])
    assert 'first divergence at ["n"]' not in result.stdout.str()


def test_given_must_record_inside_an_example(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from hypothesis import given, strategies as st

        @given(st.integers())
        def test_outside(replay, n):
            replay.data("n", n)

        def test_not_given(replay):
            with replay.example():
                pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*record inside `with replay.example():`*Fix:*"])
    result.stdout.fnmatch_lines(["*this test is not one. Fix:*"])
    assert "function_scoped_fixture" not in result.stdout.str()


def test_xdist_workers_run_with_the_controllers_policy(pytester: pytest.Pytester) -> None:
    # A worker's own command line is not the user's: it must not pick addopts' mode.
    pytester.makepyfile(test_value=VALUE_TEST)
    pytester.makeini("[pytest]\naddopts = --replay-verify\n")
    recorded = pytester.runpytest("-n", "2", "--replay-record")
    recorded.assert_outcomes(passed=1)
    assert replay_lines(recorded)[0] == "replay: 1 recorded (store: __replay__)"
