"""``pytest-replay textconv`` and ``git-setup``: git shows recordings as records, not bytes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pytest_replay.cli import main
from pytest_replay.cli.textconv import attribute_lines, textconv_lines

TEST_FILE = """
import datetime, os
from pytest_replay import RecordedSlot

OPCODE = int(os.environ.get("OPCODE", "2"))

def test_steps(replay):
    ring = replay.ring()
    for i in range(6):
        ring.append(RecordedSlot(timestamp_ns=1000 + i, slot_idx=i, tenant_id=0,
                                 opcode=OPCODE if i == 4 else 2, args=(i, 0, 0, 0), epoch=i))
    replay.data("summary", {"when": datetime.date(2024, 1, 1), "tags": ("a", "b"),
                            "opcode": OPCODE, "blob": b"x" * 500})
"""


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout


def test_git_diff_shows_exactly_the_changed_record(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = pytester.path
    git(root, "init", "-q")
    git(root, "config", "user.email", "t@example.com")
    git(root, "config", "user.name", "t")
    pytester.makepyfile(test_steps=TEST_FILE)
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    command = f"{sys.executable} -m pytest_replay textconv"
    monkeypatch.chdir(root)
    assert main(["git-setup", "--apply", "--command", command]) == 0
    assert git(root, "config", "diff.pytest-replay.textconv").strip() == command
    assert attribute_lines()[1] in (root / ".gitattributes").read_text().splitlines()
    git(root, "add", "-A")
    git(root, "commit", "-qm", "recorded")

    monkeypatch.setenv("OPCODE", "7")
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    diff = git(root, "diff", "--no-color", "-U0", "--", "*.vrrl", "*.msgpack")
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in "+++---"]
    assert changed == [
        '-# opcodes: {"2": 6}',
        '+# opcodes: {"2": 5, "7": 1}',
        "-#4 timestamp_ns(volatile)=0 slot_idx=4 tenant_id=0 opcode=2 args=[4,0,0,0] epoch=4",
        "+#4 timestamp_ns(volatile)=0 slot_idx=4 tenant_id=0 opcode=7 args=[4,0,0,0] epoch=4",
        '-["opcode"] = 2',
        '+["opcode"] = 7',
    ]
    assert "Binary files" not in diff


def test_git_setup_without_apply_prints_the_command_and_is_idempotent(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = pytester.path
    git(root, "init", "-q")
    (root / ".gitattributes").write_text("*.png binary\n")
    monkeypatch.chdir(root)
    assert main(["git-setup"]) == 0
    assert main(["git-setup"]) == 0
    assert main(["git-setup", "--store", "examples/robot/.replay"]) == 0
    assert main(["git-setup", "--store", "/elsewhere"]) == 2
    out = capsys.readouterr().out
    assert "git config diff.pytest-replay.textconv 'pytest-replay textconv'" in out
    assert "already up to date" in out
    text = (root / ".gitattributes").read_text()
    assert text.startswith("*.png binary\n\n")
    assert text.count(attribute_lines()[0]) == 1
    assert "examples/robot/.replay/**/*.vrrl diff=pytest-replay" in text.splitlines()
    with pytest.raises(subprocess.CalledProcessError):
        git(root, "config", "diff.pytest-replay.textconv")


def test_textconv_is_the_same_for_the_same_bytes_under_any_name(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_steps=TEST_FILE)
    pytester.runpytest("--replay-record").assert_outcomes(passed=1)
    folder = sorted(pytester.path.rglob("ring.vrrl"))[0].parent
    for name in ("ring.vrrl", "summary.msgpack"):
        copy = pytester.path / f"XyZ123_{name}"
        copy.write_bytes((folder / name).read_bytes())
        assert textconv_lines(copy) == textconv_lines(folder / name)
    lines = textconv_lines(folder / "summary.msgpack")
    assert lines[-4:] == [
        "[\"blob\"] = b'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'...<500 bytes #"
        + lines[-4].rsplit("#", 1)[1],
        '["opcode"] = 2',
        "[\"tags\"] = ('a', 'b')",
        '["when"] = datetime.date(2024, 1, 1)',
    ]


def test_an_undecodable_file_still_gets_a_stable_rendering(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "tmp_8f3a_ring.vrrl"
    broken.write_bytes(b"VRRL0001" + b"\x00" * 10)
    assert main(["textconv", str(broken)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# not a recording pytest-replay can decode\n# bytes: 18 #")
    assert str(tmp_path) not in out and "tmp_8f3a" not in out
