"""Every on-disk format pytest_replay reads or writes, one :class:`Format` object each.

The registry below is the one list of formats: detection (``pytest-replay inspect``,
``textconv``, ``diff``), the recording kinds and the corruption strategies all look a
format up here. Adding a format is one module plus one line in ``_FORMAT_MODULES``.
Modules load on first use, so importing this package stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

from pytest_replay.formats.base import FieldSpan, Format, FormatError, Framing, laid_out

__all__ = [
    "FieldSpan",
    "Format",
    "FormatError",
    "Framing",
    "all_formats",
    "format_for",
    "format_named",
    "head_size",
    "laid_out",
]

#: module (under pytest_replay.formats) -> the name of its Format instance.
_FORMAT_MODULES: dict[str, str] = {
    "vrrl": "VRRL",
    "capture": "CAPTURE",
    "data": "DATA",
    "manifest": "MANIFEST",
    "journal": "JOURNAL_FILE",
    "journal_records": "JOURNAL_RECORDS",
    "fleet_log": "FLEET_LOG",
    "fleet_recording": "FLEET_RECORDING",
    "replication_trace": "REPLICATION_TRACE",
}

_loaded: dict[str, Format] = {}


def all_formats() -> Iterator[Format]:
    """Every registered format, in registration order."""
    for module, attribute in _FORMAT_MODULES.items():
        found = _loaded.get(module)
        if found is None:
            loaded = importlib.import_module(f"{__name__}.{module}")
            found = getattr(loaded, attribute)
            assert isinstance(found, Format), (module, attribute)
            _loaded[module] = found
        yield found


def format_named(name: str) -> Format:
    """The format called ``name``; an unknown name is a :class:`FormatError`."""
    for fmt in all_formats():
        if fmt.name == name:
            return fmt
    known = ", ".join(sorted(f.name for f in all_formats()))
    raise FormatError(f"no format is called {name!r}", fix=f"use one of: {known}")


def format_for(path: Path, head: bytes) -> Format | None:
    """The format a file named ``path`` starting with ``head`` is in: magic bytes first,
    then extensions; None when no format claims it.

    Formats that share magic bytes (a megakernel capture is a VRRL log) are told apart
    by extension: the one whose extension the name has wins, else the first registered.
    """
    by_magic = None
    by_extension = None
    for fmt in all_formats():
        if fmt.magic is not None and head.startswith(fmt.magic):
            if fmt.extensions and path.name.endswith(fmt.extensions):
                return fmt
            by_magic = by_magic or fmt
        elif by_extension is None and fmt.magic is None and fmt.matches(path, head):
            by_extension = fmt
    return by_magic or by_extension


def head_size() -> int:
    """How many leading bytes of a file :func:`format_for` needs to see every magic."""
    return max((len(fmt.magic) for fmt in all_formats() if fmt.magic is not None), default=0)
