"""Protobuf out: the schemas streamscore makes, predictions and provenance, and JSON events.

The event's schema is made for a card and the event's shape (:func:`event_proto_schema`): proto3,
package ``streamscore``, a message ``Event`` of the id (a string), the time (a
``google.protobuf.Timestamp``), ``optional string entity_id`` and the features, a message of one
``optional`` field per card feature in card order (double for numbers, string for strings) under the
shape's path, or the event's own fields for a flat shape. The features are ``optional`` so that one
the producer did not set is missing, as in JSON, rather than a silent 0.

Prediction and Provenance come from their pydantic models, through the JSON Schema pydantic
writes (as :func:`~stream.formats.avro.avro_schema` does for Avro): objects with properties become
messages named by their title, maps ``map<string, X>``, ``X | None`` an ``optional`` field (a map
cannot be one: an absent map reads as an empty one), a timezone-aware datetime a
``google.protobuf.Timestamp``, a Literal a string, a number a double, an integer an int64. Fields
are numbered in declaration order, so a field added to a contract at its end keeps the others'
numbers; ``schemas/prediction.proto`` and ``schemas/provenance.proto`` pin them (a test fails when
they are stale: ``streamscore schemas`` writes them).

A record is written by an encoder made once for its message (:mod:`.protobuf_encoder`), given
datetimes for Timestamps (the serializer says so: :data:`~stream.scoring.records.TAKES_DATETIMES`);
a message it does not write goes to protobuf's (upb) constructor, a part the record builder
serialised once (an ``orjson.Fragment``: the model, the scorer) made its value once.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import orjson
from google.protobuf.descriptor import Descriptor
from google.protobuf.message_factory import GetMessageClass
from pydantic import BaseModel

from stream.contracts import ModelCard
from stream.formats.base import OUTPUTS
from stream.formats.protobuf_encoder import Unsupported, compile_encoder
from stream.formats.protobuf_reader import TIMESTAMP, is_map
from stream.formats.protobuf_schema import compile_schema
from stream.formats.registry import header
from stream.scoring.events import DEFAULT_SHAPE, EventShape
from stream.scoring.records import TAKES_DATETIMES, Serialize
from stream.settings.events import ENTITY_FIELD

PACKAGE = "streamscore"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TIMESTAMP_FILE = "google/protobuf/timestamp.proto"
_DOC = "An input event on the events topic: its id, time and entity, and the model card's features."
_SCALARS = {"string": "string", "number": "double", "integer": "int64", "boolean": "bool"}
_Fragment = orjson.Fragment


def proto_schema(model: type[BaseModel]) -> str:
    """The ``.proto`` text of a pydantic contract: its message first, then the messages it holds."""
    document = model.model_json_schema()
    messages: dict[str, list[str]] = {}
    _message(document, document.get("$defs", {}), messages)
    lines = ['syntax = "proto3";', "", f"package {PACKAGE};"]
    if any(TIMESTAMP in line for body in messages.values() for line in body):
        lines += ["", f'import "{_TIMESTAMP_FILE}";']
    for body in messages.values():
        lines += ["", *body]
    return "\n".join(lines) + "\n"


def event_proto_schema(card: ModelCard, shape: EventShape = DEFAULT_SHAPE) -> str:
    """The ``.proto`` text of an event carrying ``card``'s features in ``shape``; ValueError if a
    name is not a Protobuf field name."""
    features = [f"optional {'string' if f.type == 'string' else 'double'} {f.name}" for f in card.features]
    envelope = [f"string {shape.id_field}", f"google.protobuf.Timestamp {shape.time_field}",
                f"optional string {ENTITY_FIELD}"]  # fmt: skip
    messages: list[tuple[str, str | None, list[str]]] = []
    if shape.flat:
        messages.append(("Event", _DOC, envelope + features))
    else:
        path = shape.path
        inner = "Features"
        messages.append(("Features", None, features))
        for depth in range(len(path) - 1, 0, -1):  # the messages holding it, innermost first
            messages.append((f"Within{depth}", None, [f"{inner} {path[depth]}"]))
            inner = f"Within{depth}"
        messages.append(("Event", _DOC, [*envelope, f"{inner} {path[0]}"]))
    lines = ['syntax = "proto3";', "", f"package {PACKAGE};", "", f'import "{_TIMESTAMP_FILE}";']
    for name, doc, fields in reversed(messages):
        names = [field.rsplit(" ", 1)[1] for field in fields]
        for field in names:
            if not _NAME.fullmatch(field):
                raise ValueError(f"{field!r} is not a Protobuf field name (letters, digits and _)")
        if len(set(names)) < len(names):
            raise ValueError(f"message {name} of the event would declare a field twice: {names}")
        lines += ["", *([f"// {doc}"] if doc else []), f"message {name} {{"]
        lines += [f"  {field} = {number};" for number, field in enumerate(fields, 1)]
        lines.append("}")
    return "\n".join(lines) + "\n"


def _message(node: dict[str, Any], defs: dict[str, Any], messages: dict[str, list[str]]) -> str:
    """The name of the message of an object (its lines into ``messages``, once)."""
    name = node["title"]
    if name in messages:
        return name  # type: ignore[no-any-return]
    body = messages[name] = [*_comment(node.get("description"), ""), f"message {name} {{"]
    for number, (field, spec) in enumerate(node["properties"].items(), 1):
        kind = _type(spec, defs, messages)
        body += [*_comment(spec.get("description"), "  "), f"  {kind} {field} = {number};"]
    body.append("}")
    return name  # type: ignore[no-any-return]


def _type(node: dict[str, Any], defs: dict[str, Any], messages: dict[str, list[str]]) -> str:
    """A field's type: a scalar, a message, a map, ``optional`` or ``repeated`` one."""
    if "$ref" in node:
        return _message(defs[node["$ref"].rsplit("/", 1)[-1]], defs, messages)
    if "anyOf" in node:
        kinds = [k for k in node["anyOf"] if k.get("type") != "null"]
        if len(kinds) != 1:
            raise ValueError(f"no Protobuf form for {node}")
        inner = _type(kinds[0], defs, messages)
        nullable = len(kinds) < len(node["anyOf"])
        return f"optional {inner}" if nullable and inner in _SCALARS.values() else inner
    kind = node.get("type")
    if kind == "object" and "properties" in node:
        return _message(node, defs, messages)
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return f"map<string, {_type(node['additionalProperties'], defs, messages)}>"
    if kind == "array" and isinstance(node.get("items"), dict):
        return f"repeated {_type(node['items'], defs, messages)}"
    if kind == "string" and node.get("format") == "date-time":
        return f"google.protobuf.{TIMESTAMP.rsplit('.', 1)[1]}"
    if kind in _SCALARS:
        return _SCALARS[kind]
    raise ValueError(f"no Protobuf form for {node}")


def _comment(text: str | None, indent: str) -> list[str]:
    return [f"{indent}// {line}".rstrip() for line in text.splitlines()] if text else []


def proto_schemas() -> dict[str, str]:
    """File name -> ``.proto`` text of each output contract, as written to ``schemas/``."""
    return {f"{name}.proto": proto_schema(model) for name, model in OUTPUTS.items()}


def protobuf_serializer(schema_id: int, proto_text: str) -> Serialize:
    """Records (as :class:`~stream.scoring.records.RecordBuilder` builds them) to values of the file's
    first message: the header, the message index byte 0, the message (by :mod:`.protobuf_encoder`,
    or by upb for a message it does not write)."""
    message, prefix = _first(proto_text), header(schema_id) + b"\x00"
    try:
        write = compile_encoder(message, prefix)
    except (Unsupported, RecursionError):
        write = _upb_writer(message, prefix)
    setattr(write, TAKES_DATETIMES, True)  # RecordBuilder gives it datetimes, not fragments
    return write


def _upb_writer(message: Descriptor, prefix: bytes) -> Serialize:
    """Records given to the constructor of the message's class (a fragment made its value once)."""
    build = GetMessageClass(message)
    parts = [
        (field.name, _part(field.message_type))
        for field in message.fields
        if field.message_type is not None and not field.is_repeated and not is_map(field)
    ]

    def write(record: dict[str, Any]) -> bytes:
        for name, part in parts:
            value = record.get(name)
            if type(value) is _Fragment:
                record = {**record, name: part(value)}
        return prefix + build(**record).SerializeToString()

    return write


def _part(message: Descriptor) -> Callable[[Any], Any]:
    """A fragment of a message field's JSON as the field's value, made again only when another comes."""
    build = GetMessageClass(message)
    last: list[Any] = [None, None]

    def part(fragment: Any) -> Any:
        if fragment is not last[0]:
            value = orjson.loads(orjson.dumps(fragment))
            made = dt.datetime.fromisoformat(value) if message.full_name == TIMESTAMP else build(**value)
            last[:] = fragment, made
        return last[1]

    return part


def _first(proto_text: str) -> Descriptor:
    messages = list(compile_schema(proto_text).message_types_by_name.values())
    if not messages:
        raise ValueError("the schema declares no message")
    return messages[0]


def protobuf_event_serializer(
    schema_id: int, schema_str: str, time_field: str = "occurred_at"
) -> Callable[[bytes], bytes]:
    """JSON event bytes (the time, under ``time_field``, an RFC 3339 string or epoch milliseconds) ->
    a value of the schema's first message; an event that does not fit it is its JSON bytes behind
    the header and the index byte, for the worker to dead-letter."""
    message = _first(schema_str)
    build, prefix = GetMessageClass(message), header(schema_id) + b"\x00"
    time = message.fields_by_name.get(time_field)
    stamped = time is not None and time.message_type is not None and time.message_type.full_name == TIMESTAMP

    def serialize(value: bytes) -> bytes:
        try:
            event = orjson.loads(value)
            if stamped and time_field in event:
                event[time_field] = _time(event[time_field])
            _no_nulls(event, message)
            return prefix + build(**event).SerializeToString()
        except Exception:  # a malformed event: its bytes behind the header, for the worker to refuse
            return prefix + value

    return serialize


def _time(value: str | float) -> dt.datetime:
    """An RFC 3339 time (with its offset) or epoch milliseconds as a datetime."""
    if isinstance(value, str):
        time = dt.datetime.fromisoformat(value)
        if time.tzinfo is None:
            raise ValueError(f"{value!r} has no offset")
        return time
    return dt.datetime.fromtimestamp(value / 1000, dt.UTC)


def _no_nulls(event: dict[str, Any], message: Descriptor) -> None:
    """ValueError for a null where the message cannot tell it from its zero (a field without presence)."""
    for name, value in event.items():
        field = message.fields_by_name.get(name)
        if field is None:
            continue  # the constructor refuses it
        if value is None and not field.has_presence:
            raise ValueError(f"{name} is null")
        if isinstance(value, dict) and field.message_type is not None and not is_map(field):
            _no_nulls(value, field.message_type)
