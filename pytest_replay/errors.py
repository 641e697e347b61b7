"""The root of every error pytest_replay raises on purpose, and of its format warnings.

Every error has one shape: *what* went wrong, *where* (a file, offset, record or test,
when one is known) and the *fix*. :func:`render_error` is the only place that writes the
``Fix:`` line, so no message formats it by hand and every message reads the same way.
"""

from __future__ import annotations

import os
import re

__all__ = ["ReplayError", "StoreError", "UnclosedFormatWarning", "render_error", "split_fix"]

#: Where :func:`render_error` put the hint: after the added full stop, or on a line of its own.
_FIX_HINT = re.compile(r"\.? Fix: |(?<=\n)Fix: ")


def render_error(what: str, *, where: str | None = None, fix: str | None = None) -> str:
    """``"<where>: <what>. Fix: <fix>"``, each part only when given.

    A full stop is added after *what* unless it already ends a sentence, so callers
    write plain clauses. A *what* that ends in a newline (a list of problems, a child's
    output) gets the ``Fix:`` line on a line of its own, without the full stop.
    """
    text = what if where is None else f"{where}: {what}"
    if fix is None:
        return text
    if text.endswith("\n"):
        return f"{text}Fix: {fix}"
    text = text.rstrip()
    if not text.endswith((".", "!", "?", ":")):
        text += "."
    return f"{text} Fix: {fix}"


def split_fix(message: str) -> tuple[str, str | None]:
    """A rendered message split back into (the text before the ``Fix:`` hint, the fix), for
    a caller that rewords an error it caught (a ``ValueError`` carries only its message);
    the fix is ``None`` when the message has none. The full stop :func:`render_error`
    added is dropped again."""
    hint = _FIX_HINT.search(message)
    if hint is None:
        return message, None
    return message[: hint.start()], message[hint.end() :]


def _where_text(where: str | os.PathLike[str] | None) -> str | None:
    if where is None or isinstance(where, str):
        return where
    return os.fspath(where)


class ReplayError(Exception):
    """Base class of the errors of every pytest_replay package.

    ``ReplayError(what, where=..., fix=...)``: *where* names the file, offset, record or
    sequence number involved, *fix* says what to do; ``str(error)`` is
    :func:`render_error` of the three. The parts stay readable as attributes.
    """

    what: str
    where: str | None
    fix: str | None

    def __init__(
        self,
        what: str,
        *,
        where: str | os.PathLike[str] | None = None,
        fix: str | None = None,
    ) -> None:
        self.what = what
        self.where = _where_text(where)
        self.fix = fix
        super().__init__(render_error(what, where=self.where, fix=fix))


class StoreError(ReplayError):
    """The recording store refused an operation (a reserved name, a file it did not write,
    a lock another run holds); see :mod:`pytest_replay.store`."""


class UnclosedFormatWarning(UserWarning):
    """A file written before end frames existed was read.

    Its frames are all checked, but a copy cut exactly at a frame boundary cannot be told
    from a complete one: the file carries no frame count or stream digest.
    """
