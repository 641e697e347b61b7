"""The command line on hostile inputs: devices, FIFOs, deep trees, deep nesting, odd errors.

Each case must end in a one-line ``CliError`` (or a clean answer), never a hang or a raw
RecursionError; the in-process calls keep them fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from pytest_replay.cli import detect as formats
from pytest_replay.cli import diff as cli_diff
from pytest_replay.cli import main
from pytest_replay.cli.common import CliError, read_bounded
from pytest_replay.errors import ReplayError

needs_posix = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and /dev/zero")


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str], *needles: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Fix:" in err, err
    assert "internal error" not in err, err
    for needle in needles:
        assert needle in err, err


@needs_posix
def test_devices_and_fifos_are_refused_not_read_forever(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    zero = tmp_path / "zero.json"
    zero.symlink_to("/dev/zero")
    fifo = tmp_path / "fifo.jreduce"
    os.mkfifo(fifo)
    for path in (zero, fifo):
        with pytest.raises(CliError, match=r"is not a regular file.*Fix:"):
            read_bounded(path, "reducer result")
        one_line_error(capsys, ["inspect", str(path)], str(path), "not a regular file")
    assert not formats._looks_like_result(zero)


def test_read_bounded_stops_at_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * 100)
    assert read_bounded(path, "file", limit=100) == b"x" * 100
    with pytest.raises(CliError, match="100 bytes, over the 99-byte read limit"):
        read_bounded(path, "file", limit=99)
    with pytest.raises(CliError, match="is a folder"):
        read_bounded(tmp_path, "file")


def test_deeply_nested_json_is_not_a_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "deep.json"
    path.write_text('{"a":' + "[" * 200_000 + "]" * 200_000 + "}")
    assert not formats._looks_like_result(path)
    one_line_error(capsys, ["inspect", str(path)], "is not a recording pytest-replay knows")


def test_deep_folder_tree_is_walked_without_recursion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    depth = 1100
    # Built and removed by chdir, one level at a time: shutil.rmtree recurses too,
    # so pytest could not clean up a tree this deep afterwards.
    here = os.getcwd()
    try:
        os.chdir(root)
        for _ in range(depth):
            os.mkdir("d")
            os.chdir("d")
        Path("deepest.txt").write_text("x")
        os.chdir(here)
        one_line_error(capsys, ["inspect", str(root)], "holds no store manifests")
        assert not formats._has_fleet_log(root)
    finally:
        os.chdir(root)
        levels = 0
        while os.path.isdir("d"):
            os.chdir("d")
            levels += 1
        for name in os.listdir("."):
            os.unlink(name)
        for _ in range(levels):
            os.chdir("..")
            os.rmdir("d")
        os.chdir(here)


def test_folder_walk_is_depth_first_in_sorted_order(tmp_path: Path) -> None:
    for name in ("b/y", "a/z", "a/x", "c"):
        (tmp_path / name).mkdir(parents=True)
    (tmp_path / "a" / "z" / "manifest.json").write_text("{}")
    (tmp_path / "b" / "y" / "manifest.json").write_text("{}")
    seen: list[str] = []

    def wanted(name: str) -> bool:
        seen.append(name)
        return name == "manifest.json"

    (tmp_path / "a" / "x" / "first.txt").write_text("x")
    assert formats._holds_file(tmp_path, wanted)
    assert seen == ["first.txt", "manifest.json"]


def _fake_kind(error: Exception) -> SimpleNamespace:
    def diff(expected: bytes, actual: bytes, meta: object) -> None:
        raise error

    return SimpleNamespace(diff=diff, ignored=lambda meta: (), count=lambda data: 0)


@pytest.mark.parametrize(
    "error",
    [ValueError("buffer size must be a multiple of element size"), ReplayError("x", fix="y")],
)
def test_diff_passes_a_kind_error_through_unchanged(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    registry = SimpleNamespace(get=lambda name: _fake_kind(error))
    monkeypatch.setattr(formats, "kind_registry", lambda: registry)
    with pytest.raises(type(error)) as caught:
        cli_diff.diff_with_kind("custom", b"", b"", {}, None)
    assert caught.value is error and "pass fields" not in str(caught.value)


def test_diff_names_an_unknown_record_field_before_comparing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = SimpleNamespace(get=lambda name: _fake_kind(AssertionError("compared")))
    monkeypatch.setattr(formats, "kind_registry", lambda: registry)
    with pytest.raises(CliError, match=r"unknown record field\(s\) 'bogus' in --ignore.*epoch"):
        cli_diff.diff_with_kind("megakernel", b"", b"", {"volatile": ["bogus"]}, ["bogus"])
