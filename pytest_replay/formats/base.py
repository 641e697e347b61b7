"""What every on-disk format object provides, the way a syrupy extension owns its serializer.

A :class:`Format` owns one file format end to end: its name and label, the file
extensions and magic bytes that identify it, opening (regular files only), reading,
validating with typed errors, the text that ``inspect``, ``textconv`` and divergence
reports show for it, the key diffs align records on, and the :class:`Framing` that
``pytest_replay.strategies.corrupt`` reads to damage it precisely. Nothing above this
layer knows a format's bytes: kinds, CLI verbs and strategies look formats up in
:mod:`pytest_replay.formats`.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from pytest_replay import _fs
from pytest_replay.errors import ReplayError

__all__ = ["FieldSpan", "Format", "FormatError", "Framing", "laid_out"]


class FormatError(ReplayError):
    """A file could not be opened or read as the format it was given as."""


@dataclass(frozen=True, slots=True)
class FieldSpan:
    """A fixed field of a header or record: its name, byte offset and width."""

    name: str
    offset: int
    size: int


def laid_out(*fields: tuple[str, int], start: int = 0) -> tuple[FieldSpan, ...]:
    """Fields of the given names and widths laid end to end from byte ``start``: a header
    or frame header written as the struct that packs it reads (``("magic", 8), ...``)."""
    spans = []
    offset = start
    for name, size in fields:
        spans.append(FieldSpan(name, offset, size))
        offset += size
    return tuple(spans)


@dataclass(frozen=True, slots=True)
class Framing:
    """How a format lays out its bytes, for tools that damage or step through them.

    ``header`` spans the file header (magic included); fixed-size formats give
    ``record_size`` and ``record_fields``; framed formats give ``frame_header`` (the
    fields in front of each frame, such as its length and checksum). ``trailer_size``
    is the size of an end frame, 0 when the format has none.
    """

    magic: bytes
    header: tuple[FieldSpan, ...] = ()
    record_size: int | None = None
    record_fields: tuple[FieldSpan, ...] = ()
    frame_header: tuple[FieldSpan, ...] = ()
    trailer_size: int = 0
    byte_order: str = "<"
    notes: tuple[str, ...] = field(default=())

    @property
    def header_size(self) -> int:
        return max((span.offset + span.size for span in self.header), default=len(self.magic))


class Format(abc.ABC):
    """One on-disk format. Subclasses set the class attributes and implement :meth:`read`.

    ``read`` returns the format's document (a reader, a list of records, a mapping);
    :meth:`records` gives the sequence of records in it that diffs align by
    :meth:`diff_key`; :meth:`render` gives one line a record, the text that
    ``inspect``, ``textconv`` and reports show.
    """

    name: ClassVar[str]
    label: ClassVar[str]
    extensions: ClassVar[tuple[str, ...]] = ()
    magic: ClassVar[bytes | None] = None
    framing: ClassVar[Framing | None] = None
    #: The recording kind whose stored files are in this format (None: no kind stores it).
    kind: ClassVar[str | None] = None
    #: Record fields the recorders store as zero unless told otherwise (never compared).
    volatile: ClassVar[tuple[str, ...]] = ()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    def matches(self, path: Path, head: bytes) -> bool:
        """Whether a file named ``path`` that starts with ``head`` is in this format."""
        if self.magic is not None:
            return head.startswith(self.magic)
        return path.name.endswith(self.extensions) if self.extensions else False

    def open(self, path: str | os.PathLike[str]) -> BinaryIO:
        """``path`` opened for binary reading; a FIFO, device or folder is refused.

        A symbolic link the caller passes (a path a user typed) is followed to a regular
        file, as ``cat`` would; the store never hands one over, it refuses links itself
        (:mod:`pytest_replay.store`).
        """
        try:
            return _fs.open_regular(path)
        except _fs.NotRegularFile as exc:
            shown = "a folder" if exc.is_dir else "not a regular file"
            raise FormatError(
                f"{self.label} is {shown}",
                where=os.fspath(path),
                fix="pass a regular file (not a device, FIFO or folder)",
            ) from None

    def read_bytes(self, path: str | os.PathLike[str], limit: int) -> bytes:
        """The bytes of ``path``, at most ``limit`` of them: a regular file only, never
        through a symbolic link, its size checked before anything is read."""
        try:
            return _fs.read_regular(path, limit)
        except _fs.NotRegularFile as exc:
            raise FormatError(
                f"{self.label} is {exc.what}",
                where=os.fspath(path),
                fix="pass the file itself (not a link, device, FIFO or folder)",
            ) from None
        except (ValueError, OSError) as exc:
            raise FormatError(
                f"{self.label} cannot be read: {exc}",
                where=os.fspath(path),
                fix="check the path and its permissions, or restore the file",
            ) from None

    @abc.abstractmethod
    def read(self, path: Path) -> Any:
        """The document in ``path``; damage raises this format's typed error."""

    def validate(self, path: Path) -> None:
        """Read ``path`` through, raising this format's typed error at the first damage."""
        self.read(path)

    def records(self, document: Any) -> Sequence[Any] | Any:
        """The records of a document, in file order: a sequence, or a numpy record array
        (``len``, indexing and iteration are all callers use)."""
        return list(document)

    def diff_key(self, index: int, record: Any) -> Hashable:
        """The key diffs align records on; by default the record's position."""
        return index

    def render(self, index: int, record: Any) -> str:
        """One line of text for one record."""
        return f"#{index} {record!r}"

    def item(self, index: int, record: Any) -> dict[str, Any]:
        """One record as a mapping of named fields (``inspect --json``, ``textconv``)."""
        return {"index": index, "record": record}

    def render_lines(self, document: Any) -> list[str]:
        """Every record of a document rendered, in order (``textconv``)."""
        return [self.render(i, r) for i, r in enumerate(self.records(document))]
