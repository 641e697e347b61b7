"""The `megakernel` recording kind through the plugin: record, verify, break, report."""

from __future__ import annotations

import pytest

SOURCE = """
import numpy as np
from pytest_replay.megakernel import Opcode

def test_pump(replay):
    mk = replay.megakernel("kernel", backend="numpy", slots=64)
    args = np.arange(80, dtype=np.uint32).reshape(40, 2) * {factor}
    mk.publish_many(tenants=3, opcodes=[Opcode.ADD] * 40, args=args)
    mk.pump()
    mk.publish(1, Opcode.HASH, [7, 8])
    mk.pump()
"""


def test_megakernel_record_verify_and_divergence(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mk=SOURCE.format(factor=1))
    recorded = pytester.runpytest("--replay-record")
    recorded.assert_outcomes(passed=1)
    stored = pytester.path / "__replay__" / "test_mk" / "test_pump" / "kernel.mkvrrl"
    assert stored.is_file()
    first = stored.read_bytes()
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    assert stored.read_bytes() == first  # byte-identical run after run
    pytester.runpytest("--replay-verify").assert_outcomes(passed=1)
    pytester.makepyfile(test_mk=SOURCE.format(factor=2))
    broken = pytester.runpytest("--replay-verify")
    broken.assert_outcomes(failed=1)
    broken.stdout.fnmatch_lines(
        [
            "*replay diverged: test_mk.py::test_pump*",
            "*recording 'kernel' (kind megakernel)*",
            "*first divergence at record #*",
            "*pytest test_mk.py::test_pump --replay-record*",
        ]
    )
