"""The host side of the megakernel: publish into the slot ring, pump, observe.

The host publishes slots round-robin into a ring of ``slots`` slots; published
slots wait (staged on the host) until :meth:`Megakernel.pump` hands them to the
backend as one burst, and the kernel consumes every one of them. The EPOCH word
counts completed slots; in ``ordered`` mode a slot's epoch is its publish
position, in ``atomic`` mode it is taken at completion (a deliberate race on a
GPU).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from pytest_replay.errors import render_error
from pytest_replay.megakernel.backend import (
    BackendLike,
    BurstOutput,
    U32Array,
    byte_run,
    put_at_ring,
    ring_indices,
)
from pytest_replay.megakernel.burst import PumpResult, SlotFault
from pytest_replay.megakernel.errors import InvalidPublish, RingFull
from pytest_replay.megakernel.model import (
    ARG_WORDS,
    ARGS_OFFSET,
    EPOCH_MODES,
    MAX_RING_SLOTS,
    OPCODE_WORD,
    OUTPUT_WORDS,
    SLOT_WORDS,
    STATUS_WORD,
    TENANT_WORD,
    U32_MASK,
    EpochMode,
    SlotStatus,
    fault_error,
)
from pytest_replay.megakernel.selection import resolve_backend
from pytest_replay.megakernel.stream import ObservedStream, stream_from_bursts

__all__ = ["Megakernel"]


def _u32_column(value: Any, name: str, n: int, sequence: int) -> U32Array:
    try:
        array = np.asarray(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidPublish(f"{name} is not an integer array ({exc})", sequence) from exc
    if array.size and (array.dtype == object or array.dtype.kind not in "iub"):
        raise InvalidPublish(f"{name} has dtype {array.dtype}, not an integer type", sequence)
    if array.ndim == 0:
        array = np.broadcast_to(array, (n,))
    if array.shape != (n,):
        raise InvalidPublish(f"{name} has shape {array.shape}, expected ({n},)", sequence)
    _check_u32_range(array, name, sequence)
    return array.astype(np.uint32, copy=False)


def _check_u32_range(array: np.ndarray, name: str, sequence: int) -> None:
    if array.size == 0 or array.dtype.kind == "b":
        return
    if array.dtype.kind == "u" and array.dtype.itemsize <= 4:
        return  # every value of the type is a u32: nothing to scan
    low, high = int(array.min()), int(array.max())
    if low < 0 or high > U32_MASK:
        bad = low if low < 0 else high
        raise InvalidPublish(f"{name} value {bad} is outside the u32 range", sequence)


class Megakernel:
    """A slot ring driven by a backend.

    ``first_slot`` and ``first_epoch`` set where the ring head and the EPOCH word
    start; replay uses them to resume a capture whose oldest records were
    overwritten. ``keep_history=False`` drops results after each pump (then
    :meth:`observe` returns an empty stream), for long replays that only
    compare records.
    """

    def __init__(
        self,
        backend: BackendLike = "numpy",
        slots: int = 1024,
        *,
        mode: EpochMode = "ordered",
        first_slot: int = 0,
        first_epoch: int = 0,
        keep_history: bool = True,
    ) -> None:
        if (
            isinstance(slots, bool)
            or not isinstance(slots, int)
            or not 1 <= slots <= MAX_RING_SLOTS
        ):
            raise ValueError(
                render_error(
                    f"slots={slots!r} is not an int in 1..{MAX_RING_SLOTS}",
                    fix="size the ring between 1 slot and 16 Mi slots.",
                )
            )
        if mode not in EPOCH_MODES:
            raise ValueError(
                render_error(
                    f"mode={mode!r} is not 'ordered' or 'atomic'", fix="pick one of those."
                )
            )
        if not 0 <= first_slot < slots:
            raise ValueError(
                render_error(
                    f"first_slot={first_slot} is outside the ring of {slots} slots",
                    fix=f"pass a slot index in 0..{slots - 1}.",
                )
            )
        if not 0 <= first_epoch <= U32_MASK:
            raise ValueError(
                render_error(
                    f"first_epoch={first_epoch} is not a u32", fix=f"pass a value in 0..{U32_MASK}."
                )
            )
        self.backend = resolve_backend(backend)
        self.slots = slots
        self.mode: EpochMode = mode
        self._device = self.backend.bind(slots, mode)
        self._head = first_slot
        self._epoch = first_epoch
        self._sequence = 0
        self._staged = np.zeros((slots, SLOT_WORDS), dtype=np.uint32)
        self._pending = 0
        self._status = np.zeros(slots, dtype=np.uint32)
        self._outputs = np.zeros((slots, OUTPUT_WORDS), dtype=np.uint32)
        self._keep_history = keep_history
        self._history: list[tuple[PumpResult, npt.NDArray[np.intp]]] = []

    # -- state

    @property
    def epoch(self) -> int:
        """The EPOCH word: slots completed so far (mod 2**32), the next completion's epoch."""
        return self._epoch

    @property
    def head(self) -> int:
        """The ring index the next publish goes to."""
        return (self._head + self._pending) % self.slots

    @property
    def pending(self) -> int:
        """Slots published and not yet consumed by a pump."""
        return self._pending

    @property
    def published(self) -> int:
        """Slots published over the megakernel's life (the next publish sequence number)."""
        return self._sequence + self._pending

    def status(self, slot: int) -> SlotStatus:
        """The STATUS word of ring slot ``slot`` as the host last saw it."""
        self._check_slot(slot)
        return SlotStatus(int(self._status[slot]))

    def output(self, slot: int) -> bytes:
        """The 64-byte output region of ``slot`` after the last pump that ran it."""
        self._check_slot(slot)
        return bytes(self._outputs[slot].astype("<u4").tobytes())

    def pending_words(self) -> U32Array:
        """A read-only view of the staged slots, in publish order."""
        view = self._staged[: self._pending]
        view.flags.writeable = False
        return view

    def _check_slot(self, slot: int) -> None:
        if not 0 <= slot < self.slots:
            raise IndexError(
                render_error(
                    f"slot {slot} is outside the ring of {self.slots} slots",
                    fix=f"pass a slot index in 0..{self.slots - 1}.",
                )
            )

    # -- publishing

    def publish(self, tenant: int, opcode: int, args: Sequence[int] = ()) -> int:
        """Publish one slot; return its ring index.

        Raises :class:`RingFull` (back-pressure) when every slot is waiting for a pump.
        """
        sequence = self.published
        values = (tenant, opcode, *args)
        if len(args) > ARG_WORDS:
            raise InvalidPublish(f"{len(args)} argument words given, at most {ARG_WORDS}", sequence)
        for position, value in enumerate(values):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                name = ("tenant", "opcode")[position] if position < 2 else f"args[{position - 2}]"
                raise InvalidPublish(f"{name} is {value!r}, not an int", sequence)
            if not 0 <= value <= U32_MASK:
                name = ("tenant", "opcode")[position] if position < 2 else f"args[{position - 2}]"
                raise InvalidPublish(f"{name} value {value} is outside the u32 range", sequence)
        if self._pending == self.slots:
            raise RingFull(self.slots, self._pending, 1)
        row = self._staged[self._pending]
        row[:] = 0
        row[STATUS_WORD] = SlotStatus.PUBLISHED
        row[TENANT_WORD] = tenant
        row[OPCODE_WORD] = opcode
        row[ARGS_OFFSET : ARGS_OFFSET + len(args)] = args
        slot = self.head
        self._status[slot] = SlotStatus.PUBLISHED
        self._pending += 1
        return slot

    def publish_many(self, tenants: Any, opcodes: Any, args: Any = None) -> npt.NDArray[np.int64]:
        """Publish a burst in one step; return the ring indices, in publish order.

        ``tenants`` and ``opcodes`` are ``(n,)`` integer arrays (a scalar tenant is
        broadcast); ``args`` is ``(n, k)`` with ``k <= 13`` (missing words are zero).
        Nothing is published when any value is invalid or the burst does not fit.
        """
        sequence = self.published
        try:
            opcode_array = np.asarray(opcodes)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidPublish(f"opcodes is not an integer array ({exc})", sequence) from exc
        if opcode_array.ndim != 1:
            raise InvalidPublish(f"opcodes has shape {opcode_array.shape}, expected (n,)", sequence)
        n = len(opcode_array)
        opcode_column = _u32_column(opcode_array, "opcodes", n, sequence)
        tenant_column = _u32_column(tenants, "tenants", n, sequence)
        if args is None:
            arg_block = np.zeros((n, 0), dtype=np.uint32)
        else:
            try:
                raw = np.asarray(args)
            except (TypeError, ValueError, OverflowError) as exc:
                raise InvalidPublish(f"args is not an integer array ({exc})", sequence) from exc
            if raw.size and (raw.dtype == object or raw.dtype.kind not in "iub"):
                raise InvalidPublish(f"args has dtype {raw.dtype}, not an integer type", sequence)
            if raw.ndim != 2 or raw.shape[0] != n or raw.shape[1] > ARG_WORDS:
                raise InvalidPublish(
                    f"args has shape {raw.shape}, expected ({n}, k) with k <= {ARG_WORDS}", sequence
                )
            _check_u32_range(raw, "args", sequence)
            arg_block = np.ascontiguousarray(raw, dtype=np.uint32)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        if self._pending + n > self.slots:
            raise RingFull(self.slots, self._pending, n)
        rows = self._staged[self._pending : self._pending + n]
        rows[:] = 0
        rows[:, STATUS_WORD] = SlotStatus.PUBLISHED
        rows[:, TENANT_WORD] = tenant_column
        rows[:, OPCODE_WORD] = opcode_column
        if arg_block.shape[1]:
            # One item of 4k bytes a row (both sides are native u32), not k words a row.
            k = arg_block.shape[1]
            byte_run(rows, 4 * ARGS_OFFSET, 4 * k)[...] = byte_run(arg_block, 0, 4 * k)
        indices = ring_indices(self.head, n, self.slots)
        put_at_ring(self._status, self.head, np.broadcast_to(np.uint32(SlotStatus.PUBLISHED), (n,)))
        self._pending += n
        return indices

    # -- running

    def pump(self) -> PumpResult:
        """Let the kernel consume every published slot; return what it did."""
        n = self._pending
        words = self._staged[:n].copy()
        first = self._head
        base_epoch = self._epoch
        slots = ring_indices(first, n, self.slots)
        sequences = np.arange(self._sequence, self._sequence + n, dtype=np.uint64)
        if n == 0:
            empty = np.zeros(0, dtype=np.uint32)
            output = BurstOutput(empty, empty, empty, np.zeros((0, OUTPUT_WORDS), np.uint32))
            return PumpResult(base_epoch, words, slots, sequences, output, ())
        output = self._device.run_burst(words, first, base_epoch)
        self._pending = 0
        self._head = (first + n) % self.slots
        self._epoch = (base_epoch + n) & U32_MASK
        self._sequence += n
        put_at_ring(self._status, first, output.statuses)
        put_at_ring(self._outputs, first, output.outputs)
        faults = self._faults(words, slots, sequences, output)
        result = PumpResult(base_epoch, words, slots, sequences, output, faults)
        if self._keep_history:
            # Epoch order inside a burst: offsets from the base epoch, which never wrap
            # within one burst because a burst is at most 2**24 slots.
            offsets = (output.epochs - np.uint32(base_epoch)).astype(np.uint32)
            self._history.append((result, np.argsort(offsets, kind="stable")))
        return result

    def _faults(
        self,
        words: U32Array,
        slots: npt.NDArray[np.int64],
        sequences: npt.NDArray[np.uint64],
        output: BurstOutput,
    ) -> tuple[SlotFault, ...]:
        rows = np.flatnonzero(output.statuses == SlotStatus.FAULT)
        faults = []
        for row in rows.tolist():
            slot = int(slots[row])
            epoch = int(output.epochs[row])
            error = fault_error(
                int(output.fault_codes[row]), slot, epoch, int(words[row, OPCODE_WORD])
            )
            data = output.outputs[row].astype("<u4").tobytes()
            faults.append(SlotFault(slot, epoch, int(sequences[row]), error, data))
        return tuple(faults)

    def observe(self) -> ObservedStream:
        """Every completion so far, in epoch order: (epoch, slot, status, output digest)."""
        return stream_from_bursts(self._history)

    def __repr__(self) -> str:
        return (
            f"Megakernel({self.backend!r}, slots={self.slots}, mode={self.mode!r}, "
            f"epoch={self._epoch}, pending={self._pending})"
        )
