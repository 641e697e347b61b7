"""The GPU backend: the megakernel as a real CUDA kernel launched through ``cupy.RawKernel``.

One thread per ring slot; the ring, output regions, per-slot epochs and fault
codes and the EPOCH word all live in device memory. CuPy is imported only
when this backend is constructed, so the rest of the package never needs it;
any ``cupy-cudaXX`` wheel works.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from pytest_replay.errors import render_error
from pytest_replay.megakernel.backend import BurstOutput, RingDevice, U32Array
from pytest_replay.megakernel.errors import GpuUnavailable
from pytest_replay.megakernel.model import (
    ARG_WORDS,
    ARGS_OFFSET,
    OPCODE_WORD,
    OUTPUT_WORDS,
    SLOT_WORDS,
    STATUS_WORD,
    EpochMode,
    FaultCode,
    Opcode,
    SlotStatus,
)
from pytest_replay.megakernel.numpy_backend import FNV_OFFSET, FNV_PRIME

__all__ = [
    "KERNEL_NAME",
    "KERNEL_SOURCE",
    "CupyBackend",
    "KernelBuffers",
    "KernelLaunch",
    "KernelRing",
    "kernel_buffers",
    "kernel_launch",
    "probe_cupy",
]

KERNEL_NAME: Final = "megakernel_pump"

# The constants are spliced in from model.py so the kernel and the NumPy
# reference cannot drift apart on a number.
KERNEL_SOURCE: Final = (
    r"""
#define SLOT_WORDS {slot_words}u
#define OUTPUT_WORDS {output_words}u
#define ARG_WORDS {arg_words}u
#define STATUS_WORD {status_word}u
#define OPCODE_WORD {opcode_word}u
#define ARGS_OFFSET {args_offset}u

extern "C" __global__ void megakernel_pump(
    unsigned int* __restrict__ ring,
    unsigned int* __restrict__ outputs,
    unsigned int* __restrict__ slot_epochs,
    unsigned int* __restrict__ fault_codes,
    unsigned int* epoch_word,
    const unsigned int slots,
    const unsigned int first,
    const unsigned int base_epoch,
    const int atomic_mode)
{{
    const unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= slots) return;
    unsigned int* slot = ring + (size_t)i * SLOT_WORDS;
    if (slot[STATUS_WORD] != {published}u) return;

    const unsigned int opcode = slot[OPCODE_WORD];
    const unsigned int* a = slot + ARGS_OFFSET;
    unsigned int out[OUTPUT_WORDS];
    for (unsigned int k = 0; k < OUTPUT_WORDS; ++k) out[k] = 0u;
    unsigned int status = {done}u;
    unsigned int code = 0u;

    switch (opcode) {{
    case {op_nop}u:
        break;
    case {op_add}u:
        out[0] = a[0] + a[1];
        break;
    case {op_mul}u:
        out[0] = a[0] * a[1];
        break;
    case {op_xor}u:
        out[0] = a[0] ^ a[1];
        break;
    case {op_hash}u: {{
        unsigned int h = {fnv_offset}u;
        for (unsigned int w = 0; w < ARG_WORDS; ++w) {{
            const unsigned int v = a[w];
            for (unsigned int b = 0; b < 4u; ++b) {{
                h ^= (v >> (8u * b)) & 0xFFu;
                h *= {fnv_prime}u;
            }}
        }}
        out[0] = h;
        break;
    }}
    case {op_copy}u:
        for (unsigned int w = 0; w < ARG_WORDS; ++w) out[w] = a[w];
        break;
    case {op_device_lost}u:
        out[0] = a[0];
        status = {fault}u;
        code = {code_device_lost}u;
        break;
    case {op_queue_timeout}u:
        out[0] = a[0];
        status = {fault}u;
        code = {code_queue_timeout}u;
        break;
    case {op_program_trap}u:
        out[0] = a[0];
        status = {fault}u;
        code = {code_program_trap}u;
        break;
    default:
        status = {fault}u;
        code = {code_invalid_opcode}u;
        break;
    }}

    unsigned int* o = outputs + (size_t)i * OUTPUT_WORDS;
    for (unsigned int k = 0; k < OUTPUT_WORDS; ++k) o[k] = out[k];

    unsigned int epoch;
    if (atomic_mode) {{
        // Completion order decides the epoch: deliberately racy across warps.
        epoch = atomicAdd(epoch_word, 1u);
    }} else {{
        epoch = base_epoch + (i + slots - first) % slots;
    }}
    slot_epochs[i] = epoch;
    fault_codes[i] = code;
    __threadfence();
    slot[STATUS_WORD] = status;
}}
"""
).format(
    slot_words=SLOT_WORDS,
    output_words=OUTPUT_WORDS,
    arg_words=ARG_WORDS,
    status_word=STATUS_WORD,
    opcode_word=OPCODE_WORD,
    args_offset=ARGS_OFFSET,
    published=int(SlotStatus.PUBLISHED),
    done=int(SlotStatus.DONE),
    fault=int(SlotStatus.FAULT),
    op_nop=int(Opcode.NOP),
    op_add=int(Opcode.ADD),
    op_mul=int(Opcode.MUL),
    op_xor=int(Opcode.XOR),
    op_hash=int(Opcode.HASH),
    op_copy=int(Opcode.COPY),
    op_device_lost=int(Opcode.FAULT_DEVICE_LOST),
    op_queue_timeout=int(Opcode.FAULT_QUEUE_TIMEOUT),
    op_program_trap=int(Opcode.FAULT_PROGRAM_TRAP),
    code_device_lost=int(FaultCode.DEVICE_LOST),
    code_queue_timeout=int(FaultCode.QUEUE_TIMEOUT),
    code_program_trap=int(FaultCode.PROGRAM_TRAP),
    code_invalid_opcode=int(FaultCode.INVALID_OPCODE),
    fnv_offset=FNV_OFFSET,
    fnv_prime=FNV_PRIME,
)


def probe_cupy() -> Any:
    """Import CuPy and check that it sees a GPU; raise :class:`GpuUnavailable` if not."""
    try:
        import cupy
    except ImportError as exc:
        raise GpuUnavailable(f"CuPy is not installed ({exc})") from exc
    except Exception as exc:  # a broken CUDA install fails inside cupy's own import
        raise GpuUnavailable(f"CuPy failed to import ({type(exc).__name__}: {exc})") from exc
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:
        raise GpuUnavailable(
            f"CuPy found no usable CUDA driver ({type(exc).__name__}: {exc})"
        ) from exc
    if count < 1:
        raise GpuUnavailable("CuPy is installed but no CUDA GPU is visible")
    return cupy


class CupyBackend:
    """Runs each burst as one launch of :data:`KERNEL_SOURCE`, one thread per slot.

    Construction raises :class:`GpuUnavailable` (naming ``pip install '.[gpu]'``)
    when CuPy is missing or sees no GPU.
    """

    __slots__ = ("_cupy", "_kernel", "block_size", "device")

    def __init__(self, *, device: int = 0, block_size: int = 256) -> None:
        if not 32 <= block_size <= 1024 or block_size % 32:
            raise ValueError(
                render_error(
                    f"block_size {block_size} is not a multiple of 32 in 32..1024",
                    fix="use a warp multiple such as 128 or 256.",
                )
            )
        self._cupy = probe_cupy()
        self.device = device
        self.block_size = block_size
        self._kernel: Any = None

    @property
    def name(self) -> str:
        return "cupy"

    def device_name(self) -> str:
        """The GPU's marketing name, for reports."""
        props = self._cupy.cuda.runtime.getDeviceProperties(self.device)
        raw = props["name"]
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    def bind(self, slots: int, mode: EpochMode) -> RingDevice:
        cp = self._cupy
        with cp.cuda.Device(self.device):
            if self._kernel is None:
                self._kernel = cp.RawKernel(KERNEL_SOURCE, KERNEL_NAME)
            return KernelRing(
                cp,
                self._kernel,
                slots=slots,
                mode=mode,
                block_size=self.block_size,
                to_host=cp.asnumpy,
                scope=lambda: cp.cuda.Device(self.device),
            )

    def __repr__(self) -> str:
        return f"CupyBackend(device={self.device}, block_size={self.block_size})"


@dataclass(frozen=True, slots=True, eq=False)
class KernelBuffers:
    """The arrays one launch of :data:`KERNEL_SOURCE` works on, in the order it takes them.

    They are arrays of one array module: CuPy device arrays for :class:`CupyBackend`,
    NumPy arrays for the CPU harness in the test suite, which runs the same source.
    """

    ring: Any  # (slots, SLOT_WORDS) u32
    outputs: Any  # (slots, OUTPUT_WORDS) u32
    slot_epochs: Any  # (slots,) u32
    fault_codes: Any  # (slots,) u32
    epoch_word: Any  # (1,) u32, the EPOCH word atomic mode counts with


@dataclass(frozen=True, slots=True, eq=False)
class KernelLaunch:
    """One launch as ``cupy.RawKernel`` takes it: ``kernel(grid, block, args)``.

    ``args`` follow the kernel's parameter list: the five :class:`KernelBuffers`
    arrays, then ``slots``, ``first`` and ``base_epoch`` as ``np.uint32`` and
    ``atomic_mode`` as ``np.int32`` (CuPy passes a scalar by its NumPy dtype, so the
    dtypes are part of the contract).
    """

    grid: tuple[int]
    block: tuple[int]
    args: tuple[Any, ...]


def kernel_buffers(xp: Any, slots: int) -> KernelBuffers:
    """Zeroed buffers for a ring of ``slots`` slots, allocated with array module ``xp``."""
    return KernelBuffers(
        ring=xp.zeros((slots, SLOT_WORDS), dtype=xp.uint32),
        outputs=xp.zeros((slots, OUTPUT_WORDS), dtype=xp.uint32),
        slot_epochs=xp.zeros(slots, dtype=xp.uint32),
        fault_codes=xp.zeros(slots, dtype=xp.uint32),
        epoch_word=xp.zeros(1, dtype=xp.uint32),
    )


def kernel_launch(
    buffers: KernelBuffers, *, first: int, base_epoch: int, atomic: bool, block_size: int
) -> KernelLaunch:
    """The grid, block and arguments of the launch that runs one burst over ``buffers``.

    One thread per ring slot, rounded up to whole blocks; threads past the ring return.
    """
    slots = len(buffers.ring)
    grid = (slots + block_size - 1) // block_size
    return KernelLaunch(
        grid=(grid,),
        block=(block_size,),
        args=(
            buffers.ring,
            buffers.outputs,
            buffers.slot_epochs,
            buffers.fault_codes,
            buffers.epoch_word,
            np.uint32(slots),
            np.uint32(first),
            np.uint32(base_epoch),
            np.int32(1 if atomic else 0),
        ),
    )


KernelCall = Callable[[tuple[int], tuple[int], tuple[Any, ...]], object]


class KernelRing:
    """A ring whose bursts run :data:`KERNEL_SOURCE`: the launch contract in one place.

    ``xp`` is the array module the buffers live in, ``kernel`` is called as
    ``kernel(grid, block, args)`` (a ``cupy.RawKernel``, or the CPU harness's
    compiled kernel), ``to_host`` copies an ``xp`` array into a new NumPy array,
    and ``scope`` is entered around each burst (CuPy's device context).
    """

    __slots__ = ("atomic", "block_size", "buffers", "kernel", "scope", "to_host", "xp")

    def __init__(
        self,
        xp: Any,
        kernel: KernelCall,
        *,
        slots: int,
        mode: EpochMode,
        block_size: int,
        to_host: Callable[[Any], U32Array],
        scope: Callable[[], AbstractContextManager[object]] = nullcontext,
    ) -> None:
        self.xp = xp
        self.kernel = kernel
        self.block_size = block_size
        self.atomic = mode == "atomic"
        self.to_host = to_host
        self.scope = scope
        with scope():
            self.buffers = kernel_buffers(xp, slots)

    def _spans(self, first: int, n: int) -> list[tuple[int, int]]:
        slots = len(self.buffers.ring)
        end = first + n
        if end <= slots:
            return [(first, end)]
        return [(first, slots), (0, end - slots)]

    def _download(self, array: Any, spans: list[tuple[int, int]]) -> U32Array:
        parts = [self.to_host(array[start:stop]) for start, stop in spans]
        result: U32Array = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return result

    def run_burst(self, words: U32Array, first: int, base_epoch: int) -> BurstOutput:
        buffers = self.buffers
        spans = self._spans(first, len(words))
        with self.scope():
            taken = 0
            for start, stop in spans:
                count = stop - start
                buffers.ring[start:stop] = self.xp.asarray(words[taken : taken + count])
                taken += count
            buffers.epoch_word.fill(np.uint32(base_epoch))
            launch = kernel_launch(
                buffers,
                first=first,
                base_epoch=base_epoch,
                atomic=self.atomic,
                block_size=self.block_size,
            )
            self.kernel(launch.grid, launch.block, launch.args)
            statuses = self._download(buffers.ring[:, STATUS_WORD], spans)
            return BurstOutput(
                epochs=self._download(buffers.slot_epochs, spans),
                statuses=np.ascontiguousarray(statuses),
                fault_codes=self._download(buffers.fault_codes, spans),
                outputs=self._download(buffers.outputs, spans),
            )
