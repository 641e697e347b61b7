"""docs/reference-tests.md maps every reference test to ours: the table is complete for
the counts it states, and every test it names exists and is collected."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reference-tests.md"

_SECTION = re.compile(r"^## .*\(`(?P<design>\d{3}_[0-9a-f]+\.txt)`\)$")
_COUNT = re.compile(r"^Reference tests: (?P<count>\d+)\.$")
_OURS = re.compile(r"tests/[\w/]+\.py::\w+")
_SUMMARY = re.compile(
    r"Summary: (?P<total>\d+) reference tests \([\d + ]+\), (?P<mapped>\d+) mapped"
)


@dataclass(frozen=True, slots=True)
class Design:
    name: str
    stated: int
    rows: tuple[tuple[str, tuple[str, ...]], ...]


def read_designs(text: str) -> list[Design]:
    designs: list[Design] = []
    name: str | None = None
    stated = -1
    rows: list[tuple[str, tuple[str, ...]]] = []
    for line in [*text.splitlines(), "## end (`999_0.txt`)"]:
        if (section := _SECTION.match(line)) is not None:
            if name is not None:
                designs.append(Design(name, stated, tuple(rows)))
            name, stated, rows = section["design"], -1, []
        elif (count := _COUNT.match(line)) is not None:
            stated = int(count["count"])
        elif name is not None and line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows.append((cells[0].strip("`"), tuple(_OURS.findall(cells[-1]))))
    return designs


def collected(files: set[str]) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:randomly", *sorted(files)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return {line.split("[", 1)[0] for line in result.stdout.splitlines() if "::" in line}


def test_every_reference_test_is_mapped_to_a_collected_test_of_ours() -> None:
    text = DOC.read_text(encoding="utf-8")
    designs = read_designs(text)
    assert [d.name[:3] for d in designs] == ["000", "001", "002", "003", "004"]
    for design in designs:
        assert design.stated == len(design.rows), design.name
        assert len({name for name, _ in design.rows}) == len(design.rows), design.name
        unmapped = [name for name, ours in design.rows if not ours]
        assert unmapped == [], f"{design.name}: no test of ours named for {unmapped}"
    summary = _SUMMARY.search(text)
    assert summary is not None
    total = sum(design.stated for design in designs)
    assert int(summary["total"]) == int(summary["mapped"]) == total

    named = set(_OURS.findall(text))
    missing = named - collected({name.split("::", 1)[0] for name in named})
    assert missing == set(), f"named in {DOC.name} but not collected: {sorted(missing)}"


def test_the_doc_reader_sees_rows_counts_and_mapped_tests() -> None:
    text = (
        "## Thing (`000_ab.txt`)\n\nReference tests: 2.\n\n"
        "| reference test | what | ours |\n| --- | --- | --- |\n"
        "| `a` | x | `tests/test_a.py::test_a`, `tests/test_b.py::test_b` |\n"
        "| `b` | y | none |\n"
    )
    [design] = read_designs(text)
    assert design == Design(
        "000_ab.txt", 2, (("a", ("tests/test_a.py::test_a", "tests/test_b.py::test_b")), ("b", ()))
    )
