"""Atomic file replacement: a reader sees the old file or the new one, never a mix.

(A test's recordings are committed as one folder by :mod:`pytest_replay.store`.)"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from pytest_replay._fs import fsync_dir

__all__ = ["atomic_write_bytes"]


def _read_umask() -> int:
    # os.umask can only be read by setting it; done once, at import, before any threads write.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: The mode a plain ``open(path, "wb")`` would give a new file (mkstemp gives 0600).
_NEW_FILE_MODE = 0o666 & ~_read_umask()


@contextmanager
def _temp_beside(target: Path) -> Iterator[tuple[BinaryIO, str]]:
    """A temporary file in ``target``'s folder and its path, fsynced when the block ends;
    removed if the block fails."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            _match_mode(fh.fileno(), target)
            yield fh, tmp
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _match_mode(fd: int, target: Path) -> None:
    # A replaced file keeps its mode; a new one gets what open() would give, so a store
    # recorded by one user stays readable by another.
    try:
        mode = target.stat().st_mode & 0o777
    except OSError:
        mode = _NEW_FILE_MODE
    with contextlib.suppress(OSError):
        os.fchmod(fd, mode)


@contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``path`` only when the block succeeds.

    The data goes to a temporary file in the same folder (so the final rename
    never crosses a file system), is fsynced, then ``os.replace``-d over
    ``path``. On any exception the temporary file is removed and ``path`` is
    left exactly as it was.
    """
    target = Path(path)
    with _temp_beside(target) as (fh, tmp):
        yield fh
    try:
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes | bytearray | memoryview) -> None:
    """Replace ``path`` with ``data`` atomically (temp file, fsync, os.replace)."""
    with atomic_writer(path) as fh:
        fh.write(data)
