"""Batch I/O of the VRRL ring log: records encoded as arrays, batches written into a ring's
slots, and whole images built in memory.

The format facts (structs, dtype, checks, errors) are :mod:`pytest_replay.formats.vrrl`;
the memory-mapped log that uses these is :mod:`pytest_replay.ringlog`.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from pytest_replay.errors import render_error
from pytest_replay.formats.vrrl import (
    FIELDS_AFTER_MAGIC,
    HEADER_BYTES,
    HEADER_STRUCT,
    LOG_MAGIC,
    LOG_VERSION,
    RECORD_BYTES,
    RECORD_BYTES_DTYPE,
    RECORD_MAGIC,
    RING_RECORD_DTYPE,
    U64_FIELDS,
    RecordArray,
    RecordedSlot,
    RecordValueError,
    ReplayFailureEvidence,
    ReplayRecord,
    check_capacity,
)

__all__ = [
    "SlotsLike",
    "encode_ring_image",
    "first_misfit",
    "record_row",
    "records_to_array",
    "ring_spans",
    "scatter",
]

SlotsLike = Sequence[RecordedSlot] | Sequence[ReplayRecord] | RecordArray


def records_to_array(items: Iterable[RecordedSlot | ReplayRecord] | RecordArray) -> RecordArray:
    """Encode slots or records as a :data:`RING_RECORD_DTYPE` array with live magic.

    A structured array is accepted too: fields it shares with the record dtype
    are copied (``args`` as a (4,) sub-array), the rest stay zero.
    """
    if isinstance(items, np.ndarray):
        if items.dtype == RING_RECORD_DTYPE:
            out: RecordArray = items.copy()
        else:
            names = items.dtype.names
            if names is None:
                raise TypeError(
                    render_error(
                        f"records_to_array needs a structured array, got dtype {items.dtype}",
                        fix="pass RecordedSlot values or an array of RING_RECORD_DTYPE.",
                    )
                )
            _check_foreign_array(items)
            out = np.zeros(len(items), RING_RECORD_DTYPE)
            for name in names:
                if name != "magic" and name in RING_RECORD_DTYPE.names:  # type: ignore[operator]
                    out[name] = items[name]
        out["magic"] = RECORD_MAGIC
        return out
    rows = []
    for item in items:
        if isinstance(item, ReplayRecord):
            rows.append(record_row(item.slot, item.failure))
        else:
            assert isinstance(item, RecordedSlot)
            rows.append(record_row(item, None))
    try:
        return np.array(rows, dtype=RING_RECORD_DTYPE)
    except (OverflowError, ValueError, TypeError):
        # Only now is each value looked at, so a valid batch pays nothing for it.
        index, field, value = first_misfit(rows)
        raise RecordValueError(field, value, index) from None


def _check_foreign_array(items: RecordArray) -> None:
    """Refuse a structured array whose fields would not survive the cast to the record dtype."""
    for name in items.dtype.names or ():
        if name == "magic" or name not in RING_RECORD_DTYPE.names:  # type: ignore[operator]
            continue
        column = items[name]
        want = RING_RECORD_DTYPE[name]
        if column.shape[1:] != want.shape or column.dtype.base.kind not in "biu":
            raise RecordValueError(name, f"<{column.dtype.base} column of shape {column.shape}>")
        if column.dtype.base.kind == "b" or len(column) == 0:
            continue
        top = np.iinfo(want.base).max
        if column.min() < 0 or column.max() > top:
            flat = column.reshape(len(column), -1)
            bad = (flat < 0) | (flat > top)
            index, word = (int(i) for i in np.argwhere(bad)[0])
            field = f"{name}[{word}]" if column.ndim > 1 else name
            raise RecordValueError(field, flat[index, word].item(), index)


def record_row(slot: RecordedSlot, failure: ReplayFailureEvidence | None) -> tuple[Any, ...]:
    """One record as the tuple ``np.array`` takes for :data:`RING_RECORD_DTYPE`."""
    if failure is None:
        return (RECORD_MAGIC, slot.timestamp_ns, slot.slot_idx, slot.tenant_id, slot.opcode,
                slot.args, slot.epoch, 0, 0, 0, 0)  # fmt: skip
    return (RECORD_MAGIC, slot.timestamp_ns, slot.slot_idx, slot.tenant_id, slot.opcode,
            slot.args, slot.epoch, failure.slot_status, failure.failure_class,
            failure.backend_error_code, failure.output_digest)  # fmt: skip


def _fits(value: object, bits: int) -> bool:
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        return False
    return 0 <= number < 1 << bits


def first_misfit(rows: Sequence[tuple[Any, ...]]) -> tuple[int, str, object]:
    """``(index, field, value)`` of the first field in ``rows`` no record word can hold."""
    for index, row in enumerate(rows):
        for name, value in zip(FIELDS_AFTER_MAGIC, row[1:], strict=True):
            if name != "args":
                if not _fits(value, 64 if name in U64_FIELDS else 32):
                    return index, name, value
                continue
            try:
                words = list(value)
            except TypeError:
                return index, "args", value
            if len(words) != 4:
                return index, "args", value
            for k, word in enumerate(words):
                if not _fits(word, 32):
                    return index, f"args[{k}]", word
    # Unreachable for rows numpy refused; named as a whole rather than guessed.
    return 0, "record", rows[0] if rows else None


def encode_ring_image(capacity: int, items: SlotsLike) -> bytes:
    """The exact bytes a fresh log of ``capacity`` holds after appending ``items`` in order."""
    check_capacity(capacity)
    buf = bytearray(HEADER_BYTES + RECORD_BYTES * capacity)
    array = records_to_array(items)
    body = np.frombuffer(buf, RING_RECORD_DTYPE, count=capacity, offset=HEADER_BYTES)
    cursor = scatter(body, array, 0, capacity)
    del body
    HEADER_STRUCT.pack_into(buf, 0, LOG_MAGIC, LOG_VERSION, 0, capacity, cursor)
    return bytes(buf)


def ring_spans(cursor: int, n: int, capacity: int) -> list[tuple[int, int, int]]:
    """Where a batch of ``n`` records appended at ``cursor`` lands in a ring of ``capacity``
    slots: one ``(first slot, first batch index, count)`` per contiguous run, in write
    order. Of a batch longer than the ring only the newest ``capacity`` records land."""
    if n == 0:
        return []
    if n >= capacity:
        end = (cursor + n) % capacity
        skip = n - capacity
        spans = [(end, skip, capacity - end), (0, skip + capacity - end, end)]
    elif cursor + n <= capacity:
        spans = [(cursor, 0, n)]
    else:
        first = capacity - cursor
        spans = [(cursor, 0, first), (0, first, n - first)]
    return [span for span in spans if span[2]]


def scatter(
    body: RecordArray, array: RecordArray, cursor: int, capacity: int, *, stamp: bool = False
) -> int:
    """Write ``array`` into the ring ``body`` from ``cursor``; return the new cursor.

    ``stamp`` sets the live magic on the written records (for an array whose
    own magic words are not trusted), in place, so the batch is copied once.
    """
    n = len(array)
    if n == 0:
        return cursor
    # Copied as opaque bytes: numpy copies a packed structured dtype field by field.
    body, array = body.view(RECORD_BYTES_DTYPE), array.view(RECORD_BYTES_DTYPE)
    for slot, start, count in ring_spans(cursor, n, capacity):
        part = body[slot : slot + count]
        part[...] = array[start : start + count]
        if stamp:
            part.view(RING_RECORD_DTYPE)["magic"] = RECORD_MAGIC
    return (cursor + n) % capacity
