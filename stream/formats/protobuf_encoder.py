"""A fast Protobuf writer for the output records: one Python function generated per message type.

upb's constructor spends 3 µs turning a datetime into a ``google.protobuf.Timestamp`` and several
more on nested dicts: 12 µs for a provenance record, where the Avro writer takes 3. The records of
the hot path have a fixed schema (streamscore's own, :func:`~.protobuf_writer.proto_schema`), so
:func:`compile_encoder` generates straight-line code for it once, as :mod:`.avro_writer` does for
Avro: each field's tag as a constant, then its value: strings and bytes, doubles and floats,
integers (int32, int64, uint32, uint64, bool), Timestamps (from datetimes, RFC 3339 strings, or
``orjson.Fragment`` of those), nested messages (from dicts, written in place, or fragments) and
``map<string, X>`` of those. A message using anything else (repeated fields, enums, other key
types, a message holding itself) raises :class:`Unsupported` and is written by upb instead
(:func:`~.protobuf_writer.protobuf_serializer` chooses).

Every field that is not None is written, zeros included (valid on the wire, read as the same
values: a test reads them back with confluent-kafka's deserializer). Most values repeat from one
record to the next (the model, the role, the batch's timestamps, a prediction's and its
provenance's event id and time), so strings, timestamps and fragments keep their last value and
bytes by identity (those values are immutable) and are encoded again only when another object
comes; of the schema, only field names (as reprs) enter the code.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Callable
from itertools import count
from typing import Any

import orjson
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from stream.formats.protobuf_reader import TIMESTAMP, is_map
from stream.formats.varints import SMALL as _SMALL
from stream.formats.varints import varint as _varint

F = FieldDescriptor

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_Fragment = orjson.Fragment


class Unsupported(ValueError):
    """The message has a field :func:`compile_encoder` does not write."""


def _string(text: str) -> bytes:
    data = text.encode()
    n = len(data)
    return (_SMALL[n] if n < 128 else _varint(n)) + data


def _delimited(body: bytes) -> bytes:
    n = len(body)
    return (_SMALL[n] if n < 128 else _varint(n)) + body


def _timestamp(value: Any) -> bytes:
    """A Timestamp's body from a datetime, an RFC 3339 string, or a fragment of either's JSON."""
    if type(value) is _Fragment:
        value = orjson.loads(orjson.dumps(value))
    if type(value) is str:
        value = dt.datetime.fromisoformat(value)
    delta = value - _EPOCH
    seconds, nanos = delta.days * 86_400 + delta.seconds, delta.microseconds * 1000
    last, encoded = _SECONDS[0]  # the times of a stream mostly share their second with the one before
    if seconds != last:
        encoded = b"\x08" + _varint(seconds) if seconds else b""
        _SECONDS[0] = seconds, encoded
    return _delimited(encoded + b"\x10" + _varint(nanos) if nanos else encoded)


_SECONDS: list[tuple[int, bytes]] = [(0, b"")]


_WIRE = {F.TYPE_DOUBLE: 1, F.TYPE_FLOAT: 5, F.TYPE_STRING: 2, F.TYPE_BYTES: 2, F.TYPE_MESSAGE: 2}
_SCALARS = {
    F.TYPE_DOUBLE: "_double({})", F.TYPE_FLOAT: "_float({})", F.TYPE_INT64: "_varint({})",
    F.TYPE_INT32: "_varint({})", F.TYPE_UINT64: "_varint({})", F.TYPE_UINT32: "_varint({})",
    F.TYPE_BOOL: "(b'\\x01' if {} else b'\\x00')", F.TYPE_BYTES: "_delimited(bytes({}))",
    F.TYPE_STRING: "_string({})",
}  # fmt: skip
"""The expression giving the bytes of a scalar's value."""
_SLOTS: dict[tuple[Any, ...], list[tuple[Any, bytes]]] = {}
"""The last value written and its bytes (with the tag), by field name, tag and type, shared by every
writer: a prediction and its provenance share the event's id and time."""


class _Source:
    """The lines of one message's writer, and the scope they run in."""

    def __init__(self, within: frozenset[str]) -> None:
        self.within = within  # the messages being written around this one: a cycle is not written
        self.names = count()
        self.body: list[str] = []
        self.scope: dict[str, Any] = {
            "_double": struct.Struct("<d").pack, "_float": struct.Struct("<f").pack, "_varint": _varint,
            "_string": _string, "_delimited": _delimited, "_timestamp": _timestamp, "_Fragment": _Fragment,
            "_loads": orjson.loads, "_dumps": orjson.dumps,
        }  # fmt: skip

    def constant(self, value: Any) -> str:
        """The name of a new constant of the scope holding ``value``."""
        name = f"_k{next(self.names)}"
        self.scope[name] = value
        return name

    def field(self, field: FieldDescriptor, record: str = "r", indent: str = "    ") -> str:
        """Lines setting a new local to the bytes of ``field`` of ``record`` (a dict); the local's name."""
        value, out = f"v{next(self.names)}", f"p{next(self.names)}"
        tag = self.constant(_varint(field.number << 3 | (2 if is_map(field) else _WIRE.get(field.type, 0))))
        self.body.append(f"{indent}{value} = {record}.get({field.name!r})")
        kind = field.message_type.full_name if field.message_type is not None else field.type
        if field.is_repeated and not is_map(field):
            raise Unsupported(f"repeated field {field.name}")
        if is_map(field):
            self.body.append(f"{indent}{out} = {self.entries(field, tag, value)} if {value} else b''")
        elif field.type == F.TYPE_STRING or kind == TIMESTAMP:
            encode = "_string" if field.type == F.TYPE_STRING else "_timestamp"
            self.cached(f"{encode}({value})", value, out, (field.name, kind), indent, tag)
        elif field.type == F.TYPE_MESSAGE:
            self.message(field.message_type, tag, value, out, indent)
        elif field.type in _SCALARS:
            made = f"{tag} + {_SCALARS[field.type].format(value)}"
            self.body.append(f"{indent}{out} = b'' if {value} is None else {made}")
        else:
            raise Unsupported(f"field {field.name} of type {kind}")
        return out

    def message(self, message: Descriptor, tag: str, value: str, out: str, indent: str) -> None:
        """Lines for a nested message: from a fragment of its JSON by its own writer (kept while the
        fragment repeats), from a dict by lines of its fields here."""
        if message.full_name in self.within:
            raise Unsupported(f"message {message.full_name} holds itself")
        nested = self.constant(_encoder(message, self.within))
        self.body.append(f"{indent}if type({value}) is _Fragment:")
        made = f"{tag} + _delimited({nested}(_loads(_dumps({value}))))"
        self.cached(made, value, out, (tag, message.full_name), indent + "    ")
        self.body.append(f"{indent}elif {value} is None:")
        self.body.append(f"{indent}    {out} = b''")
        self.body.append(f"{indent}else:")
        within, self.within = self.within, self.within | {message.full_name}
        parts = [self.field(field, value, indent + "    ") for field in message.fields]
        self.within = within
        self.body.append(
            f"{indent}    {out} = {tag} + _delimited(b''.join(({''.join(p + ', ' for p in parts)})))"
        )

    def cached(
        self, expression: str, value: str, out: str, key: tuple[Any, ...], indent: str, tag: str = ""
    ) -> None:
        """Lines setting ``out`` to ``tag`` and ``expression`` (none for None), computed again only
        when another object than the slot's last comes; with a tag, the expression's bytes are kept
        in a second slot keyed without it, shared by the fields of that name and type in every
        message (a prediction's event id and time, and its provenance's)."""
        slot = self.constant(_SLOTS.setdefault((*key, tag), [(None, b"")]))
        lines = [f"last, {out} = {slot}[0]", f"if {value} is not last:"]  # one read: threads share slots
        if tag:
            shared = self.constant(_SLOTS.setdefault(key, [(None, b"")]))
            lines += [
                f"    last, {out} = {shared}[0]",
                f"    if {value} is not last:",
                f"        {out} = b'' if {value} is None else {expression}",
                f"        {shared}[0] = ({value}, {out})",
                f"    {out} = b'' if {value} is None else {tag} + {out}",
            ]
        else:
            lines.append(f"    {out} = b'' if {value} is None else {expression}")
        lines.append(f"    {slot}[0] = ({value}, {out})")
        self.body.extend(f"{indent}{line}" for line in lines)

    def entries(self, field: FieldDescriptor, tag: str, value: str) -> str:
        """The expression of a ``map<string, X>``'s bytes: an entry message (key 1, value 2) per item."""
        entry = field.message_type
        key, item = entry.fields_by_name["key"], entry.fields_by_name["value"]
        if key.type != F.TYPE_STRING:
            raise Unsupported(f"map field {field.name} with keys that are not strings")
        if item.type in _SCALARS:
            written = _SCALARS[item.type].format("x")
        elif item.message_type is not None and item.message_type.full_name != TIMESTAMP:
            written = f"_delimited({self.constant(_encoder(item.message_type, self.within))}(x))"
        else:
            raise Unsupported(f"map field {field.name} of {item.message_type.full_name}")
        entry_value = self.constant(_varint(2 << 3 | _WIRE.get(item.type, 0)))
        written = f"_delimited(b'\\x0a' + _string(k) + {entry_value} + {written})"
        return f"b''.join([{tag} + {written} for k, x in {value}.items()])"


def _encoder(
    message: Descriptor, within: frozenset[str], prefix: bytes = b""
) -> Callable[[dict[str, Any]], bytes]:
    if message.full_name in within:
        raise Unsupported(f"message {message.full_name} holds itself")
    source = _Source(within | {message.full_name})
    parts = [source.field(field) for field in message.fields]
    if prefix:
        parts.insert(0, source.constant(prefix))
    lines = ["def write(r):", *source.body, f"    return b''.join(({''.join(p + ', ' for p in parts)}))"]
    exec("\n".join(lines), source.scope)  # of the schema, only field names (as reprs) are in the code
    return source.scope["write"]  # type: ignore[no-any-return]


def compile_encoder(message: Descriptor, prefix: bytes = b"") -> Callable[[dict[str, Any]], bytes]:
    """A function writing a record of ``message`` after ``prefix`` (a wire header, say): its dict,
    where a field None or not there is not written; :class:`Unsupported` if the message has a field
    it does not write."""
    return _encoder(message, frozenset(), prefix)
