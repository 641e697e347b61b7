"""File-system reads shared by the readers and the command line: regular files only, and
folder walks that do not recurse (Python 3.11's ``os.walk`` overflows on deep trees)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from typing import BinaryIO

__all__ = ["NotRegularFile", "open_regular", "walk_sorted"]


class NotRegularFile(OSError):
    """The path names a folder, a device or a FIFO rather than a regular file."""

    def __init__(self, path: str | os.PathLike[str], is_dir: bool) -> None:
        super().__init__(f"'{os.fspath(path)}' is {'a folder' if is_dir else 'not a regular file'}")
        self.is_dir = is_dir


def open_regular(path: str | os.PathLike[str], *, writable: bool = False) -> BinaryIO:
    """``path`` opened for binary reading (and writing), or :class:`NotRegularFile`.

    A device or FIFO reports size 0, so a size bound alone would let it through and
    the read would never end. ``O_NONBLOCK`` keeps ``open`` itself from waiting for a
    FIFO's writer before the check can run (it has no effect on regular files).
    """
    access = os.O_RDWR if writable else os.O_RDONLY
    fd = os.open(path, access | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(path, stat.S_ISDIR(mode))
        return os.fdopen(fd, "r+b" if writable else "rb")
    except BaseException:
        os.close(fd)
        raise


def walk_sorted(root: str | os.PathLike[str]) -> Iterator[tuple[str, list[os.DirEntry[str]]]]:
    """Every folder under ``root`` (itself first) with its entries sorted by name.

    Depth first in sorted order, like ``os.walk`` with sorted ``dirnames``, but from an
    explicit stack; folder symlinks are not followed and unreadable folders are skipped.
    """
    stack = [os.fspath(root)]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda entry: entry.name)
        except OSError:
            continue
        yield folder, entries
        below = []
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    below.append(entry.path)
            except OSError:
                continue
        stack.extend(reversed(below))
