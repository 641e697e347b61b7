"""The plain-value encoding of ``replay.data``: canonical bytes for equal values."""

from __future__ import annotations

import enum

import msgpack
import pytest

from pytest_replay.kinds import plain
from pytest_replay.report import ReplayUsageError


class Color(enum.Enum):
    RED = "red"


def packed(value: object) -> bytes:
    return msgpack.packb(plain(value), use_bin_type=True)


def test_dict_insertion_order_does_not_reach_the_bytes() -> None:
    forward = {"b": 1, "a": {"d": [1, {"y": 2, "x": 3}], "c": Color.RED}}
    backward = {"a": {"c": Color.RED, "d": [1, {"x": 3, "y": 2}]}, "b": 1}
    assert packed(forward) == packed(backward)
    assert list(plain(forward)) == ["a", "b"]


def test_keys_of_mixed_types_have_one_order() -> None:
    one = {2: "two", "x": "ex", 1: "one", None: "none", b"k": "bytes"}
    other = dict(reversed(list(one.items())))
    assert packed(one) == packed(other)
    assert msgpack.unpackb(packed(one), strict_map_key=False) == one


def test_an_unhashable_key_is_a_usage_error() -> None:
    from pytest_replay.kindformat import pack_plain

    with pytest.raises(ReplayUsageError, match=r"not msgpack-serialisable.*Fix:"):
        pack_plain({(1, 2): 3}, "value")
