"""Hypothesis profiles: ``ci`` (default) keeps the suite within minutes on 2 cores;
``stress`` is for long local runs: ``HYPOTHESIS_PROFILE=stress pytest``."""

from __future__ import annotations

import os

# pytester's in-process runs drop the modules they imported when they end; numpy cannot be
# imported twice in one process, and the plugin imports it lazily, so import it up front.
import numpy  # noqa: F401
import pytest
from hypothesis import HealthCheck, settings

import pytest_replay.context
import pytest_replay.determinism  # noqa: F401

settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "stress",
    max_examples=2_000,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    # pytest-randomly (in the `test` extra) would shuffle the tests of every inner run, and
    # these inner projects assert output in file order; test_compat.py runs it on purpose.
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:randomly")
    return pytester
