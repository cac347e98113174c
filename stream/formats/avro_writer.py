"""A fast Avro writer for the output records: one Python function generated per schema.

fastavro's writer spends about 0.7 µs per field in dispatch on the schema (12 to 20 µs for a
provenance record); the records of the hot path have a fixed schema, so :func:`compile_writer`
generates straight-line code for it once: strings, longs (zigzag varints), doubles, booleans,
``["null", X]`` unions, records, maps, and ``timestamp-micros`` (from datetimes, RFC 3339
strings, or ``orjson.Fragment`` of those). It writes the dicts
:class:`~stream.scoring.records.RecordBuilder` builds, and every piece is a local joined once at the end.

Most values repeat from one record to the next: the model, the scorer, the role and the batch's
timestamps are the same objects in every record of a batch, and a prediction and its provenance
share the event's id, score and ``occurred_at``. So each string, double, timestamp, optional of
those and nested record given as a fragment keeps its last value and bytes (one slot, by identity:
those values are immutable) and is encoded again only when another object comes. The bytes are
Avro's binary encoding, the same as fastavro's (a test compares them).
"""

from __future__ import annotations

import datetime as dt
import json
import struct
from collections.abc import Callable
from itertools import count
from typing import Any

import orjson

from stream.formats.varints import SMALL as _SMALL
from stream.formats.varints import varint
from stream.scoring.records import TAKES_DATETIMES

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICRO = dt.timedelta(microseconds=1)
_NOTHING = object()
_SLOTS: dict[tuple[str, str], list[tuple[Any, bytes]]] = {}
"""The last value written and its bytes, by field path and type, shared by every writer: a
prediction and its provenance share the event's id, score and timestamps."""
_Fragment = orjson.Fragment


def _long(n: int) -> bytes:
    """Avro's long: zigzag, then a little-endian base-128 varint."""
    n = (n << 1) ^ (n >> 63)
    return _SMALL[n] if n < 128 else varint(n)


def _string(text: str) -> bytes:
    data = text.encode()
    n = len(data)
    return (_SMALL[n << 1] if n < 64 else _long(n)) + data


def _micros(value: Any) -> bytes:
    """A ``timestamp-micros`` from a datetime, an RFC 3339 string, or a fragment of either's JSON."""
    if type(value) is _Fragment:
        value = orjson.loads(orjson.dumps(value))
    if type(value) is str:
        value = dt.datetime.fromisoformat(value)
    return _long((value - _EPOCH) // _MICRO)


_CACHED = frozenset(("string", "double", "timestamp-micros"))
"""Types whose values are immutable and often repeat: kept by identity."""


def _name(kind: Any) -> str:
    return (kind.get("logicalType") or kind["type"]) if isinstance(kind, dict) else kind  # type: ignore[no-any-return]


def _field(value: str, field: dict[str, Any]) -> str:
    """How the code reads a field of a record: one that defaults to null may be left out."""
    name = field["name"]
    optional = "default" in field and field["default"] is None
    return f"{value}.get({name!r})" if optional else f"{value}[{name!r}]"


def _optional(kind: list[Any]) -> Any:
    rest = [k for k in kind if k != "null"]
    if kind != ["null", *rest] or len(rest) != 1:
        raise ValueError(f"only ['null', X] unions are written: {kind}")
    return rest[0]


_SCALARS = {
    "string": "_string({})",
    "long": "_long({})",
    "int": "_long({})",
    "double": "_double({})",
    "boolean": "b'\\x01' if {} else b'\\x00'",
    "timestamp-micros": "_micros({})",
}
"""The expression giving the bytes of a scalar type's value."""


class _WriterSource:
    """The lines of one record's writer, and the scope they run in."""

    def __init__(self, prefix: bytes) -> None:
        self.names = count()
        self.body: list[str] = []
        self.scope: dict[str, Any] = {
            "_long": _long, "_double": struct.Struct("<d").pack, "_micros": _micros, "_string": _string,
            "_Fragment": _Fragment, "_SMALL": _SMALL, "_loads": orjson.loads, "_dumps": orjson.dumps,
            "_NOTHING": _NOTHING, "_prefix": prefix,
        }  # fmt: skip

    def local(self, letter: str) -> str:
        """A new local's name."""
        return f"{letter}{next(self.names)}"

    def slot(self, path: str, kind: Any) -> str:
        """The name of the cache slot of the value at ``path`` of type ``kind``."""
        name = self.local("c")
        self.scope[name] = _SLOTS.setdefault((path, json.dumps(kind, sort_keys=True)), [(_NOTHING, b"")])
        return name

    def encode(self, kind: Any, expr: str, indent: str, path: str) -> str:
        """Lines setting a new local to the bytes of ``expr`` (the value at ``path``); the local's name."""
        out = self.local("p")
        name = _name(kind) if not isinstance(kind, list) else "union"
        if name in _CACHED or (name == "union" and _name(_optional(kind)) in _CACHED):
            self.cached(kind, name, expr, out, indent, path)
        else:
            self.fresh(kind, name, expr, out, indent, path)
        return out

    def cached(self, kind: Any, name: str, expr: str, out: str, indent: str, path: str) -> None:
        """Lines setting ``out`` to the bytes of ``expr``, encoded again only when another object comes."""
        value, cache = self.local("v"), self.slot(path, kind)
        self.body.append(f"{indent}{value} = {expr}")
        self.body.append(f"{indent}k, {out} = {cache}[0]")
        self.body.append(f"{indent}if k is not {value}:")
        self.fresh(kind, name, value, out, indent + "    ", path)
        self.body.append(f"{indent}    {cache}[0] = ({value}, {out})")

    def fresh(self, kind: Any, name: str, expr: str, out: str, indent: str, path: str) -> None:
        """Lines setting ``out`` to the bytes of ``expr``, computed."""
        if name == "union":
            self.union(kind, expr, out, indent, path)
        elif name == "record":
            self.record(kind, expr, out, indent, path)
        elif name == "map":
            self.map(kind, expr, out, indent, path)
        elif name in _SCALARS:
            self.body.append(f"{indent}{out} = {_SCALARS[name].format(expr)}")
        else:
            raise ValueError(f"no writer for Avro type {kind!r}")

    def union(self, kind: list[Any], expr: str, out: str, indent: str, path: str) -> None:
        """Lines for a ``["null", X]`` union: its branch index, then X's bytes."""
        value = self.local("v")
        self.body.append(f"{indent}{value} = {expr}")
        self.body.append(f"{indent}if {value} is None:")
        self.body.append(f"{indent}    {out} = b'\\x00'")
        self.body.append(f"{indent}else:")
        inner, some = self.local("p"), _optional(kind)
        self.fresh(some, _name(some), value, inner, indent + "    ", path)
        self.body.append(f"{indent}    {out} = b'\\x02' + {inner}")

    def record(self, kind: dict[str, Any], expr: str, out: str, indent: str, path: str) -> None:
        """Lines for a record: its fields' bytes joined (after the prefix, for the record itself)."""
        value = expr if expr == "r" else self.local("v")
        if expr != "r":  # a nested record may come as a fragment, written once while it repeats
            indent = self.fragment(kind, expr, value, out, indent, path)
        parts = [
            self.encode(field["type"], _field(value, field), indent, f"{path}.{field['name']}")
            for field in kind["fields"]
        ]
        if expr == "r":  # the record itself, after the prefix
            parts.insert(0, "_prefix")
        self.body.append(f"{indent}{out} = b''.join(({', '.join(parts)},))")

    def fragment(self, kind: dict[str, Any], expr: str, value: str, out: str, indent: str, path: str) -> str:
        """Lines writing a nested record given as a fragment, by its cache; the indent of the other case."""
        sub, cache = self.local("_w"), self.slot(path, kind)
        self.scope[sub] = compile_writer(kind)
        self.body.append(f"{indent}{value} = {expr}")
        self.body.append(f"{indent}if type({value}) is _Fragment:")
        self.body.append(f"{indent}    k, {out} = {cache}[0]")
        self.body.append(f"{indent}    if k is not {value}:")
        self.body.append(f"{indent}        {out} = {sub}(_loads(_dumps({value})))")
        self.body.append(f"{indent}        {cache}[0] = ({value}, {out})")
        self.body.append(f"{indent}else:")
        return indent + "    "

    def map(self, kind: dict[str, Any], expr: str, out: str, indent: str, path: str) -> None:
        """Lines for a map: one block of its entries and the empty block, or the empty block alone."""
        value, key, item = self.local("v"), self.local("m"), self.local("x")
        self.body.append(f"{indent}{value} = {expr}")
        self.body.append(f"{indent}if {value}:")
        self.body.append(f"{indent}    {out} = [_long(len({value}))]")
        self.body.append(f"{indent}    for {key}, {item} in {value}.items():")
        written = self.encode(kind["values"], item, indent + "        ", f"{path}.*")
        self.body.append(f"{indent}        {out} += (_string({key}), {written})")
        self.body.append(f"{indent}    {out}.append(b'\\x00')")
        self.body.append(f"{indent}    {out} = b''.join({out})")
        self.body.append(f"{indent}else:")
        self.body.append(f"{indent}    {out} = b'\\x00'")


def compile_writer(schema: dict[str, Any], prefix: bytes = b"") -> Callable[[dict[str, Any]], bytes]:
    """A function writing a record in Avro's encoding after ``prefix`` (a wire header, say)."""
    if _name(schema) != "record":
        raise ValueError(f"only records are written: {schema!r}")
    source = _WriterSource(prefix)
    top = source.encode(schema, "r", "    ", "")
    scope, body = source.scope, source.body
    exec("\n".join(["def write(r):", *body, f"    return {top}"]), scope)  # field names written as reprs
    write: Callable[[dict[str, Any]], bytes] = scope["write"]
    setattr(write, TAKES_DATETIMES, True)  # RecordBuilder gives it datetimes, not fragments
    return write
