"""The GPU megakernel capture path: a slot ring, NumPy and CuPy backends, capture into a
VRRL ring log, and differential replay of the epoch-by-epoch observable stream.

See ``docs/megakernel.md``. CuPy is imported only by :class:`CupyBackend`.
"""

from __future__ import annotations

from pytest_replay.megakernel.backend import (
    BackendLike,
    BurstOutput,
    MegakernelBackend,
    RingDevice,
)
from pytest_replay.megakernel.burst import PumpResult, SlotFault
from pytest_replay.megakernel.capture import (
    CaptureInfo,
    MegakernelCapture,
    RecordSink,
    burst_records,
    open_capture,
)
from pytest_replay.megakernel.cupy_backend import CupyBackend
from pytest_replay.megakernel.errors import (
    GpuUnavailable,
    InvalidPublish,
    MalformedCapture,
    MegakernelError,
    RingFull,
    UncapturableArguments,
    UnknownBackend,
)
from pytest_replay.megakernel.kernel import Megakernel
from pytest_replay.megakernel.model import (
    ARG_WORDS,
    CAPTURED_ARGS,
    OUTPUT_WORDS,
    SLOT_WORDS,
    EpochMode,
    FaultCode,
    Opcode,
    SlotStatus,
    fault_error,
)
from pytest_replay.megakernel.numpy_backend import NumpyBackend
from pytest_replay.megakernel.replay import (
    DifferentialReport,
    ReplayReport,
    StreamEntry,
    differential_replay,
    replay_capture,
    replay_stream,
)
from pytest_replay.megakernel.selection import gpu_available, resolve_backend
from pytest_replay.megakernel.stream import (
    ObservedEpoch,
    ObservedStream,
    diff_streams,
)

__all__ = [
    "ARG_WORDS",
    "CAPTURED_ARGS",
    "OUTPUT_WORDS",
    "SLOT_WORDS",
    "BackendLike",
    "BurstOutput",
    "CaptureInfo",
    "CupyBackend",
    "DifferentialReport",
    "EpochMode",
    "FaultCode",
    "GpuUnavailable",
    "InvalidPublish",
    "MalformedCapture",
    "Megakernel",
    "MegakernelBackend",
    "MegakernelCapture",
    "MegakernelError",
    "NumpyBackend",
    "ObservedEpoch",
    "ObservedStream",
    "Opcode",
    "PumpResult",
    "RecordSink",
    "ReplayReport",
    "RingDevice",
    "RingFull",
    "SlotFault",
    "SlotStatus",
    "StreamEntry",
    "UncapturableArguments",
    "UnknownBackend",
    "burst_records",
    "diff_streams",
    "differential_replay",
    "fault_error",
    "gpu_available",
    "open_capture",
    "replay_capture",
    "replay_stream",
    "resolve_backend",
]
