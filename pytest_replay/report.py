"""Divergence reports: the exception a test fails with, its readable text, the summary of
every difference (``--replay-diff=full``, ``pytest-replay diff``) and the complete diff
written as text and JSON under ``.replay-report/<test>/``."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from pytest_replay.divergence import (
    Divergence,
    divergence_json,
    divergence_line,
    divergence_lines,
)
from pytest_replay.errors import ReplayError

if TYPE_CHECKING:
    from pytest_replay.diff import DiffSummary

__all__ = [
    "REPORT_DIR",
    "Mismatch",
    "ReplayDivergence",
    "ReplayUsageError",
    "render_summary",
    "summary_json",
    "write_diff_report",
]

#: Where ``--replay-diff=full`` writes complete diffs, relative to the rootdir.
REPORT_DIR: Final = ".replay-report"
#: How many differing index ranges a summary names before "and N more".
SHOWN_RANGES: Final = 5
#: How many fields a summary names before "and N more".
SHOWN_FIELDS: Final = 8

Reason = Literal["diverged", "missing", "unproduced", "nondeterministic"]


class ReplayUsageError(ReplayError):
    """The ``replay`` fixture was used in a way that cannot give a faithful recording."""


def rerecord_command(nodeid: str, mode: str = "all") -> str:
    # The node id goes first: right after the flag, argparse would take it as the mode.
    flag = "--replay-record" if mode == "all" else f"--replay-record={mode}"
    return f"pytest {shlex.quote(nodeid)} {flag}"


def _shown_path(path: Path) -> str:
    """``path`` relative to the current folder when it is inside it (shorter, copy-pasteable)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@dataclass(frozen=True, slots=True)
class Mismatch:
    """Everything a divergence report says, as a value (passed to the divergence hook).

    The difference itself, with the records before it and the recorder's own words
    about it, is the :class:`Divergence`; ``note`` is what the run adds (which run
    differed, which other recordings differ too, a kind or version that changed).
    """

    nodeid: str
    recording: str
    kind: str
    stored_path: Path | None
    reason: Reason
    divergence: Divergence | None = None
    ignored: tuple[str, ...] = ()
    note: str = ""
    summary: DiffSummary | None = None
    report_file: Path | None = None
    #: The kind can list every difference: the report points to ``--replay-diff=full``.
    summarizable: bool = False

    @property
    def context(self) -> tuple[str, ...]:
        """The stored records before the divergence, rendered."""
        return () if self.divergence is None else self.divergence.context

    @property
    def detail(self) -> str:
        """The report's detail line: the run's note, then the divergence's detail."""
        parts = [self.note, "" if self.divergence is None else self.divergence.detail]
        return "; ".join(part for part in parts if part)

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
            lines += [f"  {line}" for line in divergence_lines(found)]
        if self.ignored:
            lines.append(f"  ignored (volatile) fields: {', '.join(self.ignored)}")
        if self.summary is not None:
            lines += [f"  {line}" for line in render_summary(self.summary)]
        if self.report_file is not None:
            text = _shown_path(self.report_file)
            lines.append(f"  complete diff: {text} (JSON: {text.removesuffix('.txt')}.json)")
        elif self.reason == "diverged" and found is not None and self.summarizable:
            lines.append("  every difference, not only the first: rerun with --replay-diff=full")
        if self.reason == "missing":
            lines += ["  record it with:", f"    {rerecord_command(self.nodeid, 'new')}"]
        elif self.reason != "nondeterministic":
            command = found.rerecord if found is not None and found.rerecord else None
            lines += [
                "  if this change is intended, re-record this test:",
                f"    {command or rerecord_command(self.nodeid)}",
            ]
        return "\n".join(lines)


class ReplayDivergence(ReplayError, AssertionError):
    """A test produced something other than its stored recording (or than its first run)."""

    def __init__(self, mismatch: Mismatch) -> None:
        self.mismatch = mismatch
        super().__init__(mismatch.render())


# --------------------------------------------------------------------------- summaries


def _span(start: int, stop: int) -> str:
    return f"#{start}" if stop - start == 1 else f"#{start}-#{stop - 1}"


def _records(count: int) -> str:
    return f"{count:,} record{'' if count == 1 else 's'}"


def render_summary(summary: DiffSummary) -> list[str]:
    """The summary lines of a report: how many records differ, per-field counts, the first
    differing index ranges, records missing or extra at the end."""
    single = summary.expected_records == summary.actual_records == 1 and not summary.ranges
    if single:
        count = len(summary.differences)
        lines = [f"summary: the value differs in {count} place{'' if count == 1 else 's'}"]
    else:
        lines = [
            f"summary: {summary.differing:,} of {_records(summary.expected_records)} differ"
            + (
                f" ({summary.actual_records:,} produced)"
                if summary.actual_records != summary.expected_records
                else ""
            )
        ]
    if summary.fields:
        shown = ", ".join(f"{name} {count:,}" for name, count in summary.fields[:SHOWN_FIELDS])
        more = len(summary.fields) - SHOWN_FIELDS
        lines.append(f"  by field: {shown}" + (f", and {more} more" if more > 0 else ""))
    if summary.ranges:
        shown = ", ".join(_span(a, b) for a, b in summary.ranges[:SHOWN_RANGES])
        more = len(summary.ranges) - SHOWN_RANGES
        lines.append(
            f"  differing records: {shown}"
            + (f", and {more} more range{'' if more == 1 else 's'}" if more > 0 else "")
        )
    common = min(summary.expected_records, summary.actual_records)
    if summary.missing:
        lines.append(
            f"  missing at the end: {_records(summary.missing)} "
            f"({_span(common, summary.expected_records)}, stored but not produced)"
        )
    if summary.extra:
        lines.append(
            f"  extra at the end: {_records(summary.extra)} "
            f"({_span(common, summary.actual_records)}, produced but not stored)"
        )
    return lines


def summary_json(summary: DiffSummary) -> dict[str, Any]:
    """The complete diff as JSON-ready data (each difference as :func:`divergence_json`)."""
    return {
        "expected_records": summary.expected_records,
        "actual_records": summary.actual_records,
        "differing_records": summary.differing,
        "fields": dict(summary.fields),
        "ranges": [list(pair) for pair in summary.ranges],
        "missing": summary.missing,
        "extra": summary.extra,
        "differences": [divergence_json(d) for d in summary.differences],
    }


def diff_text(header: Mapping[str, Any], summary: DiffSummary) -> str:
    """The complete diff as text: the header and summary, then one line per difference
    (:func:`divergence_line`)."""
    lines = [f"# {key}: {value}" for key, value in header.items()]
    lines += [f"# {line}" for line in render_summary(summary)]
    lines += [divergence_line(d) for d in summary.differences]
    common = min(summary.expected_records, summary.actual_records)
    if summary.missing:
        lines.append(f"missing: {_span(common, summary.expected_records)}")
    if summary.extra:
        lines.append(f"extra: {_span(common, summary.actual_records)}")
    return "\n".join(lines) + "\n"


def write_diff_report(
    folder: Path, name: str, header: Mapping[str, Any], summary: DiffSummary
) -> Path:
    """Write ``name.diff.txt`` and ``name.diff.json`` into ``folder`` (crash-safe) and
    return the text file. A ``.replay-report`` folder gets a ``.gitignore`` that ignores
    everything in it, so reports never end up in a commit."""
    from pytest_replay._atomic import atomic_write_bytes

    chain = [folder, *folder.parents]
    names = [part.name for part in chain]
    # Inside .replay-report every folder is ours; a folder the user named is theirs to place.
    inside = chain[: names.index(REPORT_DIR) + 1] if REPORT_DIR in names else [folder]
    for part in inside:
        if part.is_symlink():
            raise ReplayUsageError(
                f"cannot write the diff report into '{folder}': '{part}' is a symbolic link. "
                f"Fix: remove the link (the reports belong in a plain {REPORT_DIR} folder)."
            )
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[Path, bytes] = {}
    for parent in (folder, *folder.parents):
        if parent.name == REPORT_DIR:
            ignore = parent / ".gitignore"
            if not ignore.exists():
                files[ignore] = b"# written by pytest-replay: diffs are not for commits\n*\n"
            break
    text = folder / f"{name}.diff.txt"
    files[text] = diff_text(header, summary).encode()
    body = {**header, **summary_json(summary)}
    # One line: a diff of 90,000 records stays a few megabytes, and jq reads it as well.
    files[folder / f"{name}.diff.json"] = (
        json.dumps(body, ensure_ascii=False, separators=(",", ":")) + "\n"
    ).encode()
    # Each file is replaced crash-safely on its own: a report is rewritten whole by the next
    # failing run, so a kill between two files needs no rollback.
    for path, data in files.items():
        atomic_write_bytes(path, data)
    return text
