"""The ``megakernel`` recording kind: a captured megakernel whose VRRL log is the recording.

A test calls ``replay.megakernel(name, backend="auto", slots=1024)`` and gets a
:class:`MegakernelRecorder`: it publishes and pumps exactly like a
:class:`~pytest_replay.megakernel.capture.MegakernelCapture`, and every slot the
kernel consumes becomes one VRRL record.

* Recording: the stored file is the VRRL image of the captured records, in
  publish order, with ``timestamp_ns`` (the one volatile field) zeroed. Nothing
  in it names the backend, so in ``ordered`` mode the bytes are the same run
  after run and on NumPy and CuPy alike.
* Verifying: the stored log is first replayed into a fresh megakernel on this
  run's backend (:func:`~pytest_replay.megakernel.replay.replay_capture`);
  then every burst the test pumps is compared, as it is produced, with the
  stored records at the same publish positions. The first divergence fails the
  test through ``target.fail`` with the record index (the publish sequence
  number) and the field, plus both sides as epoch entries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, Final, cast

import numpy as np

from pytest_replay.diff import first_divergence, ignored_words, record_difference
from pytest_replay.divergence import Divergence, context_window
from pytest_replay.megakernel.backend import BackendLike
from pytest_replay.megakernel.burst import PumpResult
from pytest_replay.megakernel.capture import CaptureInfo, MegakernelCapture
from pytest_replay.megakernel.errors import MalformedCapture
from pytest_replay.megakernel.kernel import Megakernel
from pytest_replay.megakernel.model import EpochMode
from pytest_replay.megakernel.replay import ReplayReport, StreamEntry, replay_capture
from pytest_replay.megakernel.stream import ObservedStream
from pytest_replay.recorder import CheckedStream, DiffResult, FinishedRecording, RecordingTarget
from pytest_replay.recordingkind import RecordingKind
from pytest_replay.ringdigest import (
    AppendedDigest,
    append_hashed,
    check_overwritten,
    digest_meta,
)
from pytest_replay.ringlog import (
    RecordArray,
    RingImage,
    RingLog,
    encode_ring_image,
    read_ring_image,
)

__all__ = [
    "DEFAULT_CAPACITY",
    "EXTENSION",
    "KIND_NAME",
    "KIND_VERSION",
    "MEGAKERNEL_KIND",
    "VOLATILE",
    "MegakernelRecorder",
    "diff_recordings",
    "kinds",
]

KIND_NAME: Final = "megakernel"
#: Not ``.vrrl``: the ring kind owns that, and kinds are found by file suffix.
EXTENSION: Final = ".mkvrrl"
KIND_VERSION: Final = 1
#: Records the working log holds; older ones are overwritten (the ring wraps).
DEFAULT_CAPACITY: Final = 1 << 16
#: Fields zeroed in the stored recording and never compared.
VOLATILE: Final = ("timestamp_ns",)


def _describe(record: np.void) -> str:
    """One record as the slot it published and what the kernel made of it."""
    args = ",".join(str(int(v)) for v in record["args"])
    entry = StreamEntry.from_record(record)
    return (
        f"epoch {entry.epoch} tenant {int(record['tenant_id'])} "
        f"opcode {int(record['opcode']):#x} args ({args}) -> {entry.describe()}"
    )


def _render(index: int, record: np.void) -> str:
    """One stored record as a context line of a divergence report."""
    return f"#{index} {_describe(record)}"


def _stable(records: RecordArray) -> RecordArray:
    """A copy of ``records`` with the volatile fields zeroed."""
    out: RecordArray = records.copy()
    for name in VOLATILE:
        out[name] = 0
    return out


class MegakernelRecorder:
    """A captured megakernel recording into a VRRL log (the recorder of the kind).

    Publish with :meth:`publish` / :meth:`publish_many`, run with :meth:`pump`,
    read back with :meth:`observe`; ``megakernel`` is the underlying
    :class:`Megakernel` (slots published on it directly are captured too).
    When verifying, :attr:`stored_replay` is the report of replaying the stored
    log on this run's backend (``None`` when recording, when ``replay_stored``
    is false, or when the stored log holds no whole burst to replay).
    """

    def __init__(
        self,
        target: RecordingTarget,
        backend: BackendLike = "auto",
        slots: int = 1024,
        *,
        mode: EpochMode = "ordered",
        capacity: int = DEFAULT_CAPACITY,
        replay_stored: bool = True,
    ) -> None:
        __tracebackhide__ = True
        self._target = target
        megakernel = Megakernel(backend, slots, mode=mode)
        working = target.scratch / target.stored_path.name
        working.unlink(missing_ok=True)
        self._log = RingLog.open(working, capacity)
        self._capture = MegakernelCapture(megakernel, _Sink(self))
        self._digest = AppendedDigest(
            self._log.capacity, ignored_words(VOLATILE), self._log.slot_view
        )
        self._closed_digests: dict[str, str | None] = {}
        self._snapshot: RecordArray | None = None
        self._stream: CheckedStream[np.void] = self._checked(None, 0)
        self.stored_replay: ReplayReport | None = None
        if target.expected is not None:
            try:
                self._load_expected(target.expected, target.expected_meta, replay_stored)
            except BaseException:
                # The plugin never sees a recorder that failed to open, so close it here.
                self._log.close()
                raise

    # -- verify-mode setup

    def _load_expected(self, data: bytes, meta: Mapping[str, Any], replay_stored: bool) -> None:
        __tracebackhide__ = True
        image = read_ring_image(data, str(self._target.stored_path))
        mk = self._capture.megakernel
        for key, live in (("slots", mk.slots), ("mode", mk.mode)):
            stored = meta.get(key)
            if stored is not None and stored != live:
                self._target.fail(
                    Divergence(
                        None,
                        key,
                        stored,
                        live,
                        detail=(
                            f"replay.megakernel({self.name!r}) was opened with {key}={live!r}, "
                            f"but the recording was made with {key}={stored!r}; the slot "
                            f"stream cannot match. Fix: pass {key}={stored!r}, or re-record "
                            "if the change is intended."
                        ),
                    )
                )
        self._stream = self._checked(image.records, int(meta.get("appended", len(image.records))))
        if replay_stored and len(image.records):
            self._replay_stored(image, mk)

    def _checked(self, stored: RecordArray | None, stored_appended: int) -> CheckedStream[np.void]:
        """The stream every captured burst is checked against (``stored`` is ``None`` when
        recording)."""
        return CheckedStream(
            self._target,
            None if stored is None else cast(Sequence[np.void], stored),
            partial(record_difference, ignore=VOLATILE),
            _render,
            offset=0 if stored is None else stored_appended - len(stored),
            stored_count=stored_appended,
            ignored=VOLATILE,
            detail=_slot_detail,
        )

    def _replay_stored(self, image: RingImage, mk: Megakernel) -> None:
        __tracebackhide__ = True
        try:
            report = replay_capture(image, mk.backend, slots=mk.slots, mode=mk.mode)
        except MalformedCapture:
            # A wrapped atomic log whose only burst lost its start: nothing whole to replay;
            # the live comparison below still checks every record the test produces.
            return
        self.stored_replay = report
        found = report.divergence
        if found is None:
            return
        assert found.index is not None
        offset = self._stream.offset
        index = offset + report.skipped + found.index
        want, got = found.expected, found.actual
        anchor = want if want is not None else got
        epoch = anchor.epoch if anchor is not None else found.index
        if want is not None:
            # found.index counts in epoch order; the report speaks of records in publish
            # order (their place in the log), which differs in atomic mode.
            at = np.flatnonzero(image.records["epoch"] == want.epoch)
            if len(at):
                index = offset + int(at[0])
        self._target.fail(
            Divergence(
                index,
                found.field,
                want,
                got,
                detail=(
                    f"the stored log, replayed on {mk.backend.name} before the test ran, "
                    f"diverges at epoch {epoch} (record #{found.index} of the replay in "
                    f"epoch order): expected {_side(want)}, got {_side(got)}"
                ),
            ),
            VOLATILE,
        )

    # -- the Recorder protocol

    @property
    def name(self) -> str:
        return self._target.name

    def check_complete(self) -> None:
        """Pump what is still pending; when verifying, fail if fewer slots came than stored."""
        __tracebackhide__ = True
        self._flush()
        stream = self._stream
        if stream.checking:
            stream.check_complete()
            check_overwritten(
                self._digest,
                self._target.expected_meta,
                stream.offset,
                stream.produced,
                self._target.fail,
                VOLATILE,
            )

    def finish(self) -> FinishedRecording:
        """The VRRL image of the captured records (pending slots pumped first)."""
        __tracebackhide__ = True
        if self._snapshot is None:
            self._flush()
            records = self._log.records()
        else:
            records = self._snapshot
        stable = _stable(records)
        data = encode_ring_image(max(1, len(stable)), stable)
        mk = self._capture.megakernel
        meta = {
            "slots": mk.slots,
            "mode": mk.mode,
            "capacity": self._log.capacity,
            "appended": self._stream.produced,
            "volatile": list(VOLATILE),
            # Verify checks, by digest, what the image no longer holds.
            **self._digests(len(stable)),
        }
        return FinishedRecording(data, len(stable), meta)

    def close(self) -> None:
        """Release the working log (pending slots are not pumped); safe to call twice."""
        if self._snapshot is None and not self._log.closed:
            self._snapshot = self._log.records()
            self._closed_digests = self._digests(len(self._snapshot))
        self._log.close()

    def _digests(self, retained: int) -> dict[str, str | None]:
        if self._log.closed:
            return self._closed_digests
        return digest_meta(self._digest, self._stream.produced, retained)

    # -- the capture API

    @property
    def megakernel(self) -> Megakernel:
        return self._capture.megakernel

    @property
    def ring_log(self) -> RingLog:
        """The working VRRL log (read it; the recorder writes it)."""
        return self._log

    @property
    def recorded(self) -> int:
        """Slots captured so far (over the whole run, also those the ring overwrote)."""
        return self._stream.produced

    def publish(self, tenant: int, opcode: int, args: Sequence[int] = ()) -> int:
        """Publish one slot; return its ring index (see :meth:`Megakernel.publish`)."""
        return self._capture.publish(tenant, opcode, args)

    def publish_many(self, tenants: Any, opcodes: Any, args: Any = None) -> np.ndarray:
        """Publish a burst; return the ring indices (see :meth:`Megakernel.publish_many`)."""
        return self._capture.publish_many(tenants, opcodes, args)

    def pump(self) -> PumpResult:
        """Run the kernel over the pending slots; capture (and, verifying, check) the burst."""
        __tracebackhide__ = True
        return self._capture.pump()

    def observe(self) -> ObservedStream:
        """The megakernel's observable stream so far."""
        return self._capture.observe()

    def info(self) -> CaptureInfo:
        """Ring size, epoch mode and backend of this capture."""
        return self._capture.info()

    def _flush(self) -> None:
        __tracebackhide__ = True
        if self._capture.megakernel.pending:
            self._capture.pump()

    # -- recording and checking

    def _append(self, records: RecordArray) -> None:
        __tracebackhide__ = True
        append_hashed(self._log, self._digest, self._stream.produced, records)
        # The whole burst in one numpy comparison against the stored records.
        self._stream.check_batch(cast(Sequence[np.void], records), _first_difference)

    def __repr__(self) -> str:
        mode = "verify" if self._stream.checking else "record"
        return f"MegakernelRecorder({self.name!r}, {mode}, {self._capture.megakernel!r})"


class _Sink:
    """The capture's record sink: appends to the working log and checks the burst."""

    __slots__ = ("_recorder",)

    def __init__(self, recorder: MegakernelRecorder) -> None:
        self._recorder = recorder

    def append_many(self, slots: RecordArray) -> None:
        __tracebackhide__ = True
        self._recorder._append(slots)


def _first_difference(stored: Sequence[np.void], produced: Sequence[np.void]) -> Divergence | None:
    return first_divergence(cast(RecordArray, stored), cast(RecordArray, produced), ignore=VOLATILE)


def _slot_detail(divergence: Divergence, expected: Any, actual: Any) -> str:
    """The detail line of a failure at a captured slot (both sides as the kernel saw them)."""
    if divergence.kind == "length":
        if divergence.actual > divergence.expected:
            return (
                f"slot #{divergence.index} was consumed beyond the end of the recording "
                f"({divergence.expected} slots)"
            )
        return (
            f"the test consumed {divergence.actual} slots, the recording holds "
            f"{divergence.expected}"
        )
    return (
        f"megakernel slot #{divergence.index}: expected {_describe(expected)}, "
        f"got {_describe(actual)}"
    )


def _side(entry: StreamEntry | None) -> str:
    return "nothing" if entry is None else f"epoch {entry.epoch} {entry.describe()}"


def diff_recordings(expected: bytes, actual: bytes, meta: Mapping[str, Any]) -> DiffResult | None:
    """The first difference between two stored megakernel recordings, with context lines.

    Records are compared in stored (publish) order; the volatile fields named in
    ``meta["volatile"]`` (default ``timestamp_ns``) are ignored.
    """
    left = read_ring_image(expected, "expected recording").records
    right = read_ring_image(actual, "actual recording").records
    ignore = tuple(meta.get("volatile", VOLATILE))
    found = first_divergence(left, right, ignore=ignore)
    if found is None:
        return None
    index = 0 if found.index is None else found.index
    return found, context_window(cast(Sequence[np.void], left), index, _render)


def _count(data: bytes) -> int:
    return len(read_ring_image(data, "megakernel recording").records)


MEGAKERNEL_KIND: Final = RecordingKind(
    name=KIND_NAME,
    extension=EXTENSION,
    version=KIND_VERSION,
    open=MegakernelRecorder,
    diff=diff_recordings,
    count=_count,
    ignored=lambda meta: tuple(meta.get("volatile", VOLATILE)),
)


def kinds() -> list[RecordingKind]:
    """The recording kinds this package adds to the plugin: ``megakernel``."""
    return [MEGAKERNEL_KIND]
