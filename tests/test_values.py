"""The ``replay.data`` value encoding: exact round-trip, canonical bytes, key-path errors."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import math
import pathlib
import typing
import zoneinfo
from typing import Any

import attrs
import msgpack
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_replay.diff import first_value_difference
from pytest_replay.kinds import plain
from pytest_replay.values import (
    Tagged,
    ValueDecodeError,
    ValueEncodeError,
    decode_value,
    encode_value,
    register_value_type,
    render_value,
)


class Color(enum.Enum):
    RED = "red"
    BLUE = 2


class Level(enum.IntEnum):
    LOW = 1


@dataclasses.dataclass(frozen=True)
class Run:
    when: dt.date
    tags: tuple[str, ...]
    computed: int = dataclasses.field(default=0, init=False)


class Point(typing.NamedTuple):
    x: int
    y: float


@attrs.frozen
class Box:
    _secret: int
    label: str


class Money:
    def __init__(self, cents: int) -> None:
        self.cents = cents

    def __eq__(self, other: object) -> bool:
        return type(other) is Money and other.cents == self.cents

    def __hash__(self) -> int:
        return hash(self.cents)


register_value_type(Money, "tests.Money", lambda m: m.cents, Money)


def same(a: Any, b: Any) -> bool:
    """Equal with every type preserved, floats bit for bit."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return np.float64(a).tobytes() == np.float64(b).tobytes()
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, np.generic):
        return a.dtype == b.dtype and a.tobytes() == b.tobytes()
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):  # named tuples too: a NaN field is not == itself
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, decimal.Decimal):
        return str(a) == str(b)
    if isinstance(a, (dt.datetime, dt.time)):
        return repr(a) == repr(b) and a.fold == b.fold
    if dataclasses.is_dataclass(a):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    return bool(a == b)


zones = st.sampled_from(
    [
        None,
        dt.timezone.utc,
        dt.timezone(dt.timedelta(hours=-5), "EST"),
        zoneinfo.ZoneInfo("Europe/Paris"),
    ]
)
floats = st.floats(allow_nan=True) | st.sampled_from([-0.0, math.inf, float.fromhex("0x1p-1074")])
nan_payloads = st.integers(1, (1 << 51) - 1).map(
    lambda payload: float(np.array([0x7FF8000000000000 | payload], "<u8").view("<f8")[0])
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=1 << 64, max_value=1 << 200),
    floats,
    nan_payloads,
    st.text(max_size=8),
    st.binary(max_size=8),
    st.dates(),
    st.times(timezones=zones),
    st.datetimes(timezones=zones),
    st.timedeltas(),
    st.decimals(allow_nan=True)
    | st.sampled_from([decimal.Decimal("-0.00"), decimal.Decimal("sNaN")]),
    st.fractions(),
    st.uuids(),
    st.sampled_from(
        [pathlib.PurePosixPath("a/b"), pathlib.PureWindowsPath("c:\\x"), pathlib.Path("rel")]
    ),
    st.sampled_from([Color.RED, Color.BLUE, Level.LOW]),
    st.builds(Money, st.integers(0, 1000)),
    st.builds(np.float32, st.floats(width=32, allow_nan=False)),
    st.builds(
        lambda n, d: np.arange(n, dtype=d), st.integers(0, 5), st.sampled_from(["<i4", ">f8", "u1"])
    ),
)
hashables = st.one_of(st.integers(), st.text(max_size=4), st.binary(max_size=4), st.none())


def containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(hashables | st.tuples(hashables, hashables), children, max_size=4),
        st.frozensets(hashables, max_size=4),
        st.sets(hashables, max_size=4),
        st.builds(Point, st.integers(), children),
        st.builds(Box, st.integers(), st.text(max_size=3)),
        st.builds(Run, st.dates(), st.lists(st.text(max_size=3), max_size=3).map(tuple)),
    )


values = st.recursive(scalars, containers, max_leaves=12)


@given(values)
def test_decode_of_encode_is_the_value_with_its_type(value: Any) -> None:
    assert same(decode_value(encode_value(value)), value)


@given(st.dictionaries(hashables, values, max_size=5), st.randoms(use_true_random=False))
def test_equal_values_give_equal_bytes(mapping: dict[Any, Any], rnd: Any) -> None:
    items = list(mapping.items())
    rnd.shuffle(items)
    assert encode_value(dict(items)) == encode_value(mapping)
    members = list(mapping)
    rnd.shuffle(members)
    assert encode_value(frozenset(members)) == encode_value(frozenset(mapping))


@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(1 << 63), (1 << 64) - 1)
        | st.floats()
        | st.text(max_size=5)
        | st.binary(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
        ),
        max_leaves=10,
    )
)
def test_plain_values_keep_the_bytes_recordings_always_had(value: Any) -> None:
    assert encode_value(value) == msgpack.packb(plain(value), use_bin_type=True)


def test_the_dataclass_field_that_is_not_an_init_argument_round_trips() -> None:
    run = Run(dt.date(2024, 1, 1), ("a",))
    object.__setattr__(run, "computed", 7)
    assert decode_value(encode_value(run)).computed == 7


def test_an_unsupported_value_names_its_key_path_and_the_hook() -> None:
    value = {"runs": [1, 2, 3, Run(dt.date(2024, 1, 1), (object(),))]}
    with pytest.raises(ValueEncodeError) as info:
        encode_value(value, "summary")
    assert str(info.value).startswith(
        'summary["runs"][3].tags[0]: cannot record type builtins:object. Fix:'
    )
    assert "register_value_type" in str(info.value)


def test_a_value_that_contains_itself_is_refused_not_a_recursion_error() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueEncodeError, match=r"nested more than \d+ levels.*Fix:"):
        encode_value(loop, "x")


def test_object_arrays_and_foreign_time_zones_are_refused() -> None:
    with pytest.raises(ValueEncodeError, match=r"x: cannot record a numpy array.*object"):
        encode_value(np.array([object()]), "x")

    class Odd(dt.tzinfo):
        def utcoffset(self, when: dt.datetime | None) -> dt.timedelta:
            return dt.timedelta(0)

    with pytest.raises(ValueEncodeError, match="time zone type"):
        encode_value(dt.datetime(2024, 1, 1, tzinfo=Odd()), "x")


def test_without_resolving_user_types_come_back_tagged() -> None:
    data = encode_value({"c": Color.RED, "p": Point(1, 2.0), "b": Box(1, "x"), "m": Money(5)})
    plain_view = decode_value(data, resolve=False)
    assert plain_view["c"] == Tagged(f"{__name__}:Color", "enum", {"name": "RED", "value": "red"})
    assert plain_view["p"] == Tagged(f"{__name__}:Point", "namedtuple", {"x": 1, "y": 2.0})
    assert plain_view["b"] == Tagged(f"{__name__}:Box", "attrs", {"_secret": 1, "label": "x"})
    assert plain_view["m"] == Tagged("tests.Money", "registered", {"value": 5})
    assert render_value(plain_view["p"]) == f"{__name__}:Point(x=1, y=2.0)"


def test_diffs_name_the_key_path_of_the_first_difference() -> None:
    old = decode_value(encode_value({"runs": [Run(dt.date(2024, 1, 1), ("a",))]}), resolve=False)
    new = decode_value(encode_value({"runs": [Run(dt.date(2024, 1, 2), ("a",))]}), resolve=False)
    assert first_value_difference(old, new) == (
        '["runs"][0].when',
        dt.date(2024, 1, 1),
        dt.date(2024, 1, 2),
    )
    assert first_value_difference(-0.0, 0.0) == ("<value>", -0.0, 0.0)
    assert first_value_difference((1,), [1]) == ("<value>", (1,), [1])


@pytest.mark.parametrize(
    "data",
    [b"\xc1", b"\xd4\x63\x00", b"\xc7\x03\x05\x93\x01\x02", b"\x92\x01"],
    ids=["reserved byte", "unknown ext", "bad date", "truncated"],
)
def test_bad_bytes_are_our_error_naming_the_source(data: bytes) -> None:
    with pytest.raises(ValueDecodeError, match=r"^stored\.msgpack.*Fix:"):
        decode_value(data, "stored.msgpack")


def test_an_unimportable_type_says_how_to_read_it_anyway() -> None:
    gone = "z" * len(__name__)  # the same length keeps the msgpack framing valid
    data = encode_value(Color.RED).replace(__name__.encode(), gone.encode())
    with pytest.raises(ValueDecodeError, match="resolve=False"):
        decode_value(data, "x")
    assert decode_value(data, resolve=False).type == f"{gone}:Color"


def test_array_bytes_that_do_not_fit_the_shape_are_refused() -> None:
    payload = msgpack.packb(["<i4", [-1], b"xxxx"], use_bin_type=True)
    with pytest.raises(ValueDecodeError, match="cannot hold 4 bytes"):
        decode_value(msgpack.packb(msgpack.ExtType(15, payload)), "f")


def test_bytearray_keeps_the_bytes_it_always_had() -> None:
    assert encode_value(bytearray(b"ab")) == msgpack.packb(b"ab", use_bin_type=True)
