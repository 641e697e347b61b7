"""Recording kinds: the registry the plugin looks kinds up in, and the built-in kinds.

A kind (:class:`~pytest_replay.recordingkind.RecordingKind`) is a value: how a recording
is recorded (its recorder, :mod:`pytest_replay.recorder`), stored, loaded and diffed. The
built-in kinds each live in their own module (:mod:`~pytest_replay.ringkind`,
:mod:`~pytest_replay.datakind`, :mod:`~pytest_replay.sequencekind`); the journal, fleet,
GPU and replication packages (and users, through the ``pytest_replay_register_kinds``
hook) add theirs without touching the plugin. This module is the one place the plugin
and the CLI import kinds from.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from pytest_replay.datakind import DATA_KIND, DataRecorder
from pytest_replay.kindformat import plain
from pytest_replay.recorder import (
    CheckedRecorder,
    CheckedStream,
    FinishedRecording,
    Recorder,
    RecordingTarget,
)
from pytest_replay.recordingkind import RecordingKind
from pytest_replay.report import ReplayUsageError
from pytest_replay.ringkind import RING_KIND, RingRecorder
from pytest_replay.sequencekind import sequence_kind

__all__ = [
    "DATA_KIND",
    "RING_KIND",
    "CheckedRecorder",
    "CheckedStream",
    "DataRecorder",
    "FinishedRecording",
    "KindRegistry",
    "Recorder",
    "RecordingKind",
    "RecordingTarget",
    "RingRecorder",
    "builtin_kinds",
    "plain",
    "sequence_kind",
]


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


def builtin_kinds() -> list[RecordingKind]:
    """The kinds every run has: ``ring`` (VRRL) and ``data`` (msgpack value)."""
    return [RING_KIND, DATA_KIND]
