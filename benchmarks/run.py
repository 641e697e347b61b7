"""Run every benchmark and write ``benchmarks/RESULTS.md``.

Each ``bench_*.py`` runs in its own process (so peak RSS is its own) and prints, beside
its JSON, one ``PASS``/``FAIL measure ours baseline ratio target`` line per target;
this script collects those lines into a Markdown table with the machine they ran on.

    python benchmarks/run.py            # full sizes (about half an hour)
    python benchmarks/run.py --quick    # small sizes, under a minute: CI's smoke run

Exit status 1 when a benchmark crashed or printed no verdict; a ``FAIL`` verdict is
reported in the table, not an error (absolute figures depend on the machine).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"

#: (script, full-size arguments, quick arguments; ``None``: not run in ``--quick``)
BENCHMARKS: tuple[tuple[str, tuple[str, ...], tuple[str, ...] | None], ...] = (
    ("bench_fleet.py", (), ("--quick",)),
    # Fleet replay at scale: 10,000,000 nodes in bounded memory (about 6 minutes, most
    # of it writing the 100,000 logs).
    ("bench_fleet.py", ("--instances", "25000", "--no-networkx", "--no-topology"), None),
    ("bench_journal.py", (), ("--quick",)),
    ("bench_ringlog.py", (), ("--quick",)),
    ("bench_megakernel.py", (), ("--quick",)),
    ("bench_replication.py", (), ("--quick",)),
    ("bench_plugin.py", (), ("--quick",)),
    ("bench_strategies.py", (), ("--quick",)),
    ("bench_readers.py", (), ("--quick",)),
)

_VERDICT = re.compile(r"^(PASS|FAIL) (\S+) (\S+) (\S+) (\S+) (\S+)$")


@dataclass(frozen=True, slots=True)
class Row:
    benchmark: str
    verdict: str
    measure: str
    ours: str
    baseline: str
    ratio: str
    target: str


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{platform.machine()} {os.cpu_count()} CPUs, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, load {load:.1f}"
    )


def run_one(script: str, args: tuple[str, ...]) -> tuple[list[Row], str | None]:
    """The verdict rows of one benchmark, and an error text when it failed to run."""
    command = [sys.executable, str(HERE / script), *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    rows = []
    name = script.removesuffix(".py")
    for line in done.stdout.splitlines():
        match = _VERDICT.match(line.strip())
        if match:
            rows.append(Row(name, *match.groups()))
        elif line.startswith("SKIP "):
            # A benchmark-only peer is missing: a row that says so, not an error.
            rows.append(Row(name, "SKIP", line[5:].strip(), "-", "-", "-", "-"))
    if done.returncode != 0:
        return rows, f"exit {done.returncode}: {done.stderr.strip()[-2000:]}"
    if not rows:
        return rows, "printed no verdict line"
    return rows, None


def kept_rows(path: Path, rerun: set[str]) -> list[tuple[str, str]]:
    """(benchmark, table line) of an existing results file, for the benchmarks not run
    again (``--only`` updates their rows and keeps the others, with their machine)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        match = re.match(r"^\| (bench_\w+): ", line)
        if match and match.group(1) not in rerun:
            out.append((match.group(1), line))
    return out


def table(
    rows: list[Row],
    mode: str,
    where: str,
    seconds: float,
    kept: list[tuple[str, str]],
    errors: list[str],
) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Written by `python benchmarks/run.py{' --quick' if mode == 'quick' else ''}` "
        f"({mode} sizes) in {seconds:.0f} s.",
        "",
        f"Machine: {where}.",
        "",
        "Ours and the baseline are measured in the same process on the same data; rates",
        "are medians of at least five runs (see each benchmark's JSON for min, max and",
        "CPU time). A ratio is ours over the baseline, so bigger is better.",
        "",
        "| measure | ours | baseline | ratio | target | verdict | machine |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    order = [script.removesuffix(".py") for script, _, _ in BENCHMARKS]
    ours = [(row.benchmark, _line(row, where)) for row in rows]
    for _, line in sorted(kept + ours, key=lambda item: order.index(item[0])):
        lines.append(line)
    if errors:
        lines += ["", "Did not finish (rows above are the verdicts printed before it stopped):"]
        lines += [f"- {error.splitlines()[0]}" for error in errors]
    return "\n".join(lines) + "\n"


def _line(row: Row, where: str) -> str:
    return (
        f"| {row.benchmark}: {row.measure} | {row.ours} | {row.baseline} | {row.ratio} "
        f"| {row.target} | {row.verdict} | {where} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke run)")
    parser.add_argument("--only", action="append", default=[], help="run only this script")
    parser.add_argument("--output", type=Path, default=RESULTS)
    opts = parser.parse_args()
    where = machine()
    start = time.perf_counter()
    rows: list[Row] = []
    errors = []
    for script, full, quick in BENCHMARKS:
        if opts.only and script not in opts.only:
            continue
        args = quick if opts.quick else full
        if args is None:
            continue
        found, error = run_one(script, args)
        rows.extend(found)
        for row in found:
            print(f"{row.verdict} {row.benchmark}: {row.measure} {row.ours} {row.target}")
        if error is not None:
            errors.append(f"{script}: {error}")
            print(f"ERROR {script}: {error}", file=sys.stderr)
    seconds = time.perf_counter() - start
    rerun = {script.removesuffix(".py") for script, _, _ in BENCHMARKS}
    if opts.only:
        rerun = {script.removesuffix(".py") for script in opts.only}
    kept = kept_rows(opts.output, rerun) if opts.only else []
    mode = "quick" if opts.quick else "full"
    opts.output.write_text(table(rows, mode, where, seconds, kept, errors))
    print(f"wrote {opts.output} ({len(rows)} verdicts, {seconds:.0f} s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
