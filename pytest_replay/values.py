"""The value encoding of ``replay.data``: msgpack with extension types, exact round-trip.

Plain msgpack values (None, bool, int in 64 bits, float, str, bytes, list and dict)
are stored as msgpack itself, dict items sorted by key as they always were, so a
recording of plain values keeps its bytes. Every other type users record gets an
msgpack *extension type* whose payload is itself an encoded value:

====  ===============  ==================================================================
code  type             payload
====  ===============  ==================================================================
1     int (big)        signed big-endian two's complement, minimal length (raw bytes)
2     tuple            array of the items
3     set              array of the items, sorted by their encoded bytes
4     frozenset        as set
5     date             ``[year, month, day]``
6     time             ``[hour, minute, second, microsecond, fold, tz]``
7     datetime         ``[year, month, day, hour, minute, second, microsecond, fold, tz]``
8     timedelta        ``[days, seconds, microseconds]``
9     Decimal          ``str(value)`` (keeps the exponent, the sign of zero, NaN, sNaN)
10    Fraction         ``[numerator, denominator]``
11    UUID             the 16 bytes (raw bytes)
12    PurePath         ``[flavour, str(path)]``, flavour ``posix``, ``windows`` or ``native``
13    Enum member      ``[type, member name, member value]``
14    object           ``[type, form, fields]``: dataclass, attrs, namedtuple or registered
15    numpy array      ``[dtype descr, shape, C-order bytes]``
16    numpy scalar     ``[dtype descr, bytes]``
====  ===============  ==================================================================

``tz`` is ``None`` (naive), ``["offset", microseconds, name or None]`` for a
``datetime.timezone`` or ``["zone", key]`` for a ``zoneinfo.ZoneInfo``. ``type``
is ``"module:qualname"``. Equal values give equal bytes: dicts are sorted by key
(by their encoded bytes when the keys are not all of one plain type) and sets by
their items' encoded bytes.

:func:`decode_value` imports the module of an Enum, dataclass, attrs class or
NamedTuple to rebuild it; with ``resolve=False`` (the CLI, a git diff driver) it
imports nothing and returns such values as :class:`Tagged` maps instead.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import fractions
import importlib
import math
import pathlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import msgpack
import numpy as np

from pytest_replay._msgpack import unpack_bounded
from pytest_replay.errors import ReplayError

__all__ = [
    "Tagged",
    "ValueDecodeError",
    "ValueEncodeError",
    "decode_value",
    "encode_value",
    "json_value",
    "register_value_type",
    "render_value",
]

EXT_BIGINT: Final = 1
EXT_TUPLE: Final = 2
EXT_SET: Final = 3
EXT_FROZENSET: Final = 4
EXT_DATE: Final = 5
EXT_TIME: Final = 6
EXT_DATETIME: Final = 7
EXT_TIMEDELTA: Final = 8
EXT_DECIMAL: Final = 9
EXT_FRACTION: Final = 10
EXT_UUID: Final = 11
EXT_PATH: Final = 12
EXT_ENUM: Final = 13
EXT_OBJECT: Final = 14
EXT_NDARRAY: Final = 15
EXT_NPSCALAR: Final = 16

#: Nesting deeper than this is refused (a cycle would otherwise recurse forever), when
#: encoding and, for extension values, when decoding: each nested extension decodes in
#: its own msgpack unpacker, about 40 KiB of C stack, so 64 levels stay under 3 MiB where
#: ~190 would overflow an 8 MiB stack and crash the interpreter.
MAX_DEPTH: Final = 64
_INT64_MIN: Final = -(1 << 63)
_UINT64_MAX: Final = (1 << 64) - 1
_PLAIN_KEYS: Final = (str, bytes, int, float, bool, type(None))
_FIX: Final = (
    "record plain values, the types listed in docs/formats.md, or register the type with "
    "pytest_replay.values.register_value_type(cls, name, encode, decode)"
)


class ValueEncodeError(ReplayError, TypeError):
    """A value (or a part of it, named by its key path) cannot be recorded."""


class ValueDecodeError(ReplayError, ValueError):
    """Stored bytes are not a value of this encoding; the message names the source."""


@dataclass(frozen=True, slots=True)
class Tagged:
    """A user type decoded without importing its module: ``type`` is ``module:qualname``,
    ``form`` says what it was (``enum``, ``dataclass``, ``attrs``, ``namedtuple`` or
    ``registered``), ``fields`` its fields in declaration order (an Enum member:
    ``{"name": ..., "value": ...}``; a registered type: ``{"value": ...}``)."""

    type: str
    form: str
    fields: Mapping[Any, Any]


@dataclass(frozen=True, slots=True)
class _Registered:
    cls: type
    name: str
    encode: Callable[[Any], Any]
    decode: Callable[[Any], Any]


_BY_CLASS: dict[type, _Registered] = {}
_BY_NAME: dict[str, _Registered] = {}


def register_value_type(
    cls: type, name: str, encode: Callable[[Any], Any], decode: Callable[[Any], Any]
) -> None:
    """Let ``replay.data`` record instances of ``cls``: ``encode(obj)`` returns an encodable
    value stored under ``name`` (keep it stable: it is in the recordings), and
    ``decode(value)`` rebuilds the object. Registering the same class again replaces it."""
    if not isinstance(cls, type) or not isinstance(name, str) or not name:
        raise ValueEncodeError(
            f"register_value_type needs a class and a non-empty name, got {cls!r}, {name!r}",
            fix="register_value_type(Money, 'shop.Money', encode, decode)",
        )
    taken = _BY_NAME.get(name)
    if taken is not None and taken.cls is not cls:
        raise ValueEncodeError(
            f"value type name {name!r} is already registered for {type_name(taken.cls)}",
            fix="give each registered type its own name.",
        )
    entry = _Registered(cls, name, encode, decode)
    _BY_CLASS[cls] = entry
    _BY_NAME[name] = entry


def type_name(cls: type) -> str:
    """``module:qualname``, how a type is named in the encoding."""
    return f"{cls.__module__}:{cls.__qualname__}"


# --------------------------------------------------------------------------- encoding


def encode_value(value: Any, root: str = "value") -> bytes:
    """The canonical bytes of ``value``. ``root`` starts the key path of an error
    (``summary["runs"][3].when: cannot record type Foo``)."""
    packed: bytes = msgpack.packb(_encode(value, root, 0), use_bin_type=True)
    return packed


def _pack(value: Any, path: str, depth: int) -> bytes:
    packed: bytes = msgpack.packb(_encode(value, path, depth), use_bin_type=True)
    return packed


def _ext(code: int, payload: Any, path: str, depth: int) -> msgpack.ExtType:
    return msgpack.ExtType(code, _pack(payload, path, depth + 1))


def _encode(value: Any, path: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ValueEncodeError(
            f"nested more than {MAX_DEPTH} levels deep (a value that contains itself?)",
            where=path,
            fix=f"{_FIX}.",
        )
    kind = type(value)
    if value is None or kind in (bool, float, str, bytes):
        return value
    if kind is bytearray or kind is memoryview:
        return bytes(value)  # stored as msgpack bin, as it always was; decodes as bytes
    if kind is int:
        if _INT64_MIN <= value <= _UINT64_MAX:
            return value
        size = (value.bit_length() + 8) // 8
        return msgpack.ExtType(EXT_BIGINT, value.to_bytes(size, "big", signed=True))
    registered = _BY_CLASS.get(kind)
    if registered is not None:
        inner = registered.encode(value)
        return _ext(EXT_OBJECT, [registered.name, "registered", {"value": inner}], path, depth)
    if isinstance(value, enum.Enum):
        member = [type_name(kind), value.name, value.value]
        return msgpack.ExtType(EXT_ENUM, _pack(member, f"{path}.value", depth + 1))
    if isinstance(value, tuple) and hasattr(kind, "_fields"):
        fields = {name: getattr(value, name) for name in kind._fields}
        return _object(kind, "namedtuple", fields, path, depth)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return _object(kind, "dataclass", fields, path, depth)
    attributes = getattr(kind, "__attrs_attrs__", None)
    if attributes is not None:
        fields = {a.name: getattr(value, a.name) for a in attributes}
        return _object(kind, "attrs", fields, path, depth)
    if isinstance(value, dict):
        return _encode_dict(value, path, depth)
    if isinstance(value, list):
        return [_encode(item, f"{path}[{index}]", depth + 1) for index, item in enumerate(value)]
    if kind is tuple:
        items = [_encode(item, f"{path}[{index}]", depth + 1) for index, item in enumerate(value)]
        return msgpack.ExtType(EXT_TUPLE, msgpack.packb(items, use_bin_type=True))
    if kind is set or kind is frozenset:
        encoded = sorted(_pack(item, f"{path}{{item}}", depth + 1) for item in value)
        body = b"".join([msgpack.Packer().pack_array_header(len(encoded)), *encoded])
        return msgpack.ExtType(EXT_SET if kind is set else EXT_FROZENSET, body)
    if kind is dt.datetime:
        stamp = [value.year, value.month, value.day, value.hour, value.minute, value.second]
        stamp += [value.microsecond, value.fold, _tz(value.tzinfo, path)]
        return _ext(EXT_DATETIME, stamp, path, depth)
    if kind is dt.date:
        return _ext(EXT_DATE, [value.year, value.month, value.day], path, depth)
    if kind is dt.time:
        clock = [value.hour, value.minute, value.second, value.microsecond, value.fold]
        return _ext(EXT_TIME, [*clock, _tz(value.tzinfo, path)], path, depth)
    if kind is dt.timedelta:
        return _ext(EXT_TIMEDELTA, [value.days, value.seconds, value.microseconds], path, depth)
    if kind is decimal.Decimal:
        return _ext(EXT_DECIMAL, str(value), path, depth)
    if kind is fractions.Fraction:
        return _ext(EXT_FRACTION, [value.numerator, value.denominator], path, depth)
    if kind is uuid.UUID:
        return msgpack.ExtType(EXT_UUID, value.bytes)
    if isinstance(value, pathlib.PurePath):
        return _ext(EXT_PATH, [_flavour(value), str(value)], path, depth)
    if isinstance(value, np.ndarray):
        _check_dtype(value.dtype, path)
        data = np.ascontiguousarray(value).tobytes()
        return _ext(EXT_NDARRAY, [_descr(value.dtype), list(value.shape), data], path, depth)
    if isinstance(value, np.generic):
        _check_dtype(value.dtype, path)
        return _ext(EXT_NPSCALAR, [_descr(value.dtype), value.tobytes()], path, depth)
    raise ValueEncodeError(f"cannot record type {type_name(kind)}", where=path, fix=f"{_FIX}.")


def _object(kind: type, form: str, fields: dict[str, Any], path: str, depth: int) -> Any:
    encoded = {name: _encode(item, f"{path}.{name}", depth + 2) for name, item in fields.items()}
    body = msgpack.packb([type_name(kind), form, encoded], use_bin_type=True)
    return msgpack.ExtType(EXT_OBJECT, body)


def _encode_dict(value: dict[Any, Any], path: str, depth: int) -> dict[Any, Any]:
    keys = list(value)
    if _sortable_plain(keys):
        try:
            keys.sort()
            return {
                _encode(key, path, depth + 1): _encode(value[key], _key_path(path, key), depth + 1)
                for key in keys
            }
        except TypeError:
            pass  # keys of types that do not compare (str and int): order by their encoding
    # Encoded keys are hashable (scalars or ExtType) and msgpack keeps the dict's order.
    encoded = sorted(
        ((_pack(key, _key_path(path, key), depth + 1), key) for key in keys),
        key=lambda pair: pair[0],
    )
    return {
        _encode(key, path, depth + 1): _encode(value[key], _key_path(path, key), depth + 1)
        for _packed, key in encoded
    }


def _sortable_plain(keys: list[Any]) -> bool:
    """Keys whose value order is the order the plain encoding always used."""
    return all(
        type(key) in _PLAIN_KEYS and not (type(key) is float and math.isnan(key)) for key in keys
    )


def _key_path(path: str, key: Any) -> str:
    shown = f'"{key}"' if isinstance(key, str) else repr(key)
    return f"{path}[{shown}]"


def _tz(tz: dt.tzinfo | None, path: str) -> Any:
    if tz is None:
        return None
    if type(tz) is dt.timezone:
        offset = tz.utcoffset(None)
        name = tz.tzname(None)
        default = dt.timezone(offset).tzname(None)
        micros = (offset.days * 86400 + offset.seconds) * 1_000_000 + offset.microseconds
        return ["offset", micros, None if name == default else name]
    key = getattr(tz, "key", None)
    if type(tz).__module__ == "zoneinfo" and isinstance(key, str):
        return ["zone", key]
    raise ValueEncodeError(
        f"cannot record time zone type {type_name(type(tz))}",
        where=path,
        fix="use datetime.timezone or zoneinfo.ZoneInfo.",
    )


def _flavour(value: pathlib.PurePath) -> str:
    if isinstance(value, pathlib.Path):
        return "native"
    return "windows" if isinstance(value, pathlib.PureWindowsPath) else "posix"


def _check_dtype(dtype: np.dtype[Any], path: str) -> None:
    if dtype.hasobject:
        raise ValueEncodeError(
            f"cannot record a numpy array or scalar of dtype {dtype} (it holds Python objects)",
            where=path,
            fix="convert it to a list, or to a numeric or string dtype.",
        )


def _descr(dtype: np.dtype[Any]) -> Any:
    descr: Any = np.lib.format.dtype_to_descr(dtype)
    return descr


# --------------------------------------------------------------------------- decoding


def decode_value(data: bytes, source: str = "value", *, resolve: bool = True) -> Any:
    """The value :func:`encode_value` encoded. ``source`` names the bytes in an error;
    with ``resolve=False`` Enum members, dataclasses, attrs classes, NamedTuples and
    registered types come back as :class:`Tagged` and no user module is imported."""
    hook = _Decoder(source, resolve)
    try:
        return _unpack(data, hook)
    except ValueDecodeError:
        raise
    except (
        ValueError,
        TypeError,
        KeyError,  # zoneinfo's "no such zone" among them
        IndexError,
        AttributeError,
        OverflowError,
        msgpack.ExtraData,
        msgpack.FormatError,
        msgpack.StackError,
    ) as e:
        raise ValueDecodeError(
            f"{source} is not a valid recorded value: {str(e) or type(e).__name__}",
            fix="re-record it (pytest --replay-record).",
        ) from None


def _unpack(data: bytes, hook: _Decoder) -> Any:
    # Every length bounded by the bytes given; ext values nest through this function, so
    # the hook bounds their depth before Python's stack could run out.
    return unpack_bounded(data, strict_map_key=False, ext_hook=hook)


class _Decoder:
    def __init__(self, source: str, resolve: bool) -> None:
        self.source = source
        self.resolve = resolve
        self.depth = 0

    def fail(self, what: str) -> ValueDecodeError:
        return ValueDecodeError(
            what,
            where=self.source,
            fix="re-record it (pytest --replay-record), or decode it with the pytest_replay "
            "version that wrote it.",
        )

    def __call__(self, code: int, payload: bytes) -> Any:
        if code == EXT_BIGINT:
            return int.from_bytes(payload, "big", signed=True)
        if code == EXT_UUID:
            return uuid.UUID(bytes=payload)
        if self.depth >= MAX_DEPTH:
            raise self.fail(f"extension values nested more than {MAX_DEPTH} levels deep")
        self.depth += 1
        try:
            inner = _unpack(payload, self)
        finally:
            self.depth -= 1
        if code == EXT_TUPLE:
            return tuple(inner)
        if code == EXT_SET:
            return set(inner)
        if code == EXT_FROZENSET:
            return frozenset(inner)
        if code == EXT_DATE:
            return dt.date(*inner)
        if code == EXT_TIME:
            hour, minute, second, micro, fold, tz = inner
            return dt.time(hour, minute, second, micro, self._tz(tz), fold=fold)
        if code == EXT_DATETIME:
            year, month, day, hour, minute, second, micro, fold, tz = inner
            zone = self._tz(tz)
            return dt.datetime(year, month, day, hour, minute, second, micro, zone, fold=fold)
        if code == EXT_TIMEDELTA:
            return dt.timedelta(*inner)
        if code == EXT_DECIMAL:
            return decimal.Decimal(inner)
        if code == EXT_FRACTION:
            return fractions.Fraction(*inner)
        if code == EXT_PATH:
            flavour, text = inner
            kinds = {
                "posix": pathlib.PurePosixPath,
                "windows": pathlib.PureWindowsPath,
                "native": pathlib.Path,
            }
            if flavour not in kinds:
                raise self.fail(f"unknown path flavour {flavour!r}")
            return kinds[flavour](text)
        if code == EXT_NDARRAY:
            descr, shape, raw = inner
            dtype = np.lib.format.descr_to_dtype(descr)
            if any(not isinstance(n, int) or n < 0 for n in shape) or math.prod(
                shape
            ) * dtype.itemsize != len(raw):
                raise self.fail(
                    f"array of shape {shape} and dtype {dtype} cannot hold {len(raw)} bytes"
                )
            return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
        if code == EXT_NPSCALAR:
            descr, raw = inner
            dtype = np.lib.format.descr_to_dtype(descr)
            return np.frombuffer(raw, dtype=dtype)[0]
        if code == EXT_ENUM:
            name, member, value = inner
            if not self.resolve:
                return Tagged(name, "enum", {"name": member, "value": value})
            return getattr(self._import(name), member)
        if code == EXT_OBJECT:
            name, form, fields = inner
            return self._object(name, form, fields)
        raise self.fail(f"unknown extension type {code}")

    def _tz(self, tz: Any) -> dt.tzinfo | None:
        if tz is None:
            return None
        if tz[0] == "offset":
            offset = dt.timedelta(microseconds=tz[1])
            return dt.timezone(offset) if tz[2] is None else dt.timezone(offset, tz[2])
        if tz[0] == "zone":
            import zoneinfo

            return zoneinfo.ZoneInfo(tz[1])
        raise self.fail(f"unknown time zone form {tz[0]!r}")

    def _import(self, name: str) -> Any:
        module, _sep, qualname = name.partition(":")
        try:
            found: Any = importlib.import_module(module)
            for part in qualname.split("."):
                found = getattr(found, part)
        except (ImportError, AttributeError) as exc:
            raise self.fail(
                f"the recorded type {name} cannot be imported ({exc}); decode with "
                "resolve=False to read it as a Tagged map"
            ) from None
        return found

    def _object(self, name: str, form: str, fields: dict[Any, Any]) -> Any:
        if form == "registered":
            registered = _BY_NAME.get(name)
            if registered is None or not self.resolve:
                if self.resolve:
                    raise self.fail(
                        f"type {name!r} is not registered; call register_value_type before decoding"
                    )
                return Tagged(name, form, fields)
            return registered.decode(fields["value"])
        if not self.resolve:
            return Tagged(name, form, fields)
        cls = self._import(name)
        if form == "namedtuple":
            return cls(**fields)
        if form == "dataclass":
            init = {f.name for f in dataclasses.fields(cls) if f.init}
            obj = cls(**{k: v for k, v in fields.items() if k in init})
            for key, item in fields.items():
                if key not in init:
                    object.__setattr__(obj, key, item)
            return obj
        if form == "attrs":
            accepted = {a.name: a for a in cls.__attrs_attrs__ if a.init}
            arguments = {
                getattr(accepted[k], "alias", None) or k.lstrip("_"): v
                for k, v in fields.items()
                if k in accepted
            }
            obj = cls(**arguments)
            for key, item in fields.items():
                if key not in accepted:
                    object.__setattr__(obj, key, item)
            return obj
        raise self.fail(f"unknown object form {form!r} of type {name}")


# --------------------------------------------------------------------------- showing values

#: Bytes and strings longer than this are shown abbreviated, with their BLAKE3 digest.
SHOWN_CHARS: Final = 120


def _digest(data: bytes) -> str:
    import blake3

    return blake3.blake3(data).hexdigest()[:16]


def render_value(value: Any) -> str:
    """A stable one-line text of a decoded value (the same on every machine: sets sorted,
    long bytes and strings abbreviated with their length and digest, recorded objects as
    ``module:Type(field=...)``)."""
    if isinstance(value, Tagged):
        if value.form == "enum":
            return f"{value.type}.{value.fields['name']}"
        inner = ", ".join(f"{k}={render_value(v)}" for k, v in value.fields.items())
        return f"{value.type}({inner})"
    if isinstance(value, dict):
        pairs = ", ".join(f"{render_value(k)}: {render_value(v)}" for k, v in value.items())
        return "{" + pairs + "}"
    if isinstance(value, list):
        return "[" + ", ".join(render_value(v) for v in value) + "]"
    if isinstance(value, tuple):
        return (
            "(" + ", ".join(render_value(v) for v in value) + ("," if len(value) == 1 else "") + ")"
        )
    if isinstance(value, (set, frozenset)):
        items = sorted(render_value(v) for v in value)
        name = "set" if isinstance(value, set) else "frozenset"
        return f"{name}({{{', '.join(items)}}})"
    if isinstance(value, np.ndarray):
        data = value.tobytes()
        shown = (
            render_value(value.tolist())
            if value.size <= 16
            else f"<{len(data)} bytes #{_digest(data)}>"
        )
        return f"ndarray(dtype={value.dtype.str}, shape={list(value.shape)}, {shown})"
    if isinstance(value, (bytes, str)) and len(value) > SHOWN_CHARS:
        data = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
        head = repr(value[:32])
        kind = "bytes" if isinstance(value, bytes) else "chars"
        return f"{head}...<{len(value)} {kind} #{_digest(data)}>"
    if isinstance(value, float):
        text = repr(value)
        if math.isnan(value):
            bits = np.float64(value).view("<u8")
            return f"nan(0x{int(bits):016x})"
        return text
    return repr(value)


def json_value(value: Any) -> Any:
    """A JSON-ready form of a decoded value: recorded objects as ``{"type", "form",
    "fields"}``, tuples and sets as lists (sets sorted by their text), bytes as hex,
    other non-JSON scalars as :func:`render_value` text."""
    if isinstance(value, Tagged):
        return {"type": value.type, "form": value.form, "fields": json_value(dict(value.fields))}
    if isinstance(value, dict):
        return {
            (k if isinstance(k, str) else render_value(k)): json_value(v) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return [json_value(v) for v in sorted(value, key=render_value)]
    if isinstance(value, bytes):
        return value.hex()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return render_value(value)
