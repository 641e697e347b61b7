"""FleetLogReader: indexes a slabbed fleet log and decodes its step sections lazily."""

from __future__ import annotations

import bisect
import functools
import os
import struct
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from pytest_replay import _fs
from pytest_replay._gc import paused_collector
from pytest_replay.fleet.errors import FleetError, FleetLogError
from pytest_replay.fleet.logformat import (
    ORIGIN_DTYPE,
    StepFields,
    StepSection,
    decode_keyframes,
    decode_lifecycle,
    decode_steps,
    iter_frames,
    parse_slab_header,
    unpack_step_fields,
)
from pytest_replay.fleet.records import (
    MAX_U64,
    Instantiated,
    Keyframe,
    LifecycleRecord,
    MissionStarted,
    Step,
)
from pytest_replay.formats.fleet_log import (
    FLAG_FINAL,
    FRAME_HEADER,
    LEGACY_VERSION,
    MAX_SLABS,
    SLAB_HEADER,
    SLAB_MAGIC,
    SectionType,
    encode_empty_slab,
)

__all__ = [
    "MAX_SLAB_BYTES",
    "SECTION_CACHE_CAP",
    "FleetLogReader",
    "IdentifiedLog",
    "LogIdentity",
    "LogIndex",
    "SectionIndexEntry",
    "SlabStamp",
    "StepTable",
    "as_path",
    "identify_logs",
    "index_is_current",
    "index_logs",
    "open_readers",
    "read_identity",
    "read_regular_file",
]

#: Decoded step sections kept per reader (least recently used goes first).
SECTION_CACHE_CAP: Final = 8
#: Largest slab file a reader accepts; checked before the file is read.
MAX_SLAB_BYTES: Final = 1 << 30


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


def as_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a :class:`Path`; one that already is one is not parsed again."""
    return path if isinstance(path, Path) else Path(path)


def read_regular_file(
    path: Path, limit: int, too_big_fix: str, fail: Callable[[str, str], Exception]
) -> bytes:
    """The bytes of the regular file at ``path``, at most ``limit`` of them.

    ``fail(detail, fix)`` builds the error for a folder, a file that is not regular, one
    over ``limit`` or one that grows while read; ``OSError`` passes through.
    """
    return _read_regular_stamped(path, limit, too_big_fix, fail)[0]


#: What a slab's ``fstat`` said when it was read: device, inode, size, mtime (ns).
SlabStamp = tuple[int, int, int, int]


def _stamp_of(info: os.stat_result) -> SlabStamp:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def _read_regular_stamped(
    path: Path, limit: int, too_big_fix: str, fail: Callable[[str, str], Exception]
) -> tuple[bytes, SlabStamp]:
    try:
        fd, size = _fs.open_regular_fd(path)
    except _fs.NotRegularFile as exc:
        if exc.is_dir:
            raise fail("the path is a folder", "remove the folder") from None
        fix = "point at the file itself, not a device or a pipe"
        raise fail("not a regular file", fix) from None
    # A bare descriptor: for the many small slabs of a fleet, a file object costs
    # more than the read itself.
    try:
        # Reading exactly the checked size bounds the allocation and the time even for a
        # file whose size the stat misreports; the one byte more is there only when the
        # file grew after the stat.
        if size > limit:
            raise fail(f"{size} bytes, over the limit of {limit}", too_big_fix)
        data = _fs.read_fd(fd, size + 1)
        if len(data) > size:
            raise fail(
                "the file grew while it was read",
                "read it after the writer has synced or closed it",
            )
        # Taken after the read: a later write changes the size or the mtime, so an index
        # handed from discovery to a replay is used only while both are as read here.
        stamp = _stamp_of(os.fstat(fd))
    finally:
        os.close(fd)
    return data, stamp


def _read_slab(path: Path) -> bytes | None:
    """The slab's bytes, or ``None`` when the file does not exist."""
    read = _read_slab_stamped(path)
    return None if read is None else read[0]


def _read_slab_stamped(path: Path) -> tuple[bytes, SlabStamp] | None:
    """The slab's bytes and what its descriptor's ``fstat`` said, or ``None`` when the
    file does not exist."""
    too_big_fix = "split the log into smaller slabs (FleetLogWriter slab_size)"
    try:
        return _read_regular_stamped(
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


def _slabs(
    base_path: Path, stamps: list[SlabStamp] | None = None, files: list[str] | None = None
) -> Iterator[tuple[Path, bytes]]:
    """Yield every slab of a log with its bytes, checking order, FINAL flag and strays.

    The log ends at its first FINAL slab; the one slab after it may only be the empty
    FINAL slab a writer stopped mid-rotation leaves, and is not yielded. With ``stamps``
    and ``files``, each yielded slab's :data:`SlabStamp` and path go to them, then the
    path of the file that must not exist after the last slab; a leftover slab there
    adds one more stamp (the index of such a log is never taken as current).
    """
    folder, stem, suffix = base_path.parent, base_path.stem, base_path.suffix
    for index in range(MAX_SLABS):
        path = folder / f"{stem}_{index}{suffix}"
        read = _read_slab_stamped(path)
        if read is None:
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
        data = read[0]
        if stamps is not None and files is not None:
            stamps.append(read[1])
            files.append(os.fspath(path))
        final = parse_slab_header(path, data, index)
        yield path, data
        if final:
            # One lstat settles the usual case, no file after the last slab. Its path is
            # this slab's (as a string, already made for the read) with the next name: a
            # Path is built only for a file that is there.
            stray_name = f"{stem}_{index + 1}{suffix}"
            text = os.fspath(path)
            after = text[: len(text) - len(path.name)] + stray_name
            if files is not None:
                files.append(after)
            if not os.path.lexists(after):
                return
            stray = folder / stray_name
            if _is_rotation_leftover(stray, index + 1):
                stray = folder / f"{stem}_{index + 2}{suffix}"
                if not os.path.lexists(stray):
                    if stamps is not None:
                        stamps.append(_LEFTOVER)
                    return
            raise FleetLogError(
                stray,
                None,
                f"stray slab after the last slab {index} of the log",
                "delete slabs left over from an older log at this base path",
            )
    raise FleetLogError(base_path, None, f"log has more than {MAX_SLABS} slabs")


#: Stands for the leftover slab after a log's last one in the stamps of its scan.
_LEFTOVER: Final[SlabStamp] = (-1, -1, -1, -1)
#: A :data:`SlabStamp` as kept in a :class:`LogIndex`: bytes, not a tuple per slab, so an
#: index adds no object the cyclic collector tracks (see ``ReplayCatalog.discover``).
_PACKED_STAMP: Final = struct.Struct("<QQQq")


def _pack_stamps(stamps: list[SlabStamp]) -> bytes:
    """The stamps of a scan packed, or ``b""`` (never current) when one does not fit,
    the leftover slab's among them."""
    try:
        return b"".join([_PACKED_STAMP.pack(*stamp) for stamp in stamps])
    except struct.error:
        return b""


def index_is_current(index: LogIndex) -> bool:
    """Whether the slabs of ``index``'s log are still the files it was built from: the
    same file (device, inode), size and modification time, and no file after the last
    one. An index handed from discovery to :meth:`ReplayPlan.start` is used only then;
    otherwise the log is read again, with the checks and errors of a first read."""
    stamps = index.on_disk
    files = index.slab_files.split("\0")
    size = _PACKED_STAMP.size
    if not stamps or len(stamps) != size * (len(files) - 1):
        return False
    pack = _PACKED_STAMP.pack
    try:
        for number in range(len(files) - 1):
            info = os.stat(files[number])
            now = pack(info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
            if stamps[number * size : (number + 1) * size] != now:
                return False
    except (OSError, struct.error):
        return False
    return not os.path.lexists(files[-1])


def read_identity(base_path: str | os.PathLike[str]) -> LogIdentity:
    """Scan lifecycle sections until the first Instantiated and MissionStarted records.

    Only lifecycle payloads are decoded (and CRC-checked); step data is skipped.
    """
    base = as_path(base_path)

    def lifecycle() -> Iterator[tuple[Path, int, bytes | memoryview]]:
        for path, data in _slabs(base):
            for offset, kind, payload in iter_frames(path, data, verify_only=SectionType.LIFECYCLE):
                if kind is SectionType.LIFECYCLE:
                    yield path, offset, payload

    return _identity_from(base, lifecycle())


def _identity_from(
    base: Path, lifecycle: Iterable[tuple[Path, int, bytes | memoryview]]
) -> LogIdentity:
    """The first Instantiated and MissionStarted records among the lifecycle payloads
    ``(slab path, offset, payload)``, read in order and only as far as needed."""
    instantiated: Instantiated | None = None
    mission: MissionStarted | None = None
    for path, offset, payload in lifecycle:
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


def _index_precisely(base: Path) -> LogIndex:
    """Index one log section by section, raising the first problem in file order.

    The reference for every error a reader reports: :func:`index_logs` checks many
    logs at once and comes back here for a log its checks refuse.
    """
    sections: list[SectionIndexEntry] = []
    keyframes: list[Keyframe] = []
    keyframe_at: list[tuple[Path, int]] = []
    lifecycle_rows: list[tuple[int, int, int, int]] = []
    lifecycle_payloads: list[bytes] = []
    lifecycle_end = 0
    slab_paths: list[Path] = []
    ids: list[npt.NDArray[np.uint64]] = []
    stamps: list[npt.NDArray[np.uint64]] = []
    origin_index: list[npt.NDArray[np.int64]] = []
    origins: list[npt.NDArray[np.void]] = []
    total = 0
    for path, data in _slabs(base):
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
                stamps.append(section.timestamps)
                with_origin = np.flatnonzero(section.origin_flags)
                if with_origin.size:
                    per_step = np.repeat(
                        np.arange(count, dtype=np.int64), np.diff(section.message_starts)
                    )
                    origin_index.append(per_step[with_origin] + total)
                    origins.append(section.origins[with_origin])
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
                start, lifecycle_end = lifecycle_end, lifecycle_end + len(payload)
                lifecycle_rows.append((len(slab_paths) - 1, offset, start, lifecycle_end))
                lifecycle_payloads.append(bytes(payload))
    all_ids = np.concatenate(ids) if ids else np.zeros(0, np.uint64)
    for position, keyframe in enumerate(keyframes):
        # all_ids is strictly increasing, so a binary search settles membership.
        found = int(np.searchsorted(all_ids, np.uint64(keyframe.step_id)))
        if found == len(all_ids) or int(all_ids[found]) != keyframe.step_id:
            path, offset = keyframe_at[position]
            raise FleetLogError(
                path,
                offset,
                f"keyframe names step {keyframe.step_id}, which is not in the log",
            )
    origin_records = np.concatenate(origins) if origins else np.zeros(0, ORIGIN_DTYPE)
    lifecycle_at, lifecycle_blob = _lifecycle_columns(lifecycle_rows, lifecycle_payloads)
    keyframe_columns, keyframe_blob = _keyframe_columns(keyframes)
    slab_number = {path: number for number, path in enumerate(slab_paths)}
    section_rows = [
        (slab_number[e.path], e.offset, e.length, e.first_id, e.last_id, e.start_index, e.count)
        for e in sections
    ]
    return LogIndex(
        base=base,
        slab_count=len(slab_paths),
        section_at=np.array(section_rows, np.uint64).reshape(-1, 7),
        keyframe_at=keyframe_columns,
        keyframe_blob=keyframe_blob,
        lifecycle_at=lifecycle_at,
        lifecycle_blob=lifecycle_blob,
        stamps=np.concatenate(stamps) if stamps else np.zeros(0, np.uint64),
        step_ids=all_ids,
        origin_step_index=(np.concatenate(origin_index) if origin_index else np.zeros(0, np.int64)),
        origin_instance=origin_records["instance_id"].astype(np.uint32),
        origin_code=origin_records["subsystem_code"].astype(np.uint16),
        origin_step=origin_records["step_id"].astype(np.uint64),
    )


@dataclass(frozen=True, slots=True)
class LogIndex:
    """Everything a reader keeps about one log after indexing it, and the
    :data:`SlabStamp` of each slab it was read from (see :func:`index_is_current`).

    Held in arrays and bytes only: discovery keeps the index of every log of a fleet
    until the replay starts, and each Python object kept per log is one more object the
    cyclic collector tracks and every collection walks. The objects a reader hands out
    (slab paths, section entries, keyframes, the step table) are built from it.
    """

    base: Path
    slab_count: int
    #: Per step section: slab number, offset, length, first id, last id, start, count.
    section_at: npt.NDArray[np.uint64]
    #: Per keyframe: step id, timestamp, start and end of its state in ``keyframe_blob``.
    keyframe_at: npt.NDArray[np.uint64]
    keyframe_blob: bytes
    #: Per lifecycle frame: slab number, offset, start and end in ``lifecycle_blob``.
    lifecycle_at: npt.NDArray[np.int64]
    lifecycle_blob: bytes
    stamps: npt.NDArray[np.uint64]
    step_ids: npt.NDArray[np.uint64]
    origin_step_index: npt.NDArray[np.int64]
    origin_instance: npt.NDArray[np.uint32]
    origin_code: npt.NDArray[np.uint16]
    origin_step: npt.NDArray[np.uint64]
    #: The packed stamps of the slabs, ``b""`` when the index may not be handed over.
    on_disk: bytes = b""
    #: The paths of the slabs, then of the file that must not follow the last one,
    #: joined by NUL (which no path holds).
    slab_files: str = ""

    @property
    def slab_paths(self) -> tuple[Path, ...]:
        base = self.base
        folder, stem, suffix = base.parent, base.stem, base.suffix
        return tuple(folder / f"{stem}_{index}{suffix}" for index in range(self.slab_count))

    @property
    def sections(self) -> tuple[SectionIndexEntry, ...]:
        paths = self.slab_paths
        return tuple(
            SectionIndexEntry(paths[slab], offset, length, first, last, start, count)
            for slab, offset, length, first, last, start, count in self.section_at.tolist()
        )

    @property
    def keyframes(self) -> tuple[Keyframe, ...]:
        blob = self.keyframe_blob
        return tuple(
            Keyframe(step_id, stamp, blob[lo:hi])
            for step_id, stamp, lo, hi in self.keyframe_at.tolist()
        )

    @property
    def table(self) -> StepTable:
        return StepTable(
            self.step_ids,
            self.origin_step_index,
            self.origin_instance,
            self.origin_code,
            self.origin_step,
        )

    def lifecycle_frames(self) -> Iterator[tuple[Path, int, bytes]]:
        """(slab path, frame offset, payload) of each lifecycle frame, in log order."""
        paths, blob = self.slab_paths, self.lifecycle_blob
        for slab, offset, lo, hi in self.lifecycle_at.tolist():
            yield paths[slab], offset, blob[lo:hi]


def _keyframe_columns(keyframes: Sequence[Keyframe]) -> tuple[npt.NDArray[np.uint64], bytes]:
    rows = []
    end = 0
    for keyframe in keyframes:
        start, end = end, end + len(keyframe.state)
        rows.append((keyframe.step_id, keyframe.timestamp_ns, start, end))
    blob = b"".join([keyframe.state for keyframe in keyframes])
    return np.array(rows, np.uint64).reshape(-1, 4), blob


def _lifecycle_columns(
    rows: list[tuple[int, int, int, int]], payloads: list[bytes]
) -> tuple[npt.NDArray[np.int64], bytes]:
    return np.array(rows, np.int64).reshape(-1, 4), b"".join(payloads)


@dataclass(frozen=True, slots=True)
class _StepFrame:
    path: Path
    slab: int
    offset: int
    length: int
    fields: StepFields


@dataclass(frozen=True, slots=True)
class _LogScan:
    """One log read and split into frames; step columns unpacked but not yet checked."""

    base: Path
    slab_paths: tuple[Path, ...]
    steps: list[_StepFrame]
    keyframes: list[Keyframe]
    lifecycle_rows: list[tuple[int, int, int, int]]
    lifecycle_payloads: list[bytes]
    on_disk: list[SlabStamp]
    files: list[str]


def _scan(base: Path) -> _LogScan:
    slab_paths: list[Path] = []
    steps: list[_StepFrame] = []
    keyframes: list[Keyframe] = []
    lifecycle_rows: list[tuple[int, int, int, int]] = []
    lifecycle_payloads: list[bytes] = []
    lifecycle_end = 0
    on_disk: list[SlabStamp] = []
    files: list[str] = []
    for path, data in _slabs(base, on_disk, files):
        slab_paths.append(path)
        for offset, kind, payload in iter_frames(path, data):
            if kind is SectionType.STEPS:
                fields = unpack_step_fields(path, offset, payload)
                steps.append(_StepFrame(path, len(slab_paths) - 1, offset, len(payload), fields))
            elif kind is SectionType.KEYFRAMES:
                keyframes.extend(decode_keyframes(path, offset, payload))
            else:
                start, lifecycle_end = lifecycle_end, lifecycle_end + len(payload)
                lifecycle_rows.append((len(slab_paths) - 1, offset, start, lifecycle_end))
                lifecycle_payloads.append(bytes(payload))
    return _LogScan(
        base,
        tuple(slab_paths),
        steps,
        keyframes,
        lifecycle_rows,
        lifecycle_payloads,
        on_disk,
        files,
    )


def _joined(parts: list[bytes], dtype: type[Any], *, writable: bool = False) -> npt.NDArray[Any]:
    """One little-endian column of many sections: joining bytes and reading them once is
    much faster than concatenating an array per section. Read-only unless ``writable``
    (the columns a reader hands out are writable, as they always were)."""
    data = b"".join(parts)
    little = np.dtype(dtype).newbyteorder("<")
    return np.frombuffer(bytearray(data) if writable else data, little)


def _bad_logs(scans: list[_LogScan]) -> set[int]:
    """Logs whose step columns or keyframes fail a check of :func:`_index_precisely`,
    found with a few array operations over every section of every log at once."""
    frames = [frame.fields for scan in scans for frame in scan.steps]
    section_log = np.repeat(
        np.arange(len(scans), dtype=np.int64), [len(scan.steps) for scan in scans]
    )
    counts = np.array([f.count for f in frames], np.int64)
    nmsgs = np.array([f.nmsg for f in frames], np.int64)
    first_step = np.zeros(len(frames) + 1, np.int64)
    np.cumsum(counts, out=first_step[1:])
    ids = _joined([f.ids_raw for f in frames], np.uint64)
    step_log = np.repeat(section_log, counts)
    bad = np.zeros(len(frames), bool)
    if frames:
        last_step = first_step[1:] - 1
        bad |= ids[first_step[:-1]] != np.array([f.first for f in frames], np.uint64)
        bad |= ids[last_step] != np.array([f.last for f in frames], np.uint64)
    # Strictly increasing ids through a whole log covers both the check inside a
    # section and the order between its sections.
    falling = np.flatnonzero((ids[1:] <= ids[:-1]) & (step_log[1:] == step_log[:-1]))
    logs = set(step_log[falling].tolist())
    # message_starts: count + 1 entries per section, 0 first, nmsg last, never falling.
    starts = _joined([f.starts_raw for f in frames], np.uint32).astype(np.int64)
    starts_at = first_step[:-1] + np.arange(len(frames), dtype=np.int64)
    starts_end = starts_at + counts
    if frames:
        bad |= (starts[starts_at] != 0) | (starts[starts_end] != nmsgs)
    starts_section = np.repeat(np.arange(len(frames), dtype=np.int64), counts + 1)
    within = starts_section[1:] == starts_section[:-1]
    bad[starts_section[1:][within & (starts[1:] < starts[:-1])]] = True
    # payload_ends: never falling, the last one is the blob's length.
    ends = _joined([f.ends_raw for f in frames], np.uint64)
    first_msg = np.zeros(len(frames) + 1, np.int64)
    np.cumsum(nmsgs, out=first_msg[1:])
    blobs = np.array([len(f.blob) for f in frames], np.uint64)
    with_msgs = nmsgs > 0
    bad[with_msgs] |= ends[first_msg[1:][with_msgs] - 1] != blobs[with_msgs]
    bad[~with_msgs] |= blobs[~with_msgs] != 0
    msg_section = np.repeat(np.arange(len(frames), dtype=np.int64), nmsgs)
    same = msg_section[1:] == msg_section[:-1]
    bad[msg_section[1:][same & (ends[1:] < ends[:-1])]] = True
    flags = _joined([f.flags_raw for f in frames], np.uint8)
    bad[msg_section[flags > 1]] = True
    raw = np.frombuffer(b"".join(f.origins_raw for f in frames), np.uint8)
    stray = raw.reshape(-1, ORIGIN_DTYPE.itemsize)[flags == 0].any(axis=1)
    bad[msg_section[flags == 0][stray]] = True
    logs.update(section_log[bad].tolist())
    _bad_keyframes(scans, ids, step_log, logs)
    return logs


#: Room for the step ids of one log in the keys of :func:`_bad_keyframes`.
_SPAN_BITS: Final = 44


def _bad_keyframes(
    scans: list[_LogScan],
    ids: npt.NDArray[np.uint64],
    step_log: npt.NDArray[np.int64],
    logs: set[int],
) -> None:
    """Add to ``logs`` the logs whose keyframe ids are not strictly increasing or name a
    step the log does not hold, with one binary search for every keyframe of every log.

    A step's key is its log number, then its id less the log's first id (``_SPAN_BITS``
    bits): increasing through the batch when each log's ids are, so one sorted array
    serves every log. Logs whose ids fall (already bad) or span too much for the key
    are searched one by one, as a reader would.
    """
    kf_ids = [keyframe.step_id for scan in scans for keyframe in scan.keyframes]
    if not kf_ids:
        return
    kf_log = np.repeat(
        np.arange(len(scans), dtype=np.int64), [len(scan.keyframes) for scan in scans]
    )
    kf = np.array(kf_ids, np.uint64)
    same = kf_log[1:] == kf_log[:-1]
    logs.update(kf_log[1:][same & (kf[1:] <= kf[:-1])].tolist())
    counts = np.bincount(step_log, minlength=len(scans))
    first_step = np.zeros(len(scans) + 1, np.int64)
    np.cumsum(counts, out=first_step[1:])
    has_steps = counts > 0
    first_id = np.zeros(len(scans), np.uint64)
    last_id = np.zeros(len(scans), np.uint64)
    first_id[has_steps] = ids[first_step[:-1][has_steps]]
    last_id[has_steps] = ids[first_step[1:][has_steps] - 1]
    limit = np.uint64(1 << _SPAN_BITS)
    keyed = has_steps & (last_id - first_id < limit)
    if logs:
        keyed[list(logs)] = False
    # Not keyed: no steps (every keyframe is then bad), or ids too far apart.
    for log in np.flatnonzero(~keyed & (np.bincount(kf_log, minlength=len(scans)) > 0)).tolist():
        if log in logs:
            continue
        own = ids[first_step[log] : first_step[log + 1]]
        wanted = kf[kf_log == log]
        found = np.minimum(own.searchsorted(wanted), max(len(own) - 1, 0))
        if not len(own) or not (own[found] == wanted).all():
            logs.add(log)
    base = step_log.astype(np.uint64) << np.uint64(_SPAN_BITS)
    offset = ids - first_id[step_log]
    keys = base + np.where(keyed[step_log], offset, np.uint64(0))
    asked = keyed[kf_log]
    kf_offset = kf[asked] - first_id[kf_log[asked]]
    inside = (kf[asked] >= first_id[kf_log[asked]]) & (kf_offset < limit)
    wanted_keys = (kf_log[asked].astype(np.uint64) << np.uint64(_SPAN_BITS)) + np.where(
        inside, kf_offset, np.uint64(0)
    )
    found = np.minimum(keys.searchsorted(wanted_keys), len(keys) - 1)
    missing = ~inside | (keys[found] != wanted_keys)
    logs.update(kf_log[asked][missing].tolist())


def _assemble(scans: list[_LogScan]) -> list[LogIndex]:
    """Each log's index from scans every check passed, as views of shared arrays."""
    frames = [frame for scan in scans for frame in scan.steps]
    fields = [frame.fields for frame in frames]
    counts = np.array([f.count for f in fields], np.int64)
    step_at = np.zeros(len(frames) + 1, np.int64)
    np.cumsum(counts, out=step_at[1:])
    ids = _joined([f.ids_raw for f in fields], np.uint64, writable=True)
    stamps = _joined([f.stamps_raw for f in fields], np.uint64, writable=True)
    # Messages per step: differences of message_starts inside each section.
    starts = _joined([f.starts_raw for f in fields], np.uint32).astype(np.int64)
    per_step = np.diff(starts)
    keep = np.ones(len(per_step), bool)
    keep[(step_at[1:] + np.arange(len(frames), dtype=np.int64))[:-1]] = False
    message_step = np.repeat(np.arange(int(step_at[-1]), dtype=np.int64), per_step[keep])
    flags = _joined([f.flags_raw for f in fields], np.uint8).astype(bool)
    # Joined as bytes: concatenating many small structured arrays is slow.
    origins = np.frombuffer(b"".join(f.origins_raw for f in fields), ORIGIN_DTYPE)[flags]
    origin_step = message_step[flags]
    origin_instance = origins["instance_id"].astype(np.uint32)
    origin_code = origins["subsystem_code"].astype(np.uint16)
    origin_id = origins["step_id"].astype(np.uint64)
    log_steps = np.zeros(len(scans) + 1, np.int64)
    np.cumsum([sum(f.fields.count for f in scan.steps) for scan in scans], out=log_steps[1:])
    origin_bounds = np.searchsorted(origin_step, log_steps)
    # Each origin's step index within its own log, for every log at once.
    origin_local = origin_step - np.repeat(log_steps[:-1], np.diff(origin_bounds))
    origin_at = origin_bounds.tolist()
    log_at = log_steps.tolist()
    first_step = step_at.tolist()
    # The per-log rows of sections, keyframes and lifecycle frames, for the whole batch:
    # one array each (and one blob), of which each log's index keeps a view.
    section_rows = []
    section_bounds = [0]
    keyframe_rows = []
    keyframe_bounds = [0]
    states: list[bytes] = []
    state_end = 0
    lifecycle_rows = []
    lifecycle_bounds = [0]
    lifecycle_end = 0
    section = 0
    for log, scan in enumerate(scans):
        lo = log_at[log]
        for frame in scan.steps:
            f = frame.fields
            section_rows.append(
                (
                    frame.slab,
                    frame.offset,
                    frame.length,
                    f.first,
                    f.last,
                    first_step[section] - lo,
                    f.count,
                )
            )
            section += 1
        section_bounds.append(section)
        for keyframe in scan.keyframes:
            state = keyframe.state
            start, state_end = state_end, state_end + len(state)
            keyframe_rows.append((keyframe.step_id, keyframe.timestamp_ns, start, state_end))
            states.append(state)
        keyframe_bounds.append(len(keyframe_rows))
        for slab, offset, begin, end in scan.lifecycle_rows:
            lifecycle_rows.append((slab, offset, lifecycle_end + begin, lifecycle_end + end))
        if scan.lifecycle_rows:
            lifecycle_end += scan.lifecycle_rows[-1][3]
        lifecycle_bounds.append(len(lifecycle_rows))
    section_table = np.array(section_rows, np.uint64).reshape(-1, 7)
    keyframe_table = np.array(keyframe_rows, np.uint64).reshape(-1, 4)
    keyframe_blob = b"".join(states)
    lifecycle_table = np.array(lifecycle_rows, np.int64).reshape(-1, 4)
    lifecycle_blob = b"".join(payload for scan in scans for payload in scan.lifecycle_payloads)
    out = []
    for log, scan in enumerate(scans):
        lo, hi = log_at[log], log_at[log + 1]
        o_lo, o_hi = origin_at[log], origin_at[log + 1]
        out.append(
            LogIndex(
                base=scan.base,
                slab_count=len(scan.slab_paths),
                section_at=section_table[section_bounds[log] : section_bounds[log + 1]],
                keyframe_at=keyframe_table[keyframe_bounds[log] : keyframe_bounds[log + 1]],
                keyframe_blob=keyframe_blob,
                lifecycle_at=lifecycle_table[lifecycle_bounds[log] : lifecycle_bounds[log + 1]],
                lifecycle_blob=lifecycle_blob,
                stamps=stamps[lo:hi],
                step_ids=ids[lo:hi],
                origin_step_index=origin_local[o_lo:o_hi],
                origin_instance=origin_instance[o_lo:o_hi],
                origin_code=origin_code[o_lo:o_hi],
                origin_step=origin_id[o_lo:o_hi],
                on_disk=_pack_stamps(scan.on_disk),
                slab_files="\0".join(scan.files),
            )
        )
    return out


#: Logs indexed together; bounds the columns held at once while a big fleet is indexed.
INDEX_BATCH_LOGS: Final = 1024


def _index_batch(bases: list[Path]) -> list[LogIndex]:
    scans: list[_LogScan] = []
    for base in bases:
        try:
            scans.append(_scan(base))
            continue
        except FleetLogError as exc:
            # Dropping the traceback frees the scan's frames and the slab bytes they hold
            # before the log is read again: decode memory stays one file plus a constant.
            error = exc.with_traceback(None)
        # Report what a reader opening the logs one by one would: a deferred column
        # check of an earlier log first, then the first problem of this one in file
        # order (the scan met this one but defers the column checks).
        _raise_first_bad(scans)
        _index_precisely(base)
        raise error
    _raise_first_bad(scans)
    return _assemble(scans)


def _raise_first_bad(scans: list[_LogScan]) -> None:
    bad = _bad_logs(scans)
    if bad:
        # The precise pass raises: it runs the same checks, one section at a time.
        _index_precisely(scans[min(bad)].base)


def _index_logs(bases: list[Path]) -> list[LogIndex]:
    out: list[LogIndex] = []
    for start in range(0, len(bases), INDEX_BATCH_LOGS):
        out.extend(_index_batch(bases[start : start + INDEX_BATCH_LOGS]))
    return out


def index_logs(base_paths: Iterable[str | os.PathLike[str]]) -> list[FleetLogReader]:
    """Readers for many logs, indexed together.

    Each log is read and split into frames on its own; the checks inside the step
    columns and the step tables run once over every log's columns, so a fleet of many
    small logs costs a few array operations rather than dozens per log. Errors are the
    ones :class:`FleetLogReader` raises for the first bad log, in the order given.
    """
    with paused_collector():
        return [
            FleetLogReader._from_index(index)
            for index in _index_logs([as_path(p) for p in base_paths])
        ]


def open_readers(logs: Iterable[tuple[Path, LogIndex | None]]) -> list[FleetLogReader]:
    """A reader for each (base path, index) pair: from the index when one is given and
    still current (:func:`index_is_current`), else by reading the log; the logs read are
    indexed together, with the errors :func:`index_logs` raises for them."""
    pairs = list(logs)
    readers: list[FleetLogReader | None] = []
    missing: list[Path] = []
    for base, index in pairs:
        if (
            index is not None
            and (index.base is base or index.base == base)
            and index_is_current(index)
        ):
            readers.append(FleetLogReader.from_index(index))
        else:
            readers.append(None)
            missing.append(base)
    if missing:
        read = iter(index_logs(missing))
        return [next(read) if reader is None else reader for reader in readers]
    return [reader for reader in readers if reader is not None]


@dataclass(frozen=True, slots=True)
class IdentifiedLog:
    """A log's identity and, when every check of a reader passed, its index."""

    identity: LogIdentity
    index: LogIndex | None


def _identity_of(scan: _LogScan) -> LogIdentity:
    """:func:`read_identity` from a scan that checked every frame of the log."""
    paths = scan.slab_paths
    rows = zip(scan.lifecycle_rows, scan.lifecycle_payloads, strict=True)
    return _identity_from(
        scan.base,
        ((paths[slab], offset, payload) for (slab, offset, _start, _end), payload in rows),
    )


def identify_logs(base_paths: Sequence[Path]) -> list[IdentifiedLog | None]:
    """Identity and index of each log, reading each once: what discovery needs and what
    :meth:`ReplayPlan.start` would read again.

    ``None`` for a log that does not read cleanly: the caller reads it again with
    :func:`read_identity`, which reports exactly what it always did (a log whose step
    data is damaged still has an identity; its error comes when a reader opens it).
    An index is left out (``None``) for a log whose step columns fail their checks.
    """
    out: list[IdentifiedLog | None] = []
    with paused_collector():
        for start in range(0, len(base_paths), INDEX_BATCH_LOGS):
            scans: list[_LogScan] = []
            identities: list[LogIdentity] = []
            at: list[int] = []
            for base in base_paths[start : start + INDEX_BATCH_LOGS]:
                try:
                    scan = _scan(base)
                    identity = _identity_of(scan)
                except FleetError:
                    out.append(None)
                    continue
                at.append(len(out))
                out.append(None)
                scans.append(scan)
                identities.append(identity)
            bad = _bad_logs(scans)
            good = [scan for number, scan in enumerate(scans) if number not in bad]
            indexes = iter(_assemble(good))
            for number, identity in enumerate(identities):
                index = None if number in bad else next(indexes)
                out[at[number]] = IdentifiedLog(identity, index)
    return out


class FleetLogReader:
    """An indexed fleet log.

    Opening reads every slab once: frames are CRC-checked, step sections decoded and
    validated, and the section index, keyframes, lifecycle records and the
    :class:`StepTable` are kept. Steps are later decoded again on demand through an
    LRU cache of :data:`SECTION_CACHE_CAP` sections.
    """

    def __init__(self, base_path: str | os.PathLike[str]) -> None:
        self._adopt(_index_logs([as_path(base_path)])[0])

    @classmethod
    def from_index(cls, index: LogIndex) -> FleetLogReader:
        """A reader over an index built earlier (see :func:`identify_logs`)."""
        return cls._from_index(index)

    @classmethod
    def _from_index(cls, index: LogIndex) -> FleetLogReader:
        reader = cls.__new__(cls)
        reader._adopt(index)
        return reader

    def _adopt(self, index: LogIndex) -> None:
        # The section cache, section starts and keyframe map are built on first use: a
        # fleet replay opens thousands of readers and most are never asked for them, and
        # every container kept per reader is one more object each garbage collection of
        # the whole heap walks.
        # The same goes for the objects built from the index's arrays.
        self._index = index
        self._base = index.base
        self._cache: OrderedDict[int, StepSection] | None = None
        self._sections: tuple[SectionIndexEntry, ...] | None = None
        self._starts_list: list[int] | None = None
        self._keyframes: tuple[Keyframe, ...] | None = None
        self._keyframe_map: dict[int, Keyframe] | None = None
        self._lifecycle: tuple[LifecycleRecord, ...] | None = None
        self._slab_paths: tuple[Path, ...] | None = None
        self._table: StepTable | None = None
        self._stamps = index.stamps
        self._total = len(index.step_ids)

    @classmethod
    def open(cls, base_path: str | os.PathLike[str]) -> FleetLogReader:
        return cls(base_path)

    # ----------------------------------------------------------------- index

    @property
    def base_path(self) -> Path:
        return self._base

    @property
    def slab_paths(self) -> tuple[Path, ...]:
        paths = self._slab_paths
        if paths is None:
            paths = self._slab_paths = self._index.slab_paths
        return paths

    @property
    def sections(self) -> tuple[SectionIndexEntry, ...]:
        sections = self._sections
        if sections is None:
            sections = self._sections = self._index.sections
        return sections

    @property
    def keyframes(self) -> tuple[Keyframe, ...]:
        keyframes = self._keyframes
        if keyframes is None:
            keyframes = self._keyframes = self._index.keyframes
        return keyframes

    @property
    def lifecycle(self) -> tuple[LifecycleRecord, ...]:
        """Every lifecycle record, in log order."""
        if self._lifecycle is None:
            records: list[LifecycleRecord] = []
            for path, offset, payload in self._index.lifecycle_frames():
                records.extend(decode_lifecycle(path, offset, payload))
            self._lifecycle = tuple(records)
        return self._lifecycle

    @property
    def total_steps(self) -> int:
        return self._total

    def step_table(self) -> StepTable:
        table = self._table
        if table is None:
            table = self._table = self._index.table
        return table

    def step_timestamp(self, index: int) -> int:
        """Timestamp (ns) of the step at log-order ``index``, without decoding the step."""
        return int(self._stamps[index])

    def keyframe_for(self, step_id: int) -> Keyframe | None:
        found = self._keyframe_map
        if found is None:
            found = self._keyframe_map = {kf.step_id: kf for kf in self.keyframes}
        return found.get(step_id)

    def nearest_keyframe(self, step_id: int) -> Keyframe | None:
        """The keyframe with the largest step id at or before ``step_id``."""
        keyframes = self.keyframes
        position = bisect.bisect_right(keyframes, step_id, key=_keyframe_id) - 1
        return keyframes[position] if position >= 0 else None

    def index_of_step(self, step_id: int) -> int:
        """Log-order index of the step with ``step_id``."""
        ids = self._index.step_ids
        if not 0 <= step_id <= MAX_U64:
            raise KeyError(step_id)
        index = int(np.searchsorted(ids, np.uint64(step_id)))
        if index == len(ids) or int(ids[index]) != step_id:
            raise KeyError(step_id)
        return index

    # ----------------------------------------------------------------- decoding

    def section_of(self, index: int) -> tuple[int, int]:
        """(section number, start index) of the section holding step ``index``."""
        if not 0 <= index < self._total:
            raise IndexError(f"step index {index} is outside 0..{self._total - 1}")
        starts = self._starts_list
        if starts is None:
            starts = self._starts_list = self._index.section_at[:, 5].tolist()
        position = bisect.bisect_right(starts, index) - 1
        return position, starts[position]

    def section(self, position: int) -> StepSection:
        """Decoded step section ``position`` (cached)."""
        cache = self._cache
        if cache is not None:
            cached = cache.get(position)
            if cached is not None:
                cache.move_to_end(position)
                return cached
        entry = self.sections[position]
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
        for position, entry in enumerate(self.sections):
            section = self.section(position)
            for local in range(entry.count):
                yield section.step(local)

    def _remember(self, position: int, section: StepSection) -> None:
        cache = self._cache
        if cache is None:
            cache = self._cache = OrderedDict()
        cache[position] = section
        cache.move_to_end(position)
        while len(cache) > SECTION_CACHE_CAP:
            cache.popitem(last=False)

    @property
    def cached_sections(self) -> tuple[int, ...]:
        """Section numbers held by the LRU cache, least recently used first."""
        return () if self._cache is None else tuple(self._cache)


def _keyframe_id(keyframe: Keyframe) -> int:
    return keyframe.step_id


def _last_id(entry: SectionIndexEntry) -> int:
    return entry.last_id
