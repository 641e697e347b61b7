"""Bandwidth budget: a token bucket that admits sync responses by class.

The bucket holds up to ``capacity_bytes`` and refills at
``rate_fraction * capacity_bytes`` per second of (simulated) time. Foreground
responses are admitted while the bucket covers their cost; Background
responses only while the bucket stays above the reserve
``(1 - background_fraction) * capacity`` after paying, so background
catch-up can never take the part of the bucket kept for foreground traffic.
"""

from __future__ import annotations

import math

from pytest_replay.replication.errors import ScheduleError
from pytest_replay.replication.messages import BandwidthClass

__all__ = ["BandwidthBudget"]


class BandwidthBudget:
    """Token bucket in bytes; time in milliseconds."""

    __slots__ = ("_available", "_capacity", "_last_ms", "_refill_per_ms")

    def __init__(self, rate_fraction: float, capacity_bytes: int, now_ms: int) -> None:
        if not (math.isfinite(rate_fraction) and rate_fraction >= 0):
            raise ScheduleError(
                f"bandwidth rate_fraction={rate_fraction} must be finite and >= 0",
                fix="use e.g. 0.5 (half the bucket refilled per second).",
            )
        if capacity_bytes < 0:
            raise ScheduleError(
                f"bandwidth capacity_bytes={capacity_bytes} is negative", fix="use a size >= 0."
            )
        self._capacity = float(capacity_bytes)
        self._refill_per_ms = rate_fraction * capacity_bytes / 1000.0
        self._available = float(capacity_bytes)
        self._last_ms = now_ms

    @property
    def capacity(self) -> int:
        return int(self._capacity)

    def available(self, now_ms: int) -> float:
        self._refill(now_ms)
        return self._available

    def _refill(self, now_ms: int) -> None:
        if now_ms > self._last_ms:
            self._available = min(
                self._capacity, self._available + (now_ms - self._last_ms) * self._refill_per_ms
            )
            self._last_ms = now_ms

    def try_consume(self, cost: int, now_ms: int) -> bool:
        """Class-blind admission (Foreground semantics)."""
        return self.try_consume_with_class(cost, BandwidthClass.FOREGROUND, now_ms, 1.0)

    def try_consume_with_class(
        self,
        cost: int,
        bandwidth_class: BandwidthClass,
        now_ms: int,
        background_fraction: float,
    ) -> bool:
        """Take ``cost`` bytes if the class may; returns whether it was admitted."""
        self._refill(now_ms)
        if bandwidth_class is BandwidthClass.BACKGROUND:
            reserve = (1.0 - background_fraction) * self._capacity
            admitted = self._available - cost >= reserve
        else:
            admitted = self._available >= cost
        if admitted:
            self._available -= cost
        return admitted

    def refund(self, cost: int) -> None:
        """Give back bytes whose send failed synchronously."""
        self._available = min(self._capacity, self._available + cost)
