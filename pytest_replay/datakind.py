"""The ``data`` kind: one value in the :mod:`pytest_replay.values` encoding, compared by
structure (the key path of the first difference is reported, e.g. ``["steps"][3].epoch``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_replay.diff import DiffSummary, sequence_summary
from pytest_replay.divergence import Divergence
from pytest_replay.formats.data import DATA
from pytest_replay.recorder import DiffResult, FinishedRecording, RecordingTarget
from pytest_replay.recordingkind import RecordingKind
from pytest_replay.report import ReplayUsageError
from pytest_replay.values import ValueEncodeError, encode_value

__all__ = ["DATA_KIND", "DataRecorder"]


class DataRecorder:
    """``replay.data(name)``: one value, set (and, when checking, compared) at once.

    A value is not a stream: each :meth:`set` replaces it, and its bytes are compared
    with the stored bytes whole (:func:`diff_data` names the first differing path).
    """

    def __init__(self, target: RecordingTarget) -> None:
        self._target = target
        self._packed: bytes | None = None

    @property
    def name(self) -> str:
        return self._target.name

    def set(self, value: Any) -> None:
        __tracebackhide__ = True
        try:
            packed = encode_value(value, self.name)
        except ValueEncodeError as exc:
            raise ReplayUsageError(str(exc)) from None
        self._packed = packed
        expected = self._target.expected
        if expected is not None and packed != expected:
            found = diff_data(expected, packed, {})
            if found is not None:
                self._target.fail(found[0])

    def finish(self) -> FinishedRecording:
        return FinishedRecording(self._packed if self._packed is not None else b"\xc0", 1)

    def check_complete(self) -> None:
        """A value is recorded in one call, so it is complete once it exists."""

    def close(self) -> None:
        """Holds no resources."""


def summarize_data(expected: bytes, actual: bytes, meta: Mapping[str, Any]) -> DiffSummary:
    """Every difference between two stored values."""
    summary = sequence_summary(
        [DATA.decode(expected, "stored value")],
        [DATA.decode(actual, "recorded value")],
        single=True,
    )
    if summary.same and expected != actual:
        # Equal as decoded values yet not the same bytes: say so rather than "same".
        difference = Divergence(None, "<encoding>", expected.hex(), actual.hex())
        return DiffSummary(1, 1, 1, (("<encoding>", 1),), (), (difference,))
    return summary


def diff_data(expected: bytes, actual: bytes, meta: Mapping[str, Any]) -> DiffResult | None:
    """The first difference between two stored values (a value has no context records)."""
    found = summarize_data(expected, actual, meta).first()
    return None if found is None else (found, ())


def _count_data(data: bytes) -> int:
    DATA.decode(data, "recording")  # a value is one record, once it decodes
    return 1


DATA_KIND = RecordingKind(
    name="data",
    extension=".msgpack",
    version=1,
    open=DataRecorder,
    diff=diff_data,
    count=_count_data,
    summarize=summarize_data,
)
