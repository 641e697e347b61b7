"""The strict TOML topology file."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_replay.fleet import (
    Interconnect,
    SubsystemSpec,
    TopologyError,
    format_topology,
    load_topology,
)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fleet.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_loads_subsystems_and_interconnects(tmp_path: Path) -> None:
    (tmp_path / "ping.toml").write_text("")
    path = _write(
        tmp_path,
        """
[[subsystems]]
id = "ping"
config = "ping.toml"

[[subsystems]]
id = "pong"
code = 7

[[interconnects]]
from = "ping/out"
to = "pong/in"
msg = "PingMsg"
""",
    )
    topology = load_topology(path)
    assert topology.path == path
    assert topology.subsystems == (
        SubsystemSpec("ping", 0, tmp_path / "ping.toml"),
        SubsystemSpec("pong", 7, None),
    )
    assert topology.interconnects == (Interconnect("ping", "out", "pong", "in", "PingMsg"),)
    assert topology.subsystem("pong") == SubsystemSpec("pong", 7, None)
    assert topology.subsystem("nope") is None
    assert topology.subsystem_ids == ("ping", "pong")


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("surprise = 1\n[[subsystems]]\nid='a'\n", "surprise", "unknown key 'surprise'"),
        ("[[subsystems]]\nid='a'\ncolour='red'\n", "subsystems[0].colour", "unknown key"),
        (
            "[[subsystems]]\nid='a'\n[[subsystems]]\nid='a'\n",
            "subsystems[1].id",
            "duplicate subsystem id 'a'",
        ),
        (
            "[[subsystems]]\nid='a'\ncode=3\n[[subsystems]]\nid='b'\ncode=3\n",
            "subsystems[1].code",
            "duplicate subsystem code 3",
        ),
        (
            "[[subsystems]]\nid='a'\ncode=70000\n",
            "subsystems[0].code",
            "not an integer in 0..65535",
        ),
        ("[[subsystems]]\nid='a'\ncode=true\n", "subsystems[0].code", "not an integer"),
        ("[[subsystems]]\nid='1a'\n", "subsystems[0].id", "missing or not"),
        ("[[subsystems]]\ncode=1\n", "subsystems[0].id", "missing or not"),
        ("[[subsystems]]\nid='a'\nconfig='nope.toml'\n", "subsystems[0].config", "does not exist"),
        ("subsystems = []\n", "subsystems", "missing or empty"),
        ("[x]\n", "x", "unknown key 'x'"),
        ("subsystems = [1]\n", "subsystems[0]", "is not a table"),
        (
            "[[subsystems]]\nid='a'\n[[interconnects]]\nfrom='a/o'\n",
            "interconnects[0].to",
            "missing",
        ),
        (
            "[[subsystems]]\nid='a'\n[[interconnects]]\nfrom='b/o'\nto='a/i'\n",
            "interconnects[0].from",
            "subsystem 'b'",
        ),
        (
            "[[subsystems]]\nid='a'\n[[interconnects]]\nfrom='a'\nto='a/i'\n",
            "interconnects[0].from",
            "is not '<subsystem>/<channel>'",
        ),
        (
            "[[subsystems]]\nid='a'\n[[interconnects]]\nfrom='a/o'\nto='a/i'\nqos=1\n",
            "interconnects[0].qos",
            "unknown key",
        ),
        (
            "[[subsystems]]\nid='a'\n[[interconnects]]\nfrom='a/o'\nto='a/i'\n[[interconnects]]\nfrom='a/o'\nto='a/i'\n",
            "interconnects[1]",
            "duplicate interconnect",
        ),
        (
            "[[subsystems]]\nid='a'\n[[interconnects]]\nfrom='a/o o'\nto='a/i'\n",
            "interconnects[0].from",
            "channel",
        ),
        (
            "[[subsystems]]\nid='a'\ninterconnects = 3\n",
            "subsystems[0].interconnects",
            "unknown key",
        ),
    ],
)
def test_strict_schema_names_file_and_key(
    tmp_path: Path, text: str, key: str, message: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(TopologyError, match=message) as info:
        load_topology(path)
    assert info.value.key == key
    assert f"'{path}', key {key}:" in str(info.value)
    assert "Fix: " in str(info.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"[[subsystems]\n", "invalid TOML"), (b"\xff\xfe", "not UTF-8")],
)
def test_unreadable_files(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "t.toml"
    path.write_bytes(data)
    with pytest.raises(TopologyError, match=message):
        load_topology(path)
    with pytest.raises(TopologyError, match="cannot read the file"):
        load_topology(tmp_path / "missing.toml")


ids = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,8}", fullmatch=True)


@given(
    specs=st.lists(
        st.tuples(ids, st.integers(0, 65535)),
        min_size=1,
        max_size=6,
        unique_by=(lambda s: s[0], lambda s: s[1]),
    ),
    data=st.data(),
)
def test_format_topology_round_trips(
    tmp_path_factory: pytest.TempPathFactory,
    specs: list[tuple[str, int]],
    data: st.DataObject,
) -> None:
    names = [s[0] for s in specs]
    links = data.draw(
        st.lists(
            st.builds(
                Interconnect,
                st.sampled_from(names),
                st.from_regex(r"[a-z0-9_.-]{1,5}", fullmatch=True),
                st.sampled_from(names),
                st.from_regex(r"[a-z0-9_.-]{1,5}", fullmatch=True),
                st.none() | st.text(max_size=6),
            ),
            max_size=4,
            unique_by=lambda link: (
                link.from_subsystem,
                link.from_channel,
                link.to_subsystem,
                link.to_channel,
            ),
        )
    )
    path = tmp_path_factory.mktemp("topo") / "t.toml"
    path.write_text(format_topology(specs, links), encoding="utf-8")
    topology = load_topology(path)
    assert [(s.id, s.code) for s in topology.subsystems] == specs
    assert list(topology.interconnects) == links
