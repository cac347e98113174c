"""Protobuf messages as the records the contracts validate, by code chosen once per message type.

A value's message is parsed by protobuf (upb) with the class of its writer's message, then made a
dict as fastavro's is for Avro, by a converter made once per message descriptor (:func:`plan`) (no
``MessageToDict`` per event): scalars as they are, enums as their symbols' names (an unknown number
as the number), ``google.protobuf.Timestamp`` as an aware UTC datetime, the wrappers
(``google.protobuf.DoubleValue`` and the others) as their value, nested messages as dicts, maps as
dicts, repeated fields as lists. A field that tracks presence (proto3 ``optional``, a message, a
oneof's member) and is not set is left out, so the contract's default or its "field required"
applies; with ``nulls`` it reads as None (an output record's ``None``). A proto3 field without
presence is its value, which is its type's zero (0, "", false) when the producer did not set it:
that is protobuf's semantics, the wire cannot tell the two apart. Unknown fields are skipped.
"""

from __future__ import annotations

import datetime as dt
import keyword
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from stream.formats.protobuf_schema import ProtoSchema

Convert = Callable[[Any], Any] | None
"""A field's value to the record's (None: as it is)."""

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
TIMESTAMP = "google.protobuf.Timestamp"
WRAPPERS = frozenset(
    f"google.protobuf.{kind}Value"
    for kind in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
)
_SECONDS_NANOS = attrgetter("seconds", "nanos")
_delta = dt.timedelta


def timestamp(value: Any) -> dt.datetime:
    """A ``google.protobuf.Timestamp`` as an aware UTC datetime (to the microsecond)."""
    seconds, nanos = _SECONDS_NANOS(value)
    return _EPOCH + _delta(0, seconds, nanos // 1000)


def is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def plan(
    message: Descriptor, plans: dict[str, Convert], nulls: bool = False
) -> Callable[[Any], dict[str, Any]]:
    """How the messages of type ``message`` become dicts (and the messages it holds, into ``plans``
    by full name): its scalar fields read at once (one that tracks presence asked whether it is set
    only when it reads as zero), then the fields converted, then the messages and enums that track
    presence, read when set."""
    made = plans.get(message.full_name)
    if made is not None:
        return made
    plans[message.full_name] = lambda value: plans[message.full_name](value)  # type: ignore[misc]  # a cycle
    names: list[str] = []
    maybe: set[str] = set()
    always: list[tuple[str, Callable[[Any], Any]]] = []
    present: list[tuple[str, Callable[[Any], Any]]] = []
    for field in message.fields:
        if not field.name.isidentifier():
            raise ValueError(f"field name {field.name!r} of {message.full_name}")
        one = None if is_map(field) else _single(field, plans, nulls)
        if is_map(field):
            always.append((field.name, _map(field, plans, nulls)))
        elif field.is_repeated:
            always.append((field.name, list if one is None else _each(one)))
        elif one is None:
            names.append(field.name)
            if field.has_presence:
                maybe.add(field.name)
        elif field.has_presence:
            present.append((field.name, one))
        else:
            always.append((field.name, one))  # an enum without presence
    made = _converter(tuple(names), frozenset(maybe), tuple(always), tuple(present), nulls)
    plans[message.full_name] = made
    return made


def _converter(
    names: tuple[str, ...],
    maybe: frozenset[str],
    always: tuple[tuple[str, Callable[[Any], Any]], ...],
    present: tuple[tuple[str, Callable[[Any], Any]], ...],
    nulls: bool,
) -> Callable[[Any], dict[str, Any]]:
    """A function generated for one message type: its scalars read into a dict literal, a field that
    tracks presence and reads as zero asked whether it is set, then the converted fields. Of the
    schema only field names enter the code, checked as identifiers (keywords read by ``attrgetter``)."""
    scope: dict[str, Any] = {}

    def read(name: str) -> str:
        if not name.isidentifier():
            raise ValueError(f"field name {name!r}")
        if keyword.iskeyword(name) or name.startswith("__"):
            scope[f"_g{len(scope)}"] = attrgetter(name)
            return f"_g{len(scope) - 1}(m)"
        return f"m.{name}"

    unset = "r[{!r}] = None" if nulls else "del r[{!r}]"
    lines = ["def convert(m):", *(f"    v{i} = {read(name)}" for i, name in enumerate(names))]
    lines.append("    r = {" + ", ".join(f"{name!r}: v{i}" for i, name in enumerate(names)) + "}")
    for i, name in enumerate(names):
        if name in maybe:  # a zero may be a field not set
            lines += [f"    if not v{i} and not m.HasField({name!r}):", "        " + unset.format(name)]
    for k, (name, one) in enumerate(always):
        scope[f"_a{k}"] = one
        lines.append(f"    r[{name!r}] = _a{k}({read(name)})")
    for k, (name, one) in enumerate(present):
        scope[f"_p{k}"] = one
        lines += [f"    if m.HasField({name!r}):", f"        r[{name!r}] = _p{k}({read(name)})"]
        lines += ["    else:", f"        r[{name!r}] = None"] if nulls else []
    lines.append("    return r")
    exec("\n".join(lines), scope)  # of the schema, only checked identifiers and reprs are in the code
    convert: Callable[[Any], dict[str, Any]] = scope["convert"]
    return convert


def _single(field: FieldDescriptor, plans: dict[str, Convert], nulls: bool) -> Convert:
    """How one value of ``field`` (an item, when repeated) becomes the record's."""
    if field.type == FieldDescriptor.TYPE_ENUM:
        names = {value.number: value.name for value in field.enum_type.values}
        return lambda number: names.get(number, number)
    kind = field.message_type
    if kind is None:
        return None
    if kind.full_name == TIMESTAMP:
        return timestamp
    if kind.full_name in WRAPPERS:
        return attrgetter("value")
    return plan(kind, plans, nulls)


def _each(one: Callable[[Any], Any]) -> Callable[[Any], list[Any]]:
    return lambda values: [one(value) for value in values]


def _map(field: FieldDescriptor, plans: dict[str, Convert], nulls: bool) -> Callable[[Any], dict[Any, Any]]:
    one = _single(field.message_type.fields_by_name["value"], plans, nulls)
    if one is None:
        return dict
    return lambda entries: {key: one(value) for key, value in entries.items()}


@dataclass(slots=True)
class ProtoMessage:
    """One message of a writer's schema: its class's parser, its plan, and (once checked) whether it
    can carry the model card's features."""

    descriptor: Descriptor
    parse: Callable[[bytes], Message]
    convert: Callable[[Any], dict[str, Any]]
    checked: bool = False
    refusal: str | None = None


def message_at(schema: ProtoSchema, indexes: tuple[int, ...]) -> ProtoMessage:
    """The message ``indexes`` name in ``schema``, made once; ValueError if there is none."""
    made = schema.messages.get(indexes)
    if made is None:
        descriptor = schema.descriptor(indexes)
        try:
            convert = plan(descriptor, {}, schema.nulls)
        except RecursionError:
            raise ValueError(f"message {descriptor.full_name} nests too deep to read") from None
        made = ProtoMessage(descriptor, GetMessageClass(descriptor).FromString, convert)
        schema.messages[indexes] = made
    return made  # type: ignore[no-any-return]
