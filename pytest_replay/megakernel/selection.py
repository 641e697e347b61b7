"""Backend selection by name, and the probe that says whether the CuPy backend can run.

Apart from :mod:`.backend` (the protocol) so that the backends, which implement the
protocol, and the selection, which imports the backends, do not import each other.
"""

from __future__ import annotations

from pytest_replay.megakernel.backend import BackendLike, MegakernelBackend
from pytest_replay.megakernel.cupy_backend import CupyBackend, probe_cupy
from pytest_replay.megakernel.errors import GpuUnavailable, UnknownBackend
from pytest_replay.megakernel.numpy_backend import NumpyBackend

__all__ = ["gpu_available", "resolve_backend"]


def gpu_available() -> tuple[bool, str]:
    """Whether the CuPy backend can run here, and if not, why (for skip reasons)."""
    try:
        probe_cupy()
    except GpuUnavailable as exc:
        return False, exc.reason
    return True, "CuPy and a CUDA GPU are available"


def resolve_backend(backend: BackendLike = "auto") -> MegakernelBackend:
    """A backend object for ``"numpy"``, ``"cupy"`` or ``"auto"``; objects pass through.

    ``"auto"`` picks CuPy when it is installed and sees a GPU, NumPy otherwise;
    ``"cupy"`` raises :class:`GpuUnavailable` when it cannot run.
    """
    if not isinstance(backend, str):
        return backend
    if backend == "numpy":
        return NumpyBackend()
    if backend == "cupy":
        return CupyBackend()
    if backend == "auto":
        available, _reason = gpu_available()
        return CupyBackend() if available else NumpyBackend()
    raise UnknownBackend(backend)
