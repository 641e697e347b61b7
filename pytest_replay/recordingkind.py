"""What a recording kind is: a name, a file extension, a format version, and the
functions that open its recorder, diff two stored recordings and count their records.

The plugin knows nothing else about a kind, so the journal, fleet and GPU packages (and
users, through the ``pytest_replay_register_kinds`` hook) add kinds without touching
the plugin.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_replay.recorder import DiffResult, Recorder

if TYPE_CHECKING:
    from pytest_replay.diff import DiffSummary

__all__ = ["RecordingKind"]


@dataclass(frozen=True, slots=True)
class RecordingKind:
    """A kind of recording.

    ``open(target, **options)`` returns a recorder; ``diff(expected, actual,
    meta)`` compares two stored recordings and returns the first divergence
    with its context lines (or ``None``); ``count(data)`` is the number of
    records in stored bytes. ``summarize(expected, actual, meta)``, when a kind has
    it, lists every difference (``--replay-diff=full`` and ``pytest-replay diff``);
    such a kind's recorder is then opened without the stored bytes under
    ``--replay-diff=full`` and the whole recordings are compared at the end of the
    test, so the test runs to its end.
    """

    name: str
    extension: str
    version: int
    open: Callable[..., Recorder]
    diff: Callable[[bytes, bytes, Mapping[str, Any]], DiffResult | None]
    count: Callable[[bytes], int]
    ignored: Callable[[Mapping[str, Any]], tuple[str, ...]] = lambda meta: ()
    summarize: Callable[[bytes, bytes, Mapping[str, Any]], DiffSummary] | None = None

    def __post_init__(self) -> None:
        from pytest_replay.store import InvalidRecordingName, check_extension

        try:
            check_extension(self.extension)
        except InvalidRecordingName as exc:
            raise InvalidRecordingName(f"kind {self.name!r}: {exc}") from None
