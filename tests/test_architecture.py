"""What lint-imports cannot see: no module imports another module's private name (private
*modules* such as ``pytest_replay._fs`` are shared inside the package on purpose), and the
functions docs/architecture.md walks a recording through exist."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("pytest_replay", "strategies", "fixtures")
# The modules a ring recording passes through (docs/architecture.md names their functions).
PATH_MODULES = ("context", "kinds", "runtest", "store", "ringlog", "report", "diff")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] != "pytest_replay":  # strategies/ and fixtures/ install under pytest_replay
        parts.insert(0, "pytest_replay")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _private_imports(source: str, module: str, *, is_package: bool, modules: set[str]) -> list[str]:
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            imported = ".".join([*base, *([node.module] if node.module else [])])
        else:
            imported = node.module or ""
        if not imported.startswith("pytest_replay") or imported == module:
            continue
        found += [
            f"{module}:{node.lineno} imports {imported}.{alias.name}"
            for alias in node.names
            if alias.name.startswith("_")
            and not alias.name.startswith("__")
            and f"{imported}.{alias.name}" not in modules
        ]
    return found


def test_no_module_imports_a_private_name_of_another() -> None:
    files = sorted(path for folder in FOLDERS for path in (ROOT / folder).rglob("*.py"))
    modules = {_module_name(path) for path in files}
    assert len(files) > 100
    found = [
        line
        for path in files
        for line in _private_imports(
            path.read_text(encoding="utf-8"),
            _module_name(path),
            is_package=path.name == "__init__.py",
            modules=modules,
        )
    ]
    assert found == []


def test_the_check_sees_a_private_name_but_not_a_private_module() -> None:
    modules = {"pytest_replay._fs", "pytest_replay.ringlog", "pytest_replay.cli.inspect"}
    source = (
        "from pytest_replay import _fs\n"
        "from pytest_replay.ringlog import _HEADER, RingLog\n"
        "from .inspect import _show\n"
    )
    assert _private_imports(
        source, "pytest_replay.cli.diff", is_package=False, modules=modules
    ) == [
        "pytest_replay.cli.diff:2 imports pytest_replay.ringlog._HEADER",
        "pytest_replay.cli.diff:3 imports pytest_replay.cli.inspect._show",
    ]


def _resolves(dotted: str) -> bool:
    """Whether ``module.Name.attr`` (module under pytest_replay) or ``Name.attr`` (a name of
    one of the modules the recording passes through) exists."""
    first, *rest = dotted.split(".")
    try:
        value: object = importlib.import_module(f"pytest_replay.{first}")
    except ModuleNotFoundError:
        homes = [importlib.import_module(f"pytest_replay.{name}") for name in PATH_MODULES]
        holders = [home for home in homes if hasattr(home, first)]
        if not holders:
            return False
        value = getattr(holders[0], first)
    for part in rest:
        if not hasattr(value, part):
            return False
        value = getattr(value, part)
    return True


def test_the_recording_path_in_the_architecture_doc_names_functions_that_exist() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## One ring recording, end to end", 1)[1].split("\n## ", 1)[0]
    names = {
        token
        for token in re.findall(r"`([A-Za-z_][\w.]*\.[\w.]+)(?:\(|`)", section)
        if not token.startswith(("replay.", "recorder."))
    }
    assert len(names) > 20
    assert [name for name in sorted(names) if not _resolves(name)] == []
    assert not _resolves("kinds.RingRecorder.no_such_method")
    assert not _resolves("NoSuchClass.append")


# render_error writes the Fix line; a message that spells "Fix:" out by hand drifts from it.
_FIX_LINE_OWNER = "pytest_replay/errors.py"


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring constants of the module, its classes and functions."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                found.add(id(body[0].value))
    return found


def _hand_written_fix_lines(source: str, name: str) -> list[str]:
    """``name:line`` of every string literal (f-string parts included) that contains
    ``Fix:``, docstrings left out (comments never reach the tree)."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    lines = {
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and "Fix:" in node.value
        and id(node) not in docstrings
    }
    return [f"{name}:{line}" for line in sorted(lines)]


def test_no_message_writes_the_fix_line_by_hand() -> None:
    files = sorted(path for folder in FOLDERS for path in (ROOT / folder).rglob("*.py"))
    assert len(files) > 100
    checked = [path for path in files if path.relative_to(ROOT).as_posix() != _FIX_LINE_OWNER]
    assert len(checked) > 80
    found = [
        line
        for path in checked
        for line in _hand_written_fix_lines(
            path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix()
        )
    ]
    assert found == []


def test_the_fix_line_check_sees_literals_but_not_docstrings() -> None:
    source = '''"""A module whose messages end with a ``Fix:`` hint."""


class Broken(Exception):
    """Raised with a Fix: hint."""

    def __init__(self, what):
        """Fix: nothing to do here."""
        super().__init__(f"{what}. Fix: mend it")  # Fix: a comment is fine


def fail(path):
    raise ValueError(
        f"'{path}' is damaged. "
        "Fix: restore it"
    )


HINT = "Fix:"
'''
    assert _hand_written_fix_lines(source, "m.py") == ["m.py:9", "m.py:14", "m.py:19"]
    assert _hand_written_fix_lines('render_error("x", fix="restore it")\n', "m.py") == []


# A format's layout is described once, by its Format in pytest_replay/formats.
_LAYOUT_BUILDERS = ("Framing", "FieldSpan", "laid_out")


def _layout_built_here(source: str, name: str) -> list[str]:
    """``name:line`` of every call that builds a framing or a field span."""
    lines = [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Name) and node.func.id in _LAYOUT_BUILDERS)
            or (isinstance(node.func, ast.Attribute) and node.func.attr in _LAYOUT_BUILDERS)
        )
    ]
    return [f"{name}:{line}" for line in sorted(lines)]


def test_strategies_and_fixtures_take_every_layout_from_the_formats() -> None:
    files = sorted(
        path for folder in ("strategies", "fixtures") for path in (ROOT / folder).rglob("*.py")
    )
    assert any(path.name == "corrupt.py" for path in files)
    found = [
        line
        for path in files
        for line in _layout_built_here(
            path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix()
        )
    ]
    assert found == []


def test_the_layout_check_sees_a_framing_built_by_hand() -> None:
    source = (
        "RING = Framing(magic=b'x', header=laid_out(('magic', 8)))\nSPAN = f.FieldSpan('a', 0, 4)\n"
    )
    assert _layout_built_here(source, "m.py") == ["m.py:1", "m.py:1", "m.py:2"]
    assert _layout_built_here("RING = framing('vrrl')\n", "m.py") == []
