"""The installed package: one top-level import name, the mapped subpackages, the plugin.

These build real wheels (regular and PEP 660 editable) from this checkout and
install them into fresh virtual environments, so they check what a user gets,
not only the source tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import importlib.metadata as md, json, sys
import pytest_replay, pytest_replay.strategies, pytest_replay.fixtures, pytest_replay.plugin
eps = [ep.value for ep in md.entry_points(group="pytest11") if ep.name == "replay"]
print(json.dumps({
    "strategies": pytest_replay.strategies.__file__,
    "fixtures": pytest_replay.fixtures.__file__,
    "entry_points": eps,
}))
"""


# What a build would otherwise leave in the checkout (build/, *.egg-info) and what it must not copy.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"
)


def _source_copy(tmp_path: Path) -> Path:
    """A copy of the checkout to build from, so that building leaves nothing behind in it."""
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=_NOT_SOURCE, symlinks=True)
    return src


def _build(kind: str, out: Path, src: Path) -> Path:
    hook = "build_wheel" if kind == "wheel" else "build_editable"
    script = f"import sys, setuptools.build_meta as b; print(b.{hook}(sys.argv[1]))"
    done = subprocess.run(
        [sys.executable, "-c", script, str(out)],
        cwd=src,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out / done.stdout.strip().splitlines()[-1]


def _fresh_venv(folder: Path) -> Path:
    venv.EnvBuilder(with_pip=True).create(folder)
    python = folder / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # Dependencies come from the running environment, appended after the fresh
    # site-packages; its own .pth files (an editable pytest_replay) are not run.
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(site, "zz_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    return python


def _install_and_check(wheel: Path, folder: Path) -> dict[str, object]:
    python = _fresh_venv(folder / "venv")
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    done = subprocess.run(
        [str(python), "-c", CHECK],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    import json

    return json.loads(done.stdout)


def test_regular_install(tmp_path: Path) -> None:
    wheel = _build("wheel", tmp_path, _source_copy(tmp_path))
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"pytest_replay"}, top
    assert "pytest_replay/strategies/__init__.py" in names
    assert "pytest_replay/fixtures/__init__.py" in names
    assert "pytest_replay/py.typed" in names
    found = _install_and_check(wheel, tmp_path)
    venv_site = str(tmp_path / "venv")
    assert str(found["strategies"]).startswith(venv_site)
    assert str(found["fixtures"]).startswith(venv_site)
    assert found["entry_points"] == ["pytest_replay.plugin"]


def test_editable_install(tmp_path: Path) -> None:
    src = _source_copy(tmp_path)
    wheel = _build("editable", tmp_path, src)
    found = _install_and_check(wheel, tmp_path)
    assert found["strategies"] == str(src / "strategies" / "__init__.py")
    assert found["fixtures"] == str(src / "fixtures" / "__init__.py")
    assert found["entry_points"] == ["pytest_replay.plugin"]


def test_every_package_folder_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapped = config["package-dir"]
    found = {"pytest_replay.strategies", "pytest_replay.fixtures"}
    for init in (ROOT / "pytest_replay").rglob("__init__.py"):
        parts = init.parent.relative_to(ROOT).parts
        found.add(".".join(parts))
    assert found == listed
    assert mapped == {
        "pytest_replay.strategies": "strategies",
        "pytest_replay.fixtures": "fixtures",
    }


@pytest.mark.parametrize("name", ["strategies", "fixtures"])
def test_mapped_folders_have_no_top_level_import(name: str) -> None:
    # The source tree's folders must not shadow anything when tests run from the root.
    assert not (ROOT / name / "__main__.py").exists()
    assert (ROOT / name / "__init__.py").exists()
