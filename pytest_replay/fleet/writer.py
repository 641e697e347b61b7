"""FleetLogWriter: appends lifecycle records, steps and keyframes to a slabbed fleet log."""

from __future__ import annotations

import contextlib
import os
import stat
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Final

from pytest_replay import _fs
from pytest_replay._atomic import atomic_write_bytes
from pytest_replay.fleet.errors import FleetError, FleetLogWriteError
from pytest_replay.fleet.logformat import encode_keyframes, encode_lifecycle, encode_steps
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
)
from pytest_replay.formats.fleet_log import (
    FLAG_FINAL,
    MAX_SECTION_BYTES,
    MAX_SLABS,
    SLAB_HEADER,
    SLAB_MAGIC,
    SectionType,
    encode_empty_slab,
    encode_end_frame,
    encode_frame,
    encode_slab_header,
    slab_path,
)

__all__ = [
    "DEFAULT_SECTION_BYTES",
    "DEFAULT_SECTION_STEPS",
    "DEFAULT_SLAB_SIZE",
    "FleetLogWriter",
]

DEFAULT_SLAB_SIZE: Final = 16 * 1024 * 1024
DEFAULT_SECTION_STEPS: Final = 256
DEFAULT_SECTION_BYTES: Final = 1024 * 1024
# Fixed per-step and per-message column bytes of a step section (ids, stamps, offsets,
# origin flag and origin record), plus msgpack framing slack.
_STEP_OVERHEAD: Final = 20
_MESSAGE_OVERHEAD: Final = 23
_SECTION_SLACK: Final = 128


def _u64(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_U64


class FleetLogWriter:
    """Write one fleet log as slab files ``name_0.ext``, ``name_1.ext``, ...

    Steps are buffered and written as one section every ``section_steps`` steps or
    ``section_bytes`` payload bytes; a slab is finalised (temp file, fsync,
    ``os.replace``) when the next frame would make it larger than ``slab_size``, after the
    next slab is written empty and FINAL, so that a crash at any point leaves at least
    what was last synced readable as a complete log.
    :meth:`sync` makes everything logged so far durable and readable as a complete log;
    :meth:`close` does the same and ends the log. Creating a writer removes the slabs
    of an earlier log at the same base path (``name_0.ext`` on, until two names in a row
    are free), so no stale slab outlives it; a link, folder or non-slab file at one of
    those names is refused and nothing is removed.

    Keyframes must name the step just logged or a step logged later, in increasing
    step-id order; every keyframe must match a logged step by :meth:`close`. Replay starts
    from a keyframe, so a log needs one at or before its first step: log it yourself, or
    pass ``initial_keyframe=True`` to get an empty-state keyframe at the first step when
    none was logged for it.
    """

    def __init__(
        self,
        base_path: str | os.PathLike[str],
        *,
        slab_size: int = DEFAULT_SLAB_SIZE,
        section_steps: int = DEFAULT_SECTION_STEPS,
        section_bytes: int = DEFAULT_SECTION_BYTES,
        initial_keyframe: bool = False,
    ) -> None:
        self._base = Path(base_path)
        self._initial_keyframe = initial_keyframe
        if not self._base.suffix:
            raise FleetLogWriteError(
                self._base,
                "the base path has no extension",
                "name the log like 'robot1_ping.flog'",
            )
        if slab_size < SLAB_HEADER.size + 64:
            raise FleetLogWriteError(
                self._base, f"slab_size {slab_size} is too small", "use at least 1024 bytes"
            )
        if not 1 <= section_steps <= 1_000_000:
            raise FleetLogWriteError(
                self._base,
                f"section_steps {section_steps} is outside 1..1000000",
                "use the default of 256",
            )
        if not 1 <= section_bytes <= MAX_SECTION_BYTES // 2:
            raise FleetLogWriteError(
                self._base,
                f"section_bytes {section_bytes} is outside 1..{MAX_SECTION_BYTES // 2}",
                "use the default of 1 MiB",
            )
        self._slab_size = slab_size
        self._section_steps = section_steps
        self._section_bytes = section_bytes
        self._slab_index = 0
        self._slab = bytearray(encode_slab_header(0, final=False))
        self._slab_frames = 0
        self._slabs_written = 0
        self._steps: list[Step] = []
        self._steps_bytes = 0
        self._keyframes: list[Keyframe] = []
        self._future_keyframes: deque[Keyframe] = deque()
        self._last_step_id: int | None = None
        self._last_keyframe_id: int | None = None
        self._step_count = 0
        self._closed = False
        self._remove_stale_slabs()

    # ----------------------------------------------------------------- properties

    @property
    def base_path(self) -> Path:
        return self._base

    @property
    def slab_paths(self) -> tuple[Path, ...]:
        """Slab files this writer has written so far."""
        return tuple(slab_path(self._base, index) for index in range(self._slabs_written))

    @property
    def step_count(self) -> int:
        return self._step_count

    @property
    def closed(self) -> bool:
        return self._closed

    # ----------------------------------------------------------------- logging

    def log_instantiated(
        self,
        stack: StackInfo,
        *,
        effective_config: str = "",
        config_source: ConfigSource = ConfigSource.EXTERNAL_FILE,
        timestamp_ns: int = 0,
    ) -> None:
        """Record that the runtime was built; discovery takes the log's identity from the
        first such record."""
        self._check_open()
        self._check_stack(stack)
        if type(effective_config) is not str or not isinstance(config_source, ConfigSource):
            raise FleetLogWriteError(
                self._base,
                "effective_config must be a str and config_source a ConfigSource",
                "pass the configuration text the run used",
            )
        self._check_timestamp(timestamp_ns, "lifecycle record")
        self._log_lifecycle(Instantiated(timestamp_ns, config_source, effective_config, stack))

    def log_mission_started(self, mission: str, *, timestamp_ns: int = 0) -> None:
        self._check_open()
        if type(mission) is not str:
            raise FleetLogWriteError(
                self._base, f"mission {mission!r} is not a str", "pass the mission name"
            )
        self._check_timestamp(timestamp_ns, "lifecycle record")
        self._log_lifecycle(MissionStarted(timestamp_ns, mission))

    def log_step(self, step: Step) -> None:
        """Append one step; its id must be greater than every earlier step's."""
        self._check_open()
        size = self._check_step(step)
        future = self._future_keyframes
        if (
            self._initial_keyframe
            and self._last_step_id is None
            and (not future or future[0].step_id != step.step_id)
        ):
            future.appendleft(Keyframe(step.step_id, step.timestamp_ns, b""))
            if self._last_keyframe_id is None:
                self._last_keyframe_id = step.step_id
        while self._future_keyframes and self._future_keyframes[0].step_id <= step.step_id:
            keyframe = self._future_keyframes.popleft()
            if keyframe.step_id != step.step_id:
                raise FleetLogWriteError(
                    self._base,
                    f"a keyframe names step {keyframe.step_id} but the next step logged is "
                    f"{step.step_id}",
                    "log a keyframe only for a step that is then logged",
                )
            self._keyframes.append(keyframe)
        if self._steps and (
            len(self._steps) >= self._section_steps
            or self._steps_bytes + size > self._section_bytes
        ):
            self._flush_sections()
        self._steps.append(step)
        self._steps_bytes += size
        self._last_step_id = step.step_id
        self._step_count += 1

    def log(self, step_id: int, timestamp_ns: int, messages: Sequence[Message] = ()) -> None:
        """Shorthand for ``log_step(Step(step_id, timestamp_ns, tuple(messages)))``."""
        self.log_step(Step(step_id, timestamp_ns, tuple(messages)))

    def log_keyframe(self, keyframe: Keyframe) -> None:
        """Record app state at ``keyframe.step_id`` (the step just logged or a later one)."""
        self._check_open()
        if not isinstance(keyframe, Keyframe):
            raise FleetLogWriteError(
                self._base, f"{keyframe!r} is not a Keyframe", "pass a Keyframe value"
            )
        if not _u64(keyframe.step_id) or not _u64(keyframe.timestamp_ns):
            raise FleetLogWriteError(
                self._base,
                f"keyframe step_id {keyframe.step_id!r} / timestamp {keyframe.timestamp_ns!r} "
                "is not a u64",
                "use integers in 0..2**64-1",
            )
        if type(keyframe.state) is not bytes or len(keyframe.state) > self._section_bytes:
            raise FleetLogWriteError(
                self._base,
                f"keyframe state for step {keyframe.step_id} must be bytes of at most "
                f"{self._section_bytes} bytes",
                "serialise the state to bytes, or raise section_bytes",
            )
        if self._last_keyframe_id is not None and keyframe.step_id <= self._last_keyframe_id:
            raise FleetLogWriteError(
                self._base,
                f"keyframe for step {keyframe.step_id} comes after the keyframe for step "
                f"{self._last_keyframe_id}",
                "log keyframes in increasing step order, at most one per step",
            )
        if self._last_step_id is not None and keyframe.step_id < self._last_step_id:
            raise FleetLogWriteError(
                self._base,
                f"keyframe for step {keyframe.step_id} arrives after step {self._last_step_id}",
                "log a keyframe right before or right after its step",
            )
        self._last_keyframe_id = keyframe.step_id
        if keyframe.step_id == self._last_step_id:
            self._keyframes.append(keyframe)
        else:
            self._future_keyframes.append(keyframe)

    # ----------------------------------------------------------------- durability

    def sync(self) -> None:
        """Write all buffered sections and the current slab, marked as the last one."""
        self._check_open()
        self._flush_sections()
        self._write_slab(final=True)

    def close(self) -> None:
        """Finish the log. Idempotent."""
        if self._closed:
            return
        if self._future_keyframes:
            pending = ", ".join(str(kf.step_id) for kf in self._future_keyframes)
            raise FleetLogWriteError(
                self._base,
                f"keyframes for steps {pending} were logged but those steps never were",
                "log the steps the keyframes name before closing",
            )
        self._flush_sections()
        self._write_slab(final=True)
        self._closed = True

    def discard(self) -> None:
        """End the log without finishing it and remove every slab this writer wrote, as
        if it had never been created (a replay that starts over). Idempotent; only
        regular files this writer wrote are removed."""
        self._closed = True
        self._steps, self._keyframes = [], []
        self._future_keyframes.clear()
        for path in self.slab_paths:
            try:
                if stat.S_ISREG(path.lstat().st_mode):
                    path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise FleetLogWriteError(
                    path,
                    f"cannot remove slab ({exc.strerror or exc})",
                    "make sure the folder is writable",
                ) from None
        self._slabs_written = 0

    def __enter__(self) -> FleetLogWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
            return
        # Keep what was logged before the failure; the original exception wins.
        with contextlib.suppress(FleetError):
            self.close()

    # ----------------------------------------------------------------- internals

    def _check_open(self) -> None:
        if self._closed:
            raise FleetLogWriteError(
                self._base, "the writer is closed", "create a new FleetLogWriter"
            )

    def _check_timestamp(self, value: object, what: str) -> None:
        if not _u64(value):
            raise FleetLogWriteError(
                self._base, f"{what} timestamp {value!r} is not a u64", "use nanoseconds >= 0"
            )

    def _check_stack(self, given: StackInfo) -> None:
        problems = []
        stack: object = given
        if not isinstance(stack, StackInfo):
            problems.append(f"{stack!r} is not a StackInfo")
        else:
            if type(stack.app_name) is not str or type(stack.app_version) is not str:
                problems.append("app_name and app_version must be str")
            if stack.subsystem_id is not None and type(stack.subsystem_id) is not str:
                problems.append("subsystem_id must be a str or None")
            if not (type(stack.subsystem_code) is int and 0 <= stack.subsystem_code <= MAX_CODE):
                problems.append(f"subsystem_code {stack.subsystem_code!r} is not a u16")
            if not (type(stack.instance_id) is int and 0 <= stack.instance_id <= MAX_INSTANCE_ID):
                problems.append(f"instance_id {stack.instance_id!r} is not a u32")
            if stack.git_commit is not None and type(stack.git_commit) is not str:
                problems.append("git_commit must be a str or None")
            dirty: object = stack.git_dirty
            if dirty is not None and type(dirty) is not bool:
                problems.append("git_dirty must be a bool or None")
        if problems:
            raise FleetLogWriteError(
                self._base, "bad stack info: " + "; ".join(problems), "fix the StackInfo fields"
            )

    def _check_step(self, given: Step) -> int:
        step: object = given
        if not isinstance(step, Step):
            raise FleetLogWriteError(self._base, f"{step!r} is not a Step", "pass a Step value")
        if not _u64(step.step_id) or not _u64(step.timestamp_ns):
            raise FleetLogWriteError(
                self._base,
                f"step id {step.step_id!r} / timestamp {step.timestamp_ns!r} is not a u64",
                "use integers in 0..2**64-1",
            )
        if self._last_step_id is not None and step.step_id <= self._last_step_id:
            raise FleetLogWriteError(
                self._base,
                f"step id {step.step_id} is not greater than the previous step id "
                f"{self._last_step_id}",
                "log steps in strictly increasing id order",
            )
        size = _STEP_OVERHEAD
        for position, message in enumerate(step.messages):
            if not isinstance(message, Message) or type(message.payload) is not bytes:
                raise FleetLogWriteError(
                    self._base,
                    f"step {step.step_id} message #{position} is not a Message with bytes payload",
                    "wrap payloads as Message(payload=bytes(...))",
                )
            origin = message.origin
            if origin is not None and not (
                isinstance(origin, Origin)
                and type(origin.instance_id) is int
                and 0 <= origin.instance_id <= MAX_INSTANCE_ID
                and type(origin.subsystem_code) is int
                and 0 <= origin.subsystem_code <= MAX_CODE
                and _u64(origin.step_id)
            ):
                raise FleetLogWriteError(
                    self._base,
                    f"step {step.step_id} message #{position} has a bad origin {origin!r}",
                    "use Origin(instance_id u32, subsystem_code u16, step_id u64)",
                )
            size += _MESSAGE_OVERHEAD + len(message.payload)
        if size + _SECTION_SLACK > self._section_bytes and size > MAX_SECTION_BYTES // 2:
            raise FleetLogWriteError(
                self._base,
                f"step {step.step_id} encodes to about {size} bytes, over the section limit",
                f"keep one step under {MAX_SECTION_BYTES // 2} bytes",
            )
        return size

    def _log_lifecycle(self, record: LifecycleRecord) -> None:
        self._flush_sections()
        self._append_frame(SectionType.LIFECYCLE, encode_lifecycle([record]))

    def _flush_sections(self) -> None:
        if self._steps:
            self._append_frame(SectionType.STEPS, encode_steps(self._steps))
            self._steps = []
            self._steps_bytes = 0
        if self._keyframes:
            self._append_frame(SectionType.KEYFRAMES, encode_keyframes(self._keyframes))
            self._keyframes = []

    def _append_frame(self, section_type: SectionType, payload: bytes) -> None:
        if len(payload) > MAX_SECTION_BYTES:
            raise FleetLogWriteError(
                self._base,
                f"a {section_type.name.lower()} section encodes to {len(payload)} bytes, over "
                f"the limit of {MAX_SECTION_BYTES}",
                "log smaller steps or keyframes",
            )
        frame = encode_frame(section_type, payload)
        if len(self._slab) > SLAB_HEADER.size and len(self._slab) + len(frame) > self._slab_size:
            self._rotate()
        self._slab += frame
        self._slab_frames += 1

    def _rotate(self) -> None:
        # The next slab reaches the disk, empty and FINAL, before this one loses its FINAL
        # flag: a crash between the two writes leaves the synced log plus an empty FINAL
        # slab, which the reader ignores, instead of a slab pointing at a missing one.
        self._store(self._slab_index + 1, encode_empty_slab(self._slab_index + 1, final=True))
        self._write_slab(final=False)
        self._slab_index += 1
        self._slab = bytearray(encode_slab_header(self._slab_index, final=True))
        self._slab_frames = 0

    def _write_slab(self, *, final: bool) -> None:
        # Every slab on disk is closed by its end frame; the buffer never holds it, so
        # later frames append to the buffer and the next write closes the slab again.
        flags = FLAG_FINAL if final else 0
        self._slab[10:12] = flags.to_bytes(2, "little")
        frames = memoryview(self._slab)[SLAB_HEADER.size :]
        closed = self._slab + encode_end_frame(frames, self._slab_frames)
        frames.release()
        self._store(self._slab_index, closed)

    def _store(self, index: int, data: bytes | bytearray) -> None:
        path = slab_path(self._base, index)
        try:
            atomic_write_bytes(path, data)
        except OSError as exc:
            raise FleetLogWriteError(
                path,
                f"cannot write slab {index} ({exc.strerror or exc})",
                "make sure the folder is writable and nothing else (a folder?) has the slab's name",
            ) from None
        self._slabs_written = max(self._slabs_written, index + 1)

    def _remove_stale_slabs(self) -> None:
        # An earlier log at this base path is slabs 0..k, written in order; a reader reads
        # slabs from 0 up to the first FINAL one and checks the one or two names after
        # it. So the earlier log's slabs are probed by name from 0 up, until two names in
        # a row are free (one slab removed by hand leaves a gap of one): the cost is the
        # earlier log's length, not the folder's size (a folder of 20,000 logs made every
        # new writer list and sort all of them).
        # Only regular files that start as slabs are removed, and only once every one of
        # them is known to be: a link, a folder or any other file at a slab's name is not
        # ours to delete, so the writer refuses it and leaves the earlier log whole.
        stale: list[Path] = []
        free_in_a_row = 0
        for index in range(MAX_SLABS):
            path = slab_path(self._base, index)
            if self._is_stale_slab(path, index):
                stale.append(path)
                free_in_a_row = 0
                continue
            free_in_a_row += 1
            if free_in_a_row == 2:
                break
        # Last slab first: a writer stopped midway leaves slabs 0..j of the earlier log,
        # which the next writer finds from slab 0 as it found the whole log.
        for path in reversed(stale):
            try:
                os.unlink(path)
            except OSError as exc:
                raise FleetLogWriteError(
                    path,
                    f"cannot remove a slab of an earlier log ({exc.strerror or exc})",
                    "make sure the folder is writable",
                ) from None

    @staticmethod
    def _is_stale_slab(path: Path, index: int) -> bool:
        """Whether a slab of an earlier log is at ``path``; ``False`` when the name is
        free. Anything else there is refused."""
        try:
            fd, _ = _fs.open_regular_fd(path, follow=False)
        except FileNotFoundError:
            return False
        except _fs.NotRegularFile as exc:
            raise FleetLogWriteError(
                path,
                f"slab {index}'s name is taken by {exc.what}",
                "move it away: the writer replaces only slabs of an earlier log",
            ) from None
        except OSError as exc:
            raise FleetLogWriteError(
                path,
                f"cannot check slab {index} of an earlier log ({exc.strerror or exc})",
                "make sure the folder is readable and writable",
            ) from None
        try:
            head = _fs.read_fd(fd, len(SLAB_MAGIC))
        finally:
            os.close(fd)
        if head != SLAB_MAGIC:
            raise FleetLogWriteError(
                path,
                f"slab {index}'s name is taken by a file that is not a fleet log slab",
                "move it away: the writer replaces only slabs of an earlier log",
            )
        return True
