"""The CUDA kernel executed on the CPU, differentially against the NumPy reference.

``KERNEL_SOURCE`` uses no shared memory and no barriers, so the very string
``CupyBackend`` hands to ``cupy.RawKernel`` compiles as C++ once a shim header
defines ``__global__``, the thread coordinates, ``atomicAdd`` and
``__threadfence``. A generated driver runs the threads one after another in an
order the test draws from a seed, and receives its arguments as CUDA's
``cuLaunchKernel`` does: one pointer per kernel parameter. The ring it runs on is
``cupy_backend.KernelRing`` over NumPy arrays, so the buffers, the grid, the
block and the argument list are the ones ``CupyBackend`` launches with; the
harness checks every argument against the kernel's parameter list as written
in the source.

Where no C++ compiler is on ``PATH`` this is a failure naming the fix, never a skip:
a kernel check that did not run proves nothing.
"""

from __future__ import annotations

import ctypes
import itertools
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pytest_replay.megakernel import (
    Megakernel,
    MegakernelCapture,
    NumpyBackend,
    Opcode,
    differential_replay,
    open_capture,
    replay_capture,
    replay_stream,
)
from pytest_replay.megakernel.backend import RingDevice, U32Array
from pytest_replay.megakernel.cupy_backend import (
    KERNEL_NAME,
    KERNEL_SOURCE,
    KernelRing,
    kernel_buffers,
    kernel_launch,
)
from pytest_replay.megakernel.model import ARG_WORDS, OUTPUT_WORDS, SLOT_WORDS, EpochMode

COMPILERS = ("c++", "g++", "clang++")

# What the CUDA headers would provide, for one host thread at a time. The driver
# sets the coordinates before it calls the kernel for each thread.
SHIM_HEADER = r"""
#include <cstddef>
struct replay_dim3 { unsigned int x, y, z; };
static replay_dim3 gridDim, blockDim, blockIdx, threadIdx;
#define __global__
static inline unsigned int atomicAdd(unsigned int* address, unsigned int value) {
    const unsigned int old = *address;
    *address = old + value;
    return old;
}
static inline void __threadfence() {}
"""


@dataclass(frozen=True, slots=True)
class KernelParameter:
    """One parameter of the kernel as declared in ``KERNEL_SOURCE``."""

    name: str
    c_type: str  # "unsigned int" or "int"
    pointer: bool

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(np.uint32 if self.c_type == "unsigned int" else np.int32)


def kernel_parameters(source: str, name: str) -> tuple[KernelParameter, ...]:
    """The parameter list of kernel ``name``, read from the CUDA source."""
    found = re.search(rf'extern "C" __global__ void {name}\((.*?)\)\s*\{{', source, re.DOTALL)
    assert found is not None, f'no extern "C" __global__ {name}(...) in the kernel source'
    parameters = []
    for declaration in found.group(1).split(","):
        words = declaration.replace("*", " * ").split()
        pointer = "*" in words
        c_type = " ".join(w for w in words[:-1] if w not in ("const", "__restrict__", "*"))
        assert c_type in ("unsigned int", "int"), f"parameter {declaration.strip()!r}"
        parameters.append(KernelParameter(words[-1], c_type, pointer))
    return tuple(parameters)


PARAMETERS = kernel_parameters(KERNEL_SOURCE, KERNEL_NAME)


def driver_source(parameters: tuple[KernelParameter, ...]) -> str:
    """C++ that runs every thread of a 1-D launch in the order given, one at a time."""
    forwarded = ", ".join(
        f"({p.c_type}*)args[{i}]" if p.pointer else f"*(const {p.c_type}*)args[{i}]"
        for i, p in enumerate(parameters)
    )
    return (
        'extern "C" void replay_run_threads(unsigned int grid, unsigned int block,\n'
        "                                   const unsigned int* order, void** args) {\n"
        "    gridDim = {grid, 1u, 1u};\n"
        "    blockDim = {block, 1u, 1u};\n"
        "    const std::size_t threads = (std::size_t)grid * block;\n"
        "    for (std::size_t k = 0; k < threads; ++k) {\n"
        "        blockIdx = {order[k] / block, 0u, 0u};\n"
        "        threadIdx = {order[k] % block, 0u, 0u};\n"
        f"        {KERNEL_NAME}({forwarded});\n"
        "    }\n"
        "}\n"
    )


def find_compiler() -> str | None:
    for name in COMPILERS:
        path = shutil.which(name)
        if path is not None:
            return path
    return None


@pytest.fixture(scope="module")
def kernel_library(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    """``KERNEL_SOURCE`` + shim + driver compiled into a shared library in a temp folder."""
    compiler = find_compiler()
    if compiler is None:
        pytest.fail(
            f"no C++ compiler ({', '.join(COMPILERS)}) on PATH to run the CUDA kernel. "
            "Fix: install one (Debian: apt install g++).",
            pytrace=False,
        )
    folder = tmp_path_factory.mktemp("kernel_cpu")
    (folder / "cuda_shim.h").write_text(SHIM_HEADER)
    source = folder / "megakernel_cpu.cpp"
    source.write_text('#include "cuda_shim.h"\n' + KERNEL_SOURCE + driver_source(PARAMETERS))
    library = folder / "megakernel_cpu.so"
    command = [compiler, "-std=c++17", "-O1", "-Wall", "-Wextra", "-Werror"]
    command += ["-shared", "-fPIC", "-o", str(library), str(source)]
    built = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if built.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed:\n{built.stdout}{built.stderr}", pytrace=False)
    loaded = ctypes.CDLL(str(library))
    loaded.replay_run_threads.argtypes = [
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_void_p),
    ]
    loaded.replay_run_threads.restype = None
    return loaded


# Elements each buffer must hold for a ring of `slots` slots: the harness refuses a
# launch that would let the kernel write past an array.
BUFFER_WORDS: dict[str, Callable[[int], int]] = {
    "ring": lambda slots: slots * SLOT_WORDS,
    "outputs": lambda slots: slots * OUTPUT_WORDS,
    "slot_epochs": lambda slots: slots,
    "fault_codes": lambda slots: slots,
    "epoch_word": lambda slots: 1,
}


class CpuKernel:
    """Called as ``cupy.RawKernel`` is, ``kernel(grid, block, args)``; runs the threads on
    the CPU in slot order, or in an order drawn from ``rng`` for each launch."""

    def __init__(self, library: ctypes.CDLL, rng: np.random.Generator | None) -> None:
        self.library = library
        self.rng = rng

    def __call__(self, grid: tuple[int], block: tuple[int], args: tuple[Any, ...]) -> None:
        assert len(grid) == 1 and len(block) == 1, f"a 1-D launch, not {grid} x {block}"
        assert len(args) == len(PARAMETERS), f"{len(args)} arguments for {len(PARAMETERS)}"
        named = {p.name: arg for p, arg in zip(PARAMETERS, args, strict=True)}
        slots = int(named["slots"])
        pointers: list[int] = []
        scalars = []  # each scalar travels as a pointer to its bytes, as CUDA takes it
        for parameter, arg in zip(PARAMETERS, args, strict=True):
            if parameter.pointer:
                assert isinstance(arg, np.ndarray), f"{parameter.name} is a {type(arg)}"
                assert arg.dtype == parameter.dtype and arg.flags.c_contiguous, parameter.name
                assert arg.flags.writeable, parameter.name
                assert arg.size >= BUFFER_WORDS[parameter.name](slots), parameter.name
                pointers.append(arg.ctypes.data)
            else:
                # CuPy passes a scalar with its own NumPy dtype's size: it must be exact.
                assert type(arg) is parameter.dtype.type, (parameter.name, type(arg))
                holder = np.array([arg], dtype=parameter.dtype)
                scalars.append(holder)
                pointers.append(holder.ctypes.data)
        threads = grid[0] * block[0]
        assert threads >= slots, f"{threads} threads for {slots} slots"
        order = np.arange(threads, dtype=np.uint32)
        if self.rng is not None:
            order = self.rng.permutation(order)
        packed = (ctypes.c_void_p * len(pointers))(*pointers)
        self.library.replay_run_threads(grid[0], block[0], order.ctypes.data, packed)


class CpuKernelBackend:
    """A megakernel backend whose bursts run the CUDA kernel on the CPU.

    ``thread_seed`` permutes the thread order of every launch (a fresh generator per
    bound ring, so a replay sees the same orders); ``None`` runs threads in index order.
    """

    def __init__(
        self, library: ctypes.CDLL, *, block_size: int = 32, thread_seed: int | None = None
    ) -> None:
        self.library = library
        self.block_size = block_size
        self.thread_seed = thread_seed

    @property
    def name(self) -> str:
        return "cuda-on-cpu"

    def bind(self, slots: int, mode: EpochMode) -> RingDevice:
        rng = None if self.thread_seed is None else np.random.default_rng(self.thread_seed)
        return KernelRing(
            np,
            CpuKernel(self.library, rng),
            slots=slots,
            mode=mode,
            block_size=self.block_size,
            to_host=copy_to_host,
        )


def copy_to_host(array: Any) -> U32Array:
    copied: U32Array = np.array(array, dtype=np.uint32)
    return copied


# ------------------------------------------------------------------ programs

# Every opcode, plus values the kernel must fault as invalid.
opcodes = st.sampled_from([*[int(op) for op in Opcode], 0x06, 0xF4, 0x1234, 0xFFFF_FFFF])
u32 = st.integers(0, 2**32 - 1)
Burst = list[tuple[int, int, list[int]]]


def programs(arg_words: int, slots: int) -> st.SearchStrategy[list[Burst]]:
    """Bursts of (tenant, opcode, args), each at most a ring's worth of slots."""
    step = st.tuples(u32, opcodes, st.lists(u32, max_size=arg_words))
    return st.lists(st.lists(step, min_size=1, max_size=slots), min_size=1, max_size=6)


def as_columns(burst: Burst) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    args = np.zeros((len(burst), ARG_WORDS), dtype=np.uint32)
    for row, (_tenant, _opcode, words) in enumerate(burst):
        args[row, : len(words)] = words
    tenants = np.array([t for t, _, _ in burst], dtype=np.uint32)
    return tenants, np.array([o for _, o, _ in burst], dtype=np.uint32), args


@st.composite
def kernel_runs(draw: st.DrawFn) -> tuple[int, int, int, list[Burst]]:
    """(slots, block size, thread seed, program) with 13-word arguments."""
    slots = draw(st.integers(1, 80))
    block_size = draw(st.sampled_from([32, 64]))
    return slots, block_size, draw(st.integers(0, 2**32 - 1)), draw(programs(ARG_WORDS, slots))


@st.composite
def captured_runs(draw: st.DrawFn) -> tuple[int, int, list[Burst]]:
    """(slots, thread seed, program) whose arguments fit a VRRL record (4 words)."""
    slots = draw(st.integers(2, 40))
    return slots, draw(st.integers(0, 2**32 - 1)), draw(programs(4, slots))


def run_bursts(megakernel: Megakernel | MegakernelCapture, program: list[Burst]) -> list[Any]:
    results = []
    for burst in program:
        megakernel.publish_many(*as_columns(burst))
        results.append(megakernel.pump())
    return results


def assert_same_results(got: Any, want: Any, *, epochs: bool) -> None:
    assert np.array_equal(got.slots, want.slots)
    assert np.array_equal(got.output.statuses, want.output.statuses)
    assert np.array_equal(got.output.fault_codes, want.output.fault_codes)
    assert np.array_equal(got.output.outputs, want.output.outputs)
    if epochs:
        assert np.array_equal(got.output.epochs, want.output.epochs)


# ------------------------------------------------------------------ the contract


def test_launch_arguments_follow_the_kernel_parameter_list() -> None:
    assert [p.name for p in PARAMETERS] == [
        "ring",
        "outputs",
        "slot_epochs",
        "fault_codes",
        "epoch_word",
        "slots",
        "first",
        "base_epoch",
        "atomic_mode",
    ]
    buffers = kernel_buffers(np, 100)
    launch = kernel_launch(buffers, first=7, base_epoch=2**32 - 1, atomic=True, block_size=32)
    assert (launch.grid, launch.block) == ((4,), (32,))
    for parameter, arg in zip(PARAMETERS, launch.args, strict=True):
        if parameter.pointer:
            assert arg.dtype == parameter.dtype
        else:
            assert type(arg) is parameter.dtype.type
    assert [int(a) for a in launch.args[5:]] == [100, 7, 2**32 - 1, 1]


@pytest.mark.parametrize("mode", ["ordered", "atomic"])
def test_every_opcode_with_wrapping_bursts_matches_numpy(
    kernel_library: ctypes.CDLL, mode: EpochMode
) -> None:
    rng = np.random.default_rng(21)
    every = np.array([*[int(op) for op in Opcode], 0x42, 0xFFFF_FFFF], dtype=np.uint32)
    cpu = Megakernel(CpuKernelBackend(kernel_library), slots=70, mode=mode, first_epoch=2**32 - 5)
    reference = Megakernel(NumpyBackend(), slots=70, mode=mode, first_epoch=2**32 - 5)
    for size in (1, 50, 70, 33, 69):  # the third to fifth bursts wrap the ring
        opcodes_ = every[rng.integers(0, len(every), size)]
        tenants = rng.integers(0, 2**32, size, dtype=np.uint64)
        args = rng.integers(0, 2**32, (size, ARG_WORDS), dtype=np.uint64)
        cpu.publish_many(tenants, opcodes_, args)
        reference.publish_many(tenants, opcodes_, args)
        assert_same_results(cpu.pump(), reference.pump(), epochs=True)
    assert cpu.epoch == reference.epoch


def test_a_launch_with_a_wrong_scalar_type_is_refused(kernel_library: ctypes.CDLL) -> None:
    buffers = kernel_buffers(np, 4)
    launch = kernel_launch(buffers, first=0, base_epoch=0, atomic=False, block_size=32)
    widened = (*launch.args[:5], np.int64(4), *launch.args[6:])
    with pytest.raises(AssertionError, match="slots"):
        CpuKernel(kernel_library, None)(launch.grid, launch.block, widened)


# ------------------------------------------------------------------ differential properties

counter = itertools.count()


def capture_program(
    folder: Path, backend: Any, slots: int, mode: EpochMode, program: list[Burst]
) -> Path:
    """``program`` captured through ``open_capture`` into a new VRRL log in ``folder``."""
    path = folder / f"{mode}-{next(counter)}.vrrl"
    with open_capture(path, backend=backend, slots=slots, mode=mode, capacity=256) as capture:
        run_bursts(capture, program)
    return path


@pytest.mark.parametrize("mode", ["ordered", "atomic"])
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(run=kernel_runs())
def test_kernel_in_any_thread_order_matches_numpy(
    kernel_library: ctypes.CDLL, mode: EpochMode, run: tuple[int, int, int, list[Burst]]
) -> None:
    slots, block_size, seed, program = run
    backend = CpuKernelBackend(kernel_library, block_size=block_size, thread_seed=seed)
    kernel = Megakernel(backend, slots, mode=mode)
    reference = Megakernel(NumpyBackend(), slots)  # ordered: epochs in publish order
    for ours, want in zip(run_bursts(kernel, program), run_bursts(reference, program), strict=True):
        assert_same_results(ours, want, epochs=mode == "ordered")
        # In atomic mode the thread order decides the epochs: the same ones, reassigned.
        assert np.array_equal(np.sort(ours.output.epochs), np.sort(want.output.epochs))
    assert kernel.epoch == reference.epoch


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(run=captured_runs())
def test_ordered_capture_on_the_kernel_replays_through_numpy_and_the_kernel(
    kernel_library: ctypes.CDLL, tmp_path: Path, run: tuple[int, int, list[Burst]]
) -> None:
    slots, seed, program = run
    backend = CpuKernelBackend(kernel_library, thread_seed=seed)
    path = capture_program(tmp_path, backend, slots, "ordered", program)
    assert replay_capture(path, "numpy", slots=slots).matched
    assert replay_capture(path, backend, slots=slots).matched
    report = differential_replay(path, NumpyBackend(), backend, slots=slots)
    assert report.matched, report.describe()


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(run=captured_runs())
def test_atomic_capture_replayed_on_a_raced_kernel_shows_the_race(
    kernel_library: ctypes.CDLL, tmp_path: Path, run: tuple[int, int, list[Burst]]
) -> None:
    slots, seed, program = run
    raced = CpuKernelBackend(kernel_library, thread_seed=seed)
    path = capture_program(tmp_path, "numpy", slots, "atomic", program)
    options: dict[str, Any] = {"slots": slots, "mode": "atomic"}
    # In slot order the kernel retires exactly as NumPy does.
    in_order = CpuKernelBackend(kernel_library)
    assert differential_replay(path, NumpyBackend(), in_order, **options).matched
    _, reference = replay_stream(path, "numpy", **options)
    _, stream = replay_stream(path, raced, **options)
    reordered = not np.array_equal(stream.slots, reference.slots)
    event("race reordered completions" if reordered else "race kept slot order")
    replayed = replay_capture(path, raced, **options)
    differential = differential_replay(path, NumpyBackend(), raced, **options)
    assert differential.matched is replayed.matched is not reordered
    if reordered:
        # The documented race: the same completions under other epochs.
        assert replayed.divergence is not None
        assert replayed.divergence.field in ("slot_idx", "epoch")
        assert differential.divergence is not None
        assert differential.divergence.field == "slots"
        assert "differs in slots" in differential.describe()
        assert np.array_equal(np.sort(stream.slots), np.sort(reference.slots))
    # Replayed in ordered mode, the raced kernel gives NumPy's stream.
    assert differential_replay(path, NumpyBackend(), raced, slots=slots, mode="ordered").matched
