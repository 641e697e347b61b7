"""The fleet topology file: which subsystems every instance runs and how they connect.

A strict TOML schema; anything it does not name is an error::

    [[subsystems]]
    id = "ping"              # required, [A-Za-z_][A-Za-z0-9_-]*, unique
    code = 0                 # optional u16, unique; defaults to the entry's position
    config = "ping.toml"     # optional, relative to this file, inside its folder; must exist

    [[interconnects]]
    from = "ping/out"        # "<subsystem id>/<channel>"
    to = "pong/in"
    msg = "PingMsg"          # optional message type name
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

from pytest_replay.fleet.errors import TopologyError
from pytest_replay.fleet.reader import read_regular_file
from pytest_replay.fleet.records import MAX_CODE

__all__ = [
    "Interconnect",
    "SubsystemSpec",
    "Topology",
    "format_topology",
    "load_topology",
]

_ID: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_CHANNEL: Final = re.compile(r"^[A-Za-z0-9_.-]+$")
_TOP_KEYS: Final = frozenset({"subsystems", "interconnects"})
_SUBSYSTEM_KEYS: Final = frozenset({"id", "code", "config"})
_INTERCONNECT_KEYS: Final = frozenset({"from", "to", "msg"})
#: Largest topology file read; checked before it is read.
MAX_TOPOLOGY_BYTES: Final = 16 << 20


@dataclass(frozen=True, slots=True)
class SubsystemSpec:
    """One subsystem every instance of the fleet runs."""

    id: str
    code: int
    config_path: Path | None = None


@dataclass(frozen=True, slots=True)
class Interconnect:
    """A channel from one subsystem's output to another subsystem's input."""

    from_subsystem: str
    from_channel: str
    to_subsystem: str
    to_channel: str
    msg: str | None = None


@dataclass(frozen=True, slots=True)
class Topology:
    """A validated topology; ``subsystems`` keep the file's order."""

    path: Path
    subsystems: tuple[SubsystemSpec, ...]
    interconnects: tuple[Interconnect, ...] = ()
    # Built once from ``subsystems``: a lookup per replayed log must not scan them all.
    _by_id: Mapping[str, SubsystemSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id: dict[str, SubsystemSpec] = {}
        for spec in self.subsystems:
            by_id.setdefault(spec.id, spec)  # the first of a repeated id, as a scan finds
        object.__setattr__(self, "_by_id", MappingProxyType(by_id))

    def subsystem(self, subsystem_id: str) -> SubsystemSpec | None:
        return self._by_id.get(subsystem_id)

    @property
    def subsystem_ids(self) -> tuple[str, ...]:
        return tuple(spec.id for spec in self.subsystems)


def _fail(path: Path, key: str | None, detail: str, fix: str) -> TopologyError:
    return TopologyError(path, key, detail, fix)


def _check_keys(path: Path, where: str, table: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise _fail(
            path,
            f"{where}.{unknown[0]}" if where else unknown[0],
            f"unknown key '{unknown[0]}'",
            f"use only {', '.join(sorted(allowed))}",
        )


def _endpoint(path: Path, key: str, value: object, known: Mapping[str, int]) -> tuple[str, str]:
    if type(value) is not str or value.count("/") != 1:
        raise _fail(
            path, key, f"{value!r} is not '<subsystem>/<channel>'", 'write it like "ping/out"'
        )
    subsystem, channel = value.split("/")
    if subsystem not in known:
        raise _fail(
            path,
            key,
            f"names subsystem '{subsystem}', which is not declared",
            f"use one of {', '.join(sorted(known))}",
        )
    if not _CHANNEL.match(channel):
        raise _fail(path, key, f"channel '{channel}' is not [A-Za-z0-9_.-]+", "rename the channel")
    return subsystem, channel


def _check_config_path(path: Path, key: str, config: str) -> None:
    # A recording stores configs relative to the topology's folder and recreates them
    # under a fresh one, so a config must stay inside it and be a portable name.
    if "\x00" in config or "\\" in config:
        raise _fail(
            path,
            key,
            f"config path {config!r} contains a NUL or a backslash",
            "separate folders with '/' and use printable names",
        )
    if Path(config).anchor or ".." in config.split("/"):
        raise _fail(
            path,
            key,
            f"config path '{config}' leaves the topology's folder",
            "keep config files in the topology file's folder (or below it) and name them "
            "relative to it, without '..'",
        )


def load_topology(path: str | os.PathLike[str]) -> Topology:
    """Read and validate a topology file; raises :class:`TopologyError` naming the key."""
    file = Path(path)
    try:
        data = read_regular_file(
            file,
            MAX_TOPOLOGY_BYTES,
            "check that the path names a topology file",
            functools.partial(TopologyError, file, None),
        )
        # Newlines translated as Path.read_text does, which is how recordings store the text.
        raw = tomllib.loads(data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n"))
    except OSError as exc:
        raise _fail(file, None, f"cannot read the file ({exc})", "check the path") from None
    except UnicodeDecodeError as exc:
        raise _fail(file, None, f"not UTF-8 text ({exc})", "save the file as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise _fail(file, None, f"invalid TOML ({exc})", "fix the TOML syntax") from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively.
        raise _fail(
            file,
            None,
            "invalid TOML (nested too deeply)",
            "flatten the nested arrays or inline tables",
        ) from None
    _check_keys(file, "", raw, _TOP_KEYS)
    entries = raw.get("subsystems")
    if not isinstance(entries, list) or not entries:
        raise _fail(
            file,
            "subsystems",
            "missing or empty subsystems array",
            "declare at least one [[subsystems]] table",
        )
    subsystems: list[SubsystemSpec] = []
    ids: dict[str, int] = {}
    codes: dict[int, int] = {}
    for position, entry in enumerate(entries):
        where = f"subsystems[{position}]"
        if not isinstance(entry, dict):
            raise _fail(file, where, "is not a table", "write it as a [[subsystems]] table")
        _check_keys(file, where, entry, _SUBSYSTEM_KEYS)
        subsystem_id = entry.get("id")
        if type(subsystem_id) is not str or not _ID.match(subsystem_id):
            raise _fail(
                file,
                f"{where}.id",
                f"id {subsystem_id!r} is missing or not [A-Za-z_][A-Za-z0-9_-]*",
                'give every subsystem an id like "ping"',
            )
        if subsystem_id in ids:
            raise _fail(
                file,
                f"{where}.id",
                f"duplicate subsystem id '{subsystem_id}' (also subsystems[{ids[subsystem_id]}])",
                "give every subsystem a distinct id",
            )
        code = entry.get("code", position)
        if type(code) is not int or not 0 <= code <= MAX_CODE:
            raise _fail(
                file, f"{where}.code", f"code {code!r} is not an integer in 0..{MAX_CODE}",
                "use a small unique integer",
            )  # fmt: skip
        if code in codes:
            raise _fail(
                file,
                f"{where}.code",
                f"duplicate subsystem code {code} (also subsystems[{codes[code]}])",
                "give every subsystem a distinct code",
            )
        config_path: Path | None = None
        if "config" in entry:
            config = entry["config"]
            if type(config) is not str or not config:
                raise _fail(file, f"{where}.config", f"{config!r} is not a path", "use a string")
            _check_config_path(file, f"{where}.config", config)
            config_path = file.parent / config
            if not config_path.is_file():
                raise _fail(
                    file,
                    f"{where}.config",
                    f"config file '{config_path}' does not exist",
                    "write the file or fix the path (it is relative to the topology file)",
                )
        ids[subsystem_id] = position
        codes[code] = position
        subsystems.append(SubsystemSpec(subsystem_id, code, config_path))
    interconnects: list[Interconnect] = []
    seen: dict[tuple[str, str, str, str], int] = {}
    raw_links = raw.get("interconnects", [])
    if not isinstance(raw_links, list):
        raise _fail(
            file, "interconnects", "is not an array of tables", "use [[interconnects]] tables"
        )
    for position, link in enumerate(raw_links):
        where = f"interconnects[{position}]"
        if not isinstance(link, dict):
            raise _fail(file, where, "is not a table", "write it as an [[interconnects]] table")
        _check_keys(file, where, link, _INTERCONNECT_KEYS)
        for required in ("from", "to"):
            if required not in link:
                raise _fail(
                    file, f"{where}.{required}", "missing", "give both 'from' and 'to' endpoints"
                )
        source = _endpoint(file, f"{where}.from", link["from"], ids)
        target = _endpoint(file, f"{where}.to", link["to"], ids)
        msg = link.get("msg")
        if msg is not None and type(msg) is not str:
            raise _fail(file, f"{where}.msg", f"{msg!r} is not a string", "name the message type")
        key = (*source, *target)
        if key in seen:
            raise _fail(
                file,
                where,
                f"duplicate interconnect {link['from']} -> {link['to']} "
                f"(also interconnects[{seen[key]}])",
                "declare each channel once",
            )
        seen[key] = position
        interconnects.append(Interconnect(*source, *target, msg))
    return Topology(file, tuple(subsystems), tuple(interconnects))


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(ch if ch >= " " and ch != "\x7f" else f"\\u{ord(ch):04x}" for ch in escaped)
    return f'"{escaped}"'


def format_topology(
    subsystems: Iterable[SubsystemSpec | tuple[str, int] | tuple[str, int, str]],
    interconnects: Iterable[Interconnect] = (),
) -> str:
    """TOML text of a topology, for writing fixtures and recordings.

    ``subsystems`` items are :class:`SubsystemSpec` (``config_path`` is written as given)
    or ``(id, code)`` / ``(id, code, config)`` tuples.
    """
    lines: list[str] = []
    for item in subsystems:
        if isinstance(item, SubsystemSpec):
            subsystem_id, code = item.id, item.code
            config = None if item.config_path is None else item.config_path.as_posix()
        else:
            subsystem_id, code = item[0], item[1]
            config = item[2] if len(item) == 3 else None
        lines += ["[[subsystems]]", f"id = {_quote(subsystem_id)}", f"code = {code}"]
        if config is not None:
            lines.append(f"config = {_quote(config)}")
        lines.append("")
    for link in interconnects:
        lines += [
            "[[interconnects]]",
            f"from = {_quote(f'{link.from_subsystem}/{link.from_channel}')}",
            f"to = {_quote(f'{link.to_subsystem}/{link.to_channel}')}",
        ]
        if link.msg is not None:
            lines.append(f"msg = {_quote(link.msg)}")
        lines.append("")
    return "\n".join(lines)
