"""FleetLogReader: indexes a slabbed fleet log and decodes its step sections lazily."""

from __future__ import annotations

import bisect
import functools
import os
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from pytest_replay import _fs
from pytest_replay.fleet.errors import FleetLogError
from pytest_replay.fleet.logformat import (
    FLAG_FINAL,
    FRAME_HEADER,
    LEGACY_VERSION,
    ORIGIN_DTYPE,
    SLAB_HEADER,
    SLAB_MAGIC,
    SectionType,
    StepSection,
    decode_keyframes,
    decode_lifecycle,
    decode_steps,
    encode_empty_slab,
    iter_frames,
    parse_slab_header,
)
from pytest_replay.fleet.records import (
    Instantiated,
    Keyframe,
    LifecycleRecord,
    MissionStarted,
    Step,
)

__all__ = [
    "MAX_SLAB_BYTES",
    "SECTION_CACHE_CAP",
    "FleetLogReader",
    "LogIdentity",
    "SectionIndexEntry",
    "StepTable",
    "read_identity",
    "read_regular_file",
]

#: Decoded step sections kept per reader (least recently used goes first).
SECTION_CACHE_CAP: Final = 8
#: Largest slab file a reader accepts; checked before the file is read.
MAX_SLAB_BYTES: Final = 1 << 30
#: Most slabs one log may have; bounds the scan for slab files.
MAX_SLABS: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class SectionIndexEntry:
    """Where one step section lives and which steps it holds."""

    path: Path
    offset: int
    length: int
    first_id: int
    last_id: int
    start_index: int
    count: int


@dataclass(frozen=True, slots=True)
class StepTable:
    """Step ids and message provenance of a whole log as flat arrays.

    ``origin_step_index[k]`` is the log-order index of the step holding the k-th
    message that has an origin; the three ``origin_*`` arrays are that origin.
    """

    step_ids: npt.NDArray[np.uint64]
    origin_step_index: npt.NDArray[np.int64]
    origin_instance: npt.NDArray[np.uint32]
    origin_code: npt.NDArray[np.uint16]
    origin_step: npt.NDArray[np.uint64]


@dataclass(frozen=True, slots=True)
class LogIdentity:
    """The first Instantiated and first MissionStarted record of a log."""

    instantiated: Instantiated
    mission: MissionStarted | None


def read_regular_file(
    path: Path, limit: int, too_big_fix: str, fail: Callable[[str, str], Exception]
) -> bytes:
    """The bytes of the regular file at ``path``, at most ``limit`` of them.

    ``fail(detail, fix)`` builds the error for a folder, a file that is not regular, one
    over ``limit`` or one that grows while read; ``OSError`` passes through.
    """
    try:
        fh = _fs.open_regular(path)
    except _fs.NotRegularFile as exc:
        if exc.is_dir:
            raise fail("the path is a folder", "remove the folder") from None
        fix = "point at the file itself, not a device or a pipe"
        raise fail("not a regular file", fix) from None
    with fh:
        # Reading exactly the checked size bounds the allocation and the time even for a
        # file whose size the stat misreports.
        size = os.fstat(fh.fileno()).st_size
        if size > limit:
            raise fail(f"{size} bytes, over the limit of {limit}", too_big_fix)
        data = fh.read(size)
        if fh.read(1):
            raise fail(
                "the file grew while it was read",
                "read it after the writer has synced or closed it",
            )
    return data


def _read_slab(path: Path) -> bytes | None:
    """The slab's bytes, or ``None`` when the file does not exist."""
    too_big_fix = "split the log into smaller slabs (FleetLogWriter slab_size)"
    try:
        return read_regular_file(
            path, MAX_SLAB_BYTES, too_big_fix, functools.partial(FleetLogError, path, None)
        )
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise FleetLogError(path, None, f"cannot read slab ({exc})", "check permissions") from None


def _is_rotation_leftover(path: Path, index: int) -> bool:
    """Whether ``path`` is an empty FINAL slab: a writer stopped while rotating wrote it
    before taking the FINAL flag off the slab before it, and it holds nothing."""
    legacy = SLAB_HEADER.pack(SLAB_MAGIC, LEGACY_VERSION, FLAG_FINAL, index)
    leftovers = (encode_empty_slab(index, final=True), legacy)
    try:
        return os.path.getsize(path) <= len(leftovers[0]) and _read_slab(path) in leftovers
    except (OSError, FleetLogError):
        return False


def _slabs(base_path: Path) -> Iterator[tuple[Path, bytes]]:
    """Yield every slab of a log with its bytes, checking order, FINAL flag and strays.

    The log ends at its first FINAL slab; the one slab after it may only be the empty
    FINAL slab a writer stopped mid-rotation leaves, and is not yielded.
    """
    folder, stem, suffix = base_path.parent, base_path.stem, base_path.suffix
    for index in range(MAX_SLABS):
        path = folder / f"{stem}_{index}{suffix}"
        data = _read_slab(path)
        if data is None:
            if index == 0:
                raise FleetLogError(
                    base_path,
                    None,
                    f"slab 0 '{path.name}' does not exist",
                    "pass the base path of a recorded log (its slabs are name_0.ext, ...)",
                )
            raise FleetLogError(
                path,
                None,
                f"slab {index} is missing: slab {index - 1} is not marked as the last slab",
                "copy every slab of the log, or sync/close the writer that wrote it",
            )
        final = parse_slab_header(path, data, index)
        yield path, data
        if final:
            stray = folder / f"{stem}_{index + 1}{suffix}"
            if _is_rotation_leftover(stray, index + 1):
                stray = folder / f"{stem}_{index + 2}{suffix}"
            if os.path.lexists(stray):
                raise FleetLogError(
                    stray,
                    None,
                    f"stray slab after the last slab {index} of the log",
                    "delete slabs left over from an older log at this base path",
                )
            return
    raise FleetLogError(base_path, None, f"log has more than {MAX_SLABS} slabs")


def read_identity(base_path: str | os.PathLike[str]) -> LogIdentity:
    """Scan lifecycle sections until the first Instantiated and MissionStarted records.

    Only lifecycle payloads are decoded (and CRC-checked); step data is skipped.
    """
    base = Path(base_path)
    instantiated: Instantiated | None = None
    mission: MissionStarted | None = None
    for path, data in _slabs(base):
        for offset, kind, payload in iter_frames(path, data, verify_only=SectionType.LIFECYCLE):
            if kind is not SectionType.LIFECYCLE:
                continue
            for record in decode_lifecycle(path, offset, payload):
                if isinstance(record, Instantiated):
                    instantiated = instantiated or record
                elif mission is None:
                    mission = record
            if instantiated is not None and mission is not None:
                return LogIdentity(instantiated, mission)
    if instantiated is None:
        raise FleetLogError(
            base,
            None,
            "log has no 'instantiated' lifecycle record",
            "call FleetLogWriter.log_instantiated() before logging steps",
        )
    return LogIdentity(instantiated, mission)


class FleetLogReader:
    """An indexed fleet log.

    Opening reads every slab once: frames are CRC-checked, step sections decoded and
    validated, and the section index, keyframes, lifecycle records and the
    :class:`StepTable` are kept. Steps are later decoded again on demand through an
    LRU cache of :data:`SECTION_CACHE_CAP` sections.
    """

    def __init__(self, base_path: str | os.PathLike[str]) -> None:
        self._base = Path(base_path)
        self._cache: OrderedDict[int, StepSection] = OrderedDict()
        sections: list[SectionIndexEntry] = []
        keyframes: list[Keyframe] = []
        keyframe_at: list[tuple[Path, int]] = []
        lifecycle_frames: list[tuple[Path, int, bytes]] = []
        slab_paths: list[Path] = []
        ids: list[npt.NDArray[np.uint64]] = []
        origin_index: list[npt.NDArray[np.int64]] = []
        origins: list[npt.NDArray[np.void]] = []
        total = 0
        for path, data in _slabs(self._base):
            slab_paths.append(path)
            for offset, kind, payload in iter_frames(path, data):
                if kind is SectionType.STEPS:
                    section = decode_steps(path, offset, payload)
                    count = len(section)
                    first, last = int(section.ids[0]), int(section.ids[-1])
                    if sections and first <= sections[-1].last_id:
                        raise FleetLogError(
                            path,
                            offset,
                            f"step section starts at id {first}, not after the previous "
                            f"section's last id {sections[-1].last_id}",
                        )
                    sections.append(
                        SectionIndexEntry(path, offset, len(payload), first, last, total, count)
                    )
                    ids.append(section.ids)
                    with_origin = np.flatnonzero(section.origin_flags)
                    if with_origin.size:
                        per_step = np.repeat(
                            np.arange(count, dtype=np.int64), np.diff(section.message_starts)
                        )
                        origin_index.append(per_step[with_origin] + total)
                        origins.append(section.origins[with_origin])
                    self._remember(len(sections) - 1, section)
                    total += count
                elif kind is SectionType.KEYFRAMES:
                    for keyframe in decode_keyframes(path, offset, payload):
                        if keyframes and keyframe.step_id <= keyframes[-1].step_id:
                            raise FleetLogError(
                                path,
                                offset,
                                f"keyframe for step {keyframe.step_id} follows the keyframe for "
                                f"step {keyframes[-1].step_id}",
                            )
                        keyframes.append(keyframe)
                        keyframe_at.append((path, offset))
                else:
                    # Checked by CRC now, decoded on first use: replay never needs it.
                    lifecycle_frames.append((path, offset, bytes(payload)))
        self._sections = tuple(sections)
        self._starts = [entry.start_index for entry in sections]
        self._keyframes = tuple(keyframes)
        self._keyframe_by_id = {kf.step_id: kf for kf in keyframes}
        self._lifecycle_frames = lifecycle_frames
        self._lifecycle: tuple[LifecycleRecord, ...] | None = None
        self._slab_paths = tuple(slab_paths)
        self._total = total
        all_ids = np.concatenate(ids) if ids else np.zeros(0, np.uint64)
        for position, keyframe in enumerate(keyframes):
            # all_ids is strictly increasing, so a binary search settles membership.
            found = int(np.searchsorted(all_ids, np.uint64(keyframe.step_id)))
            if found == len(all_ids) or int(all_ids[found]) != keyframe.step_id:
                bad = position
                path, offset = keyframe_at[bad]
                raise FleetLogError(
                    path,
                    offset,
                    f"keyframe names step {keyframes[bad].step_id}, which is not in the log",
                )
        origin_records = np.concatenate(origins) if origins else np.zeros(0, ORIGIN_DTYPE)
        self._table = StepTable(
            step_ids=all_ids,
            origin_step_index=(
                np.concatenate(origin_index) if origin_index else np.zeros(0, np.int64)
            ),
            origin_instance=origin_records["instance_id"].astype(np.uint32),
            origin_code=origin_records["subsystem_code"].astype(np.uint16),
            origin_step=origin_records["step_id"].astype(np.uint64),
        )

    @classmethod
    def open(cls, base_path: str | os.PathLike[str]) -> FleetLogReader:
        return cls(base_path)

    # ----------------------------------------------------------------- index

    @property
    def base_path(self) -> Path:
        return self._base

    @property
    def slab_paths(self) -> tuple[Path, ...]:
        return self._slab_paths

    @property
    def sections(self) -> tuple[SectionIndexEntry, ...]:
        return self._sections

    @property
    def keyframes(self) -> tuple[Keyframe, ...]:
        return self._keyframes

    @property
    def lifecycle(self) -> tuple[LifecycleRecord, ...]:
        """Every lifecycle record, in log order."""
        if self._lifecycle is None:
            records: list[LifecycleRecord] = []
            for path, offset, payload in self._lifecycle_frames:
                records.extend(decode_lifecycle(path, offset, payload))
            self._lifecycle = tuple(records)
        return self._lifecycle

    @property
    def total_steps(self) -> int:
        return self._total

    def step_table(self) -> StepTable:
        return self._table

    def keyframe_for(self, step_id: int) -> Keyframe | None:
        return self._keyframe_by_id.get(step_id)

    def nearest_keyframe(self, step_id: int) -> Keyframe | None:
        """The keyframe with the largest step id at or before ``step_id``."""
        position = bisect.bisect_right(self._keyframes, step_id, key=_keyframe_id) - 1
        return self._keyframes[position] if position >= 0 else None

    def index_of_step(self, step_id: int) -> int:
        """Log-order index of the step with ``step_id``."""
        position = bisect.bisect_left(self._sections, step_id, key=_last_id)
        if position == len(self._sections) or self._sections[position].first_id > step_id:
            raise KeyError(step_id)
        entry = self._sections[position]
        local = int(np.searchsorted(self.section(position).ids, step_id))
        if local >= entry.count or int(self.section(position).ids[local]) != step_id:
            raise KeyError(step_id)
        return entry.start_index + local

    # ----------------------------------------------------------------- decoding

    def section_of(self, index: int) -> tuple[int, int]:
        """(section number, start index) of the section holding step ``index``."""
        if not 0 <= index < self._total:
            raise IndexError(f"step index {index} is outside 0..{self._total - 1}")
        position = bisect.bisect_right(self._starts, index) - 1
        return position, self._starts[position]

    def section(self, position: int) -> StepSection:
        """Decoded step section ``position`` (cached)."""
        cached = self._cache.get(position)
        if cached is not None:
            self._cache.move_to_end(position)
            return cached
        entry = self._sections[position]
        try:
            with open(entry.path, "rb") as fh:
                fh.seek(entry.offset)
                frame = fh.read(FRAME_HEADER.size + entry.length)
        except OSError as exc:
            raise FleetLogError(
                entry.path, entry.offset, f"cannot read step section ({exc})", "check permissions"
            ) from None
        if len(frame) != FRAME_HEADER.size + entry.length:
            raise FleetLogError(
                entry.path, entry.offset, "slab shrank after it was indexed (truncated frame)"
            )
        kind, _reserved, length, crc = FRAME_HEADER.unpack_from(frame, 0)
        payload = memoryview(frame)[FRAME_HEADER.size :]
        if (
            kind != SectionType.STEPS
            or length != entry.length
            or zlib.crc32(payload, zlib.crc32(frame[:8])) != crc
        ):
            raise FleetLogError(
                entry.path, entry.offset, "step section changed after it was indexed"
            )
        section = decode_steps(entry.path, entry.offset, payload)
        self._remember(position, section)
        return section

    def step_at(self, index: int) -> Step:
        position, start = self.section_of(index)
        return self.section(position).step(index - start)

    def iter_steps(self) -> Iterator[Step]:
        for position, entry in enumerate(self._sections):
            section = self.section(position)
            for local in range(entry.count):
                yield section.step(local)

    def _remember(self, position: int, section: StepSection) -> None:
        self._cache[position] = section
        self._cache.move_to_end(position)
        while len(self._cache) > SECTION_CACHE_CAP:
            self._cache.popitem(last=False)

    @property
    def cached_sections(self) -> tuple[int, ...]:
        """Section numbers held by the LRU cache, least recently used first."""
        return tuple(self._cache)


def _keyframe_id(keyframe: Keyframe) -> int:
    return keyframe.step_id


def _last_id(entry: SectionIndexEntry) -> int:
    return entry.last_id
