"""The protocol every megakernel backend implements (selection by name: :mod:`.selection`).

A backend is bound once per :class:`~pytest_replay.megakernel.kernel.Megakernel`
to a ring of a fixed size and epoch mode; the bound :class:`RingDevice` owns the
(possibly device-resident) ring, output regions and EPOCH word. The host hands
it each burst of published slots and gets back what the kernel observably did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from pytest_replay.megakernel.model import EpochMode

__all__ = [
    "BackendLike",
    "BurstOutput",
    "MegakernelBackend",
    "RingDevice",
    "U32Array",
]

U32Array = npt.NDArray[np.uint32]


@dataclass(frozen=True, slots=True, eq=False)
class BurstOutput:
    """What the kernel did to one burst, row ``k`` being the ``k``-th published slot.

    ``epochs``, ``statuses`` and ``fault_codes`` are ``(n,)`` u32 arrays and
    ``outputs`` is ``(n, OUTPUT_WORDS)`` u32, all host-resident.
    """

    epochs: U32Array
    statuses: U32Array
    fault_codes: U32Array
    outputs: U32Array


class RingDevice(Protocol):
    """A ring bound to a backend: runs bursts of published slots."""

    def run_burst(self, words: U32Array, first: int, base_epoch: int) -> BurstOutput:
        """Publish ``words`` (``(n, SLOT_WORDS)``, STATUS = PUBLISHED) into ring slots
        ``first, first + 1, ...`` (mod the ring size), run the kernel over the ring with
        the EPOCH word at ``base_epoch``, and return the burst's results.

        ``n`` is between 1 and the ring size; ``first`` is a valid slot index.
        """
        ...


class MegakernelBackend(Protocol):
    """A way to run the megakernel: NumPy on the host, or CUDA through CuPy."""

    @property
    def name(self) -> str:
        """Short name used in reports and recordings (``"numpy"``, ``"cupy"``)."""
        ...

    def bind(self, slots: int, mode: EpochMode) -> RingDevice:
        """Allocate a ring of ``slots`` slots that assigns epochs in ``mode``."""
        ...


BackendLike = MegakernelBackend | str
