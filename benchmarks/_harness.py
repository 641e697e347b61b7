"""What every benchmark shares: timing with medians, and one verdict line per target.

Rules (issue #19): time the path users call, on realistic data, with the garbage
collector on, the baseline in the same process on the same data; report the median
of at least five repeats with min and max, wall and CPU time; print one
``PASS``/``FAIL measure ours baseline ratio target`` line per target beside the JSON.
``benchmarks/run.py`` reads those lines.
"""

from __future__ import annotations

import gc
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["MIN_REPEAT", "Timing", "Verdict", "measure", "peak_rss_mb", "verdict"]

#: Fewest repeats a figure is the median of.
MIN_REPEAT = 5


@dataclass(frozen=True, slots=True)
class Timing:
    """Seconds per run of one measured call: wall median/min/max and CPU median."""

    wall: float
    wall_min: float
    wall_max: float
    cpu: float
    repeat: int

    def as_dict(self, per: int | None = None, unit: str = "per_s") -> dict[str, Any]:
        """The figures as JSON; with ``per``, also the rate of ``per`` items."""
        out: dict[str, Any] = {
            "wall_s_median": round(self.wall, 6),
            "wall_s_min": round(self.wall_min, 6),
            "wall_s_max": round(self.wall_max, 6),
            "cpu_s_median": round(self.cpu, 6),
            "repeat": self.repeat,
        }
        if per is not None:
            out[unit] = round(per / self.wall)
            out[f"cpu_{unit}"] = round(per / self.cpu) if self.cpu > 0 else None
        return out


def measure(
    fn: Callable[[], object],
    repeat: int = MIN_REPEAT,
    *,
    setup: Callable[[], object] | None = None,
) -> Timing:
    """Run ``fn`` ``max(repeat, MIN_REPEAT)`` times (``setup`` before each, untimed).

    The collector stays on, as in a user's process; a collection before each run
    keeps garbage of one run from being billed to the next.
    """
    runs = max(repeat, MIN_REPEAT)
    walls, cpus = [], []
    for _ in range(runs):
        if setup is not None:
            setup()
        gc.collect()
        cpu = time.process_time()
        start = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return Timing(statistics.median(walls), min(walls), max(walls), statistics.median(cpus), runs)


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / (1024 * 1024)


@dataclass(frozen=True, slots=True)
class Verdict:
    """One target: ``ours`` against ``target`` (``>=`` or ``<=``); ``baseline`` is the
    same measure of the baseline, ``ratio`` ours over it (or it over ours for a time)."""

    measure: str
    ours: float
    baseline: float | None
    ratio: float | None
    op: str
    target: float

    @property
    def passed(self) -> bool:
        return self.ours >= self.target if self.op == ">=" else self.ours <= self.target

    def line(self) -> str:
        def text(value: float | None) -> str:
            if value is None:
                return "-"
            return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"

        return " ".join(
            (
                "PASS" if self.passed else "FAIL",
                self.measure,
                text(self.ours),
                text(self.baseline),
                text(self.ratio),
                f"{self.op}{text(self.target)}",
            )
        )


def verdict(
    measure: str,
    ours: float,
    target: float,
    *,
    baseline: float | None = None,
    op: str = ">=",
    ratio: float | None = None,
) -> Verdict:
    """Print the verdict line of one target and return it.

    ``ratio`` defaults to ``ours / baseline`` (rates: bigger is better).
    """
    if ratio is None and baseline:
        ratio = ours / baseline
    result = Verdict(measure, ours, baseline, ratio, op, target)
    print(result.line(), flush=True)
    return result
