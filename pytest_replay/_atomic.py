"""Atomic file replacement: a reader sees the old file or the new one, never a mix."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write_bytes", "atomic_write_many", "atomic_writer"]


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


def _stage(target: Path, data: bytes | bytearray | memoryview) -> str:
    """Write ``data`` to a fsynced temporary file next to ``target``; return its path."""
    with _temp_beside(target) as (fh, tmp):
        fh.write(data)
    return tmp


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
    _fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes | bytearray | memoryview) -> None:
    """Replace ``path`` with ``data`` atomically (temp file, fsync, os.replace)."""
    with atomic_writer(path) as fh:
        fh.write(data)


def atomic_write_many(files: Mapping[Path, bytes]) -> None:
    """Replace several files, in the order given, as one step as far as a file system allows.

    Every file is first written and fsynced under a temporary name: a failure
    there (a full disk, a permission) changes nothing. Only then are they
    renamed into place, each old file kept under a hard link until all are in;
    if a rename fails, the files already replaced are put back. What is left
    is a kill between two renames, which the callers' digests detect.
    """
    staged: list[tuple[str, Path]] = []
    backups: list[tuple[Path, str | None]] = []
    try:
        for target, data in files.items():
            staged.append((_stage(target, data), target))
        for tmp, target in staged:
            backups.append((target, _backup(target)))
            os.replace(tmp, target)
    except BaseException:
        for tmp, _target in staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp)  # already renamed ones are gone: nothing to remove
        for target, backup in reversed(backups):
            with contextlib.suppress(OSError):
                if backup is None:
                    target.unlink()
                else:
                    os.replace(backup, target)
                    # A rename between two links to one file does nothing: the
                    # backup of a file whose rename failed is still there.
                    os.unlink(backup)
        raise
    for _target, backup in backups:
        if backup is not None:
            with contextlib.suppress(OSError):
                os.unlink(backup)
    for folder in sorted({target.parent for target in files}):
        _fsync_dir(folder)


def _backup(target: Path) -> str | None:
    """A hard link to the current ``target`` (None when there is none), for rolling back."""
    if not target.exists():
        return None
    backup = f"{target.parent}/.{target.name}.{os.getpid()}.old"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(backup)
    os.link(target, backup)
    return backup


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not every platform allows opening a directory.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
