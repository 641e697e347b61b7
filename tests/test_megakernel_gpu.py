"""The CuPy backend on a real GPU: the CUDA kernel against the NumPy reference,
differential replay in ordered mode, and the atomic-mode race being caught.

Skips as a whole, with the reason, where CuPy or a CUDA GPU is missing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pytest_replay.megakernel import (
    CupyBackend,
    Megakernel,
    NumpyBackend,
    Opcode,
    differential_replay,
    open_capture,
    replay_capture,
)

# The plugin skips `gpu` tests, with gpu_available()'s reason, where CuPy or a GPU is missing.
pytestmark = pytest.mark.replay_gpu

OPCODES = [int(op) for op in Opcode] + [0x42, 0xFFFF_FFFF]


def random_burst(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tenants = rng.integers(0, 8, n)
    opcodes = rng.choice(OPCODES, n)
    args = rng.integers(0, 2**32, (n, 13), dtype=np.uint64)
    return tenants, opcodes, args


@pytest.mark.parametrize("mode", ["ordered", "atomic"])
def test_cuda_kernel_matches_the_numpy_reference(mode: str) -> None:
    rng = np.random.default_rng(1)
    gpu = Megakernel(CupyBackend(), slots=4096, mode=mode)  # type: ignore[arg-type]
    cpu = Megakernel(NumpyBackend(), slots=4096, mode=mode)  # type: ignore[arg-type]
    for size in (1, 31, 4096, 1000, 3000):
        burst = random_burst(rng, size)
        gpu.publish_many(*burst)
        cpu.publish_many(*burst)
        got, want = gpu.pump(), cpu.pump()
        assert np.array_equal(got.slots, want.slots)
        assert np.array_equal(got.output.statuses, want.output.statuses)
        assert np.array_equal(got.output.fault_codes, want.output.fault_codes)
        assert np.array_equal(got.output.outputs, want.output.outputs)
        if mode == "ordered":
            assert np.array_equal(got.output.epochs, want.output.epochs)
        else:
            base = np.uint32(want.base_epoch)
            assert np.array_equal(
                np.sort(got.output.epochs - base), np.arange(size, dtype=np.uint32)
            )


def test_ordered_capture_replays_identically_on_numpy_and_cupy(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    path = tmp_path / "gpu.vrrl"
    with open_capture(path, backend="cupy", slots=8192, capacity=65536) as capture:
        for size in (8192, 5000, 7000, 8192, 100):
            tenants, opcodes, args = random_burst(rng, size)
            capture.publish_many(tenants, opcodes, args[:, :4])
            capture.pump()
    assert replay_capture(path, "numpy").matched
    assert replay_capture(path, "cupy").matched
    report = differential_replay(path, NumpyBackend(), CupyBackend())
    assert report.matched, report.describe()


def test_atomic_mode_race_is_detected_by_replay(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    path = tmp_path / "race.vrrl"
    with open_capture(path, backend="cupy", slots=65536, mode="atomic", capacity=262144) as cap:
        for _ in range(4):
            tenants, opcodes, args = random_burst(rng, 65536)
            cap.publish_many(tenants, opcodes, args[:, :4])
            cap.pump()
    attempts = 20
    for _attempt in range(attempts):
        report = replay_capture(path, "cupy", mode="atomic")
        if not report.matched:
            assert report.divergence is not None
            assert report.divergence.field in ("slot_idx", "epoch", "tenant_id", "opcode")
            break
    else:
        pytest.fail(f"{attempts} atomic replays on the GPU never diverged from the capture")
    # Replayed in ordered mode, the same slots give one deterministic stream everywhere.
    assert differential_replay(path, "numpy", "cupy", mode="ordered").matched


def test_megakernel_kind_records_the_same_bytes_on_numpy_and_cupy(tmp_path: Path) -> None:
    from pytest_replay.kinds import RecordingTarget
    from pytest_replay.megakernel.kind import MEGAKERNEL_KIND, MegakernelRecorder

    rng = np.random.default_rng(4)
    bursts = [random_burst(rng, size) for size in (4096, 17, 3000)]

    def run(
        backend: str, expected: bytes | None, meta: dict[str, object]
    ) -> tuple[bytes, dict[str, object]]:
        scratch = tmp_path / f"{backend}-{expected is not None}"
        scratch.mkdir()
        target = RecordingTarget(
            "t::gpu", "ring", "megakernel", tmp_path / "ring.mkvrrl", scratch, expected, meta
        )
        recorder = MEGAKERNEL_KIND.open(target, backend=backend, slots=4096)
        assert isinstance(recorder, MegakernelRecorder)
        try:
            for tenants, opcodes, args in bursts:
                recorder.publish_many(tenants, opcodes, args[:, :4])
                recorder.pump()
            recorder.check_complete()
            finished = recorder.finish()
        finally:
            recorder.close()
        return finished.data, dict(finished.meta)

    on_numpy, meta = run("numpy", None, {})
    on_cupy, _ = run("cupy", None, {})
    assert on_cupy == on_numpy
    # A recording made on NumPy verifies on the GPU (stored replay and live comparison).
    assert run("cupy", on_numpy, meta)[0] == on_numpy
