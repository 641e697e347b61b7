"""The plugin end to end, through pytester: record, verify, store, reports, markers, xdist."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pytest_replay import RingLog
from pytest_replay.store import MANIFEST_NAME

RING_TEST = """
from pytest_replay import RecordedSlot

CHANGED_AT = {changed_at}

def test_ring(replay):
    ring = replay.ring(capacity=64)
    for i in range({count}):
        arg = 99 if i == CHANGED_AT else i * 3
        ring.append(RecordedSlot(timestamp_ns=1000 + i, slot_idx=i, tenant_id=7, opcode=2,
                                 args=(arg, 0, 0, 0), epoch=1))
"""


def ring_test(count: int = 10, changed_at: int = -1) -> str:
    return RING_TEST.format(count=count, changed_at=changed_at)


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder`` with its bytes and mtime."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def summary_line(result: pytest.RunResult) -> str:
    lines = [line for line in result.outlines if line.startswith("replay: ")]
    assert lines, result.stdout.str()
    return lines[0]


# --------------------------------------------------------------------------- record / verify


def test_record_then_verify_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ring=ring_test())
    recorded = pytester.runpytest("--replay-record")
    recorded.assert_outcomes(passed=1)
    assert summary_line(recorded) == "replay: 1 recorded (store: __replay__)"
    stored = pytester.path / "__replay__" / "test_ring" / "test_ring" / "ring.vrrl"
    manifest = json.loads((stored.parent / MANIFEST_NAME).read_text())
    entry = manifest["recordings"]["ring"]
    assert (entry["kind"], entry["records"], entry["meta"]["appended"]) == ("ring", 10, 10)
    assert manifest["nodeid"] == "test_ring.py::test_ring"
    # The stored recording is a real VRRL file the ring-log API opens.
    with RingLog.open(stored, read_only=True) as log:
        records = log.records()
        assert [int(r["args"][0]) for r in records] == [i * 3 for i in range(10)]
        assert set(records["timestamp_ns"].tolist()) == {0}  # volatile: stored as zero
    verified = pytester.runpytest("--replay-verify")
    verified.assert_outcomes(passed=1)
    assert summary_line(verified) == "replay: 1 verified (store: __replay__)"


def test_code_change_fails_verify_at_the_right_record(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ring=ring_test())
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    pytester.makepyfile(test_ring=ring_test(changed_at=6))
    result = pytester.runpytest("--replay-verify")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*ring.append(RecordedSlot(*",
            "E * replay diverged: test_ring.py::test_ring",
            "E *recording 'ring' (kind ring) stored at *ring.vrrl",
            "E *first divergence at record #6, field args?0?",
            "E *expected: 18",
            "E *actual:   99",
            "E *context (the records before it):",
            "E *#4 *args?0?=12*",
            "E *#5 *args?0?=15*",
            "E *ignored (volatile) fields: timestamp_ns",
            "E *pytest test_ring.py::test_ring --replay-record",
        ]
    )
    # Our own frames are hidden: the traceback ends at the user's line.
    assert "kinds.py" not in result.stdout.str()
    assert "1 diverged" in summary_line(result)


def test_fewer_records_fail_from_the_call_phase(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ring=ring_test(count=10))
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    pytester.makepyfile(test_ring=ring_test(count=7))
    result = pytester.runpytest("--replay-verify")
    result.assert_outcomes(failed=1, errors=0)
    result.stdout.fnmatch_lines(["*record count differs: expected 10, got 7*"])


def test_more_records_fail_live(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ring=ring_test(count=10))
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    pytester.makepyfile(test_ring=ring_test(count=12))
    result = pytester.runpytest("--replay-verify")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*an append beyond the end of the stored recording*"])


def test_recording_never_produced_fails(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import os
        def test_two(replay):
            replay.data("a", 1)
            if not os.environ.get("ONLY_A"):
                replay.data("b", 2)
        """
    )
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ONLY_A", "1")
        result = pytester.runpytest("--replay-verify")
    result.assert_outcomes(failed=1, errors=0)
    result.stdout.fnmatch_lines(["*replay unproduced*", "*recording 'b' (kind data)*"])


def test_missing_recording_names_the_record_command(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ring=ring_test())
    result = pytester.runpytest("--replay-verify")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*replay missing: test_ring.py::test_ring*",
            "*pytest test_ring.py::test_ring --replay-record=new*",
        ]
    )
    assert "1 missing" in summary_line(result)
    assert not (pytester.path / "__replay__").exists()


def test_data_diff_names_the_path(pytester: pytest.Pytester) -> None:
    source = """
        def test_state(replay):
            replay.data("state", {{"steps": [{{"epoch": 1}}, {{"epoch": 2}}, {{"epoch": {e}}}]}})
        """
    pytester.makepyfile(test_state=source.format(e=3))
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    pytester.makepyfile(test_state=source.format(e=4))
    result = pytester.runpytest("--replay-verify")
    result.assert_outcomes(failed=1)
    assert 'first divergence at ["steps"][2]["epoch"]' in result.stdout.str()
    result.stdout.fnmatch_lines(["*first divergence at*", "*expected: 3*", "*actual:   4*"])


def test_failing_test_records_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_fails(replay):
            replay.data("x", 1)
            assert False
        """
    )
    result = pytester.runpytest("--replay-record")
    result.assert_outcomes(failed=1)
    assert summary_line(result) == "replay: 1 not recorded (test failed) (store: __replay__)"
    assert not (pytester.path / "__replay__").exists()


def test_new_mode_writes_missing_and_verifies_existing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ring=ring_test())
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    store = pytester.path / "__replay__"
    before = snapshot(store)
    pytester.makepyfile(
        test_other="""
        def test_other(replay):
            replay.data("v", [1, 2, 3])
        """
    )
    result = pytester.runpytest("--replay-record=new")
    result.assert_outcomes(passed=2)
    assert summary_line(result) == "replay: 1 recorded, 1 verified (store: __replay__)"
    after = snapshot(store)
    assert {k: v for k, v in after.items() if k in before} == before
    assert any(k.startswith("test_other") for k in after)
    # An existing recording that now differs fails under `new`, and stays untouched.
    pytester.makepyfile(test_ring=ring_test(changed_at=2))
    pytester.runpytest("--replay-record=new").assert_outcomes(passed=1, failed=1)
    assert snapshot(store) == after


def test_new_mode_keeps_a_stored_recording_the_test_no_longer_produces(
    pytester: pytest.Pytester,
) -> None:
    source = """
        def test_two(replay):
            replay.data("a", 1)
            if {both}:
                replay.data("b", 2)
        """
    pytester.makepyfile(test_two=source.format(both=True))
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    before = snapshot(pytester.path / "__replay__")
    pytester.makepyfile(test_two=source.format(both=False))
    result = pytester.runpytest("--replay-record=new")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*replay unproduced: test_two.py::test_two*"])
    assert snapshot(pytester.path / "__replay__") == before


def test_record_and_verify_together_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ring=ring_test())
    result = pytester.runpytest("--replay-record", "--replay-verify")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--replay-record and --replay-verify cannot be used together*"])
    assert "Traceback" not in result.stderr.str()


def test_replay_dir_option_and_ini(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ring=ring_test())
    pytester.runpytest("--replay-record", "--replay-dir", "goldens").assert_outcomes(passed=1)
    assert (pytester.path / "goldens" / "test_ring.py" / "test_ring" / "ring.vrrl").is_file()
    assert not (pytester.path / "__replay__").exists()
    pytester.makeini("[pytest]\nreplay_dir = other/place\n")
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    assert (pytester.path / "other" / "place" / "test_ring.py" / "test_ring").is_dir()


# --------------------------------------------------------------------------- the store


def test_weird_parametrize_ids_stay_inside_and_apart(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        IDS = ["a/b", "../../escape", "..", "nul\\x00byte", "ünïcødé", "A", "a",
               "x" * 1000, "x" * 999 + "y", "CON", ".hidden", "a b\\\\c"]
        @pytest.mark.parametrize("value", IDS, ids=IDS)
        def test_ids(replay, value):
            replay.data("v", value)
        """
    )
    pytester.runpytest("--replay-record").assert_outcomes(passed=12)
    store = (pytester.path / "__replay__").resolve()
    folders = [p.parent for p in store.rglob(MANIFEST_NAME)]
    assert len(folders) == len(set(folders)) == 12
    for path in store.rglob("*"):
        assert store in path.resolve().parents
        assert len(path.name) <= 120
        assert "\x00" not in path.name
    assert not any(pytester.path.parent.glob("escape*"))
    pytester.runpytest("--replay-verify").assert_outcomes(passed=12)


def test_corrupted_golden_is_reported_as_corrupted(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ring=ring_test())
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    stored = pytester.path / "__replay__" / "test_ring" / "test_ring" / "ring.vrrl"
    data = bytearray(stored.read_bytes())
    data[-5] ^= 0x40
    stored.write_bytes(bytes(data))
    result = pytester.runpytest("--replay-verify")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*recording file corrupted*ring.vrrl*Fix:*"])
    assert summary_line(result) == "replay: 1 corrupted (store: __replay__)"
    text = result.stdout.str()
    assert "first divergence" not in text
    assert "During handling" not in text and "store.py" not in text


def test_verify_never_writes_to_the_store(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ring=ring_test())
    pytester.makepyfile(
        test_data="""
        def test_data(replay):
            replay.data("v", {"a": 1})
        """
    )
    pytester.runpytest("--replay-record").assert_outcomes(passed=2)
    store = pytester.path / "__replay__"
    before = snapshot(store)
    pytester.runpytest("--replay-verify").assert_outcomes(passed=2)
    pytester.makepyfile(test_ring=ring_test(changed_at=1))
    pytester.makepyfile(test_new="def test_new(replay):\n    replay.data('n', 1)\n")
    pytester.runpytest("--replay-verify").assert_outcomes(passed=1, failed=2)
    assert snapshot(store) == before


def test_record_rerun_leaves_unchanged_files_untouched(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ring=ring_test())
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    before = snapshot(pytester.path / "__replay__")
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    assert snapshot(pytester.path / "__replay__") == before


def test_interrupted_record_run_keeps_stored_recordings(pytester: pytest.Pytester) -> None:
    source = """
        import os, signal
        def test_a(replay):
            replay.data("v", {"who": "a", "run": os.environ.get("RUN", "1")})
        def test_b(replay):
            replay.data("v", {"who": "b", "run": os.environ.get("RUN", "1")})
            if os.environ.get("STOP") == "interrupt":
                raise KeyboardInterrupt
            if os.environ.get("STOP") == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
        def test_c(replay):
            replay.data("v", {"who": "c", "run": os.environ.get("RUN", "1")})
        """
    pytester.makepyfile(test_three=source)
    pytester.runpytest("--replay-record").assert_outcomes(passed=3)
    store = pytester.path / "__replay__"
    before = snapshot(store)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RUN", "2")
        mp.setenv("STOP", "interrupt")
        interrupted = pytester.runpytest("--replay-record", no_reraise_ctrlc=True)
        assert interrupted.ret == pytest.ExitCode.INTERRUPTED
        mp.setenv("STOP", "kill")
        killed = pytester.runpytest_subprocess("--replay-record")
        assert killed.ret != 0
    after = snapshot(store)
    # test_a ran to completion and re-recorded; b (interrupted) and c (never ran) are intact.
    for name in ("test_b", "test_c"):
        assert {k: v for k, v in after.items() if name in k} == {
            k: v for k, v in before.items() if name in k
        }
    assert not [p for p in store.rglob("*") if p.name.startswith(".")]
    pytester.runpytest("--replay-verify", "-k", "b or c").assert_outcomes(passed=2)


# --------------------------------------------------------------------------- unused and prune

TWO_MODULES = {
    "test_a": "def test_a1(replay):\n    replay.data('v', 1)\n"
    "def test_a2(replay):\n    replay.data('v', 2)\n",
    "test_b": "def test_b1(replay):\n    replay.data('v', 3)\n",
}


def test_unused_recordings_reported_and_pruned(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**TWO_MODULES)
    pytester.runpytest("--replay-record").assert_outcomes(passed=3)
    pytester.makepyfile(test_a="def test_a1(replay):\n    replay.data('v', 1)\n")
    verify = pytester.runpytest("--replay-verify")
    verify.assert_outcomes(passed=2)
    assert summary_line(verify) == "replay: 2 verified, 1 unused (store: __replay__)"
    # Strict verify (CI) fails the run on unused recordings; the default verify reports them.
    assert verify.ret == pytest.ExitCode.TESTS_FAILED
    default = pytester.runpytest()
    assert summary_line(default) == "replay: 2 verified, 1 unused (store: __replay__)"
    assert default.ret == 0
    store = pytester.path / "__replay__"
    assert (store / "test_a" / "test_a2").is_dir()
    pytester.makeini("[pytest]\nreplay_fail_on_unused = true\n")
    assert pytester.runpytest().ret == pytest.ExitCode.TESTS_FAILED
    pruned = pytester.runpytest("--replay-record", "--replay-prune")
    assert pruned.ret == 0
    assert "1 pruned" in summary_line(pruned)
    assert not (store / "test_a" / "test_a2").exists()
    assert (store / "test_b" / "test_b1").is_dir()


def test_partial_runs_never_call_other_recordings_unused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**TWO_MODULES)
    pytester.runpytest("--replay-record").assert_outcomes(passed=3)
    store = pytester.path / "__replay__"
    before = snapshot(store)
    one_module = pytester.runpytest("--replay-record", "--replay-prune", "test_a.py")
    one_module.assert_outcomes(passed=2)
    assert "unused" not in summary_line(one_module) and "pruned" not in summary_line(one_module)
    one_test = pytester.runpytest("--replay-record", "--replay-prune", "test_a.py::test_a1")
    assert one_test.ret == pytest.ExitCode.USAGE_ERROR
    one_test.stderr.fnmatch_lines(["*--replay-prune refused*(node ids)*Fix:*"])
    selected = pytester.runpytest("--replay-verify", "-k", "a1")
    selected.assert_outcomes(passed=1)
    assert "unused" not in summary_line(selected)
    assert snapshot(store) == before


def test_prune_needs_record(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--replay-prune")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


# --------------------------------------------------------------------------- the fixture


def seed_lines(result: pytest.RunResult) -> list[str]:
    return [line[line.index("SEED") :] for line in result.outlines if "SEED" in line]


def test_seed_mode_and_path(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_replay.context import per_test_seed

        @pytest.mark.parametrize("n", [1, 2])
        def test_seed(replay, n, request):
            assert replay.seed == per_test_seed(int(request.config.getoption("replay_seed")),
                                              request.node.nodeid)
            assert 0 <= replay.seed < 2**63
            replay.data("seed", replay.seed)
            print("SEED", n, replay.seed, replay.mode, replay.path("seed").name)
        """
    )
    first = pytester.runpytest_subprocess("-s")
    second = pytester.runpytest_subprocess("-s", "--replay-seed", "5")
    seeds1, seeds2 = seed_lines(first), seed_lines(second)
    assert len(seeds1) == 2 and seeds1[0].split()[2] != seeds1[1].split()[2]
    assert seeds1[0].endswith("verify seed.msgpack")
    assert [s.split()[2] for s in seeds1] != [s.split()[2] for s in seeds2]


def test_seed_is_stable_across_processes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_s(replay):\n    print('SEED', replay.seed)\n")
    one = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    two = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    assert seed_lines(one) and seed_lines(one) == seed_lines(two)


def test_plugin_is_inert_with_mode_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    assert 1\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert not any(line.startswith("replay:") for line in result.outlines)
    pytester.makepyfile(test_ring=ring_test())
    pytester.makeini("[pytest]\nreplay_mode = off\n")
    used = pytester.runpytest()
    used.assert_outcomes(passed=2)
    assert summary_line(used) == (
        "replay: store not used (--replay-record stores, --replay-verify checks)"
    )
    assert not (pytester.path / "__replay__").exists()


def test_verbose_lists_paths(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ring=ring_test())
    result = pytester.runpytest("--replay-record", "-v")
    result.stdout.fnmatch_lines(["replay: 1 recorded*", "  recorded: *ring.vrrl"])


def test_duplicate_names_and_bad_values_are_usage_errors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_twice(replay):
            replay.data("x", 1)
            replay.data("x", 2)
        def test_unserialisable(replay):
            replay.data("x", object())
        def test_unknown_kind(replay):
            replay.record("nope", "x")
        """
    )
    result = pytester.runpytest("--replay-record")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(
        [
            "*recording name 'x' is used twice*Fix:*",
            "*x: cannot record type builtins:object*Fix:*register_value_type*",
            "*unknown recording kind 'nope'*Fix:*",
        ]
    )


def test_replay_inside_hypothesis_given_is_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from hypothesis import HealthCheck, given, settings, strategies as st

        @settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=3)
        @given(st.integers())
        def test_prop(replay, n):
            replay.data("n", n)
        """
    )
    result = pytester.runpytest("--replay-record")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*is a Hypothesis @given test: record inside*Fix:*"])
    assert not (pytester.path / "__replay__").exists()


# --------------------------------------------------------------------------- hooks


def test_custom_kind_and_divergence_hook(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        from pytest_replay.kinds import sequence_kind

        SEEN = []

        def pytest_replay_register_kinds(registry):
            registry.register(sequence_kind("events", ".events", render=lambda e: e["topic"]))

        def pytest_replay_divergence(item, divergence):
            SEEN.append(divergence)
            print("HOOK", item.name, divergence.recording, divergence.divergence.index)
        """
    )
    source = """
        def test_bus(replay):
            bus = replay.events("bus")
            for seq, topic in enumerate(["start", "move", "{topic}", "stop"]):
                bus.append({{"topic": topic, "seq": seq}})
        """
    pytester.makepyfile(test_bus=source.format(topic="turn"))
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    assert (pytester.path / "__replay__" / "test_bus" / "test_bus" / "bus.events").is_file()
    pytester.runpytest("--replay-verify").assert_outcomes(passed=1)
    pytester.makepyfile(test_bus=source.format(topic="jump"))
    result = pytester.runpytest("--replay-verify", "-s")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*HOOK test_bus bus 2*",
            "*first divergence at record #2, field ??topic??*",
            "*#0 start*",
            "*#1 move*",
        ]
    )


# --------------------------------------------------------------------------- determinism

NONDETERMINISTIC = """
import random, time
import pytest

@pytest.mark.replay_determinism(runs=3)
def test_unseeded_random(replay):
    replay.data("v", [random.random() for _ in range(3)])

@pytest.mark.replay_determinism(runs=2)
def test_wall_clock(replay):
    ring = replay.ring(volatile=())
    from pytest_replay import RecordedSlot
    ring.append(RecordedSlot(time.time_ns(), 0, 0, 0, (0, 0, 0, 0), 0))

@pytest.mark.replay_determinism(runs=3, subprocess=True)
def test_set_order(replay):
    names = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"}
    replay.data("order", list(names))

@pytest.mark.replay_determinism(runs=3, subprocess=True)
def test_sorted_set_is_fine(replay):
    names = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"}
    replay.data("order", sorted(names))

@pytest.mark.replay_determinism(runs=3, subprocess=True)
def test_dict_from_a_set_is_fine(replay):
    names = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"}
    replay.data("lengths", {name: len(name) for name in names})

@pytest.mark.replay_determinism(runs=4)
def test_seeded_is_fine(replay):
    rng = random.Random(replay.seed)
    replay.data("v", [rng.random() for _ in range(3)])
"""


def test_determinism_marker_catches_three_sources(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_nd=NONDETERMINISTIC)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=3)
    text = result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*replay nondeterministic: test_nd.py::test_unseeded_random*",
            "*run 2 vs run 1*",
        ]
    )
    assert "FAILED test_nd.py::test_unseeded_random" in text
    assert "FAILED test_nd.py::test_wall_clock" in text
    assert "FAILED test_nd.py::test_set_order" in text
    assert "PYTHONHASHSEED" in text
    assert "field timestamp_ns" in text


def test_determinism_marker_with_store_flags(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest, random
        @pytest.mark.replay_determinism(runs=2)
        def test_ok(replay):
            replay.data("v", random.Random(replay.seed).random())
        """
    )
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    pytester.runpytest("--replay-verify").assert_outcomes(passed=1)


def test_determinism_marker_needs_the_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        @pytest.mark.replay_determinism(runs=2)
        def test_plain():
            pass
        @pytest.mark.replay_determinism(runs=1)
        def test_one_run(replay):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*does not use the replay fixture*", "*must be an int from 2*"])


# --------------------------------------------------------------------------- xdist

XDIST_SUITE = {
    "test_x1": ring_test(count=40),
    "test_x2": """
        import pytest
        @pytest.mark.parametrize("n", range(6))
        def test_values(replay, n):
            replay.data("v", {"n": n, "square": n * n, "seed": replay.seed})
        """,
}


def test_xdist_recordings_are_byte_identical(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**XDIST_SUITE)
    serial = pytester.runpytest("--replay-record", "-p", "no:randomly")
    serial.assert_outcomes(passed=7)
    store = pytester.path / "__replay__"
    contents = {k: v[0] for k, v in snapshot(store).items()}
    for path in store.rglob("*.msgpack"):
        path.unlink()
    parallel = pytester.runpytest("--replay-record", "-n", "2")
    parallel.assert_outcomes(passed=7)
    assert summary_line(parallel) == "replay: 7 recorded (store: __replay__)"
    assert {k: v[0] for k, v in snapshot(store).items()} == contents
    checked = pytester.runpytest("--replay-verify", "-n", "2")
    checked.assert_outcomes(passed=7)
    assert summary_line(checked) == "replay: 7 verified (store: __replay__)"
    pytester.runpytest("--replay-verify").assert_outcomes(passed=7)


def test_xdist_aggregates_unused_and_divergences(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**XDIST_SUITE)
    pytester.runpytest("--replay-record", "-n", "2").assert_outcomes(passed=7)
    pytester.makepyfile(test_x1=ring_test(count=40, changed_at=30))
    os.remove(pytester.path / "test_x2.py")
    pytester.makepyfile(
        test_x2="""
        import pytest
        @pytest.mark.parametrize("n", range(5))
        def test_values(replay, n):
            replay.data("v", {"n": n, "square": n * n, "seed": replay.seed})
        """
    )
    result = pytester.runpytest("--replay-verify", "-n", "2")
    result.assert_outcomes(passed=5, failed=1)
    assert summary_line(result) == "replay: 5 verified, 1 diverged, 1 unused (store: __replay__)"


def test_store_dir_hook_keeps_a_project_store_next_to_its_tests(
    pytester: pytest.Pytester,
) -> None:
    project = pytester.mkdir("project")
    (project / "conftest.py").write_text(
        "from pathlib import Path\n\n"
        "def pytest_replay_store_dir(item):\n"
        "    return Path(__file__).parent / '.replay'\n"
    )
    (project / "tests").mkdir()
    (project / "tests" / "test_p.py").write_text(
        "def test_p(replay):\n    replay.data('v', {'seed': replay.seed})\n"
        "def test_q(replay):\n    replay.data('v', 2)\n"
    )
    pytester.makepyfile(test_top="def test_top(replay):\n    replay.data('v', 1)\n")
    pytester.runpytest("--replay-record").assert_outcomes(passed=3)
    store = project / ".replay"
    assert (store / "tests" / "test_p.py" / "test_p" / "v.msgpack").is_file()
    assert (pytester.path / "__replay__" / "test_top" / "test_top").is_dir()
    from_root = snapshot(store)
    # Started from inside the project, the same recordings are found and reproduced.
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(project)
        inside = pytester.runpytest_subprocess("--replay-verify", "-p", "no:cacheprovider")
        inside.assert_outcomes(passed=2)
        pytester.runpytest_subprocess("--replay-record", "-p", "no:cacheprovider")
    assert snapshot(store) == from_root
    (project / "tests" / "test_p.py").write_text(
        "def test_p(replay):\n    replay.data('v', {'seed': replay.seed})\n"
    )
    result = pytester.runpytest("--replay-verify")
    result.assert_outcomes(passed=2)
    assert "1 unused" in summary_line(result)


def test_a_test_that_records_nothing_leaves_no_folder(pytester: pytest.Pytester) -> None:
    source = """
        def test_seed_only(replay):
            assert replay.seed >= 0
            if {record}:
                replay.data("v", 1)
        """
    pytester.makepyfile(test_s=source.format(record=True))
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    assert (pytester.path / "__replay__" / "test_s" / "test_seed_only" / "v.msgpack").is_file()
    # It stops recording: its recordings go, and so do the folders they leave empty.
    pytester.makepyfile(test_s=source.format(record=False))
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    assert not (pytester.path / "__replay__" / "test_s").exists()
    pytester.runpytest("--replay-verify").assert_outcomes(passed=1)


def test_a_kind_named_like_a_fixture_attribute_is_refused(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        from pytest_replay.kinds import sequence_kind

        def pytest_replay_register_kinds(registry):
            registry.register(sequence_kind("path", ".paths", render=str))
        """
    )
    pytester.makepyfile("def test_p(replay):\n    replay.data('v', 1)\n")
    result = pytester.runpytest()
    assert result.ret != 0
    result.stdout.fnmatch_lines(
        ["*recording kind 'path' is named like an attribute of the replay fixture*Fix:*"]
    )
