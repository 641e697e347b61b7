"""The plugin's registration: options, ini values, markers, usage errors, inertness."""

from __future__ import annotations

import pytest


def test_options_are_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "*deterministic record / replay*",
            "*--replay-record*",
            "*--replay-verify*",
            "*--replay-dir*",
            "*--replay-seed*",
            "*--replay-prune*",
            "*replay_dir*",
            "*replay_fail_on_unused*",
        ]
    )


def test_marker_accepted_under_strict_markers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.replay_determinism(runs=2)
        def test_marked(replay):
            replay.data("v", 1)

        @pytest.mark.replay_gpu
        def test_gpu_marked():
            import cupy
        """
    )
    result = pytester.runpytest("--strict-markers", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("skipped", 0) == 2, outcomes
    markers = pytester.runpytest("--markers").stdout.str()
    assert "replay_determinism" in markers and "@pytest.mark.replay_gpu" in markers
    assert "@pytest.mark.gpu" not in markers


def test_a_gpu_marker_of_another_project_is_left_alone(pytester: pytest.Pytester) -> None:
    # Only markers pytest_replay owns are acted on: this project's `gpu` marker runs its test.
    pytester.makeini("[pytest]\nmarkers =\n    gpu: this project's own marker\n")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.gpu
        def test_project_gpu():
            pass
        """
    )
    result = pytester.runpytest("--strict-markers", "-rs")
    result.assert_outcomes(passed=1)


def test_record_and_verify_together_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--replay-record", "--replay-verify")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--replay-record and --replay-verify cannot be used together*"])
    assert "Traceback" not in result.stderr.str()


def test_a_path_after_the_record_flag_is_a_usage_error_with_the_fix(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_one="def test_x(replay): replay.data('v', 1)")
    result = pytester.runpytest("--replay-record", "test_one.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*'test_one.py' is not a record mode (all, new). Fix: write --replay-record=all "
            "or --replay-record=new; if 'test_one.py' is a path, put it before the flag "
            "(pytest test_one.py --replay-record)."
        ]
    )
    # Both spellings the message suggests work.
    pytester.runpytest("test_one.py", "--replay-record").assert_outcomes(passed=1)
    pytester.runpytest("--replay-record=all", "test_one.py").assert_outcomes(passed=1)


def test_replay_dir_ini_default(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_ini(pytestconfig):
            assert pytestconfig.getini("replay_dir") == ""
            assert pytestconfig.getoption("replay_lock_timeout") == 60.0
            assert pytestconfig.getini("replay_fail_on_unused") is False
            assert pytestconfig.getoption("replay_seed") == 0
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_inert_for_a_suite_that_does_not_use_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("n", range(3))
        def test_plain(n):
            assert n < 3

        def test_fails():
            assert 1 == 2
        """
    )
    for flags in ([], ["--replay-verify"], ["--replay-record"]):
        result = pytester.runpytest("-p", "no:cacheprovider", *flags)
        result.assert_outcomes(passed=3, failed=1)
        assert "replay:" not in result.stdout.str()
    assert sorted(p.name for p in pytester.path.iterdir()) == [
        "test_inert_for_a_suite_that_does_not_use_it.py"
    ]
    # Not even a per-test hook call: those are registered by the first `replay` fixture.
    reprec = pytester.inline_run("-p", "no:cacheprovider")
    reprec.assertoutcome(passed=3, failed=1)
    (call,) = reprec.getcalls("pytest_sessionfinish")
    assert call.session.config.pluginmanager.get_plugin("replay-runtest") is None
