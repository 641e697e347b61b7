"""Every reader turns malformed input into our error naming the file and a Fix: no raw
TypeError/UnicodeDecodeError/RecursionError/MemoryError, no read of a FIFO or device,
and decode memory bounded by the input's size."""

from __future__ import annotations

import os
import sqlite3
import struct
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest

from pytest_replay._msgpack import MAX_DEPTH, UnpackRefused, unpack_bounded
from pytest_replay.errors import ReplayError
from pytest_replay.fleet import FleetLogReader
from pytest_replay.formats.journal import RECORDS_MAGIC, encode_file_header
from pytest_replay.journal import (
    FileJournal,
    JournalDecodeError,
    PersistentRepr,
    SqliteJournal,
    decode_entry,
    load_journal_records,
)
from pytest_replay.kinds import DATA_KIND
from pytest_replay.replication import decode_trace
from pytest_replay.report import ReplayUsageError
from pytest_replay.ringlog import ReplayLogIoError, RingLog
from pytest_replay.values import EXT_TUPLE, decode_value, encode_value
from pytest_replay.values import MAX_DEPTH as MAX_VALUE_DEPTH

posix_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and /dev/zero")

# --------------------------------------------------------------------------- msgpack


def _nested_ext(levels: int) -> bytes:
    payload = msgpack.packb([])
    for _ in range(levels):
        payload = msgpack.packb(msgpack.ExtType(EXT_TUPLE, payload))
    return payload


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x81\x81\x00\x00\x00", "a map key is a map or a list"),
        (b"\x81\x91\x00\x00", "a map key is a map or a list"),
        (b"\xdd\xff\xff\xff\xff", "exceeds max_array_len"),
        (b"\xdf\x7f\xff\xff\xff", "exceeds max_map_len"),
        (b"\xc6\xff\xff\xff\xff", "incomplete input"),
        (b"\x91" * 3000 + b"\x00", "StackError"),
        (_nested_ext(MAX_VALUE_DEPTH + 1), f"nested more than {MAX_VALUE_DEPTH} levels"),
    ],
)
def test_a_stored_data_value_that_is_not_a_value_is_our_error(data: bytes, message: str) -> None:
    with pytest.raises(ReplayUsageError, match="stored value") as info:
        DATA_KIND.diff(data, encode_value(1), {})
    assert message in str(info.value) and "Fix:" in str(info.value)


def test_a_deep_but_legal_ext_value_decodes() -> None:
    value: Any = ()
    for _ in range(MAX_VALUE_DEPTH - 1):
        value = (value,)
    assert decode_value(encode_value(value)) == value


def test_bounded_unpacking_reads_back_what_msgpack_writes_at_its_limit() -> None:
    deep: Any = 0
    for _ in range(MAX_DEPTH - 1):
        deep = [deep]
    assert unpack_bounded(msgpack.packb(deep), max_depth=MAX_DEPTH) == deep
    assert unpack_bounded(msgpack.packb({1: [b"x"]}), strict_map_key=False) == {1: [b"x"]}
    with pytest.raises(UnpackRefused):
        unpack_bounded(b"\x81\x80\x00", strict_map_key=False)


def test_journal_payloads_with_unhashable_keys_are_decode_errors() -> None:
    with pytest.raises(JournalDecodeError, match="not a msgpack entry") as info:
        decode_entry(b"\x81\x81\x00\x00\x00", source="j", sequence_nr=3)
    assert "sequence nr 3" in str(info.value) and "Fix:" in str(info.value)


# --------------------------------------------------------------------------- special files


def _readers(tmp_path: Path) -> dict[str, Callable[[Path], object]]:
    return {
        "ring log": lambda p: RingLog.open(p, read_only=True),
        "ring log (writable)": lambda p: RingLog.open(p, 8),
        "journal record file": load_journal_records,
        "file journal": FileJournal,
        "sqlite journal": SqliteJournal,
    }


@posix_only
def test_fifos_devices_and_folders_are_refused_before_any_read(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    for what, read in _readers(tmp_path).items():
        for path in (fifo, Path("/dev/zero"), folder):
            with pytest.raises(ReplayError) as info:
                read(path)
            assert "Fix:" in str(info.value), (what, path)
            assert str(path) in str(info.value), (what, path)


@posix_only
def test_a_ring_log_fifo_names_the_problem(tmp_path: Path) -> None:
    fifo = tmp_path / "run.vrrl"
    os.mkfifo(fifo)
    with pytest.raises(ReplayLogIoError, match=r"is a FIFO.*Fix: pass the path of a VRRL file"):
        RingLog.open(fifo)


# --------------------------------------------------------------------------- SQLite


def test_a_damaged_sqlite_text_column_is_a_decode_error(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with SqliteJournal(path) as journal:
        journal.write_messages([PersistentRepr("a", 1, b"x", "m", "w")])
    journal = SqliteJournal(path)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE journal_messages SET payload = CAST(X'ff41' AS TEXT)")
    with journal, pytest.raises(JournalDecodeError, match="not UTF-8") as info:
        journal.replay_messages("a")
    assert str(path) in str(info.value) and "Fix:" in str(info.value)


# --------------------------------------------------------------------------- memory

#: Decoding may hold the file it read plus this much.
CONSTANT = 1 << 20


def _peak(read: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with pytest.raises(ReplayError):
            read()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("size", [1 << 10, 1 << 20, 64 << 20])
def test_decode_memory_stays_within_the_file_size_plus_a_constant(
    tmp_path: Path, size: int
) -> None:
    """Inputs whose counts and lengths claim far more than they hold, up to 64 MiB."""
    fill = bytes(size - 64)
    records = tmp_path / "big.jrecs"
    # One frame claiming MAX_FRAME_BYTES with a valid header CRC: the file is cut short.
    head = struct.pack("<II", 64 << 20, 0)
    records.write_bytes(
        encode_file_header(RECORDS_MAGIC, end_frame=True)
        + head
        + struct.pack("<I", zlib.crc32(head))
        + fill
    )
    peak = _peak(lambda: load_journal_records(records))
    assert peak <= records.stat().st_size + CONSTANT, peak
    trace = (
        struct.pack("<8sHHII", b"RPLTRACE", 2, 0, 1, 2**32 - 1)
        + b"\x80"
        + b"\xdd\xff\xff\xff\xff"
        + fill
    )
    peak = _peak(lambda: decode_trace(trace, "big.rpltrace"))
    assert peak <= CONSTANT, peak  # the caller holds the bytes
    slab = tmp_path / "big_0.flog"
    slab.write_bytes(
        struct.pack("<8sHHI", b"PRFLOG01", 2, 1, 0) + struct.pack("<HHII", 2, 0, 64 << 20, 0) + fill
    )
    peak = _peak(lambda: FleetLogReader(tmp_path / "big.flog"))
    assert peak <= slab.stat().st_size + CONSTANT, peak
