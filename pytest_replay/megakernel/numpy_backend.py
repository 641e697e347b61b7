"""The reference backend: the megakernel's semantics as vectorised NumPy.

Always available. Every burst is executed opcode group by opcode group over
whole columns, so a burst of a million slots costs a few dozen array
operations, not a million Python steps.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from pytest_replay.megakernel.backend import BurstOutput, RingDevice, U32Array, byte_run
from pytest_replay.megakernel.model import (
    ARG_WORDS,
    ARGS_OFFSET,
    OPCODE_WORD,
    OUTPUT_WORDS,
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
# Each opcode's group, so a burst is classified in one table lookup rather than one
# comparison per opcode. Opcodes above the table (any u32 past 0xFF) share its last
# entry; every value without an opcode is INVALID.
_ADD, _MUL, _XOR, _HASH, _COPY, _FAULT_FIRST = 1, 2, 3, 4, 5, 6
_INVALID: Final = _FAULT_FIRST + len(_FAULTING)
_GROUPS: Final = _INVALID + 1
_GROUP_OF: Final = np.full(0x101, _INVALID, dtype=np.uint8)
_GROUPED: Final = (Opcode.NOP, Opcode.ADD, Opcode.MUL, Opcode.XOR, Opcode.HASH, Opcode.COPY)
_GROUP_OF[[int(op) for op in (*_GROUPED, *(op for op, _code in _FAULTING))]] = np.arange(
    _INVALID, dtype=np.uint8
)


def fnv1a_words(words: U32Array) -> U32Array:
    """32-bit FNV-1a of each row of ``words`` (u32 words taken as little-endian bytes)."""
    rows = np.ascontiguousarray(words, dtype="<u4")
    data = rows.view(np.uint8).reshape(len(rows), -1)
    digest = np.full(len(rows), FNV_OFFSET, dtype=np.uint32)
    prime = np.uint32(FNV_PRIME)
    # Trailing words that are zero in every row only multiply (x ^ 0 == x), and k such
    # steps are one multiply by prime**k mod 2**32. Captured slots leave argument words
    # 4..12 zero: 36 of a hashed row's 52 bytes, found with one column check a word.
    width = rows.shape[1]
    while width and not rows[:, width - 1].any():
        width -= 1
    for column in range(4 * width):
        digest ^= data[:, column]
        digest *= prime
    if zero_bytes := data.shape[1] - 4 * width:
        digest *= np.uint32(pow(FNV_PRIME, zero_bytes, 1 << 32))
    return digest


def execute_slots(words: U32Array) -> tuple[U32Array, U32Array, U32Array]:
    """Run the opcode set over published slots ``words`` (``(n, SLOT_WORDS)`` u32).

    Returns ``(statuses, fault_codes, outputs)``: the terminal STATUS word of each
    slot, its fault code (0 when it completed) and its ``(n, OUTPUT_WORDS)`` output.
    """
    n = len(words)
    args = words[:, ARGS_OFFSET : ARGS_OFFSET + ARG_WORDS]
    outputs = np.zeros((n, OUTPUT_WORDS), dtype=np.uint32)
    statuses = np.full(n, SlotStatus.DONE, dtype=np.uint32)
    codes = np.zeros(n, dtype=np.uint32)
    # take() of a flat table: fancy indexing costs about twice as much per row.
    groups = _GROUP_OF.take(np.minimum(words[:, OPCODE_WORD], np.uint32(len(_GROUP_OF) - 1)))
    counts = np.bincount(groups, minlength=_GROUPS).tolist()

    def rows(group: int) -> np.ndarray | None:
        return np.flatnonzero(groups == group) if counts[group] else None

    if (pick := rows(_ADD)) is not None:
        outputs[pick, 0] = args[pick, 0] + args[pick, 1]
    if (pick := rows(_MUL)) is not None:
        outputs[pick, 0] = args[pick, 0] * args[pick, 1]
    if (pick := rows(_XOR)) is not None:
        outputs[pick, 0] = args[pick, 0] ^ args[pick, 1]
    if (pick := rows(_HASH)) is not None:
        outputs[pick, 0] = fnv1a_words(args[pick])
    if (pick := rows(_COPY)) is not None:
        if words.dtype == np.uint32 and words.flags.c_contiguous:
            # Whole 52-byte runs a row (native u32 on both sides), not 13 words a row.
            run = 4 * ARG_WORDS
            byte_run(outputs, 0, run)[pick] = byte_run(words, 4 * ARGS_OFFSET, run)[pick]
        else:
            outputs[pick, :ARG_WORDS] = args[pick]
    for group, (_opcode, code) in enumerate(_FAULTING, _FAULT_FIRST):
        if (pick := rows(group)) is not None:
            # The bytes a faulting slot produced before it faulted: its progress marker.
            outputs[pick, 0] = args[pick, 0]
            statuses[pick] = SlotStatus.FAULT
            codes[pick] = code
    if (pick := rows(_INVALID)) is not None:
        statuses[pick] = SlotStatus.FAULT
        codes[pick] = FaultCode.INVALID_OPCODE
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
    """The ring as the NumPy backend runs it.

    On the host the published words are already where the kernel reads them, and
    the :class:`~pytest_replay.megakernel.kernel.Megakernel` keeps each slot's
    STATUS word and output region, so no second copy of the ring, its outputs or
    its epochs is kept here: copying four arrays of ring size per burst bought
    nothing any caller could observe. The EPOCH word is the device state left.
    """

    __slots__ = ("epoch_word", "mode", "rng", "slots")

    def __init__(self, slots: int, mode: EpochMode, race_seed: int | None) -> None:
        self.mode = mode
        self.slots = slots
        self.epoch_word = 0
        self.rng = None if race_seed is None else np.random.default_rng(race_seed)

    def run_burst(self, words: U32Array, first: int, base_epoch: int) -> BurstOutput:
        slots = self.slots
        n = len(words)
        statuses, codes, outputs = execute_slots(words)
        if self.mode == "ordered":
            # uint32 arithmetic wraps mod 2**32, as the EPOCH word does.
            epochs = np.arange(n, dtype=np.uint32)
            epochs += np.uint32(base_epoch & U32_MASK)
        else:
            if self.rng is None:
                index = np.arange(first, first + n, dtype=np.int64)
                index %= slots
                order = np.argsort(index, kind="stable")
            else:
                order = self.rng.permutation(n)
            ranks = np.empty(n, dtype=np.uint64)
            ranks[order] = np.arange(n, dtype=np.uint64)
            epochs = ((ranks + np.uint64(base_epoch)) & np.uint64(U32_MASK)).astype(np.uint32)
        self.epoch_word = (base_epoch + n) & U32_MASK
        return BurstOutput(epochs, statuses, codes, outputs)
