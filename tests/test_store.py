"""The store as a library: manifest checks, names, layout, commit and recovery."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pytest_replay.store import (
    InvalidRecordingName,
    Manifest,
    ManifestEntry,
    ReplayStore,
    StoreCorrupted,
    StoreError,
    part_name,
)

DIGEST = "d" * 64
GOOD = {
    "format": 2,
    "nodeid": "test_a.py::test_a",
    "plugin_version": "1",
    "recordings": {
        "ring": {
            "kind": "ring",
            "file": "ring.vrrl",
            "version": 1,
            "records": 3,
            "digest": DIGEST,
            "size": 10,
        }
    },
}


def with_entry(**changes: object) -> bytes:
    body = json.loads(json.dumps(GOOD))
    body["recordings"]["ring"].update(changes)
    return json.dumps(body).encode()


def test_a_good_manifest_round_trips() -> None:
    manifest = Manifest.decode(json.dumps(GOOD).encode(), Path("m.json"))
    assert manifest.recordings["ring"] == ManifestEntry(
        "ring", "ring.vrrl", 1, 3, DIGEST, {}, size=10
    )
    assert Manifest.decode(manifest.encode(), Path("m.json")) == manifest


@pytest.mark.parametrize(
    ("data", "field"),
    [
        pytest.param(b"{nope", "not JSON", id="not-json"),
        pytest.param(b"[1, 2]", "(top level)", id="not-an-object"),
        pytest.param(b'{"format": 3}', "format", id="unknown-format"),
        pytest.param(json.dumps({**GOOD, "format": 1}).encode(), "format", id="older-format"),
        pytest.param(b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "JSON", id="too-deep"),
        pytest.param(with_entry(version=float("inf")), "recordings.ring.version", id="inf"),
        pytest.param(with_entry(records=-1), "recordings.ring.records", id="negative-count"),
        pytest.param(with_entry(records=1.5), "recordings.ring.records", id="float-count"),
        pytest.param(with_entry(size="10"), "recordings.ring.size", id="size-not-int"),
        pytest.param(with_entry(size=None), "recordings.ring.size", id="size-missing"),
        pytest.param(with_entry(kind=7), "recordings.ring.kind", id="kind-not-text"),
        pytest.param(with_entry(meta=[1]), "recordings.ring.meta", id="meta-not-object"),
        pytest.param(with_entry(meta={"volatile": 5}), "meta.volatile", id="volatile-not-list"),
        pytest.param(with_entry(meta={"volatile": [1]}), "meta.volatile", id="volatile-not-names"),
        pytest.param(with_entry(meta={"appended": "3"}), "meta.appended", id="appended-text"),
        pytest.param(with_entry(digest="xyz"), "recordings.ring.digest", id="digest-not-hex"),
        pytest.param(with_entry(file="../../e.vrrl"), "recordings.ring.file", id="outside"),
        pytest.param(with_entry(file="manifest.json"), "recordings.ring.file", id="manifest"),
        pytest.param(with_entry(file=".."), "recordings.ring.file", id="file-dotdot"),
        pytest.param(with_entry(file="ring.v\\x"), "recordings.ring.file", id="backslash"),
        pytest.param(with_entry(file="other.vrrl"), "recordings.ring.file", id="not-its-file"),
        pytest.param(with_entry(file="ring.vrrl.tmp"), "recordings.ring.file", id="temp-name"),
    ],
)
def test_a_damaged_manifest_is_store_corrupted_naming_the_field(data: bytes, field: str) -> None:
    with pytest.raises(StoreCorrupted, match=r"manifest 'dir.m.json' cannot be read") as info:
        Manifest.decode(data, Path("dir", "m.json"))
    assert field in str(info.value)
    assert str(info.value).endswith("or restore the file.")


def test_a_nodeid_that_belongs_elsewhere_is_store_corrupted(tmp_path: Path) -> None:
    store = ReplayStore(tmp_path / "__replay__")
    record(store, store.test_dir("t.py::t"), {"a": b"a"})
    moved = store.test_dir("t.py::u")
    store.test_dir("t.py::t").rename(moved)
    with pytest.raises(StoreCorrupted, match=r"field 'nodeid' is 't.py::t'.*t.t.*Fix:"):
        store.load_manifest(moved)


def test_a_renamed_copy_of_a_default_store_names_its_folder_as_the_cause(tmp_path: Path) -> None:
    # `cp -r __replay__ backup` then `pytest-replay store check backup`: the layout is read
    # from the store folder's name, so the message must say that, not "moved by hand".
    store = ReplayStore(tmp_path / "__replay__")
    record(store, store.test_dir("t.py::t"), {"a": b"a"})
    (tmp_path / "__replay__").rename(tmp_path / "backup")
    copy = ReplayStore(tmp_path / "backup")
    with pytest.raises(StoreCorrupted, match=r"named 'backup', not '__replay__'.*Fix:.*__replay__"):
        copy.load_manifest(tmp_path / "backup" / "t" / "t")


def test_size_and_records_are_checked_before_and_after_reading(tmp_path: Path) -> None:
    store = ReplayStore(tmp_path / "__replay__")
    folder = store.test_dir("t.py::t")
    record(store, folder, {"a": b"abc"})
    manifest = store.load_manifest(folder)
    assert manifest is not None
    entry = manifest.recordings["a"]
    assert entry.size == 3
    with pytest.raises(StoreCorrupted, match="holds 3 records, but field 'records'"):
        store.read_checked(folder, entry, count=lambda data: len(data))
    (folder / "a.bin").write_bytes(b"abcd" * 1000)
    with pytest.raises(StoreCorrupted, match=r"larger than its manifest says.*'size' is 3"):
        store.read_checked(folder, entry)


@pytest.mark.parametrize("name", ["manifest", "MANIFEST", "manifest.x", "a.tmp", "b.old", "c.lock"])
def test_reserved_recording_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidRecordingName, match=r"reserved.*Fix:"):
        part_name(name, ".json")


@pytest.mark.parametrize("extension", ["json", ".a\\b", ".a/b", ".tmp", ".old", ".lock", ".A", ""])
def test_bad_extensions_are_refused_when_a_kind_is_made(extension: str) -> None:
    from pytest_replay.kinds import sequence_kind

    with pytest.raises(InvalidRecordingName, match="Fix:"):
        sequence_kind("events", extension)


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


@pytest.mark.parametrize(
    ("nodeid", "folder"),
    [
        ("test_a.py::test_a", "test_a/test_a"),
        ("test_a.py::k::test_a[x]", "test_a/k.test_a[x]"),
        ("test_a.txt::test_a", "test_a.txt/test_a"),
    ],
)
def test_beside_the_module_the_stem_names_the_folder(nodeid: str, folder: str) -> None:
    assert ReplayStore(Path("t", "__replay__")).test_dir(nodeid) == Path("t", "__replay__", folder)


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
    nodeid = "t.py::" + folder.name
    store.write_test(folder, Manifest(nodeid, "1", entries), files)


@pytest.mark.parametrize("fail_on", ["stage", "retire", "swap"])
def test_a_failed_store_leaves_the_previous_recordings_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_on: str
) -> None:
    import pytest_replay.store as store_module

    store = ReplayStore(tmp_path)
    folder = tmp_path / "t.py" / "t"
    record(store, folder, {"a": b"old a", "b": b"old b"})

    def full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    if fail_on == "stage":
        real_write = store_module._write_new
        monkeypatch.setattr(
            store_module,
            "_write_new",
            lambda path, data: full() if path.name == "manifest.json" else real_write(path, data),
        )
    else:
        real_rename = os.rename

        def rename(src: str, dst: str) -> None:
            retiring = Path(dst).name.endswith(".old")
            if retiring == (fail_on == "retire") and not Path(src).name.endswith(".old"):
                full()
            real_rename(src, dst)

        monkeypatch.setattr(store_module.os, "rename", rename)
    with pytest.raises(OSError, match="No space"):
        record(store, folder, {"a": b"new a", "b": b"old b"})
    monkeypatch.undo()
    assert stored(store, folder) == {"a": b"old a", "b": b"old b"}
    assert sorted(p.name for p in folder.parent.iterdir()) == ["t"]
    assert sorted(p.name for p in folder.iterdir()) == ["a.bin", "b.bin", "manifest.json"]


def test_files_the_store_did_not_write_are_neither_deleted_nor_left_behind(
    tmp_path: Path,
) -> None:
    store = ReplayStore(tmp_path)
    folder = tmp_path / "t.py" / "t"
    record(store, folder, {"a": b"a"})
    (folder / ".notes").write_text("mine")
    with pytest.raises(StoreError, match=r"\.notes' is a regular file the store did not write"):
        record(store, folder, {"a": b"b"})
    with pytest.raises(StoreError, match="Fix: move it out"):
        store.remove_test(folder)
    assert (folder / ".notes").read_text() == "mine"
    assert stored(store, folder) == {"a": b"a"}


def test_a_stranded_old_folder_is_read_then_restored(tmp_path: Path) -> None:
    store = ReplayStore(tmp_path / "__replay__")
    folder = store.test_dir("t.py::t")
    record(store, folder, {"a": b"old"})
    old = folder.with_name(".t.old")
    folder.rename(old)
    (folder.with_name(".t.tmp")).mkdir()
    (folder.with_name(".t.tmp") / "a.bin").write_bytes(b"half")
    assert stored(store, folder) == {"a": b"old"}  # a reader takes the .old as the recording
    assert [f for f, _ in store.iter_manifests()] == [folder]
    assert store.recover() == [folder]
    assert sorted(p.name for p in folder.parent.iterdir()) == ["t"]
    assert stored(store, folder) == {"a": b"old"}


def test_an_unchanged_recording_is_not_rewritten(tmp_path: Path) -> None:
    store = ReplayStore(tmp_path)
    folder = tmp_path / "t.py" / "t"
    record(store, folder, {"a": b"a"})
    before = {p.name: p.stat().st_ino for p in folder.iterdir()}
    record(store, folder, {"a": b"a"})
    assert {p.name: p.stat().st_ino for p in folder.iterdir()} == before
    record(store, folder, {})
    assert not (tmp_path / "t.py").exists()


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


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_the_store_folder_and_what_leads_to_it_may_be_links(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "tests").symlink_to(real, target_is_directory=True)
    beside = ReplayStore(tmp_path / "tests" / "__replay__")
    record(beside, beside.test_dir("t.py::t"), {"a": b"a"})
    assert (real / "__replay__" / "t" / "t" / "a.bin").read_bytes() == b"a"
    (tmp_path / "disk").mkdir()
    (tmp_path / "central").symlink_to(tmp_path / "disk", target_is_directory=True)
    central = ReplayStore(tmp_path / "central")
    record(central, central.test_dir("t.py::t"), {"a": b"b"})
    assert stored(central, central.test_dir("t.py::t")) == {"a": b"b"}
    assert [folder for folder, _ in central.iter_manifests()] == [central.test_dir("t.py::t")]
