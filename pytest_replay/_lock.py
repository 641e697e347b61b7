"""The advisory lock a store's writers share: one writer changes a store at a time.

POSIX locks the store folder itself with ``fcntl.flock`` (no lock file is left in the
user's tree); Windows, which cannot lock a folder, locks ``<store>/.lock`` with
``msvcrt.locking``. Readers take no lock: a commit is a rename, so a reader sees the
old recording or the new one (:mod:`pytest_replay.store`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

from pytest_replay.errors import StoreError

__all__ = ["DEFAULT_TIMEOUT", "LOCK_NAME", "StoreLocked", "store_lock"]

DEFAULT_TIMEOUT: Final = 60.0
#: The lock file on Windows; a reserved name inside every store.
LOCK_NAME: Final = ".lock"
# After this long a waiting writer says why it is waiting.
NOTICE_AFTER: Final = 1.0
_POLL: Final = 0.05


class StoreLocked(StoreError):
    """Another record run (or ``pytest-replay store prune``) kept the store locked past the
    lock timeout."""


def _say(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


@contextlib.contextmanager
def store_lock(
    root: Path, timeout: float = DEFAULT_TIMEOUT, notify: Callable[[str], None] = _say
) -> Iterator[None]:
    """Hold the lock of the store ``root`` (an existing folder) for the block.

    Waits up to ``timeout`` seconds for another writer, saying so through ``notify``
    once it has waited :data:`NOTICE_AFTER`; then :class:`StoreLocked`.
    """
    fd = _open_lock(root)
    try:
        _acquire(fd, root, timeout, notify)
        try:
            yield
        finally:
            _release(fd)
    finally:
        os.close(fd)


def _acquire(fd: int, root: Path, timeout: float, notify: Callable[[str], None]) -> None:
    # Monotonic time bounds the wait only; nothing of it reaches a recording.
    start = time.monotonic()
    told = False
    while not _try_lock(fd):
        waited = time.monotonic() - start
        if waited >= timeout:
            raise StoreLocked(
                f"store '{root}' is still locked by another record run (or pytest-replay "
                f"store prune) after {timeout:g} s",
                fix="wait for that run to finish, or raise --replay-lock-timeout.",
            )
        if not told and waited >= NOTICE_AFTER:
            notify(
                f"pytest-replay: waiting for store '{root}', locked by another record run "
                f"(up to {timeout:g} s, --replay-lock-timeout)"
            )
            told = True
        time.sleep(_POLL)


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _open_lock(root: Path) -> int:
        return os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0))

    def _try_lock(fd: int) -> bool:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _release(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _open_lock(root: Path) -> int:
        return os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _release(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
