"""The megakernel model: slot layout, statuses, opcodes, fault codes and epoch modes.

A ring holds ``slots`` slots of :data:`SLOT_WORDS` little-endian u32 words::

    word 0        STATUS   EMPTY -> PUBLISHED (host) -> DONE | FAULT (kernel)
    word 1        TENANT   opaque tenant id
    word 2        OPCODE   one of :class:`Opcode`; anything else faults as a program bug
    words 3..15   ARGS     13 argument words

Each slot owns an output region of :data:`OUTPUT_WORDS` u32 words (64 bytes: one
BLAKE3 block) that the kernel clears and then fills. A single EPOCH word counts
completed slots; every completed slot is stamped with the epoch it completed in.
Every value is u32 and wraps modulo 2**32, on every backend.
"""

from __future__ import annotations

import enum
from typing import Final, Literal

from pytest_replay.formats.vrrl import BackendError, ReplayFailureClass

__all__ = [
    "ARGS_OFFSET",
    "ARG_WORDS",
    "CAPTURED_ARGS",
    "EPOCH_MODES",
    "MAX_RING_SLOTS",
    "OPCODE_WORD",
    "OUTPUT_BYTES",
    "OUTPUT_WORDS",
    "SLOT_WORDS",
    "STATUS_WORD",
    "TENANT_WORD",
    "U32_MASK",
    "EpochMode",
    "FaultCode",
    "Opcode",
    "SlotStatus",
    "fault_class",
    "fault_error",
]

SLOT_WORDS: Final = 16
STATUS_WORD: Final = 0
TENANT_WORD: Final = 1
OPCODE_WORD: Final = 2
ARGS_OFFSET: Final = 3
ARG_WORDS: Final = 13
#: Argument words a VRRL record stores; a captured slot must leave the rest zero.
CAPTURED_ARGS: Final = 4
OUTPUT_WORDS: Final = 16
OUTPUT_BYTES: Final = 4 * OUTPUT_WORDS
#: Upper bound on ``slots`` so a ring allocation is never sized by an unchecked number.
MAX_RING_SLOTS: Final = 1 << 24
U32_MASK: Final = 0xFFFF_FFFF

EpochMode = Literal["ordered", "atomic"]
EPOCH_MODES: Final[tuple[EpochMode, ...]] = ("ordered", "atomic")


class SlotStatus(enum.IntEnum):
    """The STATUS word of a slot."""

    EMPTY = 0
    PUBLISHED = 1
    DONE = 2
    FAULT = 3


class Opcode(enum.IntEnum):
    """The opcode set. ``a`` is the slot's 13 argument words, ``out`` its output region.

    ========================  ====================================================
    NOP                       nothing is written
    ADD                       ``out[0] = a[0] + a[1]`` (mod 2**32)
    MUL                       ``out[0] = a[0] * a[1]`` (mod 2**32)
    XOR                       ``out[0] = a[0] ^ a[1]``
    HASH                      ``out[0]`` = FNV-1a (32-bit) over the 52 bytes of ``a``
    COPY                      ``out[0:13] = a``
    FAULT_DEVICE_LOST         ``out[0] = a[0]``, then FAULT with ``DEVICE_LOST``
    FAULT_QUEUE_TIMEOUT       ``out[0] = a[0]``, then FAULT with ``QUEUE_TIMEOUT``
    FAULT_PROGRAM_TRAP        ``out[0] = a[0]``, then FAULT with ``PROGRAM_TRAP``
    (any other value)         nothing is written; FAULT with ``INVALID_OPCODE``
    ========================  ====================================================
    """

    NOP = 0x00
    ADD = 0x01
    MUL = 0x02
    XOR = 0x03
    HASH = 0x04
    COPY = 0x05
    FAULT_DEVICE_LOST = 0xF1
    FAULT_QUEUE_TIMEOUT = 0xF2
    FAULT_PROGRAM_TRAP = 0xF3


class FaultCode(enum.IntEnum):
    """Stable backend error codes a faulted slot reports (0 means no fault)."""

    NONE = 0
    DEVICE_LOST = 0x0101
    QUEUE_TIMEOUT = 0x0201
    PROGRAM_TRAP = 0x0301
    INVALID_OPCODE = 0x0302


_FAULT_CLASSES: Final = {
    FaultCode.DEVICE_LOST: ReplayFailureClass.DEVICE_LOSS,
    FaultCode.QUEUE_TIMEOUT: ReplayFailureClass.TRANSIENT_QUEUE,
    FaultCode.PROGRAM_TRAP: ReplayFailureClass.PROGRAM_BUG,
    FaultCode.INVALID_OPCODE: ReplayFailureClass.PROGRAM_BUG,
}


def fault_class(code: int) -> ReplayFailureClass:
    """The recovery class of a fault code; unknown non-zero codes are UNCLASSIFIED."""
    if code == FaultCode.NONE:
        return ReplayFailureClass.NONE
    try:
        return _FAULT_CLASSES[FaultCode(code)]
    except ValueError:
        return ReplayFailureClass.UNCLASSIFIED


def fault_error(code: int, slot: int, epoch: int, opcode: int) -> BackendError:
    """The :class:`BackendError` a slot that faulted with ``code`` stands for.

    The messages carry the phrases :func:`pytest_replay.ringlog.classify_backend_error`
    recognises, and the class is also given explicitly, so both routes agree.
    """
    where = f"slot {slot} (epoch {epoch}, opcode {opcode:#x})"
    if code == FaultCode.DEVICE_LOST:
        message = f"DeviceLost: the device context was lost while running {where}"
    elif code == FaultCode.QUEUE_TIMEOUT:
        message = f"queue full: {where} timed out waiting for a queue entry"
    elif code == FaultCode.PROGRAM_TRAP:
        message = f"illegal instruction: the kernel program trapped in {where}"
    elif code == FaultCode.INVALID_OPCODE:
        message = f"invalid opcode {opcode:#x} in slot {slot} (epoch {epoch})"
    else:
        message = f"unknown fault code {code:#x} reported by {where}"
    return BackendError(message, code=code, failure_class=fault_class(code))
