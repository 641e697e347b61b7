"""Conversion between the record/result dataclasses and plain msgpack/JSON data.

Two shapes, both driven by each dataclass's type hints:

* rows: positional arrays (compact; the record file format), fields in
  declaration order, ``None`` as nil, tuples as arrays;
* dicts: snake_case keys in declaration order, ``None`` and empty tuples
  omitted (the reference's ``skip_serializing_if``), the JSON/msgpack shape
  of :class:`~pytest_replay.journal.result.ReplayResult`.

Enums travel as their string values. A field typed as a union of several
dataclasses (a record payload) travels as ``[tag, row]`` in rows and as a
dict with a leading ``"type"`` key in dicts.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable
from typing import Any, Final, TypeVar

from pytest_replay.journal.records import PAYLOAD_TYPES

__all__ = ["PlainError", "from_dict", "from_row", "to_dict", "to_row"]

T = TypeVar("T")
_U64_MAX: Final = 2**64 - 1
_TAG_OF: Final = {cls: tag for tag, cls in PAYLOAD_TYPES.items()}
_TYPE_NAMES: Final = {cls.__name__: cls for cls in PAYLOAD_TYPES.values()}


class PlainError(Exception):
    """Internal: plain data that does not fit the dataclass; ``path`` names the field."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(f"{path}: {detail}")
        self.path = path
        self.detail = detail


Encoder = Callable[[Any, bool], Any]
Decoder = Callable[[Any, str, bool], Any]


@dataclasses.dataclass(frozen=True, slots=True)
class _FieldPlan:
    name: str
    encode: Encoder
    decode: Decoder
    required: bool
    is_tuple: bool


_PLANS: dict[type, tuple[_FieldPlan, ...]] = {}


def _plan(cls: type) -> tuple[_FieldPlan, ...]:
    plan = _PLANS.get(cls)
    if plan is None:
        hints = typing.get_type_hints(cls)
        plan = tuple(
            _FieldPlan(
                field.name,
                *_converters(hints[field.name]),
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING,
                typing.get_origin(hints[field.name]) is tuple,
            )
            for field in dataclasses.fields(cls)
        )
        _PLANS[cls] = plan
    return plan


def _converters(tp: Any) -> tuple[Encoder, Decoder]:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        members = [arg for arg in args if arg is not type(None)]
        if len(members) == 1:
            inner_enc, inner_dec = _converters(members[0])

            def enc_opt(value: Any, as_dict: bool) -> Any:
                return None if value is None else inner_enc(value, as_dict)

            def dec_opt(value: Any, path: str, as_dict: bool) -> Any:
                return None if value is None else inner_dec(value, path, as_dict)

            return enc_opt, dec_opt
        return _encode_payload, _decode_payload
    if origin is tuple:
        item_enc, item_dec = _converters(args[0])

        def enc_tuple(value: Any, as_dict: bool) -> Any:
            return [item_enc(item, as_dict) for item in value]

        def dec_tuple(value: Any, path: str, as_dict: bool) -> Any:
            if type(value) is not list:
                raise PlainError(path, f"expected an array, got {type(value).__name__}")
            return tuple(item_dec(item, f"{path}[{i}]", as_dict) for i, item in enumerate(value))

        return enc_tuple, dec_tuple
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum_converters(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        cls = tp

        def enc_dc(value: Any, as_dict: bool) -> Any:
            return to_dict(value) if as_dict else to_row(value)

        def dec_dc(value: Any, path: str, as_dict: bool) -> Any:
            return _from_dict(cls, value, path) if as_dict else _from_row(cls, value, path)

        return enc_dc, dec_dc
    if tp is int:
        return _identity, _dec_u64
    if tp is str:
        return _identity, _scalar_decoder(str)
    if tp is bool:
        return _identity, _scalar_decoder(bool)
    if tp is bytes:
        return _identity, _scalar_decoder(bytes)
    raise TypeError(f"no plain conversion for {tp!r}")


def _identity(value: Any, as_dict: bool) -> Any:
    return value


def _dec_u64(value: Any, path: str, as_dict: bool) -> Any:
    if type(value) is not int or not 0 <= value <= _U64_MAX:
        raise PlainError(path, f"expected an unsigned 64-bit int, got {value!r}")
    return value


def _scalar_decoder(kind: type) -> Decoder:
    def decode(value: Any, path: str, as_dict: bool) -> Any:
        if type(value) is not kind:
            raise PlainError(path, f"expected {kind.__name__}, got {type(value).__name__}")
        return value

    return decode


def _enum_converters(cls: type[enum.Enum]) -> tuple[Encoder, Decoder]:
    by_value = {member.value: member for member in cls}

    def encode(value: Any, as_dict: bool) -> Any:
        return value.value

    def decode(value: Any, path: str, as_dict: bool) -> Any:
        member = by_value.get(value) if type(value) is str else None
        if member is None:
            raise PlainError(path, f"{value!r} is not a {cls.__name__} value")
        return member

    return encode, decode


def _encode_payload(value: Any, as_dict: bool) -> Any:
    tag = _TAG_OF.get(type(value))
    if tag is None:
        raise TypeError(f"{type(value).__name__} is not a record payload type")
    if as_dict:
        return {"type": type(value).__name__, **to_dict(value)}
    return [tag, to_row(value)]


def _decode_payload(value: Any, path: str, as_dict: bool) -> Any:
    if as_dict:
        if type(value) is not dict or type(value.get("type")) is not str:
            raise PlainError(path, "payload must be a mapping with a 'type' key")
        cls = _TYPE_NAMES.get(value["type"])
        if cls is None:
            raise PlainError(path, f"unknown payload type {value['type']!r}")
        return _from_dict(cls, {k: v for k, v in value.items() if k != "type"}, path)
    if type(value) is not list or len(value) != 2 or type(value[0]) is not int:
        raise PlainError(path, "payload must be a [tag, fields] array")
    cls = PAYLOAD_TYPES.get(value[0])
    if cls is None:
        raise PlainError(path, f"unknown payload tag {value[0]!r}")
    return _from_row(cls, value[1], f"{path}<{cls.__name__}>")


def to_row(obj: Any) -> list[Any]:
    """The positional array of a record-model dataclass."""
    return [spec.encode(getattr(obj, spec.name), False) for spec in _plan(type(obj))]


def to_dict(obj: Any) -> dict[str, Any]:
    """The keyed mapping of a dataclass, ``None`` and empty tuples omitted."""
    out: dict[str, Any] = {}
    for spec in _plan(type(obj)):
        value = getattr(obj, spec.name)
        if value is None or value == ():
            continue
        out[spec.name] = spec.encode(value, True)
    return out


def _from_row(cls: type[T], row: Any, path: str) -> T:
    plan = _plan(cls)
    if type(row) is not list or len(row) != len(plan):
        raise PlainError(path, f"{cls.__name__} needs an array of {len(plan)} fields")
    values = {
        spec.name: spec.decode(value, f"{path}.{spec.name}", False)
        for spec, value in zip(plan, row, strict=True)
    }
    return cls(**values)


def _from_dict(cls: type[T], data: Any, path: str) -> T:
    if type(data) is not dict:
        raise PlainError(path, f"{cls.__name__} needs a mapping, got {type(data).__name__}")
    plan = _plan(cls)
    known = {spec.name for spec in plan}
    extra = sorted(str(key) for key in data if key not in known)
    if extra:
        raise PlainError(path, f"unknown field(s) {', '.join(extra)} for {cls.__name__}")
    kwargs: dict[str, Any] = {}
    for spec in plan:
        if spec.name in data:
            kwargs[spec.name] = spec.decode(data[spec.name], f"{path}.{spec.name}", True)
        elif spec.is_tuple:
            # Empty arrays are omitted when serialising, so absence means empty.
            kwargs[spec.name] = ()
        elif spec.required:
            raise PlainError(path, f"missing field {spec.name!r} of {cls.__name__}")
    return cls(**kwargs)


def from_row(cls: type[T], row: Any, path: str = "") -> T:
    """Inverse of :func:`to_row`; raises :class:`PlainError` naming the field path."""
    return _from_row(cls, row, path or cls.__name__)


def from_dict(cls: type[T], data: Any, path: str = "") -> T:
    """Inverse of :func:`to_dict`; omitted fields take their defaults."""
    return _from_dict(cls, data, path or cls.__name__)
