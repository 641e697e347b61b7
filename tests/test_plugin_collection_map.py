"""The end-of-run map of collected tests to store folders, against the plain per-test path.

The session maps the collected tests to their store folders per module, and per test only
in stores that exist (session.py ``_map_collected``); the plain path is ``store_for`` and
``test_dir`` on every test, as a test that records uses them. Both must give the same roots
and module folders, and the same test folders in every store that exists.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from pytest_replay.session import SESSION_PLUGIN_NAME, ReplaySession

MODULE = """
import pytest

def test_plain():
    pass

@pytest.mark.parametrize("v", [1, "a/../b", "std::string", "Upper"])
def test_param(v):
    pass

class TestGroup:
    def test_inner(self):
        pass

    @pytest.mark.parametrize("n", range(3))
    def test_many(self, n):
        pass
"""

HOOK = """
import pytest

@pytest.hookimpl(optionalhook=True)
def pytest_replay_store_dir(item):
    # Some tests elsewhere, the others in the default store.
    return "hooked" if "param" in item.name else None
"""


class PlainMap:
    """Computes the plain per-test map at the end of the run, beside the session's own."""

    def __init__(self) -> None:
        self.fast: dict[str, set[str]] = {}
        self.plain: dict[str, set[str]] = {}
        self.ids: list[tuple[str, str]] = []
        self.items = 0

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._items = list(session.items)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        replay = config.pluginmanager.get_plugin(SESSION_PLUGIN_NAME)
        assert isinstance(replay, ReplaySession)
        tally = replay.tally
        self.fast = {
            "roots": set(tally.roots),
            "test_folders": set(tally.test_folders),
            "module_folders": set(tally.module_folders),
            "narrowed_folders": set(tally.narrowed_folders),
        }
        narrowed = replay.narrowing.narrowed_modules(self._items)
        plain: dict[str, set[str]] = {key: set() for key in self.fast}
        for item in self._items:
            store, test_id = replay.store_for(item)
            folder = store.test_dir(test_id)
            plain["roots"].add(str(store.root))
            if os.path.isdir(store.root):
                plain["test_folders"].add(str(folder))
            module = item.nodeid.partition("::")[0]
            key = "narrowed_folders" if module in narrowed else "module_folders"
            plain[key].add(str(folder.parent))
            self.ids.append((test_id, uncached_id(replay, item)))
        self.plain = plain
        self.items = len(self._items)


def uncached_id(replay: ReplaySession, item: pytest.Item) -> str:
    """The test id as store_for computed it before it cached the module's part: every path
    resolved again for every test."""
    chosen = item.ihook.pytest_replay_store_dir(item=item)
    path, sep, rest = item.nodeid.partition("::")
    module = Path(item.path)
    if chosen is not None:
        base = Path(os.path.normpath(Path(replay.config.rootpath, chosen))).parent
    elif replay.central is not None:
        base = Path(replay.config.rootpath)
    else:
        base = module.parent
    with contextlib.suppress(ValueError):
        path = module.resolve().relative_to(base.resolve()).as_posix()
    return f"{path}{sep}{rest}"


def layout(pytester: pytest.Pytester, stored: tuple[str, ...]) -> None:
    """Three modules (one in a sub folder, one with a conftest hook); ``stored`` names the
    stores that exist before the run."""
    pytester.makepyfile(test_top=MODULE)
    sub = pytester.mkpydir("sub")
    (sub / "test_sub.py").write_text(MODULE)
    hooked = pytester.mkpydir("hooked_pkg")
    (hooked / "conftest.py").write_text(HOOK)
    (hooked / "test_hooked.py").write_text(MODULE)
    for folder in stored:
        (pytester.path / folder).mkdir(parents=True, exist_ok=True)


@pytest.mark.parametrize(
    ("stored", "args", "ini"),
    [
        pytest.param((), (), "", id="no-store-exists"),
        pytest.param(("__replay__", "hooked"), (), "", id="some-stores-exist"),
        pytest.param(
            ("__replay__", "sub/__replay__", "hooked_pkg/__replay__", "hooked"),
            (),
            "",
            id="every-store-exists",
        ),
        pytest.param(("sub/__replay__",), ("-k", "inner or plain"), "", id="narrowed"),
        pytest.param((), ("--count", "2"), "", id="repeated-absent"),
        pytest.param(("__replay__", "sub/__replay__"), ("--count", "2"), "", id="repeated"),
        pytest.param((".replay",), (), "replay_dir = .replay\n", id="central-exists"),
        pytest.param((), (), "replay_dir = .replay\n", id="central-absent"),
        pytest.param(("__replay__",), ("--replay-record",), "", id="record"),
    ],
)
def test_the_end_of_run_map_is_the_per_test_map(
    pytester: pytest.Pytester, stored: tuple[str, ...], args: tuple[str, ...], ini: str
) -> None:
    layout(pytester, stored)
    pytester.makeini(f"[pytest]\n{ini}")
    plain = PlainMap()
    result = pytester.inline_run("-p", "no:randomly", *args, plugins=[plain])
    assert result.ret == pytest.ExitCode.OK
    assert plain.items == (3 * 2 if "-k" in args else 3 * 9) * (2 if "--count" in args else 1)
    assert plain.fast == plain.plain
    for cached, uncached in plain.ids:
        if "--count" not in args:  # pytest-repeat's step is dropped from the id on purpose
            assert cached == uncached
    # The narrowed run really narrowed; the other runs really mapped tests in stores.
    assert bool(plain.fast["narrowed_folders"]) == ("-k" in args)
    assert bool(plain.fast["test_folders"]) == bool(stored)


def test_a_suite_without_stores_maps_each_module_once(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path itself: no store exists and no hook is implemented, so the map looks
    at one test per module, not at every test (what a suite that never records pays)."""
    from pytest_replay.store import ReplayStore

    pytester.makepyfile(test_a=MODULE, test_b=MODULE)
    calls: list[str] = []
    plain_test_dir = ReplayStore.test_dir

    def counted(self: ReplayStore, nodeid: str) -> Path:
        calls.append(nodeid)
        return plain_test_dir(self, nodeid)

    monkeypatch.setattr(ReplayStore, "test_dir", counted)
    result = pytester.inline_run("-p", "no:randomly")
    result.assertoutcome(passed=2 * 9)
    assert sorted(calls) == ["test_a.py::test_plain", "test_b.py::test_plain"]
    (pytester.path / "__replay__").mkdir()
    calls.clear()
    pytester.inline_run("-p", "no:randomly").assertoutcome(passed=2 * 9)
    assert len(calls) == 2 * 9
