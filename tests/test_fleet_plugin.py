"""``replay.fleet`` through the plugin: record, verify, break, verify fails readably."""

from __future__ import annotations

import pytest

TOPOLOGY = """
[[subsystems]]
id = "ping"
code = 0

[[subsystems]]
id = "pong"
code = 1
"""

SOURCE = """
from pathlib import Path

from pytest_replay.fleet import Keyframe, Message, Origin

TOPOLOGY = Path(__file__).parent / "fleet.toml"


def test_fleet(replay):
    fleet = replay.fleet("robots", TOPOLOGY)
    for instance in (1, 2):
        ping = fleet.writer(instance, "ping", mission="patrol")
        pong = fleet.writer(instance, "pong", mission="patrol")
        for step in range(5):
            ping.log(step, 100 * step, [Message(b"ping %d" % step)])
            if step == 3:
                pong.log_keyframe(Keyframe(step, 100 * step, b"state"))
            payload = b"{payload}" if (instance, step) == (2, 3) else b"ack"
            pong.log(step, 100 * step + 50, [Message(payload, Origin(instance, 0, step))])
"""


def test_record_verify_break(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", fleet=TOPOLOGY)
    pytester.makepyfile(test_fleet=SOURCE.format(payload="ack"))
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    stored = pytester.path / "__replay__" / "test_fleet" / "test_fleet" / "robots.fleet"
    assert stored.is_file()
    first = stored.read_bytes()
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    assert stored.read_bytes() == first  # the same bytes run after run
    pytester.runpytest("--replay-verify").assert_outcomes(passed=1)

    pytester.makepyfile(test_fleet=SOURCE.format(payload="nack"))
    result = pytester.runpytest("--replay-verify")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*recording 'robots' (kind fleet)*",
            "*first divergence at instance 2 subsystem 'pong' step 3 (step #3 of its log)*",
            "*first divergence at record #3, field messages[[]0[]].payload*",
            "*expected: b'ack'*",
            "*actual:   b'nack'*",
            "*#2 step 2 t=250*",
            "*--replay-record*",
        ]
    )
