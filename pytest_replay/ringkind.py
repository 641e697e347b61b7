"""The ``ring`` kind: a VRRL ring log, recorded through the :class:`RingLog` write API and
checked record by record (one numpy comparison per batch) against the stored ring."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, cast

import numpy as np

from pytest_replay.diff import (
    first_divergence,
    ignored_words,
    record_difference,
    ring_summary,
)
from pytest_replay.divergence import Divergence, context_window
from pytest_replay.formats.vrrl import VRRL
from pytest_replay.recorder import CheckedStream, DiffResult, FinishedRecording, RecordingTarget
from pytest_replay.recordingkind import RecordingKind
from pytest_replay.ringdigest import (
    AppendedDigest,
    append_hashed,
    check_overwritten,
    digest_meta,
    overwritten_note,
)
from pytest_replay.ringlog import (
    RECORD_BYTES,
    RECORD_MAGIC,
    RECORD_STRUCT,
    RING_RECORD_DTYPE,
    RecordArray,
    RecordedSlot,
    ReplayFailureEvidence,
    ReplayRecord,
    RingLog,
    SlotsLike,
    encode_ring_image,
    read_ring_image,
    records_to_array,
)

__all__ = ["RING_KIND", "RingRecorder"]


def _field_byte_ranges(volatile: Sequence[str]) -> list[tuple[int, int]]:
    return [(4 * word, 4 * word + 4) for word in ignored_words(volatile)]


class RingRecorder:
    """A ring recorder: the :class:`RingLog` write API over a real VRRL file.

    The stored recording is a VRRL image of the live records in publish
    order with the ``volatile`` fields zeroed, so it is byte-identical run
    after run. When checking, every append is compared with the stored
    record at the same publish position as it is produced (a
    :class:`~pytest_replay.recorder.CheckedStream` of ring records).
    """

    def __init__(
        self,
        target: RecordingTarget,
        capacity: int = 4096,
        volatile: Sequence[str] = ("timestamp_ns",),
    ) -> None:
        self._target = target
        self._volatile = tuple(volatile)
        self._masks = _field_byte_ranges(self._volatile)
        self._masked_words = ignored_words(self._volatile)
        working = target.scratch / f"{target.stored_path.name}"
        working.unlink(missing_ok=True)
        self._log = RingLog.open(working, capacity)
        self._digest = AppendedDigest(self._log.capacity, self._masked_words, self._log.slot_view)
        # Appends written to the log so far, the one being checked included.
        self._logged = 0
        stored: RecordArray | None = None
        self._expected_bytes = b""
        stored_appended = 0
        if target.expected is not None:
            stored = read_ring_image(target.expected, str(target.stored_path)).records
            self._expected_bytes = stored.tobytes()
            stored_appended = int(target.expected_meta.get("appended", len(stored)))
        self._stream: CheckedStream[np.void] = CheckedStream(
            target,
            None if stored is None else cast(Sequence[np.void], stored),
            partial(record_difference, ignore=self._volatile),
            VRRL.render,
            offset=0 if stored is None else stored_appended - len(stored),
            stored_count=stored_appended,
            ignored=self._volatile,
            detail=self._detail,
        )

    @property
    def name(self) -> str:
        return self._target.name

    @property
    def capacity(self) -> int:
        return self._log.capacity

    @property
    def cursor(self) -> int:
        return self._log.cursor

    @property
    def log(self) -> RingLog:
        """The working log (open for reading; recordings are written through the recorder)."""
        return self._log

    def __len__(self) -> int:
        return self._stream.produced

    # -- the RingLog write API

    def append(self, slot: RecordedSlot) -> None:
        __tracebackhide__ = True
        appended = self._stream.produced
        if appended >= self._digest.due:
            self._digest.catch_up(appended)
        self._log.append(slot)
        self._check_one(slot, None)

    def append_with_failure(self, slot: RecordedSlot, failure: ReplayFailureEvidence) -> None:
        __tracebackhide__ = True
        appended = self._stream.produced
        if appended >= self._digest.due:
            self._digest.catch_up(appended)
        self._log.append_with_failure(slot, failure)
        self._check_one(slot, failure)

    def append_many(self, slots: SlotsLike) -> None:
        __tracebackhide__ = True
        array = records_to_array(slots)
        append_hashed(self._log, self._digest, self._stream.produced, array)
        self._logged = self._stream.produced + len(array)
        # The whole batch in one numpy comparison, not a Python loop per record.
        self._stream.check_batch(cast(Sequence[np.void], array), self._first_difference)

    # -- checking

    def _first_difference(
        self, stored: Sequence[np.void], produced: Sequence[np.void]
    ) -> Divergence | None:
        return first_divergence(
            cast(RecordArray, stored), cast(RecordArray, produced), ignore=self._volatile
        )

    def _check_one(self, slot: RecordedSlot, failure: ReplayFailureEvidence | None) -> None:
        __tracebackhide__ = True
        stream = self._stream
        self._logged = stream.produced + 1
        position = stream.position
        stored = stream.stored
        if stored is None or position < 0:
            # Recording, or overwritten in the stored ring: nothing left to compare with.
            stream.advance(1)
            return
        if position < len(stored):
            # The common case, a matching record, costs one struct.pack and one compare.
            a0, a1, a2, a3 = slot.args
            tail = (
                (0, 0, 0, 0)
                if failure is None
                else (
                    failure.slot_status,
                    int(failure.failure_class),
                    failure.backend_error_code,
                    failure.output_digest,
                )
            )
            packed = bytearray(
                RECORD_STRUCT.pack(
                    RECORD_MAGIC, slot.timestamp_ns, slot.slot_idx, slot.tenant_id,
                    slot.opcode, a0, a1, a2, a3, slot.epoch, *tail,
                )
            )  # fmt: skip
            for start, end in self._masks:
                packed[start:end] = bytes(end - start)
            start = position * RECORD_BYTES
            if packed == self._expected_bytes[start : start + RECORD_BYTES]:
                stream.advance(1)
                return
        stream.check(records_to_array([ReplayRecord(slot, failure)])[0])

    def _detail(self, divergence: Divergence, expected: Any, actual: Any) -> str:
        if divergence.kind == "length":
            if divergence.actual > divergence.expected:
                return "an append beyond the end of the stored recording"
            return ""
        return overwritten_note(
            self._digest, self._target.expected_meta, self._stream.offset, self._logged
        )

    def check_complete(self) -> None:
        __tracebackhide__ = True
        stream = self._stream
        if not stream.checking:
            return
        stream.check_complete()
        # Every record still in the stored ring matched as it was appended; what the ring
        # overwrote is known only by its digest (recordings made before it have none).
        appended = stream.produced
        check_overwritten(
            self._digest,
            self._target.expected_meta,
            stream.offset,
            appended,
            self._target.fail,
            self._volatile,
        )
        stored = self._target.expected_meta.get("appended_digest")
        live = self._digest.digest_at(appended, appended)
        if isinstance(stored, str) and live != stored:
            self._target.fail(
                Divergence(
                    None,
                    "appended records",
                    stored,
                    live,
                    detail=f"the digest of all {appended} appended records differs",
                ),
                self._volatile,
            )

    def finish(self) -> FinishedRecording:
        records = self._log.records()
        if len(records):
            words = records.view("<u4").reshape(len(records), RECORD_BYTES // 4)
            words[:, self._masked_words] = 0
        data = encode_ring_image(max(1, len(records)), records)
        appended = self._stream.produced
        meta = {
            "capacity": self._log.capacity,
            "appended": appended,
            "volatile": list(self._volatile),
            # Verify checks, by digest, what the image no longer holds.
            **digest_meta(self._digest, appended, len(records)),
        }
        return FinishedRecording(data, len(records), meta)

    def close(self) -> None:
        self._log.close()


def diff_ring(expected: bytes, actual: bytes, meta: Mapping[str, Any]) -> DiffResult | None:
    """The first difference between two stored rings, with the stored records before it."""
    left = read_ring_image(expected, "expected").records
    right = read_ring_image(actual, "actual").records
    found = first_divergence(left, right, ignore=tuple(meta.get("volatile", ("timestamp_ns",))))
    if found is None:
        return None
    assert found.index is not None
    stored = cast(Sequence[np.void], left)
    return found, context_window(stored, found.index, VRRL.render)


RING_KIND = RecordingKind(
    name="ring",
    extension=".vrrl",
    version=1,
    open=RingRecorder,
    diff=diff_ring,
    count=lambda data: len(read_ring_image(data, "recording").records),
    ignored=lambda meta: tuple(meta.get("volatile", ())),
    summarize=lambda expected, actual, meta: ring_summary(
        read_ring_image(expected, "expected").records,
        read_ring_image(actual, "actual").records,
        ignore=tuple(meta.get("volatile", ("timestamp_ns",))),
    ),
)
assert RING_RECORD_DTYPE.itemsize == RECORD_BYTES
