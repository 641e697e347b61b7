"""``pytest-replay textconv FILE`` and ``pytest-replay git-setup``: recordings that git diffs
as text.

``textconv`` prints one line per record (entry, step, leaf of a value), fields named,
from the file's bytes alone: git hands a temporary copy under a random name, without the
manifest beside it, so nothing here reads the file's folder or prints its path, and the
text of equal bytes is the same on every machine. Long strings and payloads are
abbreviated with their length and BLAKE3 digest. A file that does not decode still gets
a rendering (what it is, its size and digest, and why it does not decode) with exit
status 0, so that ``git diff`` keeps working on a damaged recording.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from pytest_replay.cli import detect as formats
from pytest_replay.cli.common import EXIT_OK, CliError, Run, jsonable, read_bounded

__all__ = ["attribute_lines", "run_git_setup", "run_textconv", "textconv_lines"]

DRIVER: Final = "pytest-replay"
#: Formats git shows through the driver. ``manifest.json`` is text already.
_EXTENSIONS: Final = (".vrrl", ".mkvrrl", ".msgpack", ".jrnl", ".jreduce", ".fleet", ".rpltrace")
#: Where stores live: the classic ``.replay`` folder and per-test-folder ``__replay__``.
_STORE_GLOBS: Final = (".replay/**", "**/__replay__/**")
_BEGIN: Final = "# pytest-replay: recordings diff as text (pytest-replay git-setup)"
_END: Final = "# end pytest-replay"


def _abbreviated(value: Any) -> Any:
    from pytest_replay.values import SHOWN_CHARS, render_value

    if isinstance(value, dict):
        return {key: _abbreviated(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_abbreviated(item) for item in value]
    if isinstance(value, str) and len(value) > SHOWN_CHARS:
        return render_value(value)
    return value


def _line(item: dict[str, Any], volatile: frozenset[str] = frozenset()) -> str:
    from pytest_replay.cli.records import record_line

    plain = {
        (f"{key}(volatile)" if key in volatile else key): value
        for key, value in _abbreviated(jsonable(item)).items()
    }
    return record_line(plain)


def textconv_lines(path: Path) -> list[str]:
    """The text git shows for ``path``."""
    from pytest_replay.cli.inspect import inspect_detected, inspect_kind_file
    from pytest_replay.cli.records import show

    detected = formats.detect(path)
    if detected.format in (formats.STORE, formats.FLEET_FOLDER):
        raise CliError(f"'{path}' is a folder", "pass one recording file")
    if detected.format == formats.RECORDING:
        assert detected.kind is not None
        found = inspect_kind_file(path, detected.kind, manifest=False)
    else:
        found = inspect_detected(detected, Run(progress="never"))
    lines = [f"# {detected.label}"]
    lines += [f"# {key}: {show(value)}" for key, value in found.summary.items()]
    if detected.format == formats.FLEET_RECORDING:
        return lines + _fleet_recording_steps(path)
    items = found.fetch(0, found.total) if found.total else []
    if found.unit == "leaves":
        from pytest_replay.formats.data import DATA

        lines += [DATA.render(item["index"], (item["path"], item["value"])) for item in items]
    else:
        # The fields a format's recorders store as zero are marked, by the format.
        shown = detected.file_format
        volatile = frozenset(shown.volatile) if shown is not None else frozenset()
        lines += [_line(item, volatile) for item in items]
    return lines


def _fleet_recording_steps(path: Path) -> list[str]:
    """Each log of a fleet recording, then its steps one a line (unpacked to a temporary
    folder: the log reader reads slab files)."""
    import tempfile

    from pytest_replay.cli.inspect import inspect_fleet_log
    from pytest_replay.fleet import FleetRecording, load_fleet_recording

    recording = load_fleet_recording(path)
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="pytest-replay-textconv-") as folder:
        _topology, logs_root = recording.materialise(folder)
        for log in recording.logs:
            found = inspect_fleet_log(
                FleetRecording.log_base_path(logs_root, log), Run(progress="never")
            )
            lines.append(f"## log instance {log.instance_id} subsystem {log.subsystem_id}")
            lines += [_line(item) for item in found.fetch(0, found.total)]
    return lines


def _undecodable(path: Path, error: Exception) -> list[str]:
    import blake3

    data = read_bounded(path, "file")
    # The message names git's temporary copy: keep only what the bytes decide.
    reason = str(error).replace(str(path), "<file>").replace(path.name, "<file>")
    return [
        "# not a recording pytest-replay can decode",
        f"# bytes: {len(data)} #{blake3.blake3(data).hexdigest()[:16]}",
        f"# why: {' '.join(reason.split())}",
    ]


def run_textconv(run: Run, path: Path) -> int:
    from pytest_replay.errors import ReplayError

    if not path.is_file():
        raise CliError(f"'{path}' is not a file", "pass one recording file (git passes its copy)")
    try:
        lines = textconv_lines(path)
    except (ReplayError, ValueError) as exc:
        lines = _undecodable(path, exc)
    for line in lines:
        run.print(line)
    return EXIT_OK


# --------------------------------------------------------------------------- git-setup


def attribute_lines(stores: Sequence[str] = ()) -> list[str]:
    """The ``.gitattributes`` block that sends the store's recordings through the driver
    (``stores``: more store folders, relative to the repository root)."""
    lines = [_BEGIN]
    for glob in dict.fromkeys([*_STORE_GLOBS, *(f"{store.strip('/')}/**" for store in stores)]):
        lines += [f"{glob}/*{extension} diff={DRIVER}" for extension in _EXTENSIONS]
    return [*lines, _END]


def _repo_root(start: Path) -> Path:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=start,
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        raise CliError("git is not installed (or not on PATH)", "install git") from None
    if done.returncode != 0:
        raise CliError(
            f"'{start}' is not inside a git repository ({done.stderr.strip()})",
            "run git-setup inside the repository that holds the recordings",
        )
    return Path(done.stdout.strip())


def _updated(text: str, block: list[str]) -> str:
    """``text`` with our block replaced (or appended), the rest kept as it was."""
    lines = text.splitlines()
    if _BEGIN in lines and _END in lines[lines.index(_BEGIN) :]:
        start = lines.index(_BEGIN)
        stop = lines.index(_END, start) + 1
        lines[start:stop] = block
    else:
        if lines and lines[-1].strip():
            lines.append("")
        lines += block
    return "\n".join(lines) + "\n"


def _store_globs(root: Path, stores: Sequence[Path]) -> list[str]:
    out = []
    for store in stores:
        folder = (Path.cwd() / store).resolve()
        if not folder.is_relative_to(root.resolve()):
            raise CliError(
                f"store folder '{store}' is outside the repository '{root}'",
                "pass a folder inside the repository",
            )
        out.append(folder.relative_to(root.resolve()).as_posix())
    return out


def run_git_setup(
    run: Run, apply: bool, command: str | None, start: Path, stores: Sequence[Path] = ()
) -> int:
    from pytest_replay import _fs
    from pytest_replay._atomic import atomic_write_bytes

    root = _repo_root(start)
    attributes = root / ".gitattributes"
    if attributes.is_symlink():
        raise CliError(
            f"'{attributes}' is a symbolic link",
            "replace it with a regular file, or add the lines yourself",
        )
    old = ""
    if attributes.exists():
        with _fs.open_regular(attributes) as fh:
            old = fh.read().decode("utf-8")
    block = attribute_lines(_store_globs(root, stores))
    new = _updated(old, block)
    changed = new != old
    if changed:
        atomic_write_bytes(attributes, new.encode("utf-8"))
    textconv = command or f"{DRIVER} textconv"
    config = ["git", "config", f"diff.{DRIVER}.textconv", textconv]
    if apply:
        subprocess.run(config, cwd=root, check=True, capture_output=True)
    if run.json:
        run.emit_json(
            {
                "gitattributes": str(attributes),
                "changed": changed,
                "lines": block,
                "config": config[2:],
                "applied": apply,
            }
        )
        return EXIT_OK
    run.print(f"{attributes}: {'updated' if changed else 'already up to date'}")
    if apply:
        run.print(f"set diff.{DRIVER}.textconv = {textconv!r} in {root / '.git' / 'config'}")
    else:
        run.print("git reads the driver from its config, which a commit cannot carry; run:")
        run.print(f"  {shlex.join(config)}")
        run.print("(or: pytest-replay git-setup --apply)")
    return EXIT_OK
