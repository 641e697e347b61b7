"""Divergence reports: the exception a test fails with, and its readable text."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pytest_replay.errors import ReplayError

if TYPE_CHECKING:
    from pytest_replay.diff import Divergence

__all__ = ["Mismatch", "ReplayDivergence", "ReplayUsageError", "rerecord_command"]

Reason = Literal["diverged", "missing", "unproduced", "nondeterministic"]


class ReplayUsageError(ReplayError):
    """The ``replay`` fixture was used in a way that cannot give a faithful recording."""


def rerecord_command(nodeid: str, mode: str = "all") -> str:
    # The node id goes first: right after the flag, argparse would take it as the mode.
    flag = "--replay-record" if mode == "all" else f"--replay-record={mode}"
    return f"pytest {shlex.quote(nodeid)} {flag}"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 400 else text[:400] + f"... ({len(text)} characters)"


def _shown_path(path: Path) -> str:
    """``path`` relative to the current folder when it is inside it (shorter, copy-pasteable)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@dataclass(frozen=True, slots=True)
class Mismatch:
    """Everything a divergence report says, as a value (passed to the divergence hook)."""

    nodeid: str
    recording: str
    kind: str
    stored_path: Path | None
    reason: Reason
    divergence: Divergence | None = None
    context: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    detail: str = ""

    def render(self) -> str:
        where = f" stored at {_shown_path(self.stored_path)}" if self.stored_path else ""
        lines = [
            f"replay {self.reason}: {self.nodeid}",
            f"  recording {self.recording!r} (kind {self.kind}){where}",
        ]
        if self.detail:
            lines.append(f"  {self.detail}")
        found = self.divergence
        if found is not None:
            if found.kind == "length":
                lines.append(
                    f"  record count differs: expected {found.expected}, got {found.actual} "
                    f"(first unmatched record #{found.index})"
                )
            else:
                where = (
                    f"at {found.field}"
                    if found.index is None
                    else f"at record #{found.index}, field {found.field}"
                )
                lines += [
                    f"  first divergence {where}",
                    f"    expected: {_show(found.expected)}",
                    f"    actual:   {_show(found.actual)}",
                ]
        if self.context:
            lines.append("  context (the records before it):")
            lines += [f"    {line}" for line in self.context]
        if self.ignored:
            lines.append(f"  ignored (volatile) fields: {', '.join(self.ignored)}")
        if self.reason == "missing":
            lines += ["  record it with:", f"    {rerecord_command(self.nodeid, 'new')}"]
        elif self.reason != "nondeterministic":
            lines += [
                "  if this change is intended, re-record this test:",
                f"    {rerecord_command(self.nodeid)}",
            ]
        return "\n".join(lines)


class ReplayDivergence(ReplayError, AssertionError):
    """A test produced something other than its stored recording (or than its first run)."""

    def __init__(self, mismatch: Mismatch) -> None:
        self.mismatch = mismatch
        super().__init__(mismatch.render())
