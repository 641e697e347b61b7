"""``KERNEL_SOURCE`` compiled by NVRTC, the compiler ``cupy.RawKernel`` calls, without a GPU.

NVRTC turns CUDA C++ into PTX on any x86-64 machine; it needs the
``cuda-check`` extra (``nvidia-cuda-nvrtc-cu12`` and ``cuda-bindings`` 12.x).
Any error or warning fails the test with NVRTC's log. The PTX entry's
parameter list is then checked against the launch ``CupyBackend`` makes: CuPy
passes each scalar with its NumPy dtype's size, so a size the kernel does not
expect would corrupt every argument after it on a real GPU.

The ``test`` extra installs both, so a missing NVRTC is a failure naming the fix,
never a skip: a kernel check that did not run proves nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from pytest_replay.megakernel.cupy_backend import (
    KERNEL_NAME,
    KERNEL_SOURCE,
    kernel_buffers,
    kernel_launch,
)

ARCHITECTURES = ("compute_80", "compute_90")


@pytest.fixture(scope="module")
def nvrtc() -> Any:
    """``cuda.bindings.nvrtc`` with its library loaded, or a failure naming the extra."""
    try:
        from cuda.bindings import nvrtc as module

        # The bindings open libnvrtc on first use; a missing library fails here.
        result, _major, _minor = module.nvrtcVersion()
        if result != module.nvrtcResult.NVRTC_SUCCESS:
            raise RuntimeError(f"nvrtcVersion() returned {result!r}")
    except Exception as exc:  # ImportError, or the bindings failing to open libnvrtc
        reason = (
            f"NVRTC is not usable ({type(exc).__name__}: {exc}). "
            "Fix: pip install -e '.[test]' (or '.[cuda-check]')"
        )
        pytest.fail(reason, pytrace=False)
    return module


@dataclass(frozen=True, slots=True)
class Compiled:
    ok: bool
    log: str  # NVRTC's errors and warnings; empty for a clean compile
    ptx: str


def compile_to_ptx(nvrtc: Any, source: str, architecture: str) -> Compiled:
    """Compile ``source`` to PTX for one virtual architecture, with no other option (on a GPU,
    ``cupy.RawKernel`` picks the architecture from the device)."""

    def checked(call: tuple[Any, ...]) -> tuple[Any, ...]:
        assert call[0] == nvrtc.nvrtcResult.NVRTC_SUCCESS, call
        return call[1:]

    (program,) = checked(
        nvrtc.nvrtcCreateProgram(source.encode(), f"{KERNEL_NAME}.cu".encode(), 0, [], [])
    )
    try:
        options = [f"--gpu-architecture={architecture}".encode()]
        (result,) = nvrtc.nvrtcCompileProgram(program, len(options), options)
        (log_size,) = checked(nvrtc.nvrtcGetProgramLogSize(program))
        # NVRTC writes into the buffer: it must be a fresh mutable one. `b" " * 1` is CPython's
        # cached one-byte object, and writing its NUL there turned every " " the process
        # encoded afterwards into "\0".
        log = bytearray(log_size)
        checked(nvrtc.nvrtcGetProgramLog(program, log))
        ok = result == nvrtc.nvrtcResult.NVRTC_SUCCESS
        ptx = bytearray()
        if ok:
            (ptx_size,) = checked(nvrtc.nvrtcGetPTXSize(program))
            ptx = bytearray(ptx_size)
            checked(nvrtc.nvrtcGetPTX(program, ptx))
    finally:
        checked(nvrtc.nvrtcDestroyProgram(program))
    return Compiled(ok, log.rstrip(b"\0").decode().strip(), ptx.rstrip(b"\0").decode())


def entry_parameter_bytes(ptx: str, name: str) -> list[int]:
    """The size in bytes of each ``.param`` of PTX entry ``name``."""
    found = re.search(rf"\.entry {name}\((.*?)\)", ptx, re.DOTALL)
    assert found is not None, f"no .entry {name} in the PTX"
    return [int(bits) // 8 for bits in re.findall(r"\.param \.[usb](\d+) ", found.group(1))]


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_kernel_source_compiles_cleanly(nvrtc: Any, architecture: str) -> None:
    compiled = compile_to_ptx(nvrtc, KERNEL_SOURCE, architecture)
    if not compiled.ok or compiled.log:
        pytest.fail(
            f"NVRTC {'failed' if not compiled.ok else 'warned'} on KERNEL_SOURCE for "
            f"{architecture}:\n{compiled.log}",
            pytrace=False,
        )
    assert f".target sm_{architecture.removeprefix('compute_')}" in compiled.ptx
    assert f".visible .entry {KERNEL_NAME}(" in compiled.ptx


def test_ptx_parameters_match_the_launch_arguments(nvrtc: Any) -> None:
    compiled = compile_to_ptx(nvrtc, KERNEL_SOURCE, ARCHITECTURES[0])
    assert compiled.ok, compiled.log
    launch = kernel_launch(kernel_buffers(np, 8), first=0, base_epoch=0, atomic=True, block_size=32)
    # CuPy passes an array as a device pointer and a scalar as its dtype's bytes.
    passed = [8 if isinstance(arg, np.ndarray) else arg.dtype.itemsize for arg in launch.args]
    assert entry_parameter_bytes(compiled.ptx, KERNEL_NAME) == passed


def test_a_warning_or_an_error_is_reported_with_the_log(nvrtc: Any) -> None:
    # The clean-compile check above would catch these: NVRTC reports both in its log.
    warned = compile_to_ptx(nvrtc, "__global__ void k() { int unused; }", "compute_80")
    assert warned.ok and 'variable "unused" was declared but never referenced' in warned.log
    failed = compile_to_ptx(nvrtc, "__global__ void k() { nowhere(); }", "compute_80")
    assert not failed.ok and '"nowhere" is undefined' in failed.log
