"""The manifest decoder: every damaged manifest is a StoreCorrupted naming the file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pytest_replay.store import Manifest, ManifestEntry, ReplayStore, StoreCorrupted

GOOD = {
    "format": 1,
    "nodeid": "test_a.py::test_a",
    "plugin_version": "1",
    "recordings": {
        "ring": {"kind": "ring", "file": "ring.vrrl", "version": 1, "records": 3, "digest": "d"}
    },
}


def with_entry(**changes: object) -> bytes:
    body = json.loads(json.dumps(GOOD))
    body["recordings"]["ring"].update(changes)
    return json.dumps(body).encode()


def test_a_good_manifest_round_trips() -> None:
    manifest = Manifest.decode(json.dumps(GOOD).encode(), Path("m.json"))
    assert manifest.recordings["ring"] == ManifestEntry("ring", "ring.vrrl", 1, 3, "d", {})
    assert Manifest.decode(manifest.encode(), Path("m.json")) == manifest


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"{nope", id="not-json"),
        pytest.param(b"[1, 2]", id="not-an-object"),
        pytest.param(b'{"format": 2}', id="unknown-format"),
        pytest.param(b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", id="nested-too-deep"),
        pytest.param(with_entry(version=float("inf")), id="infinite-version"),
        pytest.param(with_entry(records=-1), id="negative-count"),
        pytest.param(with_entry(records=1.5), id="float-count"),
        pytest.param(with_entry(kind=7), id="kind-not-text"),
        pytest.param(with_entry(meta=[1]), id="meta-not-object"),
        pytest.param(with_entry(file="../../elsewhere.vrrl"), id="file-outside-folder"),
        pytest.param(with_entry(file="manifest.json"), id="file-is-the-manifest"),
        pytest.param(with_entry(file=".."), id="file-dotdot"),
    ],
)
def test_a_damaged_manifest_is_store_corrupted(data: bytes) -> None:
    with pytest.raises(StoreCorrupted, match=r"manifest 'dir.m.json' cannot be read") as info:
        Manifest.decode(data, Path("dir", "m.json"))
    assert str(info.value).endswith("or restore the file.")
    assert "Fix:" in str(info.value)


@pytest.mark.parametrize(
    ("nodeid", "folder"),
    [
        ("test_a.py::test_a", "test_a.py/test_a"),
        ("tests/test_a.py::k::test_a", "tests/test_a.py/k.test_a"),
        ("test_a.py::test_a[1.5]", "test_a.py/test_a[1.5]"),
        ("test_a.py", "test_a.py/__module__"),
    ],
)
def test_test_folders_are_readable(nodeid: str, folder: str) -> None:
    assert ReplayStore(Path("s")).test_dir(nodeid) == Path("s", folder)


def test_parameter_ids_with_separators_get_their_own_folders() -> None:
    store = ReplayStore(Path("s"))
    ids = [
        "test_a.py::test_t[std::string]",
        "test_a.py::test_t[std.string]",
        "test_a.py::TestT::test_t[x]",
        "test_a.py::test_t[TestT::x]",
    ]
    assert len({store.test_dir(nodeid) for nodeid in ids}) == len(ids)


def stored(store: ReplayStore, folder: Path) -> dict[str, bytes]:
    manifest = store.load_manifest(folder)
    assert manifest is not None
    return {name: store.read_checked(folder, e) for name, e in manifest.recordings.items()}


def record(store: ReplayStore, folder: Path, values: dict[str, bytes]) -> None:
    from pytest_replay.store import digest_bytes

    entries = {
        name: ManifestEntry("data", f"{name}.bin", 1, 1, digest_bytes(data))
        for name, data in values.items()
    }
    files = {f"{name}.bin": data for name, data in values.items()}
    store.write_test(folder, Manifest("t.py::t", "1", entries), files)


@pytest.mark.parametrize("fail_on", ["stage", "rename"])
def test_a_failed_store_leaves_the_previous_recordings_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_on: str
) -> None:
    import pytest_replay._atomic as atomic

    store = ReplayStore(tmp_path)
    folder = tmp_path / "t.py" / "t"
    record(store, folder, {"a": b"old a", "b": b"old b"})

    def full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    if fail_on == "stage":
        real_stage = atomic._stage
        monkeypatch.setattr(
            atomic,
            "_stage",
            lambda target, data: (
                full() if target.name == "manifest.json" else real_stage(target, data)
            ),
        )
    else:
        real_replace = os.replace
        failures = iter([True])  # only the first rename onto the manifest fails

        def replace(src: str, dst: str) -> None:
            if Path(dst).name == "manifest.json" and next(failures, False):
                full()
            real_replace(src, dst)

        monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(OSError, match="No space"):
        record(store, folder, {"a": b"new a", "b": b"old b"})
    monkeypatch.undo()
    assert stored(store, folder) == {"a": b"old a", "b": b"old b"}
    assert sorted(p.name for p in folder.iterdir()) == ["a.bin", "b.bin", "manifest.json"]


def test_stored_files_get_the_mode_open_would_give(tmp_path: Path) -> None:
    mask = os.umask(0o022)
    os.umask(mask)
    store = ReplayStore(tmp_path)
    folder = tmp_path / "t.py" / "t"
    record(store, folder, {"a": b"a"})
    for path in folder.iterdir():
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask, path


def test_manifests_are_found_in_a_very_deep_tree(tmp_path: Path) -> None:
    store = ReplayStore(tmp_path / "store")
    record(store, tmp_path / "store" / "b.py" / "t", {"a": b"a"})
    levels = [tmp_path / "store" / "a"]
    for _ in range(1_100):  # deeper than a recursive walk can go on Python 3.11
        levels.append(levels[-1] / "d")
    try:
        for level in levels:
            level.mkdir()
        record(store, levels[-1], {"a": b"a"})
        assert [folder for folder, _ in store.iter_manifests()] == [
            levels[-1],
            tmp_path / "store" / "b.py" / "t",
        ]
    finally:
        # Bottom up: pytest's own clean-up of tmp_path recurses too.
        for level in reversed(levels):
            for path in level.glob("*"):
                if path.is_file():
                    path.unlink()
            if level.exists():
                level.rmdir()
