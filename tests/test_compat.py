"""The compatibility matrix: one small project run with the plugins and pytest options people
combine pytest_replay with. Every run must leave the recordings byte-identical to a plain
record run, fail nothing, and find nothing unused or to prune."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT = {
    "test_ring": """
        from pytest_replay import RecordedSlot

        def test_ring(replay):
            ring = replay.ring(capacity=64)
            for i in range(20):
                ring.append(RecordedSlot(timestamp_ns=i, slot_idx=i, tenant_id=1, opcode=2,
                                         args=(i, replay.seed % 1000, 0, 0), epoch=i // 5))

        class TestGrouped:
            def test_first(self, replay):
                replay.data("v", {"seed": replay.seed})

            def test_second(self, replay):
                replay.data("v", [1, 2, 3])
        """,
    "test_params": """
        import random

        import pytest

        @pytest.mark.parametrize("n", range(4))
        def test_square(replay, n):
            replay.data("square", {"n": n, "square": n * n})

        @pytest.mark.replay_determinism(runs=2)
        def test_schedule(replay):
            rng = random.Random(replay.seed)
            replay.data("schedule", sorted(rng.sample(range(100), 5)))
        """,
    "test_props": """
        from hypothesis import given, settings, strategies as st

        @settings(max_examples=5)
        @given(st.integers(0, 50))
        def test_recorded_property(replay, n):
            with replay.example():
                replay.data("v", n * 3)

        @given(st.lists(st.integers()))
        def test_sorted_is_idempotent(xs):
            assert sorted(sorted(xs)) == sorted(xs)

        def test_plain():
            assert True
        """,
}

VARIANTS = {
    "randomly-1": ["-p", "randomly", "--randomly-seed=1"],
    "randomly-2": ["-p", "randomly", "--randomly-seed=2"],
    "randomly-3": ["-p", "randomly", "--randomly-seed=3"],
    "rerunfailures": ["--reruns", "2"],
    "repeat": ["--count", "2"],
    "timeout": ["--timeout", "60"],
    "last-failed": ["--lf"],
    "failed-first": ["--ff"],
    "stepwise": ["--sw"],
    "keyword": ["-k", "ring or square"],
    "exitfirst": ["-x"],
    "collect-only": ["--co"],
}


def stored(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """The project, recorded once by a plain run; returns the recordings."""
    monkeypatch.delenv("PYTEST_ADDOPTS")  # let pytest-randomly load where a variant asks
    pytester.makepyfile(**PROJECT)
    pytester.runpytest("-p", "no:randomly", "--replay-record").assert_outcomes(passed=11)
    return stored(pytester.path / "__replay__")


def check_run(result: pytest.RunResult, store: Path, expected: dict[str, bytes]) -> None:
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    outcomes = result.parseoutcomes()
    assert not outcomes.get("failed") and not outcomes.get("errors"), outcomes
    text = result.stdout.str()
    assert "unused" not in text and "pruned" not in text and "diverged" not in text, text
    assert stored(store) == expected


@pytest.mark.parametrize("args", VARIANTS.values(), ids=VARIANTS.keys())
def test_record_and_verify_with(
    pytester: pytest.Pytester, project: dict[str, bytes], args: list[str]
) -> None:
    store = pytester.path / "__replay__"
    if "randomly" not in args:
        args = ["-p", "no:randomly", *args]
    # No --replay-prune: it is refused on a run that collects modules in part (-k, --co).
    check_run(pytester.runpytest("--replay-record", *args), store, project)
    check_run(pytester.runpytest("--replay-verify", *args), store, project)
    check_run(pytester.runpytest(*args), store, project)


def test_xdist_records_and_every_distribution_mode_verifies(
    pytester: pytest.Pytester, project: dict[str, bytes]
) -> None:
    # Worker start-up dominates: one record run, then one strict verify per --dist mode.
    store = pytester.path / "__replay__"
    xdist = ["-p", "no:randomly", "-n", "2"]
    check_run(pytester.runpytest("--replay-record", "--replay-prune", *xdist), store, project)
    for dist in ("load", "loadfile", "loadscope", "worksteal"):
        check_run(pytester.runpytest("--replay-verify", *xdist, "--dist", dist), store, project)


def test_record_and_verify_under_coverage(
    pytester: pytest.Pytester, project: dict[str, bytes]
) -> None:
    # pytest-cov traces the whole process: its own process, not this one's.
    store = pytester.path / "__replay__"
    cov = ["-p", "no:randomly", "--cov=.", "--cov-report="]
    check_run(pytester.runpytest_subprocess("--replay-record", *cov), store, project)
    check_run(pytester.runpytest_subprocess("--replay-verify", *cov), store, project)


def test_last_failed_after_a_failure_verifies_only_what_failed(
    pytester: pytest.Pytester, project: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = pytester.path / "__replay__"
    pytester.makepyfile(
        test_flip="import os\ndef test_flip():\n    assert not os.environ.get('FLIP')\n"
    )
    monkeypatch.setenv("FLIP", "1")
    pytester.runpytest("-p", "no:randomly", "--replay-verify").assert_outcomes(passed=11, failed=1)
    monkeypatch.delenv("FLIP")
    for flag in ("--lf", "--sw"):
        rerun = pytester.runpytest("-p", "no:randomly", "--replay-verify", flag)
        check_run(rerun, store, project)
