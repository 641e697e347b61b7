"""The codecs of fleet log sections: columnar steps, keyframes and lifecycle records.

The slab bytes around them (header, frames, end frame, slab naming) are the format's:
:mod:`pytest_replay.formats.fleet_log`, re-exported here for the fleet package.

The first FINAL slab ends the log. A writer moving on to slab N+1 first writes it as a
bare FINAL header, then rewrites slab N without FINAL; a crash in between leaves slab N
still FINAL followed by that empty slab, which readers skip. Anything else after the
FINAL slab is a stray.

Step sections are columnar (see :func:`encode_steps`), so the causal graph is built
from a few numpy arrays per section and steps are materialised only when replayed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import msgpack
import numpy as np
import numpy.typing as npt

from pytest_replay._msgpack import unpack_bounded
from pytest_replay.fleet.errors import FleetLogError
from pytest_replay.fleet.records import (
    MAX_CODE,
    MAX_INSTANCE_ID,
    MAX_U64,
    ConfigSource,
    Instantiated,
    Keyframe,
    LifecycleRecord,
    Message,
    MissionStarted,
    Origin,
    StackInfo,
    Step,
    StepMessages,
)
from pytest_replay.formats import fleet_log as _slab
from pytest_replay.formats.fleet_log import SectionType

__all__ = [
    "ORIGIN_DTYPE",
    "StepSection",
    "decode_keyframes",
    "decode_lifecycle",
    "decode_steps",
    "encode_keyframes",
    "encode_lifecycle",
    "encode_steps",
    "iter_frames",
    "parse_slab_header",
]

#: One message's provenance as stored in a step section (unaligned, 14 bytes).
ORIGIN_DTYPE: Final = np.dtype(
    [("instance_id", "<u4"), ("subsystem_code", "<u2"), ("step_id", "<u8")]
)

_STEP_FIELDS: Final = 11

U64Array = npt.NDArray[np.uint64]


def parse_slab_header(path: Path, data: bytes | memoryview, expected_index: int) -> bool:
    """Check a slab header; return its FINAL flag (damage raises :class:`FleetLogError`)."""
    return _slab.parse_slab_header(path, data, expected_index, error=FleetLogError, stacklevel=3)


def iter_frames(
    path: Path, data: bytes | memoryview, *, verify_only: SectionType | None = None
) -> Iterator[tuple[int, SectionType, memoryview]]:
    """:func:`pytest_replay.formats.fleet_log.iter_frames`, raising :class:`FleetLogError`."""
    return _slab.iter_frames(path, data, verify_only=verify_only, error=FleetLogError)


def _unpack(path: Path, offset: int, payload: bytes | memoryview) -> Any:
    try:
        return unpack_bounded(payload)
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise FleetLogError(path, offset, f"section payload is not valid msgpack ({exc})") from None


# --------------------------------------------------------------------------- steps


def encode_steps(steps: Sequence[Step]) -> bytes:
    """Columnar step section; ``steps`` are already validated and strictly increasing.

    Payload: msgpack array ``[first_id, last_id, count, message_count, ids, timestamps,
    message_starts, payload_ends, payload_blob, origin_flags, origins]`` where the
    last seven are binary little-endian columns (see :data:`ORIGIN_DTYPE`).
    """
    count = len(steps)
    ids = np.fromiter((step.step_id for step in steps), np.uint64, count)
    stamps = np.fromiter((step.timestamp_ns for step in steps), np.uint64, count)
    starts = np.zeros(count + 1, np.uint32)
    np.cumsum([len(step.messages) for step in steps], out=starts[1:])
    messages = [message for step in steps for message in step.messages]
    payloads = [message.payload for message in messages]
    ends = np.cumsum([len(payload) for payload in payloads], dtype=np.uint64)
    flags = np.fromiter((message.origin is not None for message in messages), np.uint8)
    origins = np.zeros(len(messages), ORIGIN_DTYPE)
    for index, message in enumerate(messages):
        origin = message.origin
        if origin is not None:
            origins[index] = (origin.instance_id, origin.subsystem_code, origin.step_id)
    payload: bytes = msgpack.packb(
        [
            steps[0].step_id,
            steps[-1].step_id,
            count,
            len(messages),
            ids.tobytes(),
            stamps.tobytes(),
            starts.tobytes(),
            ends.tobytes(),
            b"".join(payloads),
            flags.tobytes(),
            origins.tobytes(),
        ],
        use_bin_type=True,
    )
    return payload


class StepSection:
    """One decoded step section: numpy columns plus lists for per-step access."""

    __slots__ = (
        "_blob",
        "_ends",
        "_flags",
        "_ids",
        "_origins",
        "_stamps",
        "_starts",
        "ids",
        "message_starts",
        "origin_flags",
        "origins",
        "payload_ends",
        "timestamps",
    )

    def __init__(
        self,
        ids: U64Array,
        timestamps: U64Array,
        message_starts: npt.NDArray[np.uint32],
        payload_ends: U64Array,
        blob: bytes,
        origin_flags: npt.NDArray[np.uint8],
        origins: npt.NDArray[np.void],
    ) -> None:
        self.ids = ids
        self.timestamps = timestamps
        self.message_starts = message_starts
        self.payload_ends = payload_ends
        self.origin_flags = origin_flags
        self.origins = origins
        self._blob = blob
        # Python lists for per-step access, built on the first step() call only: indexing
        # a log decodes every section but never asks for a step.
        self._ids: list[int] | None = None
        self._stamps: list[int] = []
        self._starts: list[int] = []
        self._ends: list[int] | None = None
        self._flags: list[int] | None = None
        self._origins: list[tuple[int, int, int]] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def step(self, index: int) -> Step:
        """The step at ``index`` of this section; its messages are built on first use."""
        ids = self._ids
        if ids is None:
            ids = self._ids = self.ids.tolist()
            self._stamps = self.timestamps.tolist()
            self._starts = self.message_starts.tolist()
        messages = _new_messages(StepMessages)
        _set_section(messages, self)
        _set_index(messages, index)
        step = _new_step(Step)
        _set_step_id(step, ids[index])
        _set_timestamp(step, self._stamps[index])
        _set_messages(step, messages)
        return step

    def message_range(self, index: int) -> tuple[int, int]:
        """[lo, hi) message numbers of step ``index``."""
        if self._ids is None:
            self.step(index)
        return self._starts[index], self._starts[index + 1]

    def messages_between(self, lo: int, hi: int) -> tuple[Message, ...]:
        if lo == hi:
            return ()
        if self._ends is None:
            self._ends = self.payload_ends.tolist()
            self._flags = self.origin_flags.tolist()
            self._origins = self.origins.tolist()
        ends, flags, origins, blob = self._ends, self._flags, self._origins, self._blob
        assert flags is not None and origins is not None
        out = []
        for j in range(lo, hi):
            start = ends[j - 1] if j else 0
            origin = Origin(*origins[j]) if flags[j] else None
            out.append(Message(blob[start : ends[j]], origin))
        return tuple(out)


# Replay builds one Step per executed node; filling the slots directly skips the frozen
# dataclass __init__ (object.__setattr__ per field), about halving the cost per step.
_new_step = object.__new__
_new_messages = object.__new__
_set_step_id = Step.__dict__["step_id"].__set__
_set_timestamp = Step.__dict__["timestamp_ns"].__set__
_set_messages = Step.__dict__["messages"].__set__
_set_section = StepMessages.__dict__["_section"].__set__
_set_index = StepMessages.__dict__["_index"].__set__


def _column(path: Path, offset: int, name: str, raw: object, itemsize: int, count: int) -> bytes:
    if type(raw) is not bytes:
        raise FleetLogError(path, offset, f"step section column '{name}' is not binary")
    if len(raw) != itemsize * count:
        raise FleetLogError(
            path,
            offset,
            f"step section column '{name}' has {len(raw)} bytes, expected {itemsize * count}",
        )
    return raw


_U8: Final = np.dtype("<u8")
_U4: Final = np.dtype("<u4")
_U1: Final = np.dtype("u1")


class StepFields:
    """A step section's fields after the checks of their types and sizes, before the
    checks that look inside the columns (:func:`check_step_columns`).

    The columns stay bytes (``*_raw``) until asked for as arrays: a batch of logs joins
    the bytes of all its sections and makes one array of them (see
    :func:`pytest_replay.fleet.reader.index_logs`).
    """

    __slots__ = (
        "blob",
        "count",
        "ends_raw",
        "first",
        "flags_raw",
        "ids_raw",
        "last",
        "nmsg",
        "origins_raw",
        "stamps_raw",
        "starts_raw",
    )

    def __init__(self, fields: list[Any]) -> None:
        self.first, self.last, self.count, self.nmsg = fields[:4]
        self.ids_raw: bytes = fields[4]
        self.stamps_raw: bytes = fields[5]
        self.starts_raw: bytes = fields[6]
        self.ends_raw: bytes = fields[7]
        self.blob: bytes = fields[8]
        self.flags_raw: bytes = fields[9]
        self.origins_raw: bytes = fields[10]

    @property
    def ids(self) -> U64Array:
        return np.frombuffer(self.ids_raw, _U8)

    @property
    def stamps(self) -> U64Array:
        return np.frombuffer(self.stamps_raw, _U8)

    @property
    def starts(self) -> npt.NDArray[np.uint32]:
        return np.frombuffer(self.starts_raw, _U4)

    @property
    def ends(self) -> U64Array:
        return np.frombuffer(self.ends_raw, _U8)

    @property
    def flags(self) -> npt.NDArray[np.uint8]:
        return np.frombuffer(self.flags_raw, _U1)

    @property
    def origins(self) -> npt.NDArray[np.void]:
        return np.frombuffer(self.origins_raw, ORIGIN_DTYPE)


def unpack_step_fields(path: Path, offset: int, payload: bytes | memoryview) -> StepFields:
    """Unpack a step section and check its field types and column sizes."""
    fields = _unpack(path, offset, payload)
    if type(fields) is not list or len(fields) != _STEP_FIELDS:
        raise FleetLogError(path, offset, f"step section is not an array of {_STEP_FIELDS} items")
    first, last, count, nmsg = fields[:4]
    for name, value in (("first_id", first), ("last_id", last), ("count", count), ("nmsg", nmsg)):
        if type(value) is not int or not 0 <= value <= MAX_U64:
            raise FleetLogError(path, offset, f"step section {name} {value!r} is not a u64")
    if count == 0:
        raise FleetLogError(path, offset, "step section holds no steps")
    _column(path, offset, "ids", fields[4], 8, count)
    _column(path, offset, "timestamps", fields[5], 8, count)
    _column(path, offset, "message_starts", fields[6], 4, count + 1)
    _column(path, offset, "payload_ends", fields[7], 8, nmsg)
    if type(fields[8]) is not bytes:
        raise FleetLogError(path, offset, "step section payload blob is not binary")
    _column(path, offset, "origin_flags", fields[9], 1, nmsg)
    _column(path, offset, "origins", fields[10], ORIGIN_DTYPE.itemsize, nmsg)
    return StepFields(fields)


def decode_steps(path: Path, offset: int, payload: bytes | memoryview) -> StepSection:
    """Decode and fully validate a step section (``offset`` is its frame's, for errors)."""
    fields = unpack_step_fields(path, offset, payload)
    ids, starts, ends, flags = fields.ids, fields.starts, fields.ends, fields.flags
    check_step_columns(path, offset, fields, (ids, starts, ends, flags))
    return StepSection(ids, fields.stamps, starts, ends, fields.blob, flags, fields.origins)


def check_step_columns(
    path: Path,
    offset: int,
    fields: StepFields,
    columns: tuple[U64Array, npt.NDArray[np.uint32], U64Array, npt.NDArray[np.uint8]],
) -> None:
    """The checks inside a step section's columns (``columns``: its ids, message starts,
    payload ends and origin flags as arrays), in the order errors are reported."""
    first, last, count, nmsg = fields.first, fields.last, fields.count, fields.nmsg
    ids, starts, ends, flags = columns
    blob = fields.blob
    if int(ids[0]) != first or int(ids[-1]) != last:
        raise FleetLogError(
            path,
            offset,
            f"step section says ids {first}..{last} but its id column holds "
            f"{int(ids[0])}..{int(ids[-1])}",
        )
    if count > 1 and not (ids[1:] > ids[:-1]).all():
        bad = int(np.argmin(ids[1:] > ids[:-1])) + 1
        raise FleetLogError(
            path,
            offset,
            f"step ids are not strictly increasing: step #{bad} has id {int(ids[bad])} after "
            f"{int(ids[bad - 1])}",
        )
    if starts[0] != 0 or starts[-1] != nmsg or (starts[1:] < starts[:-1]).any():
        raise FleetLogError(path, offset, "step section message ranges are inconsistent")
    if nmsg:
        if ends[-1] != len(blob) or (ends[1:] < ends[:-1]).any():
            raise FleetLogError(path, offset, "step section payload offsets are inconsistent")
        if flags.max() > 1:
            raise FleetLogError(path, offset, "step section origin flags are not 0 or 1")
        raw = np.frombuffer(fields.origins_raw, np.uint8).reshape(nmsg, ORIGIN_DTYPE.itemsize)
        if raw[flags == 0].any():
            raise FleetLogError(path, offset, "a message without origin has origin fields set")
    elif blob:
        raise FleetLogError(path, offset, "step section has payload bytes but no messages")


# --------------------------------------------------------------------------- keyframes


def encode_keyframes(keyframes: Sequence[Keyframe]) -> bytes:
    payload: bytes = msgpack.packb(
        [[kf.step_id, kf.timestamp_ns, kf.state] for kf in keyframes], use_bin_type=True
    )
    return payload


def decode_keyframes(path: Path, offset: int, payload: bytes | memoryview) -> list[Keyframe]:
    items = _unpack(path, offset, payload)
    if type(items) is not list or not items:
        raise FleetLogError(path, offset, "keyframe section is not a non-empty array")
    out: list[Keyframe] = []
    for position, item in enumerate(items):
        if (
            type(item) is not list
            or len(item) != 3
            or type(item[0]) is not int
            or type(item[1]) is not int
            or type(item[2]) is not bytes
            or not 0 <= item[0] <= MAX_U64
            or not 0 <= item[1] <= MAX_U64
        ):
            raise FleetLogError(
                path, offset, f"keyframe #{position} is not [step_id u64, timestamp u64, state]"
            )
        out.append(Keyframe(item[0], item[1], item[2]))
    return out


# --------------------------------------------------------------------------- lifecycle

_INSTANTIATED_KEYS: Final = frozenset(
    {"event", "timestamp_ns", "config_source", "effective_config", "stack"}
)
_MISSION_KEYS: Final = frozenset({"event", "timestamp_ns", "mission"})
_STACK_KEYS: Final = frozenset(
    {
        "app_name",
        "app_version",
        "git_commit",
        "git_dirty",
        "subsystem_id",
        "subsystem_code",
        "instance_id",
    }
)


def _stack_to_map(stack: StackInfo) -> dict[str, object]:
    return {
        "app_name": stack.app_name,
        "app_version": stack.app_version,
        "git_commit": stack.git_commit,
        "git_dirty": stack.git_dirty,
        "subsystem_id": stack.subsystem_id,
        "subsystem_code": stack.subsystem_code,
        "instance_id": stack.instance_id,
    }


def encode_lifecycle(records: Sequence[LifecycleRecord]) -> bytes:
    items: list[dict[str, object]] = []
    for record in records:
        if isinstance(record, Instantiated):
            items.append(
                {
                    "event": "instantiated",
                    "timestamp_ns": record.timestamp_ns,
                    "config_source": record.config_source.value,
                    "effective_config": record.effective_config,
                    "stack": _stack_to_map(record.stack),
                }
            )
        else:
            items.append(
                {
                    "event": "mission_started",
                    "timestamp_ns": record.timestamp_ns,
                    "mission": record.mission,
                }
            )
    payload: bytes = msgpack.packb(items, use_bin_type=True)
    return payload


def _is_u64(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_U64


def _decode_stack(path: Path, offset: int, raw: object) -> StackInfo:
    if type(raw) is not dict or frozenset(raw) != _STACK_KEYS:
        raise FleetLogError(
            path, offset, f"lifecycle stack info must have exactly the keys {sorted(_STACK_KEYS)}"
        )
    checks = (
        ("app_name", type(raw["app_name"]) is str),
        ("app_version", type(raw["app_version"]) is str),
        ("git_commit", raw["git_commit"] is None or type(raw["git_commit"]) is str),
        ("git_dirty", raw["git_dirty"] is None or type(raw["git_dirty"]) is bool),
        ("subsystem_id", raw["subsystem_id"] is None or type(raw["subsystem_id"]) is str),
        (
            "subsystem_code",
            type(raw["subsystem_code"]) is int and 0 <= raw["subsystem_code"] <= MAX_CODE,
        ),
        (
            "instance_id",
            type(raw["instance_id"]) is int and 0 <= raw["instance_id"] <= MAX_INSTANCE_ID,
        ),
    )
    for key, ok in checks:
        if not ok:
            raise FleetLogError(
                path, offset, f"lifecycle stack info field '{key}' has a bad value {raw[key]!r}"
            )
    return StackInfo(
        app_name=raw["app_name"],
        app_version=raw["app_version"],
        subsystem_id=raw["subsystem_id"],
        subsystem_code=raw["subsystem_code"],
        instance_id=raw["instance_id"],
        git_commit=raw["git_commit"],
        git_dirty=raw["git_dirty"],
    )


def decode_lifecycle(path: Path, offset: int, payload: bytes | memoryview) -> list[LifecycleRecord]:
    items = _unpack(path, offset, payload)
    if type(items) is not list or not items:
        raise FleetLogError(path, offset, "lifecycle section is not a non-empty array")
    out: list[LifecycleRecord] = []
    for position, item in enumerate(items):
        event = item.get("event") if type(item) is dict else None
        if event == "instantiated" and frozenset(item) == _INSTANTIATED_KEYS:
            try:
                source = ConfigSource(item["config_source"])
            except ValueError:
                raise FleetLogError(
                    path,
                    offset,
                    f"lifecycle record #{position} has unknown config source "
                    f"{item['config_source']!r}",
                ) from None
            if not _is_u64(item["timestamp_ns"]) or type(item["effective_config"]) is not str:
                raise FleetLogError(path, offset, f"lifecycle record #{position} is malformed")
            stack = _decode_stack(path, offset, item["stack"])
            out.append(Instantiated(item["timestamp_ns"], source, item["effective_config"], stack))
        elif event == "mission_started" and frozenset(item) == _MISSION_KEYS:
            if not _is_u64(item["timestamp_ns"]) or type(item["mission"]) is not str:
                raise FleetLogError(path, offset, f"lifecycle record #{position} is malformed")
            out.append(MissionStarted(item["timestamp_ns"], item["mission"]))
        else:
            raise FleetLogError(
                path,
                offset,
                f"lifecycle record #{position} is not an 'instantiated' or 'mission_started' "
                "map with exactly the documented keys",
            )
    return out
