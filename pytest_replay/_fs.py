"""File-system primitives shared by the store, the readers and the command line: regular
files only, never through a symbolic link, and folder walks that do not recurse (Python
3.11's ``os.walk`` overflows on deep trees)."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "NotRegularFile",
    "entry_kind",
    "fsync_dir",
    "make_dirs",
    "open_regular",
    "open_regular_fd",
    "read_fd",
    "read_regular",
    "real_dir",
    "walk_sorted",
]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_BINARY = getattr(os, "O_BINARY", 0)


class NotRegularFile(OSError):
    """The path names a folder, a symbolic link, a device, a FIFO or a socket rather than
    a regular file (or, for :func:`real_dir`, something other than a real folder)."""

    def __init__(self, path: str | os.PathLike[str], is_dir: bool, what: str = "") -> None:
        what = what or ("a folder" if is_dir else "not a regular file")
        super().__init__(f"'{os.fspath(path)}' is {what}")
        self.is_dir = is_dir
        self.what = what


def describe_mode(mode: int) -> str:
    """What an ``lstat`` mode is, in words ("a symbolic link", "a FIFO", ...)."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def entry_kind(path: str | os.PathLike[str]) -> str | None:
    """:func:`describe_mode` of ``path`` itself (a link is not followed); None if absent."""
    try:
        return describe_mode(os.lstat(path).st_mode)
    except FileNotFoundError:
        return None


def open_regular(
    path: str | os.PathLike[str], *, follow: bool = True, writable: bool = False
) -> BinaryIO:
    """``path`` opened for binary reading (and writing), or :class:`NotRegularFile`.

    A device or FIFO reports size 0, so a size bound alone would let it through and
    the read would never end. ``O_NONBLOCK`` keeps ``open`` itself from waiting for a
    FIFO's writer before the check can run (it has no effect on regular files). With
    ``follow=False`` a symbolic link is refused (``O_NOFOLLOW``) instead of opened.
    """
    fd, _size = open_regular_fd(path, follow=follow, writable=writable)
    try:
        return os.fdopen(fd, "r+b" if writable else "rb")
    except BaseException:
        os.close(fd)
        raise


def open_regular_fd(
    path: str | os.PathLike[str], *, follow: bool = True, writable: bool = False
) -> tuple[int, int]:
    """:func:`open_regular` as a bare file descriptor, with the file's size from the
    same ``fstat``; the caller closes the descriptor. For readers of many small files,
    where building the file object costs more than reading the bytes."""
    access = os.O_RDWR if writable else os.O_RDONLY
    flags = access | _NONBLOCK | _BINARY | (0 if follow else _NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if not follow and exc.errno in (errno.ELOOP, errno.EMLINK):
            raise NotRegularFile(path, False, "a symbolic link") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(path, stat.S_ISDIR(info.st_mode), describe_mode(info.st_mode))
        if not follow and not _NOFOLLOW and stat.S_ISLNK(os.lstat(path).st_mode):
            raise NotRegularFile(path, False, "a symbolic link")  # no O_NOFOLLOW (Windows)
        return fd, info.st_size
    except BaseException:
        os.close(fd)
        raise


def read_fd(fd: int, limit: int) -> bytes:
    """Up to ``limit`` bytes from ``fd``, fewer only at the end of the file (a short
    read is continued, as a buffered file's ``read`` does)."""
    data = os.read(fd, limit)
    if not data or len(data) == limit:
        return data
    parts = [data]
    left = limit - len(data)
    while left > 0:
        chunk = os.read(fd, left)
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return data if len(parts) == 1 else b"".join(parts)


def read_regular(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of the regular file ``path`` (never through a link), or
    :class:`NotRegularFile`; ``ValueError`` when it holds more than ``limit`` bytes,
    found from its size before anything is read."""
    with open_regular(path, follow=False) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > limit:
            raise ValueError(f"'{os.fspath(path)}' holds {size:,} bytes, more than {limit:,}")
        return fh.read(limit + 1)


def real_dir(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a real folder, False when nothing is there;
    :class:`NotRegularFile` when it is a link, a file or anything else."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(mode):
        return True
    raise NotRegularFile(path, False, describe_mode(mode))


def make_dirs(base: Path, folder: Path) -> None:
    """Create ``folder`` and the folders between it and ``base`` one at a time: an existing
    component below ``base`` that is a link or not a folder is :class:`NotRegularFile`,
    never followed. ``base`` itself (and what leads to it) is made as usual."""
    if not os.path.isdir(base):
        os.makedirs(base, exist_ok=True)
    current = base
    for part in folder.relative_to(base).parts:
        current = current / part
        if real_dir(current):
            continue
        try:
            os.mkdir(current)
        except FileExistsError:  # made by a concurrent run in between: check it again
            if not real_dir(current):
                raise


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make the renames and creations in ``folder`` durable, where the platform allows
    opening a folder."""
    try:
        fd = os.open(folder, os.O_RDONLY | _NOFOLLOW)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
