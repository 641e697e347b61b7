"""A Hypothesis state machine over store trees: valid recordings, junk files, symbolic links,
FIFOs and interrupted commits, under record, verify, check and prune (the store calls the
pytest run and the ``store`` commands make). Nothing outside the store ever changes, nothing
valid is lost, and every refusal is a ReplayError with a Fix hint."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from pytest_replay.cli import main
from pytest_replay.errors import ReplayError
from pytest_replay.store import Manifest, ManifestEntry, ReplayStore, digest_bytes

TESTS = st.sampled_from(["t0", "t1", "t2"])
VALUES = st.dictionaries(st.sampled_from(["a", "b", "c"]), st.binary(max_size=24), max_size=3)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<folder>"
        for p in sorted(folder.rglob("*"))
    }


def clear(error: ReplayError) -> None:
    assert "Fix:" in str(error), error


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and symlinks")
class StoreTrees(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.base = Path(tempfile.mkdtemp(prefix="replay-store-"))
        self.outside = self.base / "outside"
        self.outside.mkdir()
        (self.outside / "precious.txt").write_bytes(b"the user's own file")
        (self.outside / "dir").mkdir()
        (self.outside / "dir" / "keep.bin").write_bytes(b"keep")
        self.before = snapshot(self.outside)
        self.store = ReplayStore(self.base / "tests" / "__replay__", lock_timeout=5)
        self.valid: dict[str, dict[str, bytes]] = {}  # what each readable test holds
        self.damaged: set[str] = set()  # a link or FIFO planted in its place

    def teardown(self) -> None:
        shutil.rmtree(self.base)

    def folder(self, test: str) -> Path:
        return self.store.test_dir(f"m.py::{test}")

    # -- what users and crashes do to a store

    @rule(test=TESTS, values=VALUES)
    def record(self, test: str, values: dict[str, bytes]) -> None:
        entries = {
            name: ManifestEntry("data", f"{name}.bin", 1, 1, digest_bytes(data))
            for name, data in values.items()
        }
        files = {f"{name}.bin": data for name, data in values.items()}
        try:
            self.store.write_test(self.folder(test), Manifest(f"m.py::{test}", "1", entries), files)
        except ReplayError as error:
            clear(error)
            return
        assert test not in self.damaged
        if values:
            self.valid[test] = values
        else:
            self.valid.pop(test, None)

    @precondition(lambda self: self.damaged)
    @rule(data=st.data(), values=VALUES, remove=st.booleans())
    def write_over_damage(
        self, data: st.DataObject, values: dict[str, bytes], remove: bool
    ) -> None:
        test = data.draw(st.sampled_from(sorted(self.damaged)))
        if remove:
            self.prune(test)
        else:
            self.record(test, values)

    @rule(test=TESTS)
    def prune(self, test: str) -> None:
        try:
            self.store.remove_test(self.folder(test))
        except ReplayError as error:
            clear(error)
            return
        self.valid.pop(test, None)

    @rule()
    def recover(self) -> None:
        try:
            self.store.recover()
        except ReplayError as error:
            clear(error)

    @precondition(lambda self: self.valid)
    @rule(data=st.data())
    def junk_file(self, data: st.DataObject) -> None:
        test = data.draw(st.sampled_from(sorted(self.valid)))
        folder = self.store._live(self.folder(test))
        assert folder is not None
        (folder / ".notes").write_bytes(b"mine")

    @precondition(lambda self: self.valid)
    @rule(data=st.data(), what=st.sampled_from(["file-link", "dir-link", "dev-link", "fifo"]))
    def plant(self, data: st.DataObject, what: str) -> None:
        test = data.draw(st.sampled_from(sorted(self.valid)))
        folder = self.store._live(self.folder(test))
        assert folder is not None
        part = folder / f"{data.draw(st.sampled_from(sorted(self.valid[test])))}.bin"
        part.unlink()
        if what == "fifo":
            os.mkfifo(part)
        else:
            targets = {"file-link": "precious.txt", "dir-link": "dir", "dev-link": None}
            target = targets[what]
            part.symlink_to(self.outside / target if target else Path("/dev/zero"))
        del self.valid[test]
        self.damaged.add(test)

    @rule(test=TESTS)
    def link_a_test_folder(self, test: str) -> None:
        folder = self.folder(test)
        if os.path.lexists(folder) or os.path.lexists(folder.with_name(f".{test}.old")):
            return
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.symlink_to(self.outside / "dir", target_is_directory=True)
        self.damaged.add(test)

    @precondition(lambda self: self.valid)
    @rule(data=st.data())
    def strand(self, data: st.DataObject) -> None:
        """A record run killed between its two renames: only ``.<test>.old`` is left."""
        test = data.draw(st.sampled_from(sorted(self.valid)))
        folder = self.folder(test)
        old = folder.with_name(f".{test}.old")
        if os.path.lexists(old) or not folder.is_dir():
            return
        folder.rename(old)

    @rule(test=TESTS)
    def half_written(self, test: str) -> None:
        tmp = self.folder(test).with_name(f".{test}.tmp")
        if os.path.lexists(tmp):
            return
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        (tmp / "a.bin").write_bytes(b"half")

    # -- what readers see

    @rule()
    def check(self) -> None:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            status = main(["store", "check", str(self.store.root), "--json"])
        assert status in (0, 1, 2)

    @invariant()
    def nothing_outside_changes(self) -> None:
        assert snapshot(self.outside) == self.before

    @invariant()
    def valid_recordings_read_back(self) -> None:
        for test, values in self.valid.items():
            folder = self.folder(test)
            manifest = self.store.load_manifest(folder)
            assert manifest is not None, test
            read = {n: self.store.read_checked(folder, e) for n, e in manifest.recordings.items()}
            assert read == values

    @invariant()
    def damaged_ones_are_clear_errors(self) -> None:
        for test in self.damaged:
            try:
                manifest = self.store.load_manifest(self.folder(test))
                for entry in manifest.recordings.values() if manifest else ():
                    self.store.read_checked(self.folder(test), entry)
            except ReplayError as error:
                clear(error)


StoreTrees.TestCase.settings = settings(
    settings.get_profile(settings._current_profile or "ci"), stateful_step_count=20
)
test_store_trees = StoreTrees.TestCase
