"""Errors of the megakernel package; every message ends with a ``Fix:`` hint.

A slot that *faults* is not an error here: faults are part of the observable
stream and are reported as :class:`pytest_replay.ringlog.BackendError` values
on the pump result. These classes are for misuse and for unusable inputs.
"""

from __future__ import annotations

from pytest_replay.errors import ReplayError

__all__ = [
    "GpuUnavailable",
    "InvalidPublish",
    "MalformedCapture",
    "MegakernelError",
    "RingFull",
    "UncapturableArguments",
    "UnknownBackend",
]


class MegakernelError(ReplayError):
    """Base of every error the megakernel package raises on purpose."""


class RingFull(MegakernelError):
    """Back-pressure: every slot of the ring is published and not yet consumed."""

    def __init__(self, slots: int, pending: int, requested: int) -> None:
        self.slots = slots
        self.pending = pending
        self.requested = requested
        super().__init__(
            f"megakernel ring is full: {pending} of {slots} slots are published and waiting, "
            f"cannot publish {requested} more",
            fix="call pump() to let the kernel drain the ring, or build the Megakernel "
            "with more slots.",
        )


class InvalidPublish(MegakernelError, ValueError):
    """A publish whose tenant, opcode or arguments do not fit the slot layout."""

    def __init__(self, detail: str, sequence: int) -> None:
        self.detail = detail
        self.sequence = sequence
        super().__init__(
            f"cannot publish (publish #{sequence}): {detail}",
            fix="pass a u32 tenant and opcode and at most 13 u32 argument words.",
        )


class UncapturableArguments(MegakernelError, ValueError):
    """A captured publish uses argument words a VRRL record cannot store."""

    def __init__(self, sequence: int, word: int, value: int) -> None:
        self.sequence = sequence
        self.word = word
        self.value = value
        super().__init__(
            f"publish #{sequence} sets argument word {word} to {value}, but a VRRL record "
            "stores only argument words 0..3, so replay could not reproduce it",
            fix="pack the slot's inputs into the first four argument words, or publish "
            "it on an uncaptured Megakernel.",
        )


class UnknownBackend(MegakernelError, ValueError):
    """A backend name other than ``auto``, ``numpy`` or ``cupy``."""

    def __init__(self, name: object) -> None:
        self.name = name
        super().__init__(
            f"unknown megakernel backend {name!r}",
            fix="use 'auto', 'numpy', 'cupy' or a backend object.",
        )


class GpuUnavailable(MegakernelError):
    """CuPy is not installed or no CUDA GPU is visible."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"the CuPy megakernel backend is unavailable: {reason}",
            fix="pip install '.[gpu]' from a checkout, or pip install 'pytest-detreplay[gpu]' "
            "(or any cupy-cudaXX wheel matching your CUDA), on a machine with an NVIDIA GPU; "
            "or use backend='numpy'.",
        )


class MalformedCapture(MegakernelError):
    """A captured record stream that no megakernel run could have produced."""

    def __init__(self, source: str, record: int, detail: str) -> None:
        self.source = source
        self.record = record
        self.detail = detail
        super().__init__(
            detail,
            where=f"megakernel capture '{source}', record #{record}",
            fix="replay with the slots= and mode= the capture was taken with, or re-record it.",
        )
