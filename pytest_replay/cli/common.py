"""What every command shares: the error type, the run options, ranges and JSON output."""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from pytest_replay import _fs
from pytest_replay.cli.progress import Progress, ProgressMode
from pytest_replay.errors import ReplayError

__all__ = [
    "EXIT_DIFFERENT",
    "EXIT_ERROR",
    "EXIT_OK",
    "CliError",
    "CorruptInput",
    "Run",
    "did_you_mean",
    "jsonable",
    "open_regular",
    "parse_range",
    "read_bounded",
]

EXIT_OK = 0
#: "the answer is no": recordings differ, validation or integrity problems found.
EXIT_DIFFERENT = 1
#: The command could not do its job (bad input, unreadable file, usage error).
EXIT_ERROR = 2

#: Largest file a command reads whole into memory; checked against the file size first.
MAX_READ_BYTES = 4 << 30


class CliError(ReplayError):
    """A command cannot go on; the message is one line ending with a ``Fix:`` hint."""

    def __init__(self, detail: str, fix: str) -> None:
        self.detail = detail
        super().__init__(detail, fix=f"{fix}.")


class CorruptInput(CliError):
    """A recording does not decode: the answer is "no" (exit status 1), not a usage error."""


@dataclass(frozen=True, slots=True)
class Run:
    """Options every command sees: JSON output, progress mode and the output stream."""

    json: bool = False
    progress: ProgressMode = "auto"
    stream: TextIO | None = None

    @property
    def out(self) -> TextIO:
        """Where results go (``sys.stdout`` at the time of writing, unless set)."""
        return sys.stdout if self.stream is None else self.stream

    def bar(self, label: str, total: int) -> Progress:
        return Progress(label, total, self.progress)

    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def emit_json(self, value: Any) -> None:
        self.out.write(json.dumps(jsonable(value), indent=2, ensure_ascii=False) + "\n")


def jsonable(value: Any) -> Any:
    """A JSON-ready form: dataclasses become dicts, enums their values, bytes hex,
    paths strings, numpy scalars Python ints; dict order is kept as built."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, Path):
        return str(value)
    item = getattr(value, "item", None)
    if callable(item) and type(value).__module__ == "numpy":
        return jsonable(item())
    return value


def parse_range(text: str, total: int) -> tuple[int, int]:
    """``A:B`` (either side may be empty or negative, as in a Python slice) -> the
    clamped ``[start, stop)`` it selects out of ``total`` records."""
    start_text, sep, stop_text = text.partition(":")
    if not sep:
        raise CliError(
            f"--records {text!r} is not a range",
            "write it as A:B, for example --records 10:20, --records :5 or --records=-3:",
        )
    try:
        start = int(start_text) if start_text.strip() else None
        stop = int(stop_text) if stop_text.strip() else None
    except ValueError:
        raise CliError(
            f"--records {text!r} has a bound that is not an integer",
            "write it as A:B with integers, for example --records 10:20",
        ) from None
    first, last, _step = slice(start, stop).indices(total)
    return first, max(first, last)


def open_regular(path: Path, what: str) -> BinaryIO:
    """``path`` opened for binary reading; anything but a regular file is a :class:`CliError`."""
    try:
        return _fs.open_regular(path)
    except _fs.NotRegularFile as exc:
        shown = "a folder" if exc.is_dir else "not a regular file"
        raise CliError(
            f"{what} '{path}' is {shown}", "pass a regular file (not a device, FIFO or folder)"
        ) from None


def read_bounded(path: Path, what: str, limit: int = MAX_READ_BYTES) -> bytes:
    """The bytes of ``path``, refusing non-regular files and files larger than ``limit``."""
    try:
        with open_regular(path, what) as fh:
            size = os.fstat(fh.fileno()).st_size
            if size <= limit:
                # One byte more than the size, to notice a file that grows meanwhile.
                data = fh.read(size + 1)
    except OSError as exc:
        raise CliError(
            f"cannot read {what} '{path}' ({exc.strerror or exc})", "check the path and permissions"
        ) from None
    if size > limit:
        raise CliError(
            f"{what} '{path}' is {size} bytes, over the {limit}-byte read limit",
            "pass a smaller file",
        )
    if len(data) > size:
        raise CliError(
            f"{what} '{path}' grew while it was being read",
            "wait until whatever writes it has finished, then run the command again",
        )
    return data


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` to ``word``, else ``""``."""
    import difflib

    close = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
