"""Per-channel replication settings."""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass

from pytest_replay.replication.errors import ScheduleError
from pytest_replay.replication.messages import BandwidthClass

__all__ = [
    "DEFAULT_BACKGROUND_FRACTION",
    "DEFAULT_HEARTBEAT_MS",
    "DEFAULT_MISS_THRESHOLD",
    "SYNC_REQUEST_CHUNK_MAX_DEFAULT",
    "ReplicationConfig",
    "UnderCapacity",
]

DEFAULT_HEARTBEAT_MS = 100
DEFAULT_MISS_THRESHOLD = 3
DEFAULT_BACKGROUND_FRACTION = 0.3
#: Payload bytes a replica asks for per sync request.
SYNC_REQUEST_CHUNK_MAX_DEFAULT = 64 * 1024


class UnderCapacity(enum.Enum):
    """What a replica does when its local log rejects an append."""

    #: Drop the role (to Idle) so other replicas carry the redundancy.
    WITHDRAW = "withdraw"
    #: Sweep retention and stay in role; the next response retries the append.
    EVICT_OLDEST = "evict_oldest"


@dataclass(frozen=True, slots=True)
class ReplicationConfig:
    """Settings of one replicated channel."""

    heartbeat_ms: int = DEFAULT_HEARTBEAT_MS
    miss_threshold: int = DEFAULT_MISS_THRESHOLD
    on_under_capacity: UnderCapacity = UnderCapacity.WITHDRAW
    default_bandwidth_class: BandwidthClass = BandwidthClass.FOREGROUND
    background_fraction: float = DEFAULT_BACKGROUND_FRACTION
    chunk_max_bytes: int = SYNC_REQUEST_CHUNK_MAX_DEFAULT

    def __post_init__(self) -> None:
        if self.heartbeat_ms < 1:
            raise ScheduleError(
                f"heartbeat_ms={self.heartbeat_ms} must be >= 1", fix="use e.g. 100."
            )
        if self.miss_threshold < 1:
            raise ScheduleError(
                f"miss_threshold={self.miss_threshold} must be >= 1", fix="use e.g. 3."
            )
        if not (math.isfinite(self.background_fraction) and 0.0 <= self.background_fraction <= 1):
            raise ScheduleError(
                f"background_fraction={self.background_fraction} is outside [0, 1]",
                fix="use e.g. 0.3 (30% of the bucket usable by Background).",
            )
        if self.chunk_max_bytes < 1:
            raise ScheduleError(
                f"chunk_max_bytes={self.chunk_max_bytes} must be >= 1", fix="use e.g. 65536."
            )

    def with_on_under_capacity(self, policy: UnderCapacity) -> ReplicationConfig:
        return dataclasses.replace(self, on_under_capacity=policy)
