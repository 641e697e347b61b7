"""One burst as the kernel ran it (:class:`PumpResult`) and a slot that faulted in it.

Apart from :mod:`.kernel`, which produces them, so that :mod:`.stream`, which turns
bursts into the observable stream, and the kernel do not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pytest_replay.formats.vrrl import BackendError
from pytest_replay.megakernel.backend import BurstOutput, U32Array

__all__ = ["PumpResult", "SlotFault"]


@dataclass(frozen=True, slots=True)
class SlotFault:
    """A slot that faulted: where, when, the backend error and the bytes it produced."""

    slot: int
    epoch: int
    sequence: int
    error: BackendError
    output: bytes


@dataclass(frozen=True, slots=True, eq=False)
class PumpResult:
    """One burst as the kernel ran it; row ``k`` is the ``k``-th slot published.

    ``words`` is the ``(n, SLOT_WORDS)`` slot content as published, ``slots``
    the ring indices, ``sequences`` the publish sequence numbers (u64, counted
    from 0 over the megakernel's life) and ``output`` the kernel's results.
    """

    base_epoch: int
    words: U32Array
    slots: npt.NDArray[np.int64]
    sequences: npt.NDArray[np.uint64]
    output: BurstOutput
    faults: tuple[SlotFault, ...]

    def __len__(self) -> int:
        return len(self.words)
