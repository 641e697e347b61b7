"""Crash simulations: a writer process is killed (SIGKILL) mid-batch, then the store is
reopened. Nothing acknowledged may be lost and nothing half-written may be visible."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest

from pytest_replay.journal import FileJournal, SqliteJournal, TornTailWarning

BATCH = 400
PAYLOAD = 64

# The child writes batches of BATCH messages and prints "ack <highest>" after each
# write_messages call returns. With HOOK set it stops inside the next batch (after
# part of it reached the store) and prints "inside", then waits to be killed.
CHILD = textwrap.dedent(
    """
    import os, sys, time
    from pytest_replay.journal import FileJournal, PersistentRepr, SqliteJournal

    kind, path, hook = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    batch, size = int(sys.argv[4]), int(sys.argv[5])
    store = SqliteJournal(path) if kind == "sqlite" else FileJournal(path)
    acked = store.highest_sequence_nr("p")

    def hang() -> None:
        print("inside", flush=True)
        time.sleep(60)

    if hook and kind == "file":
        real = os.pwrite

        def pwrite(fd, data, offset):
            if acked >= 2 * batch:
                view = memoryview(data)
                real(fd, view[: len(view) // 2], offset)
                os.fsync(fd)
                hang()
            return real(fd, data, offset)

        os.pwrite = pwrite
    if hook and kind == "sqlite":
        class Conn:
            def __init__(self, conn):
                self._conn = conn

            def executemany(self, sql, rows):
                out = self._conn.executemany(sql, rows)
                if acked >= 2 * batch:
                    hang()
                return out

            def __getattr__(self, name):
                return getattr(self._conn, name)

        store._conn = Conn(store._conn)
    while True:
        first = acked + 1
        items = [
            PersistentRepr("p", seq, seq.to_bytes(8, "little") * (size // 8), "m", "w")
            for seq in range(first, first + batch)
        ]
        store.write_messages(items)
        acked = first + batch - 1
        print(f"ack {acked}", flush=True)
    """
)


def _spawn(kind: str, path: Path, hook: bool) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, kind, str(path), "1" if hook else "0", str(BATCH),
         str(PAYLOAD)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _read_until(child: subprocess.Popen[str], stop: str, limit: float = 60.0) -> int:
    """Read child lines until one starts with ``stop``; returns the highest acked seq."""
    assert child.stdout is not None
    acked = 0
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            _, err = child.communicate()
            raise AssertionError(f"child ended early: {err}")
        if line.startswith("ack "):
            acked = int(line.split()[1])
        if line.startswith(stop):
            return acked
    raise AssertionError("child did not get there in time")


def _kill(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    if child.stdout is not None:
        child.stdout.close()
    if child.stderr is not None:
        child.stderr.close()


def _open(kind: str, path: Path) -> SqliteJournal | FileJournal:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TornTailWarning)
        return SqliteJournal(path) if kind == "sqlite" else FileJournal(path)


def _check(kind: str, path: Path, acked: int) -> int:
    store = _open(kind, path)
    try:
        highest = store.highest_sequence_nr("p")
        assert highest >= acked, "an acknowledged batch was lost"
        assert highest % BATCH == 0, f"a half-written batch is visible (highest {highest})"
        items = store.replay_messages("p")
        assert [m.sequence_nr for m in items] == list(range(1, highest + 1))
        for item in items:
            assert item.payload == item.sequence_nr.to_bytes(8, "little") * (PAYLOAD // 8)
        return highest
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["sqlite", "file"])
def test_kill_inside_a_batch_loses_nothing_acknowledged(kind: str, tmp_path: Path) -> None:
    path = tmp_path / ("j.db" if kind == "sqlite" else "j.jrnl")
    child = _spawn(kind, path, hook=True)
    try:
        acked = _read_until(child, "inside")
    finally:
        _kill(child)
    assert acked == 2 * BATCH
    if kind == "file":
        size = path.stat().st_size
        with pytest.warns(TornTailWarning):
            FileJournal(path).close()
        assert path.stat().st_size < size  # the half frame was truncated away
    assert _check(kind, path, acked) == acked


@pytest.mark.parametrize("kind", ["sqlite", "file"])
def test_kill_at_arbitrary_moments_then_continue(kind: str, tmp_path: Path) -> None:
    path = tmp_path / ("j.db" if kind == "sqlite" else "j.jrnl")
    highest = 0
    for round_ in range(3):
        child = _spawn(kind, path, hook=False)
        try:
            acked = _read_until(child, f"ack {highest + (round_ + 1) * BATCH}")
            time.sleep(0.002 * round_)
        finally:
            _kill(child)
        highest = _check(kind, path, acked)
        assert highest >= acked
