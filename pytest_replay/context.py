"""The ``replay`` fixture's value: :class:`ReplayContext`, one per test.

It opens recorders of any registered kind, knows where each recording is
stored, loads the stored bytes to check against (verify, and ``new`` mode for
recordings that exist) and, at the end of the test, runs the end-of-test
checks and hands the finished recordings to the plugin for storing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import blake3
import pytest

from pytest_replay.errors import render_error
from pytest_replay.kinds import DataRecorder, FinishedRecording, Recorder, RecordingKind
from pytest_replay.kinds import RecordingTarget as _Target
from pytest_replay.outcome import Outcome
from pytest_replay.report import (
    REPORT_DIR,
    Mismatch,
    ReplayDivergence,
    ReplayUsageError,
    write_diff_report,
)
from pytest_replay.store import (
    Manifest,
    ManifestEntry,
    ReplayStore,
    StoreCorrupted,
    part_name,
    safe_component,
)

if TYPE_CHECKING:
    from pytest_replay.kinds import RingRecorder
    from pytest_replay.policy import Mode
    from pytest_replay.session import ReplaySession

__all__ = [
    "OpenRecording",
    "ReplayContext",
    "hypothesis_settings_for_replay",
    "nondeterminism",
    "per_test_seed",
]


def per_test_seed(base: int, nodeid: str) -> int:
    """A 63-bit seed from ``base`` and a test id: stable across runs, platforms and
    xdist workers (BLAKE3, never Python's salted ``hash()``).

    >>> per_test_seed(0, "tests/test_a.py::test_x") == per_test_seed(0, "tests/test_a.py::test_x")
    True
    """
    digest = blake3.blake3(f"{base}\x00{nodeid}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


@dataclass(slots=True)
class OpenRecording:
    """A recorder opened in this run of the test, with what it is checked against."""

    kind: RecordingKind
    recorder: Recorder
    target: _Target
    entry: ManifestEntry | None
    #: ``--replay-diff=full``: the stored bytes, compared whole at the end of the test
    #: (the recorder itself was opened without them, so the test runs to its end).
    deferred: bytes | None = None


class ReplayContext:
    """What a test gets from the ``replay`` fixture.

    ``replay.ring(...)``, ``replay.data(...)`` and ``replay.record(kind, ...)``
    open recorders; every registered kind is also an attribute
    (``replay.journal(...)`` is ``replay.record("journal", ...)``).
    """

    def __init__(self, session: ReplaySession, item: pytest.Item, scratch: Path) -> None:
        self._session = session
        self._item = item
        self._scratch = scratch
        self._store, self.test_id = session.store_for(item)
        self._folder = self._store.test_dir(self.test_id)
        session.tally.roots.add(str(self._store.root))
        self._manifest: Manifest | None = None
        self._manifest_loaded = False
        self._open: dict[str, OpenRecording] = {}
        self._checking = session.mode != "off" and session.dump_dir is None
        self._run = 1
        # A Hypothesis @given test records inside `with replay.example():` only; the index of
        # the example running now (None outside one) and how many have run.
        self._given = bool(getattr(getattr(item, "obj", None), "is_hypothesis_test", False))
        self._example: int | None = None
        self._examples = 0
        self.finished: dict[str, tuple[RecordingKind, FinishedRecording]] | None = None
        self.checked: frozenset[str] = frozenset()
        self.mismatches: list[Mismatch] = []

    def __repr__(self) -> str:
        return f"<ReplayContext {self.nodeid} mode={self.mode}>"

    # -- what a test reads

    @property
    def nodeid(self) -> str:
        """The test's id as the user would type it from the folder pytest was started in
        (what the re-record command in a report needs)."""
        item = self._item
        path, sep, rest = item.nodeid.partition("::")
        start = item.config.invocation_params.dir
        with contextlib.suppress(ValueError):
            path = Path(item.path).resolve().relative_to(start.resolve()).as_posix()
        return f"{path}{sep}{rest}"

    @property
    def mode(self) -> Mode:
        """``"off"``, ``"record"`` or ``"verify"``."""
        return self._session.mode

    @property
    def seed(self) -> int:
        """This test's seed: ``--replay-seed`` and the test's id in its store through BLAKE3
        (the node id, relative to the store's project folder)."""
        return per_test_seed(self._session.base_seed, self.test_id)

    @property
    def store(self) -> ReplayStore:
        """The store this test's recordings live in."""
        return self._store

    @property
    def folder(self) -> Path:
        """The store folder of this test."""
        return self._folder

    def path(self, name: str, kind: str | None = None) -> Path:
        """Where the recording ``name`` is (or would be) stored.

        The kind comes from the open recorder of that name, else from the stored
        manifest, else from ``kind`` (default ``"ring"``).
        """
        if name in self._open:
            return self._open[name].target.stored_path
        if kind is None:
            # Read in every mode (read-only), so the answer does not depend on the flags.
            manifest = self._store.load_manifest_quietly(self._folder)
            entry = manifest.recordings.get(name) if manifest else None
            if entry is not None:
                return self._folder / entry.file
            kind = "ring"
        return self._folder / self._file_name(name, self._session.kinds.get(kind))

    # -- opening recorders

    def ring(
        self,
        name: str = "ring",
        capacity: int = 4096,
        volatile: Sequence[str] = ("timestamp_ns",),
    ) -> RingRecorder:
        """A ring recorder with the RingLog write API (``append``, ``append_with_failure``,
        ``append_many``), backed by a real VRRL file; ``volatile`` fields are not compared
        and are stored as zero."""
        __tracebackhide__ = True
        recorder: RingRecorder = self.record("ring", name, capacity=capacity, volatile=volatile)
        return recorder

    def data(self, name: str, value: Any) -> None:
        """Record a msgpack-serialisable value; a difference is reported by its path,
        e.g. ``["steps"][3]["epoch"]``."""
        __tracebackhide__ = True
        recorder: DataRecorder = self.record("data", name)
        recorder.set(value)

    def record(self, kind: str, name: str, *args: Any, **options: Any) -> Any:
        """Open a recorder of the registered ``kind`` under ``name`` (unique in this test)."""
        __tracebackhide__ = True
        if not isinstance(name, str) or not name:
            raise ReplayUsageError(
                f"recording name must be a non-empty string, got {name!r}",
                fix="pass a name such as 'ring' or 'journal'.",
            )
        name = self._example_name(name)
        if name in self._open:
            raise ReplayUsageError(
                f"recording name {name!r} is used twice in {self.nodeid}",
                fix="give each recording of a test its own name.",
            )
        recording_kind = self._session.kinds.get(kind)
        stored_path = self._folder / self._file_name(name, recording_kind)
        self._session.tally.used = True
        try:
            entry, expected = self._expected_for(name, recording_kind, stored_path)
        except StoreCorrupted:
            self._session.tally.add(Outcome.CORRUPTED, stored_path)
            raise
        scratch = self._scratch / f"run{self._run}"
        scratch.mkdir(parents=True, exist_ok=True)
        target = _Target(
            nodeid=self.nodeid,
            name=name,
            kind=recording_kind.name,
            stored_path=stored_path,
            scratch=scratch,
            expected=expected,
            expected_meta=dict(entry.meta) if entry is not None and expected is not None else {},
            on_mismatch=self._on_mismatch,
            summarizable=recording_kind.summarize is not None,
        )
        deferred = None
        if expected is not None and recording_kind.summarize is not None and self._full_diff:
            deferred = expected
            target = dataclasses.replace(target, expected=None)
        recorder = recording_kind.open(target, *args, **options)
        self._open[name] = OpenRecording(recording_kind, recorder, target, entry, deferred)
        return recorder

    @contextlib.contextmanager
    def example(self) -> Iterator[None]:
        """Scope the recordings of one example of a Hypothesis ``@given`` test: recording
        ``name`` of the k-th example is stored as ``name[k]``. The plugin runs such a test
        seeded with ``replay.seed`` and without the example database, so the examples, and
        so the stored recordings, are the same on every run (with the same Hypothesis
        version)."""
        __tracebackhide__ = True
        if not self._given:
            raise ReplayUsageError(
                "replay.example() scopes the examples of a Hypothesis @given test, and this "
                "test is not one",
                where=self.nodeid,
                fix="record directly (replay.data(...)).",
            )
        if self._example is not None:
            raise ReplayUsageError(
                "replay.example() is already open",
                where=self.nodeid,
                fix="open it once per example, around the recordings of that example.",
            )
        self._example = self._examples
        before = set(self._open)
        try:
            yield
        except BaseException:
            # Hypothesis replays a failing example (and shrinks it when not comparing): those
            # runs take the same index, so they fail at the same place (not as a "flaky"
            # test), and the failed run's recorders are dropped.
            for name in set(self._open) - before:
                self._open.pop(name).recorder.close()
            raise
        else:
            self._examples += 1
        finally:
            self._example = None

    def _example_name(self, name: str) -> str:
        __tracebackhide__ = True
        if not self._given:
            return name
        if self._example is None:
            raise ReplayUsageError(
                f"{self.nodeid} is a Hypothesis @given test: record inside `with "
                "replay.example():` so that each generated example has its own recordings",
                fix="wrap the body of the test in `with replay.example():`.",
            )
        return f"{name}[{self._example}]"

    def __getattr__(self, name: str) -> Callable[..., Any]:
        # Only reached for attributes the class does not define: registered kind names.
        __tracebackhide__ = True  # a wrong name is the test's line, not ours
        if name.startswith("_"):
            raise AttributeError(name)
        session = self.__dict__.get("_session") if hasattr(self, "__dict__") else None
        if session is None or name not in session.kinds:
            raise AttributeError(
                render_error(
                    f"'replay' has no attribute {name!r} and no recording kind of that name is "
                    "registered",
                    fix="register it with a pytest_replay_register_kinds hook.",
                )
            )
        return functools.partial(self.record, name)

    # -- internals

    @property
    def _full_diff(self) -> bool:
        return bool(self._item.config.getoption("replay_diff", "first") == "full")

    @property
    def _compares_with_store(self) -> bool:
        return self._session.policy.compares_with_store

    @staticmethod
    def _file_name(name: str, kind: RecordingKind) -> str:
        return part_name(name, kind.extension)

    def _load_manifest(self) -> Manifest | None:
        if not self._manifest_loaded:
            self._manifest = self._store.load_manifest(self._folder)
            self._manifest_loaded = True
        return self._manifest

    def _expected_for(
        self, name: str, kind: RecordingKind, stored_path: Path
    ) -> tuple[ManifestEntry | None, bytes | None]:
        __tracebackhide__ = True
        session = self._session
        if not self._checking or self._run > 1:
            return None, None
        if not self._compares_with_store:
            return None, None
        manifest = self._load_manifest()
        entry = manifest.recordings.get(name) if manifest is not None else None
        if entry is None:
            if session.mode == "verify" and session.policy.strict:
                mismatch = Mismatch(self.nodeid, name, kind.name, stored_path, "missing")
                if not any(m.stored_path == stored_path for m in self.mismatches):
                    session.tally.add(mismatch.outcome, stored_path)
                    self._notify(mismatch)
                raise ReplayDivergence(mismatch)
            return None, None
        if entry.kind != kind.name or entry.version != kind.version:
            mismatch = Mismatch(
                self.nodeid,
                name,
                kind.name,
                stored_path,
                "diverged",
                note=(
                    f"stored as kind {entry.kind!r} format version {entry.version}, "
                    f"produced as kind {kind.name!r} format version {kind.version}"
                ),
            )
            self._on_mismatch(mismatch)
            raise ReplayDivergence(mismatch)
        return entry, self._store.read_checked(self._folder, entry, kind.count)

    def _on_mismatch(self, mismatch: Mismatch) -> None:
        # Hypothesis replays and shrinks a diverging example under the same index: the
        # recording is counted, and the hook told, once.
        if not any(m.stored_path == mismatch.stored_path for m in self.mismatches):
            self._session.tally.add(mismatch.outcome, mismatch.stored_path)
            self._notify(mismatch)

    def _notify(self, mismatch: Mismatch) -> None:
        self.mismatches.append(mismatch)
        self._item.config.hook.pytest_replay_divergence(item=self._item, divergence=mismatch)

    # -- the end of a run of the test body (called by the plugin)

    def complete(self) -> dict[str, tuple[RecordingKind, FinishedRecording]]:
        """End-of-test checks, then the finished recordings of this run.

        Raises :class:`ReplayDivergence` when a recording came out short, or a
        stored recording was not produced at all.
        """
        __tracebackhide__ = True
        for opened in self._open.values():
            opened.recorder.check_complete()
        if self._checking and self._run == 1 and self._compares_with_store:
            # In 'new' mode too: the recordings kept are verified, a vanished one included.
            manifest = self._load_manifest()
            for name, entry in sorted(manifest.recordings.items()) if manifest else ():
                if name not in self._open:
                    mismatch = Mismatch(
                        self.nodeid,
                        name,
                        entry.kind,
                        self._folder / entry.file,
                        "unproduced",
                        note="this stored recording was not produced by the test",
                    )
                    self._on_mismatch(mismatch)
                    raise ReplayDivergence(mismatch)
        finished = {name: (o.kind, o.recorder.finish()) for name, o in self._open.items()}
        self._report_deferred(finished)
        for name, (kind, result) in finished.items():
            target = self._open[name].target
            if target.expected is not None and result.data != target.expected:
                # A safety net behind the live checks: compare the whole recordings.
                found = kind.diff(target.expected, result.data, target.expected_meta)
                if found is not None:
                    divergence = dataclasses.replace(found[0], context=tuple(found[1]))
                    target.fail(divergence, kind.ignored(target.expected_meta))
        return finished

    def _report_deferred(
        self, finished: Mapping[str, tuple[RecordingKind, FinishedRecording]]
    ) -> None:
        """``--replay-diff=full``: compare every deferred recording whole, write the complete
        diff of each that differs, and fail with the first of them and its summary."""
        __tracebackhide__ = True
        failures: list[Mismatch] = []
        for name, opened in sorted(self._open.items()):
            expected = opened.deferred
            data = finished[name][1].data
            if expected is None or expected == data:
                continue
            kind = opened.kind
            assert kind.summarize is not None
            meta = dict(opened.entry.meta) if opened.entry is not None else {}
            summary = kind.summarize(expected, data, meta)
            first = summary.first()
            if first is None:
                continue
            found = kind.diff(expected, data, meta)
            if found is not None:
                first = dataclasses.replace(first, context=tuple(found[1]))
            header = {"test": self.nodeid, "recording": name, "kind": kind.name}
            folder = self._item.config.rootpath / REPORT_DIR / safe_component(self.test_id)
            report = write_diff_report(folder, safe_component(name), header, summary)
            failures.append(
                Mismatch(
                    self.nodeid, name, kind.name, opened.target.stored_path, "diverged", first,
                    kind.ignored(meta), summary=summary, report_file=report,
                )
            )  # fmt: skip
        if failures:
            first_failure = failures[0]
            if len(failures) > 1:
                others = ", ".join(repr(m.recording) for m in failures[1:])
                first_failure = dataclasses.replace(
                    first_failure, note=f"also differ (see their reports): {others}"
                )
            for mismatch in failures:
                self._on_mismatch(mismatch)
            raise ReplayDivergence(first_failure)

    def complete_once(self) -> dict[str, tuple[RecordingKind, FinishedRecording]]:
        """:meth:`complete` for the first run, remembered (the plugin stores this)."""
        __tracebackhide__ = True
        if self.finished is None:
            self.finished = self.complete()
            self.checked = frozenset(
                name
                for name, o in self._open.items()
                if o.target.expected is not None or o.deferred is not None
            )
        return self.finished

    def entries(self) -> Mapping[str, OpenRecording]:
        return dict(self._open)

    def new_run(self) -> None:
        """Close this run's recorders and start a fresh run of the test body
        (``replay_determinism``): recorders of later runs are compared with the first run,
        not with the store."""
        self.close()
        self._open = {}
        self._run += 1

    @property
    def run(self) -> int:
        return self._run

    def close(self) -> None:
        for opened in self._open.values():
            opened.recorder.close()


@contextlib.contextmanager
def hypothesis_settings_for_replay(item: pytest.Item, context: ReplayContext) -> Iterator[None]:
    """While ``item`` (a ``@given`` test using ``replay``) runs: seeded with ``replay.seed``,
    no example database, its function-scoped-fixture health check off, and, when stored
    recordings are compared, no shrinking; for this test only.

    ``replay`` is function-scoped on purpose: the examples of one test share it, and
    ``replay.example()`` gives each one its own recordings.
    """
    function: Any = getattr(item, "obj", None)
    if not getattr(function, "is_hypothesis_test", False):
        yield
        return
    from hypothesis import HealthCheck, Phase, settings

    target: Any = getattr(function, "__func__", function)  # a method: set it on the function
    previous = getattr(target, "_hypothesis_internal_use_settings", None)
    previous_seed = getattr(target, "_hypothesis_internal_use_seed", None)
    parent: settings = previous if previous is not None else settings()
    checks = {*parent.suppress_health_check, HealthCheck.function_scoped_fixture}
    phases = parent.phases
    if context._checking and context._compares_with_store:
        # Example k is compared with stored example k: a shrunk input is another example,
        # so shrinking would end on a divergence of the input itself, not the real one.
        phases = tuple(phase for phase in phases if phase is not Phase.shrink)
    target._hypothesis_internal_use_settings = settings(
        parent,
        database=None,
        phases=phases,
        suppress_health_check=sorted(checks, key=lambda check: check.value),
    )
    if previous_seed is None:
        # Like @seed(replay.seed): derandomize would seed from the test's source, so any
        # edit of the body would generate other examples than the ones recorded.
        target._hypothesis_internal_use_seed = context.seed
    try:
        yield
    finally:
        target._hypothesis_internal_use_settings = previous
        target._hypothesis_internal_use_seed = previous_seed


def nondeterminism(
    nodeid: str,
    run: int,
    first: Mapping[str, tuple[RecordingKind, FinishedRecording]],
    later: Mapping[str, tuple[RecordingKind, FinishedRecording]],
    folder: Path,
    how: str = "",
) -> Mismatch | None:
    """The first difference between run ``run``'s recordings and the first run's."""
    detail = f"run {run} vs run 1{how}"
    for name in sorted(first.keys() | later.keys()):
        if name not in later or name not in first:
            which = "first run" if name in first else f"run {run}"
            kind = (first.get(name) or later[name])[0]
            return Mismatch(
                nodeid,
                name,
                kind.name,
                None,
                "nondeterministic",
                note=f"{detail}: recording {name!r} was produced only by the {which}",
            )
    for name in sorted(first):
        kind, want = first[name]
        got = later[name][1]
        if want.data == got.data:
            continue
        found = kind.diff(want.data, got.data, want.meta)
        divergence = None if found is None else dataclasses.replace(found[0], context=found[1])
        return Mismatch(
            nodeid,
            name,
            kind.name,
            None,
            "nondeterministic",
            divergence=divergence,
            ignored=kind.ignored(want.meta),
            note=detail if found else f"{detail}: the recorded bytes differ",
        )
    return None
