"""Recorders: where one records, what it hands the store, and the one checked stream.

Every recorder records, or, when the test must reproduce a stored recording, compares
each record with the stored one at the same position as it is produced.
:class:`CheckedStream` is that comparison, once, for every kind: it counts what was
produced, finds a record that differs, one beyond the end or a stream that ends early,
and raises the one :class:`~pytest_replay.divergence.Divergence` through
:meth:`RecordingTarget.fail`, with the stored records before it as context. A kind gives
it only its record type: how two records compare and how a stored one reads.
:class:`CheckedRecorder` is the recorder of a list of items built on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, NoReturn, Protocol, TypeVar

from pytest_replay.divergence import Divergence, context_window
from pytest_replay.report import Mismatch, ReplayDivergence, rerecord_command

__all__ = [
    "CheckedRecorder",
    "CheckedStream",
    "DiffResult",
    "FinishedRecording",
    "Recorder",
    "RecordingTarget",
]

Item = TypeVar("Item")

#: What a kind's ``diff`` returns: the first divergence and the stored records before it.
DiffResult = tuple[Divergence, tuple[str, ...]]
#: ``(field, expected, actual)`` of the first difference of two records, or ``None``.
Compare = Callable[[Item, Item], tuple[str, Any, Any] | None]
#: A divergence's detail line from the divergence and the stored and produced records at
#: it (``None`` for a side that has none there).
Detail = Callable[[Divergence, Any, Any], str]


@dataclass(frozen=True, slots=True)
class FinishedRecording:
    """What a recorder hands to the store: the file bytes, a record count, metadata."""

    data: bytes
    records: int
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RecordingTarget:
    """Everything a recorder needs to know about where it records and what it must match.

    ``expected`` holds the stored bytes (already checked against the manifest
    digest) when this run must reproduce them, else ``None``.
    """

    nodeid: str
    name: str
    kind: str
    stored_path: Path
    scratch: Path
    expected: bytes | None = None
    expected_meta: Mapping[str, Any] = field(default_factory=dict)
    on_mismatch: Callable[[Mismatch], None] = lambda mismatch: None
    #: Whether ``--replay-diff=full`` can list every difference of this recording's kind.
    summarizable: bool = False

    @property
    def checking(self) -> bool:
        return self.expected is not None

    def fail(self, divergence: Divergence | None, ignored: Sequence[str] = ()) -> NoReturn:
        """Raise :class:`ReplayDivergence` for this recording (our frames stay hidden)."""
        __tracebackhide__ = True
        if divergence is not None and not divergence.rerecord:
            divergence = dataclasses.replace(divergence, rerecord=rerecord_command(self.nodeid))
        mismatch = Mismatch(
            nodeid=self.nodeid,
            recording=self.name,
            kind=self.kind,
            stored_path=self.stored_path,
            reason="diverged",
            divergence=divergence,
            ignored=tuple(ignored),
            summarizable=self.summarizable,
        )
        self.on_mismatch(mismatch)
        raise ReplayDivergence(mismatch)


class Recorder(Protocol):
    """What the plugin needs from a recorder; kinds add their own write API on top."""

    @property
    def name(self) -> str: ...

    def finish(self) -> FinishedRecording:
        """The recording as it stands now, ready to store or compare."""
        ...

    def check_complete(self) -> None:
        """When checking: raise ReplayDivergence if fewer records came than were stored."""
        ...

    def close(self) -> None: ...


def beyond_the_end(divergence: Divergence, expected: Any, actual: Any) -> str:
    """The default detail: only a record beyond the end of the stored stream has one."""
    if divergence.kind == "length" and divergence.actual > divergence.expected:
        return "an item beyond the end of the stored recording"
    return ""


class CheckedStream(Generic[Item]):
    """Compares produced records with the stored ones, position by position, as they come.

    ``stored`` is the stored stream (``None`` when recording: then it only counts);
    ``compare(expected, actual)`` finds the first differing field of two records and
    ``render(index, record)`` writes a stored record as a context line. A stored ring
    may hold only its last records: ``offset`` is the number of the first one and
    ``stored_count`` how many were recorded in all (records before ``offset`` were
    overwritten, so the produced ones there are not compared).
    """

    def __init__(
        self,
        target: RecordingTarget,
        stored: Sequence[Item] | None,
        compare: Compare[Item],
        render: Callable[[int, Item], str],
        *,
        offset: int = 0,
        stored_count: int | None = None,
        ignored: Sequence[str] = (),
        detail: Detail = beyond_the_end,
        unit: str = "record",
    ) -> None:
        self._target = target
        self.stored = stored
        self._compare = compare
        self._render = render
        self.offset = offset
        if stored_count is None:
            stored_count = offset + (0 if stored is None else len(stored))
        self.stored_count = stored_count
        self.ignored = tuple(ignored)
        self._detail = detail
        self._unit = unit
        #: Records produced so far (the number of the next one).
        self.produced = 0

    @property
    def checking(self) -> bool:
        return self.stored is not None

    @property
    def position(self) -> int:
        """Where the next produced record sits in ``stored`` (negative: overwritten there)."""
        return self.produced - self.offset

    def advance(self, count: int) -> None:
        """Count ``count`` produced records that need no comparison (or were compared)."""
        self.produced += count

    def check(self, item: Item) -> None:
        """Compare the next produced record with the stored one at its position."""
        __tracebackhide__ = True
        stored = self.stored
        position = self.position
        if stored is not None and position >= 0:
            if position >= len(stored):
                self.fail_length(self.produced + 1, actual_item=item)
            found = self._compare(stored[position], item)
            if found is not None:
                path, want, got = found
                self.fail(Divergence(self.produced, path, want, got), stored[position], item)
        self.produced += 1

    def extend(self, items: Iterable[Item]) -> None:
        __tracebackhide__ = True
        for item in items:
            self.check(item)

    def check_batch(
        self,
        batch: Sequence[Item],
        first_difference: Callable[[Sequence[Item], Sequence[Item]], Divergence | None],
    ) -> None:
        """Compare a batch of produced records at once: ``first_difference(stored, batch)``
        gets the stored slice and the batch slice at the same positions (a vectorised
        comparison, e.g. :func:`~pytest_replay.diff.first_divergence`), and reports a
        ``length`` divergence when the batch runs past the stored records."""
        __tracebackhide__ = True
        stored = self.stored
        count = len(batch)
        if stored is not None:
            skip = max(0, -self.position)  # overwritten in the stored ring: nothing to compare
            start = self.position + skip
            got = batch[skip:]
            found = first_difference(stored[start : start + len(got)], got)
            if found is not None:
                assert found.index is not None
                position = start + found.index
                produced = got[found.index] if found.index < len(got) else None
                if found.kind == "length":
                    self.fail_length(self.produced + count, position, actual_item=produced)
                self.fail(
                    Divergence(self.offset + position, found.field, found.expected, found.actual),
                    stored[position],
                    produced,
                )
        self.produced += count

    def check_complete(self) -> None:
        """When checking: fail if fewer records were produced than were stored."""
        __tracebackhide__ = True
        if self.stored is not None and self.produced < self.stored_count:
            self.fail_length(self.produced)

    def fail_length(
        self, produced: int, position: int | None = None, *, actual_item: Any = None
    ) -> NoReturn:
        """Fail with a ``length`` divergence: ``produced`` records against the stored count,
        the first unmatched one at ``position`` in ``stored`` (default: the next one)."""
        __tracebackhide__ = True
        stored = self.stored
        assert stored is not None
        at = self.position if position is None else position
        want = stored[at] if 0 <= at < len(stored) else None
        divergence = Divergence(self.offset + at, "length", self.stored_count, produced, "length")
        self.fail(divergence, want, actual_item)

    def fail(self, divergence: Divergence, expected_item: Any, actual_item: Any) -> NoReturn:
        """Raise ``divergence`` (at record ``divergence.index``) with the stored records
        before it as context and the kind's detail line."""
        __tracebackhide__ = True
        assert self.stored is not None and divergence.index is not None
        divergence = dataclasses.replace(
            divergence,
            unit=self._unit,
            context=self.context(divergence.index - self.offset),
        )
        detail = self._detail(divergence, expected_item, actual_item)
        self._target.fail(dataclasses.replace(divergence, detail=detail), self.ignored)

    def context(self, position: int) -> tuple[str, ...]:
        """The stored records before ``position`` in ``stored``, rendered."""
        assert self.stored is not None
        return context_window(self.stored, position, self._render, offset=self.offset)


class CheckedRecorder(Generic[Item]):
    """The recorder of a list of items (``append`` / ``extend``), each compared with the
    stored item at its index as it is appended.

    A kind supplies its format (``encode`` the items, ``decode`` stored bytes) and its
    item type (``compare`` two items, ``render`` a stored one for the context);
    ``detail(divergence, expected, actual)`` words a failure at an item.
    """

    def __init__(
        self,
        target: RecordingTarget,
        encode: Callable[[Sequence[Item]], bytes],
        decode: Callable[[bytes, str], list[Item]],
        compare: Compare[Item],
        render: Callable[[int, Item], str],
        detail: Detail = beyond_the_end,
    ) -> None:
        self._target = target
        self._encode = encode
        self.items: list[Item] = []
        stored = (
            None if target.expected is None else decode(target.expected, str(target.stored_path))
        )
        self._stream = CheckedStream(target, stored, compare, render, detail=detail)

    @property
    def name(self) -> str:
        return self._target.name

    @property
    def expected(self) -> Sequence[Item] | None:
        """The stored items this recording is checked against (``None`` when recording)."""
        return self._stream.stored

    def __len__(self) -> int:
        return len(self.items)

    def append(self, item: Item) -> None:
        __tracebackhide__ = True
        self.items.append(item)
        self._stream.check(item)

    def extend(self, items: Iterable[Item]) -> None:
        __tracebackhide__ = True
        for item in items:
            self.append(item)

    def check_complete(self) -> None:
        __tracebackhide__ = True
        self._stream.check_complete()

    def finish(self) -> FinishedRecording:
        return FinishedRecording(self._encode(self.items), len(self.items))

    def close(self) -> None:
        """Holds no resources."""
