"""The root of every error pytest_replay raises on purpose, and of its format warnings.

Every error has one shape: *what* went wrong, *where* (a file, offset, record or test,
when one is known) and the *fix*. :func:`render_error` is the only place that writes the
``Fix:`` line, so no message formats it by hand and every message reads the same way.
"""

from __future__ import annotations

import os

__all__ = ["ReplayError", "StoreError", "UnclosedFormatWarning", "render_error"]


def render_error(what: str, *, where: str | None = None, fix: str | None = None) -> str:
    """``"<where>: <what>. Fix: <fix>"``, each part only when given.

    A full stop is added after *what* unless it already ends a sentence, so callers
    write plain clauses.
    """
    text = what if where is None else f"{where}: {what}"
    if fix is None:
        return text
    text = text.rstrip()
    if not text.endswith((".", "!", "?", ":")):
        text += "."
    return f"{text} Fix: {fix}"


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
