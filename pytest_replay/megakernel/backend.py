"""The protocol every megakernel backend implements (selection by name: :mod:`.selection`).

A backend is bound once per :class:`~pytest_replay.megakernel.kernel.Megakernel`
to a ring of a fixed size and epoch mode; the bound :class:`RingDevice` owns the
(possibly device-resident) ring, output regions and EPOCH word. The host hands
it each burst of published slots and gets back what the kernel observably did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from pytest_replay.megakernel.model import EpochMode

__all__ = [
    "BackendLike",
    "BurstOutput",
    "MegakernelBackend",
    "RingDevice",
    "U32Array",
    "byte_run",
    "put_at_ring",
    "ring_indices",
]

U32Array = npt.NDArray[np.uint32]


def ring_indices(first: int, n: int, slots: int) -> npt.NDArray[np.int64]:
    """``(first + i) % slots`` for ``i`` in ``range(n)``, as int64.

    A burst that does not reach the end of the ring is a plain ``arange``: the
    remainder is only taken (one division a row) when the run wraps.
    """
    start = first % slots
    indices = np.arange(start, start + n, dtype=np.int64)
    if start + n > slots:
        indices %= slots
    return indices


def put_at_ring(target: Any, first: int, values: Any) -> None:
    """``target[(first + i) % len(target)] = values[i]`` for each row ``i`` of ``values``.

    A burst of ``n <= len(target)`` consecutive slots is at most two runs of
    the ring, so it is written with two slice copies (memcpy) instead of a
    fancy-indexed scatter, which costs several times more per row.
    """
    slots, n = len(target), len(values)
    if n > slots:
        raise ValueError(f"{n} rows do not fit a ring of {slots} slots")
    start = first % slots
    head = min(n, slots - start)
    target[start : start + head] = values[:head]
    target[: n - head] = values[head:]


def byte_run(rows: Any, offset: int, size: int) -> npt.NDArray[np.void]:
    """The ``size`` bytes at ``offset`` of each row of the C-contiguous array ``rows``
    (2-D, or 1-D structured), as a 1-D array of ``V{size}`` items sharing its memory.

    NumPy copies a ``(n, k)`` block of a wider array a few words at a time, row by
    row; the same bytes as ``n`` items of one void type copy several times faster.
    """
    n = len(rows)
    row_bytes = rows.itemsize * (rows.shape[1] if rows.ndim == 2 else 1)
    if rows.ndim not in (1, 2) or not rows.flags.c_contiguous or size < 0:
        raise ValueError("byte_run needs C-contiguous rows of a 1-D or 2-D array")
    if not 0 <= offset <= offset + size <= row_bytes:
        raise ValueError(f"bytes {offset}..{offset + size} do not fit rows of {row_bytes} bytes")
    if n == 0:
        return np.empty(0, f"V{size}")
    run: npt.NDArray[np.void] = np.ndarray(
        (n,), f"V{size}", buffer=rows, offset=offset, strides=(row_bytes,)
    )
    return run


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
