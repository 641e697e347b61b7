"""``sequence_kind``: a kind whose recording is a list of items, each checked as it is
appended (a :class:`~pytest_replay.recorder.CheckedRecorder`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pytest_replay.diff import DiffSummary, first_value_difference, sequence_summary
from pytest_replay.divergence import Divergence, context_window
from pytest_replay.formats.data import unpack_plain
from pytest_replay.kindformat import pack_plain, plain
from pytest_replay.recorder import CheckedRecorder, DiffResult, RecordingTarget
from pytest_replay.recordingkind import RecordingKind
from pytest_replay.report import ReplayUsageError

__all__ = ["sequence_kind"]


def _default_item_diff(expected: Any, actual: Any) -> tuple[str, Any, Any] | None:
    return first_value_difference(plain(expected), plain(actual))


def sequence_kind(
    name: str,
    extension: str,
    *,
    encode: Callable[[Sequence[Any]], bytes] | None = None,
    decode: Callable[[bytes, str], list[Any]] | None = None,
    item_diff: Callable[[Any, Any], tuple[str, Any, Any] | None] | None = None,
    render: Callable[[Any], str] = repr,
    version: int = 1,
) -> RecordingKind:
    """A kind whose recorder records a list of items (``.append``, ``.extend``).

    By default items are stored as a msgpack array of :func:`plain` values,
    loaded back as plain values and compared by :func:`first_value_difference`;
    pass ``encode``/``decode``/``item_diff`` for a format of your own::

        def pytest_replay_register_kinds(registry):
            registry.register(sequence_kind("events", ".events"))

        def test_events(replay):
            events = replay.record("events", "bus")
            events.append({"topic": "start", "seq": 1})
    """
    what = f"recording of kind {name!r}"

    def default_encode(items: Sequence[Any]) -> bytes:
        return pack_plain(list(items), what)

    def default_decode(data: bytes, source: str) -> list[Any]:
        value = unpack_plain(data, f"{what} at {source}")
        if not isinstance(value, list):
            raise ReplayUsageError(
                f"{what} at {source} is not a list", fix="re-record it (pytest --replay-record)."
            )
        return value

    enc = encode or default_encode
    dec = decode or default_decode
    differ = item_diff or _default_item_diff

    def rendered(index: int, item: Any) -> str:
        return f"#{index} {render(item)}"

    def open_recorder(target: RecordingTarget) -> CheckedRecorder[Any]:
        return CheckedRecorder(target, enc, dec, differ, rendered)

    def diff(expected: bytes, actual: bytes, meta: Mapping[str, Any]) -> DiffResult | None:
        left, right = dec(expected, "expected"), dec(actual, "actual")
        for index, (want, got) in enumerate(zip(left, right, strict=False)):
            found = differ(want, got)
            if found is not None:
                divergence = Divergence(index, found[0], found[1], found[2])
                return divergence, context_window(left, index, rendered)
        if len(left) != len(right):
            n = min(len(left), len(right))
            return Divergence(n, "length", len(left), len(right), "length"), ()
        return None

    def summarize(expected: bytes, actual: bytes, meta: Mapping[str, Any]) -> DiffSummary:
        left, right = dec(expected, "expected"), dec(actual, "actual")
        if item_diff is None:
            return sequence_summary(left, right)
        # A custom item_diff knows only the first difference of an item.
        return sequence_summary(
            left, right, item_differences=lambda want, got: filter(None, [differ(want, got)])
        )

    return RecordingKind(
        name=name,
        extension=extension,
        version=version,
        open=open_recorder,
        diff=diff,
        count=lambda data: len(dec(data, "recording")),
        summarize=summarize,
    )
