"""msgpack decoding with explicit limits, for every reader of stored msgpack.

Every length is bounded by the bytes given (an array of n items needs at least n bytes),
so nothing is allocated from a count the input cannot back; nesting is bounded by the
C unpacker's fixed stack and, where a reader asks, by ``max_depth`` (msgpack's packer
refuses values nested deeper than 511, so 512 reads back anything we wrote). Every
refusal is a :class:`ValueError`, which is what readers already turn into their error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import msgpack

__all__ = ["MAX_DEPTH", "UnpackRefused", "unpack_bounded"]

#: One more than msgpack's default packing limit: anything packb wrote reads back.
MAX_DEPTH: Final = 512


class UnpackRefused(ValueError):
    """Input msgpack refused before or after decoding (unhashable key, nesting too deep)."""


def unpack_bounded(
    data: bytes | bytearray | memoryview,
    *,
    strict_map_key: bool = True,
    max_depth: int = 0,
    ext_hook: Callable[[int, bytes], Any] | None = None,
) -> Any:
    """``msgpack.unpackb(data)`` with every ``max_*_len`` set to the input size.

    Map keys that are maps or lists (possible only with ``strict_map_key=False``) raise
    :class:`UnpackRefused` instead of msgpack's ``TypeError``; ``max_depth`` > 0 also
    refuses containers nested deeper than that.
    """
    size = len(data)
    hooks = {} if ext_hook is None else {"ext_hook": ext_hook}
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=strict_map_key,
            **hooks,
            max_str_len=size,
            max_bin_len=size,
            max_array_len=size,
            max_map_len=size // 2,
            max_ext_len=size,
        )
    except TypeError as exc:
        if "unhashable" not in str(exc):
            raise  # from an ext_hook: the caller's to explain
        raise UnpackRefused(f"a map key is a map or a list ({exc})") from None
    if max_depth and _depth_over(value, max_depth):
        raise UnpackRefused(f"containers are nested deeper than {max_depth} levels")
    return value


def _depth_over(value: Any, limit: int) -> bool:
    # Iterative, so a deep value cannot exhaust the interpreter's stack while checked.
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if type(item) is list:
            children: Any = item
        elif type(item) is dict:
            children = [*item.keys(), *item.values()]
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if type(child) in (list, dict))
    return False
