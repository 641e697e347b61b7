"""What happened to one recording in a run: the outcomes the summary line counts.

Each member's value is the text the summary line shows (``replay: 3 recorded, 1 diverged``)
and the text an xdist worker sends its controller (JSON holds no enums); members are
declared in the order the summary line lists them.
"""

from __future__ import annotations

import enum

__all__ = ["Outcome"]


class Outcome(enum.Enum):
    """The outcome of one recording (or one stored folder) in a run."""

    RECORDED = "recorded"
    VERIFIED = "verified"
    DIVERGED = "diverged"
    MISSING = "missing"
    CORRUPTED = "corrupted"
    UNUSED = "unused"
    PRUNED = "pruned"
    RECOVERED = "recovered"
    NOT_RECORDED = "not recorded"
    NOT_RECORDED_TEST_FAILED = "not recorded (test failed)"
    NOT_RECORDED_STORE_FAILED = "not recorded (store failed)"

    @property
    def fails(self) -> bool:
        """A stored recording that disagrees with the run, or is gone or damaged: the summary
        line is red."""
        return self in _FAILING


_FAILING = frozenset({Outcome.DIVERGED, Outcome.MISSING, Outcome.CORRUPTED})
