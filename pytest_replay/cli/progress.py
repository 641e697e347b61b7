"""A progress bar on stderr for long operations, shown only on a terminal.

The bar redraws when the whole-percent value changes, never on a timer, so it
costs nothing measurable and reads no clock. When stderr is not a terminal
(piped, redirected, captured by a test) nothing is written at all, so piped
output stays clean.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Literal, TextIO

__all__ = ["Progress", "ProgressMode"]

ProgressMode = Literal["auto", "always", "never"]
_WIDTH = 30


def progress_enabled(mode: ProgressMode, stream: TextIO) -> bool:
    """Whether to draw: ``auto`` draws on a terminal only."""
    if mode == "always":
        return True
    if mode == "never":
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except (OSError, ValueError):
        return False


class Progress:
    """``with Progress("checking", total, mode) as bar: bar.advance()``.

    ``total`` may be 0 (nothing to do: the bar is never drawn). The line is
    cleared when the block ends, so the command's own output follows on a
    clean line.
    """

    def __init__(
        self,
        label: str,
        total: int,
        mode: ProgressMode = "auto",
        stream: TextIO | None = None,
    ) -> None:
        self.label = label
        self.total = max(0, total)
        self.done = 0
        self._stream = sys.stderr if stream is None else stream
        self._enabled = self.total > 0 and progress_enabled(mode, self._stream)
        self._shown = -1
        self._drawn = False

    @property
    def enabled(self) -> bool:
        return self._enabled

    def advance(self, amount: int = 1) -> None:
        """Count ``amount`` more units done; redraw when the percentage moved."""
        self.done = min(self.total, self.done + amount)
        if not self._enabled:
            return
        percent = self.done * 100 // self.total
        if percent != self._shown:
            self._shown = percent
            self._draw(percent)

    def _draw(self, percent: int) -> None:
        filled = _WIDTH * self.done // self.total
        bar = "#" * filled + "-" * (_WIDTH - filled)
        self._stream.write(f"\r{self.label} [{bar}] {percent:3d}% {self.done}/{self.total}")
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Erase the bar (a carriage return and spaces), leaving the cursor at column 0."""
        if self._drawn:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._drawn = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
