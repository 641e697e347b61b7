"""Capture a megakernel run into a VRRL ring log.

Every slot the kernel consumes becomes one VRRL record, written in publish
order when its burst's pump completes - one ``append_many`` per burst:

* ``slot_idx``, ``tenant_id``, ``opcode``, ``args``: the slot as published
  (only argument words 0..3 fit a record, so a captured slot must leave the
  other nine zero; :class:`UncapturableArguments` otherwise);
* ``epoch``: the slot's epoch. In ``ordered`` mode this is fixed when the slot
  is published (the EPOCH word the host observes then, plus the slots ahead of
  it); in ``atomic`` mode it exists only once the kernel took it, so the record
  carries the epoch the race produced - which is what replay must compare;
* a faulted slot's failure evidence, built with
  :meth:`ReplayFailureEvidence.from_backend_error` from the slot's
  :class:`BackendError` and the 64 output bytes it produced; a slot that
  completed has none (the four tail words stay zero);
* ``timestamp_ns``: ``clock()`` at pump time when a clock is given, otherwise
  the slot's publish sequence number, so no wall clock leaks into a recording.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Protocol

import numpy as np

from pytest_replay.formats.capture import CAPTURE_KIND, CAPTURE_VERSION
from pytest_replay.formats.vrrl import (
    RECORD_MAGIC,
    RING_RECORD_DTYPE,
    RecordArray,
    ReplayFailureEvidence,
    check_capacity,
)
from pytest_replay.megakernel.backend import BackendLike, byte_run
from pytest_replay.megakernel.burst import PumpResult
from pytest_replay.megakernel.errors import MalformedCapture, UncapturableArguments
from pytest_replay.megakernel.kernel import Megakernel
from pytest_replay.megakernel.model import (
    ARGS_OFFSET,
    CAPTURED_ARGS,
    EPOCH_MODES,
    MAX_RING_SLOTS,
    OPCODE_WORD,
    SLOT_WORDS,
    TENANT_WORD,
    EpochMode,
    SlotStatus,
)
from pytest_replay.megakernel.stream import ObservedStream
from pytest_replay.ringlog import RingLog, create_log

__all__ = [
    "CAPTURE_KIND",
    "CAPTURE_VERSION",
    "CaptureInfo",
    "MegakernelCapture",
    "RecordSink",
    "burst_records",
    "open_capture",
]


class RecordSink(Protocol):
    """Where captured records go: a :class:`RingLog`, or anything with ``append_many``."""

    def append_many(self, slots: RecordArray) -> None: ...


@dataclass(frozen=True, slots=True)
class CaptureInfo:
    """What a replay needs besides the records: ring size, epoch mode, backend name.

    Store :meth:`as_dict` next to the VRRL file; :meth:`from_dict` validates it back.
    """

    slots: int
    mode: EpochMode
    backend: str
    kind: str = CAPTURE_KIND
    version: int = CAPTURE_VERSION

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": self.version,
            "slots": self.slots,
            "mode": self.mode,
            "backend": self.backend,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<metadata>") -> CaptureInfo:
        """Validate stored metadata; raise :class:`MalformedCapture` naming the bad key."""
        if data.get("kind") != CAPTURE_KIND or data.get("version") != CAPTURE_VERSION:
            raise MalformedCapture(
                source,
                0,
                f"metadata is kind {data.get('kind')!r} version {data.get('version')!r}, "
                f"expected {CAPTURE_KIND!r} version {CAPTURE_VERSION}",
            )
        slots, mode, backend = data.get("slots"), data.get("mode"), data.get("backend")
        if (
            isinstance(slots, bool)
            or not isinstance(slots, int)
            or not 1 <= slots <= MAX_RING_SLOTS
        ):
            raise MalformedCapture(source, 0, f"metadata 'slots' is {slots!r}")
        if mode not in EPOCH_MODES:
            raise MalformedCapture(source, 0, f"metadata 'mode' is {mode!r}")
        if not isinstance(backend, str):
            raise MalformedCapture(source, 0, f"metadata 'backend' is {backend!r}")
        return cls(slots, mode, backend)


def burst_records(result: PumpResult, timestamps: Any = None) -> RecordArray:
    """The VRRL records of one pumped burst, in publish order.

    ``timestamps`` is a scalar or ``(n,)`` u64 array; by default the publish
    sequence numbers.
    """
    return _fill_records(np.empty(len(result), RING_RECORD_DTYPE), result, timestamps)


def _fill_records(
    records: RecordArray, result: PumpResult, timestamps: Any, *, blank: bool = False
) -> RecordArray:
    """Write every field of ``records`` (``len(result)`` rows, any prior content) from
    ``result``, so a buffer can be reused from burst to burst without clearing it.

    ``blank`` says the rows' magic is live and their evidence zero already (a reused
    buffer kept so: see :func:`_blank_records`): those two runs are then not rewritten.
    """
    if not blank:
        _blank_records(records)
    records["timestamp_ns"] = result.sequences if timestamps is None else timestamps
    records["slot_idx"] = result.slots
    words = result.words
    if _WORD_RUN_MATCHES and words.flags.c_contiguous:
        # tenant, opcode and args[0..3] lie in the same order in a slot and in a record:
        # one 24-byte item a row, where NumPy would walk a (n, 4) block word by word.
        byte_run(records, _RECORD_RUN[0], _RECORD_RUN[1])[...] = byte_run(
            words, _SLOT_RUN[0], _SLOT_RUN[1]
        )
    else:
        records["tenant_id"] = words[:, TENANT_WORD]
        records["opcode"] = words[:, OPCODE_WORD]
        records["args"] = words[:, ARGS_OFFSET : ARGS_OFFSET + CAPTURED_ARGS]
    records["epoch"] = result.output.epochs
    if result.faults:
        first_sequence = int(result.sequences[0])
        for fault in result.faults:
            evidence = ReplayFailureEvidence.from_backend_error(
                int(SlotStatus.FAULT), fault.error, fault.output
            )
            row = records[fault.sequence - first_sequence]
            row["slot_status"] = evidence.slot_status
            row["failure_class"] = int(evidence.failure_class)
            row["backend_code"] = evidence.backend_error_code
            row["output_digest"] = evidence.output_digest
    return records


def _blank_records(records: RecordArray, rows: Any = Ellipsis) -> RecordArray:
    """Set the live magic and zero the failure evidence of ``rows`` of ``records``: the
    fields that are the same in every record of a slot that completed."""
    records["magic"][rows] = RECORD_MAGIC
    byte_run(records, _EVIDENCE_RUN[0], _EVIDENCE_RUN[1])[rows] = b""
    return records


def _field_run(first: str, last: str) -> tuple[int, int]:
    """``(offset, size)`` of the record bytes from field ``first`` through ``last``."""
    fields = RING_RECORD_DTYPE.fields
    assert fields is not None
    start = fields[first][1]
    return start, fields[last][1] + fields[last][0].itemsize - start


_RECORD_RUN: Final = _field_run("tenant_id", "args")
_SLOT_RUN: Final = (4 * TENANT_WORD, 4 * (ARGS_OFFSET + CAPTURED_ARGS - TENANT_WORD))
#: The slot's words are native u32 and the record's little-endian: bytes copy as they
#: are only on a little-endian host, and only while both layouts list the same words.
_WORD_RUN_MATCHES: Final = (
    sys.byteorder == "little"
    and (TENANT_WORD + 1, OPCODE_WORD + 1) == (OPCODE_WORD, ARGS_OFFSET)
    and _RECORD_RUN[1] == _SLOT_RUN[1]
)
#: The evidence fields, which only a faulted slot fills, end the record: zeroed as one run.
_EVIDENCE_RUN: Final = _field_run("slot_status", "output_digest")


def _check_capturable(words: np.ndarray, first_sequence: int) -> None:
    extra = words[:, ARGS_OFFSET + CAPTURED_ARGS : SLOT_WORDS]
    if extra.size and extra.any():
        row, column = (int(v) for v in np.argwhere(extra)[0])
        raise UncapturableArguments(
            first_sequence + row, CAPTURED_ARGS + column, int(extra[row, column])
        )


class MegakernelCapture:
    """A megakernel whose every consumed slot is appended to ``ring_log``.

    Publish and pump through the capture (or through ``capture.megakernel``:
    records are taken from the pump results, so direct publishes are captured
    too). ``close()`` pumps what is still pending so nothing published is lost,
    then closes the log if the capture opened it.
    """

    def __init__(
        self,
        megakernel: Megakernel,
        ring_log: RecordSink,
        *,
        clock: Callable[[], int] | None = None,
        owns_log: bool = False,
    ) -> None:
        self.megakernel = megakernel
        self.log = ring_log
        self.clock = clock
        self.recorded = 0
        self._owns_log = owns_log
        self._closed = False
        # Every slot published before sequence ``_vetted`` is known to leave the argument
        # words a record cannot hold zero: checked as the capture published it, or at a
        # pump. While it equals ``megakernel.published``, a pump need not scan the burst
        # again; a direct publish to the megakernel leaves it behind, and the pump scans.
        self._vetted = megakernel.published - megakernel.pending
        # A RingLog copies each batch into its map, so one record buffer (grown to the
        # largest burst) serves every burst; any other sink may keep the array it is
        # given and gets a fresh one.
        self._reuse_records = isinstance(ring_log, RingLog)
        self._buffer: RecordArray = np.empty(0, RING_RECORD_DTYPE)

    def info(self) -> CaptureInfo:
        """The metadata a replay of this capture needs."""
        mk = self.megakernel
        return CaptureInfo(mk.slots, mk.mode, mk.backend.name)

    def publish(self, tenant: int, opcode: int, args: Sequence[int] = ()) -> int:
        """Publish one slot (see :meth:`Megakernel.publish`); return its ring index."""
        mk = self.megakernel
        vetted = self._vetted == mk.published
        for word in range(CAPTURED_ARGS, len(args)):
            if args[word]:
                raise UncapturableArguments(mk.published, word, int(args[word]))
        slot = mk.publish(tenant, opcode, args)
        if vetted:
            self._vetted = mk.published
        return slot

    def publish_many(self, tenants: Any, opcodes: Any, args: Any = None) -> np.ndarray:
        """Publish a burst (see :meth:`Megakernel.publish_many`); return the ring indices."""
        mk = self.megakernel
        vetted = self._vetted == mk.published
        if args is not None:
            block = np.asarray(args)
            if block.ndim == 2 and block.shape[1] > CAPTURED_ARGS and block.dtype.kind in "iub":
                extra = block[:, CAPTURED_ARGS:]
                if extra.any():
                    row, column = (int(v) for v in np.argwhere(extra)[0])
                    raise UncapturableArguments(
                        mk.published + row, CAPTURED_ARGS + column, int(extra[row, column])
                    )
        slots = mk.publish_many(tenants, opcodes, args)
        if vetted:
            self._vetted = mk.published
        return slots

    def pump(self) -> PumpResult:
        """Run the kernel over every pending slot and append the burst's records."""
        mk = self.megakernel
        if self._vetted != mk.published:
            _check_capturable(mk.pending_words(), mk.published - mk.pending)
        result = mk.pump()
        self._vetted = mk.published
        n = len(result)
        if n:
            stamp = None if self.clock is None else np.uint64(self.clock())
            if not self._reuse_records:
                records = burst_records(result, stamp)
                self.log.append_many(records)
            else:
                if len(self._buffer) < n:
                    self._buffer = _blank_records(np.empty(n, RING_RECORD_DTYPE))
                try:
                    self.log.append_many(_fill_records(self._buffer[:n], result, stamp, blank=True))
                finally:
                    # Only faulted rows were given evidence: blank them again, and the
                    # whole buffer is blank for the next burst.
                    if result.faults:
                        first = int(result.sequences[0])
                        _blank_records(self._buffer, [f.sequence - first for f in result.faults])
            self.recorded += n
        return result

    def observe(self) -> ObservedStream:
        """The megakernel's observable stream so far."""
        return self.megakernel.observe()

    def close(self) -> None:
        """Pump pending slots into the log, then close the log if this capture owns it."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.megakernel.pending:
                self.pump()
        finally:
            if self._owns_log and isinstance(self.log, RingLog):
                self.log.sync()
                self.log.close()

    def __enter__(self) -> MegakernelCapture:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MegakernelCapture({self.megakernel!r}, recorded={self.recorded})"


def open_capture(
    path: str | os.PathLike[str],
    *,
    backend: BackendLike = "auto",
    slots: int = 1024,
    mode: EpochMode = "ordered",
    capacity: int = 65536,
    clock: Callable[[], int] | None = None,
    keep_history: bool = True,
) -> MegakernelCapture:
    """A fresh megakernel captured into a new VRRL log of ``capacity`` records at ``path``.

    ``keep_history=False`` lets the megakernel drop each pump's results once they are
    in the log (see :class:`Megakernel`): a long capture then holds no results in
    memory and runs faster, and ``capture.observe()`` returns an empty stream (the log
    holds every record).

    An existing file at ``path`` is replaced atomically, and only once every
    argument has been checked: a failed call leaves it as it was. The capture
    owns the log: close it (or use it as a context manager) to flush pending
    slots and close the file. OS failures raise :class:`ReplayLogIoError`.
    """
    check_capacity(capacity, path, requested=True)
    megakernel = Megakernel(backend, slots, mode=mode, keep_history=keep_history)
    target = Path(path)
    # The fresh log is built beside the target and renamed over it, so nothing
    # is lost if creation fails (a folder in the way, a full disk).
    create_log(target, capacity)
    # Written once through and synced at close: the disk can write each burst's pages
    # while the kernel runs the next burst (see RingLog.open).
    log = RingLog.open(target, capacity, write_behind=True)
    return MegakernelCapture(megakernel, log, clock=clock, owns_log=True)
