"""The run-wide choices of pytest_replay, made once per run: :class:`RunPolicy`.

The mode comes from the most specific place that names one: the command line, then
``PYTEST_ADDOPTS``, then the ini ``addopts``, then the ini ``replay_mode`` (default
``verify``). pytest folds all of them into one option namespace, so
:func:`run_policy` reads ``config.invocation_params.args`` and the two addopts
sources themselves to tell them apart; ``addopts = --replay-verify`` plus
``pytest --replay-record`` therefore records.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import pytest

from pytest_replay.errors import render_error

__all__ = ["MODE_INI", "WORKER_INPUT_KEY", "Mode", "RunPolicy", "run_policy"]

Mode = Literal["off", "record", "verify"]
MODE_INI: Final = "replay_mode"
WORKER_INPUT_KEY: Final = "pytest_replay_policy"
_RECORD: Final = "--replay-record"
_VERIFY: Final = "--replay-verify"


@dataclass(frozen=True, slots=True)
class RunPolicy:
    """What this run does with the store, and why.

    ``strict`` (``--replay-verify``): a recording that does not exist yet fails its test
    and unused recordings fail the run. Without it (the default verify), such a test
    passes and is counted as ``not recorded``.
    """

    mode: Mode
    reason: str
    record_mode: str | None = None
    strict: bool = False
    prune: bool = False
    fail_on_unused: bool = False

    @property
    def compares_with_store(self) -> bool:
        """Verify, and record in ``new`` mode: stored recordings are checked, not rewritten."""
        return self.mode == "verify" or (self.mode == "record" and self.record_mode == "new")

    def to_json(self) -> dict[str, object]:
        """For xdist workers (``workerinput``): they run with the controller's policy."""
        return {field: getattr(self, field) for field in self.__slots__}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> RunPolicy:
        return cls(**data)  # type: ignore[arg-type]

    @property
    def label(self) -> str:
        """The mode as the summary names it: ``verify``, ``strict verify``, ``record=new``..."""
        if self.mode == "record":
            return f"record={self.record_mode}"
        return "strict verify" if self.strict else self.mode


def _mode_flags(args: Sequence[str]) -> set[str]:
    """Which of the two mode flags ``args`` contains (pytest allows no abbreviations)."""
    found = set()
    for arg in args:
        name = arg.partition("=")[0]
        if name in (_RECORD, _VERIFY):
            found.add(name)
    return found


def _sources(config: pytest.Config) -> list[tuple[str, set[str]]]:
    """The places a mode flag can come from, most specific first."""
    env = os.environ.get("PYTEST_ADDOPTS", "")
    try:
        env_args = shlex.split(env)
    except ValueError:  # pytest reported it already; never a second, rawer error
        env_args = []
    ini_args = [str(arg) for arg in config.getini("addopts")]
    return [
        ("the command line", _mode_flags(config.invocation_params.args)),
        ("PYTEST_ADDOPTS", _mode_flags(env_args)),
        ("addopts", _mode_flags(ini_args)),
    ]


def run_policy(config: pytest.Config) -> RunPolicy:
    """The policy of this run; a :class:`pytest.UsageError` for contradictory flags.

    An xdist worker takes the controller's (its command line is not the user's).
    """
    sent = getattr(config, "workerinput", {}).get(WORKER_INPUT_KEY)
    if sent is not None:
        return RunPolicy.from_json(sent)
    record = config.getoption("replay_record")
    verify = bool(config.getoption("replay_verify"))
    mode: Mode
    strict = False
    for where, flags in _sources(config):
        if len(flags) == 2:
            raise pytest.UsageError(
                render_error(
                    f"--replay-record and --replay-verify cannot be used together ({where})",
                    fix="record first (pytest --replay-record), then verify "
                    "(pytest --replay-verify).",
                )
            )
        if flags:
            mode, strict = ("record", False) if _RECORD in flags else ("verify", True)
            reason = f"{flags.pop()} from {where}"
            break
    else:
        if record and verify:  # set some other way (a plugin's early hook, a child run)
            raise pytest.UsageError(
                render_error(
                    "--replay-record and --replay-verify cannot be used together",
                    fix="record first (pytest --replay-record), then verify "
                    "(pytest --replay-verify).",
                )
            )
        if record or verify:
            mode, strict = ("record", False) if record else ("verify", True)
            reason = "--replay-record" if record else "--replay-verify"
        else:
            mode, reason = _ini_mode(config)
    prune = bool(config.getoption("replay_prune"))
    if prune and mode != "record":
        raise pytest.UsageError(
            render_error(
                "--replay-prune only works together with --replay-record",
                fix="run pytest --replay-record --replay-prune.",
            )
        )
    return RunPolicy(
        mode=mode,
        reason=reason,
        record_mode=(record or "all") if mode == "record" else None,
        strict=strict,
        prune=prune,
        fail_on_unused=strict or bool(config.getini("replay_fail_on_unused")),
    )


def _ini_mode(config: pytest.Config) -> tuple[Mode, str]:
    value = str(config.getini(MODE_INI)).strip()
    if value == "":
        return "verify", "the default: no mode flag"
    if value == "verify":
        return "verify", f"ini {MODE_INI} = verify"
    if value == "off":
        return "off", f"ini {MODE_INI} = off"
    raise pytest.UsageError(
        render_error(
            f"ini {MODE_INI} = {value!r} is not a mode (verify, off)",
            fix=f"set {MODE_INI} = verify or {MODE_INI} = off in "
            f"{config.inipath or 'the ini file'}.",
        )
    )
