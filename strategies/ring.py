"""Strategies for VRRL ring logs: slots, failure evidence, and whole file images."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from hypothesis import strategies as st

from pytest_replay.ringlog import (
    MAX_REPLAY_RECORDS,
    RecordedSlot,
    ReplayFailureClass,
    ReplayFailureEvidence,
    ReplayRecord,
    encode_ring_image,
)

from .errors import StrategyArgumentError

__all__ = ["RingLogCase", "failure_evidence", "recorded_slots", "replay_records", "ring_logs"]

_U32 = st.integers(0, 2**32 - 1)
_U64 = st.integers(0, 2**64 - 1)


def recorded_slots(
    *, slot_idx: st.SearchStrategy[int] = _U32, epoch: st.SearchStrategy[int] = _U32
) -> st.SearchStrategy[RecordedSlot]:
    """Any :class:`~pytest_replay.ringlog.RecordedSlot` that fits the on-disk u32/u64 words.

    ``slot_idx`` and ``epoch`` can be narrowed to model a particular ring::

        >>> from hypothesis import given
        >>> @given(recorded_slots(slot_idx=st.integers(0, 63)))
        ... def test_slot_fits_the_ring(slot):
        ...     assert 0 <= slot.slot_idx < 64
        >>> test_slot_fits_the_ring()
    """
    return st.builds(
        RecordedSlot,
        timestamp_ns=_U64,
        slot_idx=slot_idx,
        tenant_id=_U32,
        opcode=_U32,
        args=st.tuples(_U32, _U32, _U32, _U32),
        epoch=epoch,
    )


def failure_evidence() -> st.SearchStrategy[ReplayFailureEvidence]:
    """Failure evidence that survives a round trip through a record tail.

    ``slot_status`` is never 0, since four zero words mean "no evidence"::

        >>> failure_evidence().example().slot_status > 0
        True
    """
    return st.builds(
        ReplayFailureEvidence,
        slot_status=st.integers(1, 2**32 - 1),
        failure_class=st.sampled_from(ReplayFailureClass),
        backend_error_code=_U32,
        output_digest=_U64,
    )


def replay_records() -> st.SearchStrategy[ReplayRecord]:
    """A :class:`ReplayRecord`, with or without failure evidence (shrinks to without).

    >>> isinstance(replay_records().example(), ReplayRecord)
    True
    """
    return st.one_of(
        st.builds(ReplayRecord, recorded_slots()),
        st.builds(ReplayRecord, recorded_slots(), failure_evidence()),
    )


@dataclass(frozen=True, slots=True)
class RingLogCase:
    """A valid VRRL image and what a correct reader must replay from it."""

    data: bytes
    capacity: int
    appended: tuple[ReplayRecord, ...]
    expected: tuple[ReplayRecord, ...]
    cursor: int


@st.composite
def _ring_logs(
    draw: st.DrawFn, capacity: st.SearchStrategy[int], min_appends: int, max_appends: int
) -> RingLogCase:
    cap = draw(capacity)
    appended = tuple(draw(st.lists(replay_records(), min_size=min_appends, max_size=max_appends)))
    expected = tuple(deque(appended, maxlen=cap))
    return RingLogCase(
        encode_ring_image(cap, appended), cap, appended, expected, len(appended) % cap
    )


_DEFAULT_CAPACITY = st.integers(1, 16)


def ring_logs(
    capacity: int | st.SearchStrategy[int] = _DEFAULT_CAPACITY,
    min_appends: int = 0,
    max_appends: int = 40,
) -> st.SearchStrategy[RingLogCase]:
    """A valid VRRL file image (``.data``) plus the records a correct reader replays.

    Appends past ``capacity`` wrap around, so ``expected`` is the newest
    ``capacity`` records in publish order::

        >>> from pytest_replay.ringlog import read_ring_image, records_from_array
        >>> case = ring_logs(capacity=3, min_appends=5, max_appends=5).example()
        >>> records_from_array(read_ring_image(case.data).records) == list(case.expected)
        True
    """
    if isinstance(capacity, int):
        if not 1 <= capacity <= MAX_REPLAY_RECORDS:
            raise StrategyArgumentError(
                f"capacity={capacity} is outside 1..{MAX_REPLAY_RECORDS}", fix="pick a valid size."
            )
        capacity = st.just(capacity)
    if not 0 <= min_appends <= max_appends:
        raise StrategyArgumentError(
            f"need 0 <= min_appends ({min_appends}) <= max_appends ({max_appends})",
            fix="swap or correct the bounds.",
        )
    return _ring_logs(capacity, min_appends, max_appends)
