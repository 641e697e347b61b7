"""Every code block in README.md and docs/*.md runs.

Conventions the docs follow:

- A ```python block whose first line is ``# <name>.py`` is a file of that doc's example
  project (test modules, a ``conftest.py``); every other ```python block runs on its own,
  with its own imports (a reader copies one block, not the page), in one fresh folder per
  document, in the order they appear (a later block may read a file an earlier one wrote).
- A ```console block holds commands after ``$ ``; ``pytest ...`` commands run in the example
  project (through pytester, in a subprocess) and must succeed, as must
  ``python -m pytest_replay ...`` / ``pytest-replay ...`` commands.
- A ```sql block (a schema) is run by SQLite in memory.
- ```text blocks are sample output and are not run.
"""

from __future__ import annotations

import os
import re
import shlex
import sqlite3
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
FILE_HEADER = re.compile(r"#\s*([\w./-]+\.py)\s*$")


@dataclass(frozen=True)
class Block:
    lang: str
    line: int
    text: str


def blocks(path: Path) -> list[Block]:
    source = path.read_text()
    return [
        Block(m.group(1), source.count("\n", 0, m.start()) + 1, m.group(2))
        for m in FENCE.finditer(source)
    ]


def doc_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_doc_code_blocks_run(doc: Path, pytester: pytest.Pytester) -> None:
    found = blocks(doc)
    files: dict[str, str] = {}
    snippets: list[Block] = []
    commands: list[tuple[Block, str]] = []
    for block in found:
        if block.lang == "python":
            first = block.text.splitlines()[0] if block.text.strip() else ""
            header = FILE_HEADER.fullmatch(first.strip())
            if header:
                files[header.group(1)] = block.text
            else:
                snippets.append(block)
        elif block.lang in ("console", "bash", "shell", "sh"):
            commands += [
                (block, line[2:].strip())
                for line in block.text.splitlines()
                if line.startswith("$ ")
            ]
        elif block.lang == "sql":
            sqlite3.connect(":memory:").executescript(block.text)
        else:
            assert block.lang in ("text", "json", "toml", "ini", ""), (
                f"{doc_id(doc)}:{block.line}: unknown code block language {block.lang!r}"
            )
    workdir = pytester.mkdir("snippets")
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        for block in snippets:
            # A real module, as a reader's script is: dataclasses and the value encoding
            # look their classes' module up in sys.modules.
            module = types.ModuleType("__doc_example__")
            sys.modules[module.__name__] = module
            try:
                exec(compile(block.text, f"{doc_id(doc)}:{block.line}", "exec"), module.__dict__)
            except Exception as exc:  # report which block broke, then fail
                pytest.fail(f"{doc_id(doc)}:{block.line}: python block raised {exc!r}")
            finally:
                del sys.modules[module.__name__]
    finally:
        os.chdir(cwd)
    for name, text in files.items():
        target = pytester.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    for block, command in commands:
        argv = shlex.split(command, comments=True)
        if not argv or argv[0] in ("pip", "python3", "cd", "git") or "venv" in command:
            continue  # setup commands: the test run already is their result
        if argv[0] == "pytest":
            result = pytester.runpytest_subprocess(*argv[1:], "-p", "no:cacheprovider")
            assert result.ret == 0, (
                f"{doc_id(doc)}:{block.line}: `{command}` failed:\n{result.stdout.str()[-3000:]}"
            )
            continue
        if argv[0] == "pytest-replay":
            argv = [sys.executable, "-m", "pytest_replay", *argv[1:]]
        elif argv[0] == "python":
            argv = [sys.executable, *argv[1:]]
        done = subprocess.run(argv, cwd=pytester.path, capture_output=True, text=True)
        assert done.returncode == 0, (
            f"{doc_id(doc)}:{block.line}: `{command}` failed:\n{done.stdout}{done.stderr}"
        )
