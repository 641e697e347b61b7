"""The observable stream of a megakernel run and the first divergence between two streams.

The stream lists every completed slot in epoch order: the epoch, the ring slot,
its terminal status, its fault code and the 64-byte output region, whose
digest is :func:`pytest_replay.ringlog.output_digest` (BLAKE3, first 8 bytes) -
the same digest failure evidence in a VRRL record carries. Digests are taken
lazily; comparisons run on the raw columns, vectorised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from pytest_replay.divergence import Divergence
from pytest_replay.formats.vrrl import ReplayFailureClass, output_digest
from pytest_replay.megakernel.backend import U32Array
from pytest_replay.megakernel.burst import PumpResult
from pytest_replay.megakernel.model import (
    OPCODE_WORD,
    OUTPUT_WORDS,
    TENANT_WORD,
    SlotStatus,
    fault_class,
)

__all__ = [
    "ObservedEpoch",
    "ObservedStream",
    "diff_streams",
    "stream_from_bursts",
]


@dataclass(frozen=True, slots=True)
class ObservedEpoch:
    """One completion as the host observes it."""

    epoch: int
    slot: int
    status: SlotStatus
    digest: int
    failure_class: ReplayFailureClass
    backend_code: int

    def describe(self) -> str:
        failure = (
            ""
            if self.backend_code == 0
            else f", {self.failure_class.name} code {self.backend_code:#x}"
        )
        return f"slot {self.slot} {self.status.name} digest {self.digest:#018x}{failure}"


@dataclass(frozen=True, slots=True, eq=False)
class ObservedStream:
    """Columns of the observable stream, row ``k`` being the ``k``-th epoch observed."""

    epochs: U32Array
    slots: npt.NDArray[np.int64]
    tenants: U32Array
    opcodes: U32Array
    statuses: U32Array
    fault_codes: U32Array
    outputs: U32Array

    def __len__(self) -> int:
        return len(self.epochs)

    def output_bytes(self, index: int) -> bytes:
        """The 64 output bytes of the ``index``-th completion."""
        return bytes(self.outputs[index].astype("<u4").tobytes())

    def entry(self, index: int) -> ObservedEpoch:
        """The ``index``-th completion, with its output digest."""
        code = int(self.fault_codes[index])
        return ObservedEpoch(
            epoch=int(self.epochs[index]),
            slot=int(self.slots[index]),
            status=SlotStatus(int(self.statuses[index])),
            digest=output_digest(self.output_bytes(index)),
            failure_class=fault_class(code),
            backend_code=code,
        )

    def entries(self) -> list[ObservedEpoch]:
        """Every completion in epoch order (digests computed here: about 1 us each)."""
        return [self.entry(index) for index in range(len(self))]

    def digests(self) -> npt.NDArray[np.uint64]:
        """The output digest of every completion, in epoch order."""
        data = np.ascontiguousarray(self.outputs, dtype="<u4").tobytes()
        width = 4 * OUTPUT_WORDS
        return np.fromiter(
            (output_digest(data[start : start + width]) for start in range(0, len(data), width)),
            dtype=np.uint64,
            count=len(self),
        )


def _empty_stream() -> ObservedStream:
    u32 = np.zeros(0, dtype=np.uint32)
    return ObservedStream(
        u32, np.zeros(0, np.int64), u32, u32, u32, u32, np.zeros((0, OUTPUT_WORDS), np.uint32)
    )


def stream_from_bursts(
    bursts: Sequence[tuple[PumpResult, npt.NDArray[np.intp]]],
) -> ObservedStream:
    """Concatenate pump results, each reordered by its epoch order, into one stream."""
    if not bursts:
        return _empty_stream()

    parts = [
        (
            result.output.epochs[order],
            result.slots[order],
            result.words[order, TENANT_WORD],
            result.words[order, OPCODE_WORD],
            result.output.statuses[order],
            result.output.fault_codes[order],
            result.output.outputs[order],
        )
        for result, order in bursts
    ]
    epochs, slots, tenants, opcodes, statuses, codes, outputs = (
        np.concatenate(column) for column in zip(*parts, strict=True)
    )
    return ObservedStream(epochs, slots, tenants, opcodes, statuses, codes, outputs)


_COLUMNS: Final = ("epochs", "slots", "tenants", "opcodes", "statuses", "fault_codes")


def diff_streams(expected: ObservedStream, actual: ObservedStream) -> Divergence | None:
    """The first completion at which two streams differ, or ``None`` when identical.

    Compares epoch, slot, tenant, opcode, status, fault code and all 16 output
    words of every completion. The divergence's sides are the two completions
    (:class:`ObservedEpoch`, which carry their digests); a ``length`` divergence
    when one stream has extra completions from ``index`` on (the missing side is
    ``None``).
    """
    common = min(len(expected), len(actual))
    differs = np.zeros(common, dtype=bool)
    for name in _COLUMNS:
        differs |= getattr(expected, name)[:common] != getattr(actual, name)[:common]
    differs |= (expected.outputs[:common] != actual.outputs[:common]).any(axis=1)
    if differs.any():
        index = int(np.argmax(differs))
        field = "outputs"
        for name in _COLUMNS:
            if getattr(expected, name)[index] != getattr(actual, name)[index]:
                field = name
                break
        want, got = expected.entry(index), actual.entry(index)
        return Divergence(index, field, want, got, at=_completion(index, want, got))
    if len(expected) != len(actual):
        left = expected.entry(common) if common < len(expected) else None
        right = actual.entry(common) if common < len(actual) else None
        return Divergence(
            common, "length", left, right, "length", at=_completion(common, left, right)
        )
    return None


def _completion(index: int, expected: ObservedEpoch | None, actual: ObservedEpoch | None) -> str:
    """``completion #index (epoch E)``: where two streams differ, in their own words."""
    epoch = expected.epoch if expected is not None else None
    if epoch is None and actual is not None:
        epoch = actual.epoch
    return f"completion #{index} (epoch {epoch})"
