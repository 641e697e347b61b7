"""Replay a captured megakernel run and diff its epoch-by-epoch observable stream.

:func:`replay_capture` feeds the recorded slots, in publish order and in the
bursts the capture ran, into a fresh megakernel on the given backend, captures
the replay the same way, and compares the two record streams in epoch order
with :func:`pytest_replay.diff.first_divergence` (``timestamp_ns`` ignored).
:func:`differential_replay` replays one capture on two backends and compares
their full observable streams, output bytes included.

Bursts: in ``ordered`` mode epochs do not depend on where pumps fell, so the
replay pumps every ``slots`` records. In ``atomic`` mode each burst's epochs
are a permutation of a contiguous range; the replay cuts the stream at every
point where the records before it hold exactly the lowest epochs, which
reproduces the captured bursts or splits them where no completion order could
tell the difference. When an ``atomic`` log is full, its oldest burst may have
lost records to wrap-around; that partial burst is skipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from pytest_replay.diff import first_divergence
from pytest_replay.divergence import Divergence
from pytest_replay.formats.vrrl import (
    RING_RECORD_DTYPE,
    RecordArray,
    ReplayFailureClass,
    RingImage,
)
from pytest_replay.megakernel.backend import BackendLike
from pytest_replay.megakernel.capture import burst_records
from pytest_replay.megakernel.errors import MalformedCapture
from pytest_replay.megakernel.kernel import Megakernel
from pytest_replay.megakernel.model import (
    EPOCH_MODES,
    MAX_RING_SLOTS,
    U32_MASK,
    EpochMode,
    SlotStatus,
)
from pytest_replay.megakernel.selection import resolve_backend
from pytest_replay.megakernel.stream import ObservedStream, diff_streams
from pytest_replay.ringlog import RingLog

__all__ = [
    "CaptureSource",
    "DifferentialReport",
    "ReplayReport",
    "StreamEntry",
    "differential_replay",
    "replay_capture",
    "replay_stream",
]

CaptureSource = RingLog | RingImage | str | os.PathLike[str] | RecordArray


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """One epoch of a record stream: slot, terminal status and failure evidence.

    A completed slot carries no evidence in a VRRL record, so its ``digest`` is ``None``.
    """

    epoch: int
    slot: int
    status: SlotStatus
    digest: int | None
    failure_class: ReplayFailureClass
    backend_code: int

    @classmethod
    def from_record(cls, record: np.void) -> StreamEntry:
        words = (
            int(record["slot_status"]),
            int(record["failure_class"]),
            int(record["backend_code"]),
            int(record["output_digest"]),
        )
        if words == (0, 0, 0, 0):
            status, digest = SlotStatus.DONE, None
        else:
            try:
                status = SlotStatus(words[0])
            except ValueError:
                status = SlotStatus.FAULT
            digest = words[3]
        return cls(
            epoch=int(record["epoch"]),
            slot=int(record["slot_idx"]),
            status=status,
            digest=digest,
            failure_class=ReplayFailureClass.decode(words[1]),
            backend_code=words[2],
        )

    def describe(self) -> str:
        text = f"slot {self.slot} {self.status.name}"
        if self.digest is not None:
            text += f" digest {self.digest:#018x}"
        if self.backend_code or self.failure_class != ReplayFailureClass.NONE:
            text += f" {self.failure_class.name} code {self.backend_code:#x}"
        return text


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """The outcome of one replay: a match, or the first divergent epoch.

    The divergence's ``index`` counts compared records in epoch order, its ``field`` is
    the first differing record field and its sides are the two
    :class:`StreamEntry` values at that epoch (``None`` for a side that has none).
    """

    source: str
    backend: str
    mode: EpochMode
    slots: int
    records: int
    skipped: int
    divergence: Divergence | None

    @property
    def matched(self) -> bool:
        return self.divergence is None

    def describe(self) -> str:
        head = (
            f"replay of '{self.source}' on {self.backend} ({self.mode}, {self.slots} slots): "
            f"{self.records} records compared"
        )
        if self.skipped:
            head += f", {self.skipped} leading records of a wrapped burst skipped"
        if self.divergence is None:
            return head + ", identical"
        return f"{head}; {self.divergence.describe()}"

    __str__ = describe


@dataclass(frozen=True, slots=True)
class DifferentialReport:
    """One capture replayed on two backends, with their observable streams compared."""

    first: ReplayReport
    second: ReplayReport
    divergence: Divergence | None

    @property
    def matched(self) -> bool:
        return self.divergence is None

    def describe(self) -> str:
        pair = f"{self.first.backend} vs {self.second.backend} ({self.first.mode})"
        if self.divergence is None:
            return f"{pair}: {self.first.records} completions identical"
        return f"{pair}: {self.divergence.describe()}"

    __str__ = describe


# --------------------------------------------------------------------------- loading


def _load(source: CaptureSource) -> tuple[RecordArray, int | None, str]:
    """Records (publish order), log capacity when known, and a name for messages."""
    if isinstance(source, RingLog):
        return source.records(), source.capacity, str(source.path)
    if isinstance(source, RingImage):
        return source.records, source.capacity, "<VRRL image>"
    if isinstance(source, np.ndarray):
        if source.dtype != RING_RECORD_DTYPE:
            raise MalformedCapture(
                "<array>", 0, f"records have dtype {source.dtype}, not RING_RECORD_DTYPE"
            )
        return source, None, "<array>"
    path = Path(source)
    with RingLog.open(path, read_only=True) as log:
        return log.records(), log.capacity, str(path)


def _offsets(epochs: npt.NDArray[np.uint32]) -> npt.NDArray[np.int64]:
    """Epochs as signed distances from the first one, undoing u32 wrap-around."""
    delta = (epochs - epochs[0]).astype(np.uint32)
    offsets: npt.NDArray[np.int64] = delta.view(np.int32).astype(np.int64)
    return offsets


def _infer_mode(epochs: npt.NDArray[np.uint32]) -> EpochMode:
    if len(epochs) < 2:
        return "ordered"
    steps = (epochs[1:] - epochs[:-1]).astype(np.uint32)
    return "ordered" if bool((steps == 1).all()) else "atomic"


def _leading_partial_burst(offsets: npt.NDArray[np.int64], name: str) -> int:
    """How many leading records to drop so the replay starts at a burst boundary.

    A start ``j`` is usable when every record before it holds a lower epoch than
    every record from it on, and the records from ``j`` on hold a gap-free range
    of epochs (the overwritten records took no epoch from inside it).
    """
    n = len(offsets)
    prefix_max = np.maximum.accumulate(offsets)
    suffix_min = np.minimum.accumulate(offsets[::-1])[::-1]
    gap_free = offsets.max() - suffix_min + 1 == n - np.arange(n)
    separated = np.ones(n, dtype=bool)
    separated[1:] = prefix_max[:-1] < suffix_min[1:]
    starts = np.flatnonzero(gap_free & separated)
    if starts.size == 0:
        raise MalformedCapture(
            name,
            0,
            f"all {n} records belong to one burst whose start was overwritten "
            "when the log wrapped, so no whole burst is left to replay",
        )
    return int(starts[0])


def _bursts(
    offsets: npt.NDArray[np.int64], mode: EpochMode, slots: int, name: str, skipped: int
) -> list[tuple[int, int]]:
    n = len(offsets)
    if mode == "ordered":
        return [(start, min(start + slots, n)) for start in range(0, n, slots)]
    rel = offsets - offsets.min()
    ends = np.flatnonzero(np.maximum.accumulate(rel) == np.arange(n)) + 1
    if ends.size == 0 or ends[-1] != n:
        last = 0 if ends.size == 0 else int(ends[-1])
        raise MalformedCapture(
            name,
            skipped + last,
            "the epochs from here on are not a permutation of a contiguous range, which "
            "every atomic burst is",
        )
    bounds: list[tuple[int, int]] = []
    start = 0
    for end in ends.tolist():
        if end - start > slots:
            raise MalformedCapture(
                name,
                skipped + start,
                f"a burst of {end - start} records cannot have run on a ring of {slots} slots",
            )
        bounds.append((start, end))
        start = end
    return bounds


# --------------------------------------------------------------------------- replay


def _replay(
    source: CaptureSource,
    backend: BackendLike,
    slots: int | None,
    mode: EpochMode | None,
    keep_stream: bool,
) -> tuple[ReplayReport, ObservedStream | None]:
    records, capacity, name = _load(source)
    engine = resolve_backend(backend)
    if mode is not None and mode not in EPOCH_MODES:
        raise ValueError(f"mode={mode!r} is not 'ordered' or 'atomic'. Fix: pick one of those.")
    n_all = len(records)
    if n_all == 0:
        ring = 1 if slots is None else slots
        report = ReplayReport(name, engine.name, mode or "ordered", ring, 0, 0, None)
        return report, Megakernel(engine, ring).observe() if keep_stream else None
    epochs = records["epoch"].astype(np.uint32)
    chosen: EpochMode = _infer_mode(epochs) if mode is None else mode
    highest = int(records["slot_idx"].max())
    if slots is None:
        if highest >= MAX_RING_SLOTS:
            raise MalformedCapture(
                name,
                int(np.argmax(records["slot_idx"])),
                f"slot index {highest} exceeds the largest ring ({MAX_RING_SLOTS} slots)",
            )
        slots = highest + 1
    skipped = 0
    if chosen == "atomic" and capacity is not None and n_all == capacity:
        skipped = _leading_partial_burst(_offsets(epochs), name)
    body = records[skipped:]
    offsets = _offsets(epochs[skipped:])
    bursts = _bursts(offsets, chosen, slots, name, skipped)
    first_slot = int(body["slot_idx"][0])
    if first_slot >= slots:
        raise MalformedCapture(
            name, skipped, f"slot index {first_slot} is outside a ring of {slots} slots"
        )
    base_epoch = (int(epochs[skipped]) + int(offsets.min())) & U32_MASK
    megakernel = Megakernel(
        engine,
        slots,
        mode=chosen,
        first_slot=first_slot,
        first_epoch=base_epoch,
        keep_history=keep_stream,
    )
    tenants, opcodes, args = body["tenant_id"], body["opcode"], body["args"]
    produced = []
    for start, stop in bursts:
        megakernel.publish_many(tenants[start:stop], opcodes[start:stop], args[start:stop])
        produced.append(burst_records(megakernel.pump()))
    actual = np.concatenate(produced)
    divergence = _first_epoch_divergence(body, actual, base_epoch)
    report = ReplayReport(name, engine.name, chosen, slots, len(body), skipped, divergence)
    return report, megakernel.observe() if keep_stream else None


def _epoch_order(records: RecordArray, base_epoch: int) -> npt.NDArray[np.intp]:
    rel = (records["epoch"].astype(np.uint32) - np.uint32(base_epoch)).astype(np.uint32)
    return np.argsort(rel, kind="stable")


def _entry_at(records: RecordArray, index: int) -> StreamEntry | None:
    if index >= len(records):
        return None
    record: np.void = records[index]
    return StreamEntry.from_record(record)


def _first_epoch_divergence(
    expected: RecordArray, actual: RecordArray, base_epoch: int
) -> Divergence | None:
    want = expected[_epoch_order(expected, base_epoch)]
    got = actual[_epoch_order(actual, base_epoch)]
    found = first_divergence(want, got)
    if found is None:
        return None
    # Record comparisons always carry an index (only single values have none).
    index = 0 if found.index is None else found.index
    want_entry = _entry_at(want, index)
    got_entry = _entry_at(got, index)
    anchor = want_entry if want_entry is not None else got_entry
    epoch = anchor.epoch if anchor is not None else base_epoch + index
    return Divergence(
        index,
        found.field,
        want_entry,
        got_entry,
        found.kind,
        at=f"epoch {epoch} (record #{index} in epoch order)",
    )


def replay_capture(
    source: CaptureSource,
    backend: BackendLike,
    *,
    slots: int | None = None,
    mode: EpochMode | None = None,
) -> ReplayReport:
    """Replay a capture (a :class:`RingLog`, a decoded :class:`RingImage`, a VRRL path or a
    record array) on ``backend``.

    ``slots`` and ``mode`` default to what the records imply (the highest slot
    index + 1; ``ordered`` when epochs rise by one per record); pass the values
    from :meth:`MegakernelCapture.info` when you have them.
    """
    report, _stream = _replay(source, backend, slots, mode, keep_stream=False)
    return report


def replay_stream(
    source: CaptureSource,
    backend: BackendLike,
    *,
    slots: int | None = None,
    mode: EpochMode | None = None,
) -> tuple[ReplayReport, ObservedStream]:
    """Like :func:`replay_capture`, also returning the replay's full observable stream."""
    report, stream = _replay(source, backend, slots, mode, keep_stream=True)
    assert stream is not None
    return report, stream


def differential_replay(
    source: CaptureSource,
    first: BackendLike,
    second: BackendLike,
    *,
    slots: int | None = None,
    mode: EpochMode | None = None,
) -> DifferentialReport:
    """Replay one capture on two backends and diff their observable streams.

    Unlike a record comparison this also covers the output bytes of slots that
    completed, so it catches a backend that computes a wrong result.
    """
    first_report, first_stream = replay_stream(source, first, slots=slots, mode=mode)
    second_report, second_stream = replay_stream(source, second, slots=slots, mode=mode)
    return DifferentialReport(
        first_report, second_report, diff_streams(first_stream, second_stream)
    )
