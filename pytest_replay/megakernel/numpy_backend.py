"""The reference backend: the megakernel's semantics as vectorised NumPy.

Always available. Every burst is executed opcode group by opcode group over
whole columns, so a burst of a million slots costs a few dozen array
operations, not a million Python steps.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from pytest_replay.megakernel.backend import BurstOutput, RingDevice, U32Array
from pytest_replay.megakernel.model import (
    ARG_WORDS,
    ARGS_OFFSET,
    OPCODE_WORD,
    OUTPUT_WORDS,
    SLOT_WORDS,
    STATUS_WORD,
    U32_MASK,
    EpochMode,
    FaultCode,
    Opcode,
    SlotStatus,
)

__all__ = ["FNV_OFFSET", "FNV_PRIME", "NumpyBackend", "execute_slots"]

FNV_OFFSET: Final = 0x811C9DC5
FNV_PRIME: Final = 0x01000193

_FAULTING: Final = (
    (Opcode.FAULT_DEVICE_LOST, FaultCode.DEVICE_LOST),
    (Opcode.FAULT_QUEUE_TIMEOUT, FaultCode.QUEUE_TIMEOUT),
    (Opcode.FAULT_PROGRAM_TRAP, FaultCode.PROGRAM_TRAP),
)
_KNOWN_OPCODES: Final = np.array([int(op) for op in Opcode], dtype=np.uint32)


def fnv1a_words(words: U32Array) -> U32Array:
    """32-bit FNV-1a of each row of ``words`` (u32 words taken as little-endian bytes)."""
    rows = np.ascontiguousarray(words, dtype="<u4")
    data = rows.view(np.uint8).reshape(len(rows), -1)
    digest = np.full(len(rows), FNV_OFFSET, dtype=np.uint32)
    prime = np.uint32(FNV_PRIME)
    for column in range(data.shape[1]):
        digest ^= data[:, column]
        digest *= prime
    return digest


def execute_slots(words: U32Array) -> tuple[U32Array, U32Array, U32Array]:
    """Run the opcode set over published slots ``words`` (``(n, SLOT_WORDS)`` u32).

    Returns ``(statuses, fault_codes, outputs)``: the terminal STATUS word of each
    slot, its fault code (0 when it completed) and its ``(n, OUTPUT_WORDS)`` output.
    """
    n = len(words)
    opcodes = words[:, OPCODE_WORD]
    args = words[:, ARGS_OFFSET : ARGS_OFFSET + ARG_WORDS]
    outputs = np.zeros((n, OUTPUT_WORDS), dtype=np.uint32)
    statuses = np.full(n, SlotStatus.DONE, dtype=np.uint32)
    codes = np.zeros(n, dtype=np.uint32)

    def rows(opcode: Opcode) -> np.ndarray:
        return np.flatnonzero(opcodes == opcode)

    pick = rows(Opcode.ADD)
    if pick.size:
        outputs[pick, 0] = args[pick, 0] + args[pick, 1]
    pick = rows(Opcode.MUL)
    if pick.size:
        outputs[pick, 0] = args[pick, 0] * args[pick, 1]
    pick = rows(Opcode.XOR)
    if pick.size:
        outputs[pick, 0] = args[pick, 0] ^ args[pick, 1]
    pick = rows(Opcode.HASH)
    if pick.size:
        outputs[pick, 0] = fnv1a_words(args[pick])
    pick = rows(Opcode.COPY)
    if pick.size:
        outputs[pick, :ARG_WORDS] = args[pick]
    for opcode, code in _FAULTING:
        pick = rows(opcode)
        if pick.size:
            # The bytes a faulting slot produced before it faulted: its progress marker.
            outputs[pick, 0] = args[pick, 0]
            statuses[pick] = SlotStatus.FAULT
            codes[pick] = code
    invalid = np.flatnonzero(~np.isin(opcodes, _KNOWN_OPCODES))
    if invalid.size:
        statuses[invalid] = SlotStatus.FAULT
        codes[invalid] = FaultCode.INVALID_OPCODE
    return statuses, codes, outputs


class NumpyBackend:
    """The reference megakernel backend on the host.

    In ``atomic`` mode slots complete in thread (slot index) order, as one warp
    would retire them. ``race_seed`` instead draws each burst's completion order
    from a seeded generator: a reproducible stand-in for the GPU race, so tests
    can show on any machine that replay catches a reordered stream. It has no
    effect in ``ordered`` mode.
    """

    __slots__ = ("race_seed",)

    def __init__(self, *, race_seed: int | None = None) -> None:
        self.race_seed = race_seed

    @property
    def name(self) -> str:
        return "numpy"

    def bind(self, slots: int, mode: EpochMode) -> RingDevice:
        return _NumpyRing(slots, mode, self.race_seed)

    def __repr__(self) -> str:
        seed = "" if self.race_seed is None else f"race_seed={self.race_seed}"
        return f"NumpyBackend({seed})"


class _NumpyRing:
    __slots__ = ("epoch_word", "fault_codes", "mode", "outputs", "ring", "rng", "slot_epochs")

    def __init__(self, slots: int, mode: EpochMode, race_seed: int | None) -> None:
        self.mode = mode
        self.ring = np.zeros((slots, SLOT_WORDS), dtype=np.uint32)
        self.outputs = np.zeros((slots, OUTPUT_WORDS), dtype=np.uint32)
        self.slot_epochs = np.zeros(slots, dtype=np.uint32)
        self.fault_codes = np.zeros(slots, dtype=np.uint32)
        self.epoch_word = 0
        self.rng = None if race_seed is None else np.random.default_rng(race_seed)

    def run_burst(self, words: U32Array, first: int, base_epoch: int) -> BurstOutput:
        slots = len(self.ring)
        n = len(words)
        index = np.arange(first, first + n, dtype=np.int64)
        index %= slots
        self.ring[index] = words
        statuses, codes, outputs = execute_slots(words)
        if self.mode == "ordered":
            ranks = np.arange(n, dtype=np.uint64)
        else:
            order = (
                np.argsort(index, kind="stable") if self.rng is None else self.rng.permutation(n)
            )
            ranks = np.empty(n, dtype=np.uint64)
            ranks[order] = np.arange(n, dtype=np.uint64)
        epochs = ((ranks + np.uint64(base_epoch)) & np.uint64(U32_MASK)).astype(np.uint32)
        self.outputs[index] = outputs
        self.slot_epochs[index] = epochs
        self.fault_codes[index] = codes
        self.ring[index, STATUS_WORD] = statuses
        self.epoch_word = (base_epoch + n) & U32_MASK
        return BurstOutput(epochs, statuses, codes, outputs)
