"""Recording kinds: what a recording is, how it is recorded, stored, loaded and diffed.

A :class:`RecordingKind` is a value: a name, a file extension, a format
version, a function that opens a recorder for one test, a function that diffs
two stored recordings, and one that counts their records. The plugin knows
nothing else about a kind, so the journal, fleet and GPU packages (and users,
through the ``pytest_replay_register_kinds`` hook) add kinds without touching
the plugin. :func:`sequence_kind` builds the common case, a list of items.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, Protocol

import msgpack
import numpy as np

from pytest_replay.diff import (
    DiffSummary,
    Divergence,
    FieldDifference,
    first_divergence,
    first_value_difference,
    ignored_words,
    ring_summary,
    sequence_summary,
)
from pytest_replay.formats.data import DATA, pack_plain, unpack_plain
from pytest_replay.formats.vrrl import VRRL
from pytest_replay.report import Mismatch, ReplayDivergence, ReplayUsageError
from pytest_replay.ringdigest import (
    AppendedDigest,
    append_hashed,
    check_overwritten,
    digest_meta,
    overwritten_note,
)
from pytest_replay.ringlog import (
    RECORD_BYTES,
    RECORD_MAGIC,
    RECORD_STRUCT,
    RING_RECORD_DTYPE,
    RecordArray,
    RecordedSlot,
    ReplayFailureEvidence,
    ReplayRecord,
    RingLog,
    SlotsLike,
    encode_ring_image,
    read_ring_image,
    records_to_array,
)
from pytest_replay.values import ValueEncodeError, encode_value

__all__ = [
    "DataRecorder",
    "FinishedRecording",
    "KindRegistry",
    "Recorder",
    "RecordingKind",
    "RecordingTarget",
    "RingRecorder",
    "SequenceRecorder",
    "builtin_kinds",
    "plain",
    "sequence_kind",
]

# Two records of context before a divergence, as the report promises.
CONTEXT_RECORDS = 2


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

    def fail(
        self,
        divergence: Divergence | None,
        context: Sequence[str] = (),
        ignored: Sequence[str] = (),
        detail: str = "",
    ) -> NoReturn:
        """Raise :class:`ReplayDivergence` for this recording (our frames stay hidden)."""
        __tracebackhide__ = True
        mismatch = Mismatch(
            nodeid=self.nodeid,
            recording=self.name,
            kind=self.kind,
            stored_path=self.stored_path,
            reason="diverged",
            divergence=divergence,
            context=tuple(context),
            ignored=tuple(ignored),
            detail=detail,
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


DiffResult = tuple[Divergence, tuple[str, ...]]


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


class KindRegistry:
    """Kinds by name; names and extensions are unique.

    Kinds can also be registered lazily, by the module that provides them
    (:meth:`register_module`): the module is imported the first time one of
    its kinds is asked for, so a run that only records rings never imports
    the fleet engine.
    """

    def __init__(self, kinds: Iterable[RecordingKind] = ()) -> None:
        self._by_name: dict[str, RecordingKind] = {}
        self._lazy: dict[str, str] = {}
        for kind in kinds:
            self.register(kind)

    def register(self, kind: RecordingKind) -> None:
        if kind.name in self._by_name:
            raise ValueError(
                f"recording kind {kind.name!r} is already registered. Fix: pick another name."
            )
        for other in self._by_name.values():
            if other.extension == kind.extension:
                raise ValueError(
                    f"kind {kind.name!r} reuses extension {kind.extension!r} of kind "
                    f"{other.name!r}. Fix: give each kind its own extension."
                )
        self._lazy.pop(kind.name, None)
        self._by_name[kind.name] = kind

    def register_module(self, module: str, names: Iterable[str]) -> None:
        """Register the kinds ``names`` that ``module.kinds()`` returns, importing it on
        first use."""
        for name in names:
            if name in self._by_name or name in self._lazy:
                raise ValueError(
                    f"recording kind {name!r} is already registered. Fix: pick another name."
                )
            self._lazy[name] = module

    def _load(self, module: str) -> None:
        names = [name for name, owner in self._lazy.items() if owner == module]
        for name in names:
            del self._lazy[name]
        provided = importlib.import_module(module).kinds()
        for kind in provided:
            self.register(kind)
        missing = [name for name in names if name not in self._by_name]
        if missing:
            raise ValueError(
                f"module {module!r} does not provide the kind(s) {missing}. "
                "Fix: return them from its kinds() function."
            )

    def _load_all(self) -> None:
        for module in sorted(set(self._lazy.values())):
            self._load(module)

    def get(self, name: str) -> RecordingKind:
        if name in self._lazy:
            self._load(self._lazy[name])
        try:
            return self._by_name[name]
        except KeyError:
            import difflib

            known = ", ".join(sorted(self.names()))
            close = difflib.get_close_matches(str(name), self.names(), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? Or " if close else ""
            raise ReplayUsageError(
                f"unknown recording kind {name!r} (known: {known}). "
                f"Fix: {hint}register it in a pytest_replay_register_kinds hook."
            ) from None

    def names(self) -> list[str]:
        return sorted([*self._by_name, *self._lazy])

    def for_path(self, path: Path) -> RecordingKind | None:
        self._load_all()
        for kind in self._by_name.values():
            if path.name.endswith(kind.extension):
                return kind
        return None

    def __iter__(self) -> Iterator[RecordingKind]:
        self._load_all()
        return iter(sorted(self._by_name.values(), key=lambda kind: kind.name))

    def __contains__(self, name: object) -> bool:
        return name in self._by_name or name in self._lazy


# --------------------------------------------------------------------------- plain values


def plain(value: Any) -> Any:
    """A msgpack-ready form of ``value``: dataclasses become dicts, enums their values,
    tuples lists, numpy scalars/arrays Python values, and dicts are sorted by key.

    Sorting makes the stored bytes canonical: a dict built by iterating a set of
    strings has a different insertion order under every ``PYTHONHASHSEED``, but
    it is the same value, so it must be the same recording.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, dict):
        items = [(plain(k), v) for k, v in value.items()]
        try:
            items.sort(key=_key_of)
        except TypeError:
            # Keys of types that do not compare (str and int): order by their encoding.
            items.sort(key=_packed_key)
        return {k: plain(v) for k, v in items}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic | np.ndarray):
        return plain(value.tolist())
    return value


def _key_of(item: tuple[Any, Any]) -> Any:
    return item[0]


def _packed_key(item: tuple[Any, Any]) -> bytes:
    packed: bytes = msgpack.packb(item[0], use_bin_type=True)
    return packed


def _pack(value: Any, what: str) -> bytes:
    return pack_plain(value, what, plain)


def _unpack(data: bytes, what: str) -> Any:
    return unpack_plain(data, what)


# --------------------------------------------------------------------------- data


class DataRecorder:
    """One value in the :mod:`pytest_replay.values` encoding, compared by structure (the
    key path of the first difference is reported, e.g. ``["steps"][3].epoch``)."""

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
            found = _diff_data(expected, packed, {})
            if found is not None:
                self._target.fail(found[0])

    def finish(self) -> FinishedRecording:
        return FinishedRecording(self._packed if self._packed is not None else b"\xc0", 1)

    def check_complete(self) -> None:
        """A value is recorded in one call, so it is complete once it exists."""

    def close(self) -> None:
        """Holds no resources."""


def _decoded(data: bytes, what: str) -> Any:
    return DATA.decode(data, what)


def _summarize_data(expected: bytes, actual: bytes, meta: Mapping[str, Any]) -> DiffSummary:
    summary = sequence_summary(
        [_decoded(expected, "stored value")], [_decoded(actual, "recorded value")], single=True
    )
    if summary.same and expected != actual:
        # Equal as decoded values yet not the same bytes: say so rather than "same".
        difference = FieldDifference(None, "<encoding>", expected.hex(), actual.hex())
        return DiffSummary(1, 1, 1, (("<encoding>", 1),), (), (difference,))
    return summary


def _diff_data(expected: bytes, actual: bytes, meta: Mapping[str, Any]) -> DiffResult | None:
    found = _summarize_data(expected, actual, meta).first()
    return None if found is None else (found, ())


def _count_data(data: bytes) -> int:
    _decoded(data, "recording")  # a value is one record, once it decodes
    return 1


DATA_KIND = RecordingKind(
    name="data",
    extension=".msgpack",
    version=1,
    open=DataRecorder,
    diff=_diff_data,
    count=_count_data,
    summarize=_summarize_data,
)


# --------------------------------------------------------------------------- ring


def _field_byte_ranges(volatile: Sequence[str]) -> list[tuple[int, int]]:
    return [(4 * word, 4 * word + 4) for word in ignored_words(volatile)]


def _render_record(index: int, record: np.void) -> str:
    return VRRL.render(index, record)


class RingRecorder:
    """A ring recorder: the :class:`RingLog` write API over a real VRRL file.

    The stored recording is a VRRL image of the live records in publish
    order with the ``volatile`` fields zeroed, so it is byte-identical run
    after run. When checking, every append is compared with the stored
    record at the same publish position as it is produced.
    """

    def __init__(
        self,
        target: RecordingTarget,
        capacity: int = 4096,
        volatile: Sequence[str] = ("timestamp_ns",),
    ) -> None:
        self._target = target
        self._volatile = tuple(volatile)
        self._masks = _field_byte_ranges(self._volatile)
        self._masked_words = ignored_words(self._volatile)
        working = target.scratch / f"{target.stored_path.name}"
        working.unlink(missing_ok=True)
        self._log = RingLog.open(working, capacity)
        self._appended = 0
        self._digest = AppendedDigest(self._log.capacity, self._masked_words, self._log.slot_view)
        self._expected: RecordArray | None = None
        self._expected_bytes = b""
        self._offset = 0
        self._stored_appended = 0
        if target.expected is not None:
            image = read_ring_image(target.expected, str(target.stored_path))
            self._expected = image.records
            self._expected_bytes = image.records.tobytes()
            self._stored_appended = int(target.expected_meta.get("appended", len(image.records)))
            self._offset = self._stored_appended - len(image.records)

    @property
    def name(self) -> str:
        return self._target.name

    @property
    def capacity(self) -> int:
        return self._log.capacity

    @property
    def cursor(self) -> int:
        return self._log.cursor

    @property
    def log(self) -> RingLog:
        """The working log (open for reading; recordings are written through the recorder)."""
        return self._log

    def __len__(self) -> int:
        return self._appended

    # -- the RingLog write API

    def append(self, slot: RecordedSlot) -> None:
        __tracebackhide__ = True
        if self._appended >= self._digest.due:
            self._digest.catch_up(self._appended)
        self._log.append(slot)
        if self._expected is not None:
            self._check_one(slot, None)
        self._appended += 1

    def append_with_failure(self, slot: RecordedSlot, failure: ReplayFailureEvidence) -> None:
        __tracebackhide__ = True
        if self._appended >= self._digest.due:
            self._digest.catch_up(self._appended)
        self._log.append_with_failure(slot, failure)
        if self._expected is not None:
            self._check_one(slot, failure)
        self._appended += 1

    def append_many(self, slots: SlotsLike) -> None:
        __tracebackhide__ = True
        array = records_to_array(slots)
        append_hashed(self._log, self._digest, self._appended, array)
        if self._expected is not None:
            self._check_many(array)
        self._appended += len(array)

    # -- checking

    def _check_one(self, slot: RecordedSlot, failure: ReplayFailureEvidence | None) -> None:
        __tracebackhide__ = True
        position = self._appended - self._offset
        if position < 0:
            return  # overwritten in the stored ring: nothing left to compare with
        if position < len(self._expected_bytes) // RECORD_BYTES:
            a0, a1, a2, a3 = slot.args
            tail = (
                (0, 0, 0, 0)
                if failure is None
                else (
                    failure.slot_status,
                    int(failure.failure_class),
                    failure.backend_error_code,
                    failure.output_digest,
                )
            )
            packed = bytearray(
                RECORD_STRUCT.pack(
                    RECORD_MAGIC, slot.timestamp_ns, slot.slot_idx, slot.tenant_id,
                    slot.opcode, a0, a1, a2, a3, slot.epoch, *tail,
                )
            )  # fmt: skip
            for start, end in self._masks:
                packed[start:end] = bytes(end - start)
            start = position * RECORD_BYTES
            if packed == self._expected_bytes[start : start + RECORD_BYTES]:
                return
        self._check_many(records_to_array([_as_record(slot, failure)]))

    def _check_many(self, array: RecordArray) -> None:
        __tracebackhide__ = True
        assert self._expected is not None
        first = self._appended - self._offset
        skip = max(0, -first)
        got = array[skip:]
        start = first + skip
        want = self._expected[start : start + len(got)]
        masked = got.copy()
        if len(got):
            words = masked.view("<u4").reshape(len(got), RECORD_BYTES // 4)
            words[:, self._masked_words] = 0
        found = first_divergence(want, masked, ignore=())
        if found is None:
            return
        assert found.index is not None
        if found.kind == "length":
            # More appends than the stored recording holds.
            index = self._offset + start + found.index
            self._target.fail(
                Divergence(
                    index, "length", self._stored_appended, self._appended + len(array), "length"
                ),
                self._context(start + found.index),
                self._volatile,
                detail="an append beyond the end of the stored recording",
            )
        position = start + found.index
        found = Divergence(self._offset + position, found.field, found.expected, found.actual)
        self._target.fail(
            found,
            self._context(position),
            self._volatile,
            detail=overwritten_note(
                self._digest,
                self._target.expected_meta,
                self._offset,
                self._appended + len(array),
            ),
        )

    def _context(self, position: int) -> list[str]:
        assert self._expected is not None
        lo = max(0, position - CONTEXT_RECORDS)
        return [
            _render_record(self._offset + i, self._expected[i])
            for i in range(lo, min(position, len(self._expected)))
        ]

    def check_complete(self) -> None:
        __tracebackhide__ = True
        if self._expected is None:
            return
        if self._appended < self._stored_appended:
            self._target.fail(
                Divergence(
                    self._appended, "length", self._stored_appended, self._appended, "length"
                ),
                self._context(self._appended - self._offset),
                self._volatile,
            )
        # Every record still in the stored ring matched as it was appended; what the ring
        # overwrote is known only by its digest (recordings made before it have none).
        check_overwritten(
            self._digest,
            self._target.expected_meta,
            self._offset,
            self._appended,
            self._target.fail,
            self._volatile,
        )
        stored = self._target.expected_meta.get("appended_digest")
        live = self._digest.digest_at(self._appended, self._appended)
        if isinstance(stored, str) and live != stored:
            self._target.fail(
                Divergence(None, "appended records", stored, live),
                (),
                self._volatile,
                detail=f"the digest of all {self._appended} appended records differs",
            )

    def finish(self) -> FinishedRecording:
        records = self._log.records()
        if len(records):
            words = records.view("<u4").reshape(len(records), RECORD_BYTES // 4)
            words[:, self._masked_words] = 0
        data = encode_ring_image(max(1, len(records)), records)
        meta = {
            "capacity": self._log.capacity,
            "appended": self._appended,
            "volatile": list(self._volatile),
            # Verify checks, by digest, what the image no longer holds.
            **digest_meta(self._digest, self._appended, len(records)),
        }
        return FinishedRecording(data, len(records), meta)

    def close(self) -> None:
        self._log.close()


def _as_record(slot: RecordedSlot, failure: ReplayFailureEvidence | None) -> ReplayRecord:
    return ReplayRecord(slot, failure)


def _diff_ring(expected: bytes, actual: bytes, meta: Mapping[str, Any]) -> DiffResult | None:
    left = read_ring_image(expected, "expected").records
    right = read_ring_image(actual, "actual").records
    found = first_divergence(left, right, ignore=tuple(meta.get("volatile", ("timestamp_ns",))))
    if found is None:
        return None
    assert found.index is not None
    lo = max(0, found.index - CONTEXT_RECORDS)
    context = tuple(_render_record(i, left[i]) for i in range(lo, min(found.index, len(left))))
    return found, context


RING_KIND = RecordingKind(
    name="ring",
    extension=".vrrl",
    version=1,
    open=RingRecorder,
    diff=_diff_ring,
    count=lambda data: len(read_ring_image(data, "recording").records),
    ignored=lambda meta: tuple(meta.get("volatile", ())),
    summarize=lambda expected, actual, meta: ring_summary(
        read_ring_image(expected, "expected").records,
        read_ring_image(actual, "actual").records,
        ignore=tuple(meta.get("volatile", ("timestamp_ns",))),
    ),
)
assert RING_RECORD_DTYPE.itemsize == RECORD_BYTES


# --------------------------------------------------------------------------- sequences


def _default_detail(divergence: Divergence) -> str:
    if divergence.kind == "length" and divergence.actual > divergence.expected:
        return "an item beyond the end of the stored recording"
    return ""


class SequenceRecorder:
    """A recorder of a list of items (``append`` / ``extend``), checked item by item.

    ``detail(divergence)`` gives the report's detail line for a failure at an item
    (subclasses use it to name the items involved in their own words).
    """

    def __init__(
        self,
        target: RecordingTarget,
        encode: Callable[[Sequence[Any]], bytes],
        decode: Callable[[bytes, str], list[Any]],
        item_diff: Callable[[Any, Any], tuple[str, Any, Any] | None],
        render: Callable[[Any], str],
        detail: Callable[[Divergence], str] = _default_detail,
    ) -> None:
        self._target = target
        self._encode = encode
        self._item_diff = item_diff
        self._render = render
        self._detail = detail
        self.items: list[Any] = []
        self._expected: list[Any] | None = None
        if target.expected is not None:
            self._expected = decode(target.expected, str(target.stored_path))

    @property
    def name(self) -> str:
        return self._target.name

    @property
    def expected(self) -> list[Any] | None:
        """The stored items this recording is checked against (``None`` when recording)."""
        return self._expected

    def __len__(self) -> int:
        return len(self.items)

    def _fail(self, divergence: Divergence) -> NoReturn:
        __tracebackhide__ = True
        assert divergence.index is not None
        self._target.fail(
            divergence, self._context(divergence.index), detail=self._detail(divergence)
        )

    def append(self, item: Any) -> None:
        __tracebackhide__ = True
        index = len(self.items)
        self.items.append(item)
        expected = self._expected
        if expected is None:
            return
        if index >= len(expected):
            self._fail(Divergence(index, "length", len(expected), index + 1, "length"))
        found = self._item_diff(expected[index], item)
        if found is not None:
            path, want, got = found
            self._fail(Divergence(index, path, want, got))

    def extend(self, items: Iterable[Any]) -> None:
        __tracebackhide__ = True
        for item in items:
            self.append(item)

    def _context(self, index: int) -> list[str]:
        assert self._expected is not None
        lo = max(0, index - CONTEXT_RECORDS)
        return [
            f"#{i} {self._render(self._expected[i])}"
            for i in range(lo, min(index, len(self._expected)))
        ]

    def check_complete(self) -> None:
        __tracebackhide__ = True
        if self._expected is not None and len(self.items) < len(self._expected):
            n = len(self.items)
            self._fail(Divergence(n, "length", len(self._expected), n, "length"))

    def finish(self) -> FinishedRecording:
        return FinishedRecording(self._encode(self.items), len(self.items))

    def close(self) -> None:
        """Holds no resources."""


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
        return _pack(list(items), what)

    def default_decode(data: bytes, source: str) -> list[Any]:
        value = _unpack(data, f"{what} at {source}")
        if not isinstance(value, list):
            raise ReplayUsageError(
                f"{what} at {source} is not a list. Fix: re-record it (pytest --replay-record)."
            )
        return value

    enc = encode or default_encode
    dec = decode or default_decode
    differ = item_diff or _default_item_diff

    def open_recorder(target: RecordingTarget) -> SequenceRecorder:
        return SequenceRecorder(target, enc, dec, differ, render)

    def diff(expected: bytes, actual: bytes, meta: Mapping[str, Any]) -> DiffResult | None:
        left, right = dec(expected, "expected"), dec(actual, "actual")
        for index, (want, got) in enumerate(zip(left, right, strict=False)):
            found = differ(want, got)
            if found is not None:
                lo = max(0, index - CONTEXT_RECORDS)
                context = tuple(f"#{i} {render(left[i])}" for i in range(lo, index))
                return Divergence(index, found[0], found[1], found[2]), context
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


def builtin_kinds() -> list[RecordingKind]:
    """The kinds every run has: ``ring`` (VRRL) and ``data`` (msgpack value)."""
    return [RING_KIND, DATA_KIND]
