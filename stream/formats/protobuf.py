"""Protobuf: the event's schema, the carry check, the decoder, and registered values read back.

The event's schema streamscore makes for a card, the output contracts' schemas and the writers are
in :mod:`.protobuf_writer` (:func:`event_proto_schema`, :func:`proto_schema`).

A registered message carries the card (:func:`~.base.carry_refusal`, with fields by name) if the
shape's features are a message or a ``map<string, X>`` with a number (any integer or floating type;
a string or an enum for a string feature) for every feature; the time may be a Timestamp, a string
or an integer. A value names its message (its schema id, then its message indexes), so the check is
made once per message the values name, not only for the subject's first message at start-up.

Values are read by :mod:`.protobuf_reader` into the dicts the contracts validate (see there for
what an unset field reads as) and validated in one pydantic call; one that cannot be read is a dead
letter saying why. Predictions and provenance are written by :mod:`.protobuf_writer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

from confluent_kafka.schema_registry import Schema
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from stream.contracts import ModelCard
from stream.errors import DecodeError, PoisonEvent, SchemaError
from stream.formats.avro import _validate
from stream.formats.base import Decoded, Form, Node, Want, carry_refusal
from stream.formats.bounds import SchemaLimits
from stream.formats.codecs import Codec, Read
from stream.formats.protobuf_reader import TIMESTAMP, WRAPPERS, ProtoMessage, is_map, message_at
from stream.formats.protobuf_schema import ProtoLimits, ProtoSchema, compile_schema, read_indexes
from stream.formats.protobuf_writer import (
    event_proto_schema,
    proto_schema,
    protobuf_event_serializer,
    protobuf_serializer,
)
from stream.formats.registry import HEADER, SchemaSource, WriterSchemas, one_line, schema_id, versions
from stream.scoring.events import DEFAULT_SHAPE, FIXED_SHAPE, EventShape

F = FieldDescriptor
_INTEGERS = frozenset(
    getattr(F, f"TYPE_{sign}{kind}{width}")
    for sign, kind, width in product(("", "U", "S"), ("INT", "FIXED"), (32, 64))
    if (sign, kind) != ("U", "FIXED")
)
_NUMBERS = _INTEGERS | {F.TYPE_FLOAT, F.TYPE_DOUBLE}
_INTEGER_WRAPPERS = frozenset(f"google.protobuf.{k}Value" for k in ("Int64", "UInt64", "Int32", "UInt32"))
_NUMBER_WRAPPERS = _INTEGER_WRAPPERS | {"google.protobuf.DoubleValue", "google.protobuf.FloatValue"}
_STRING_WRAPPER = "google.protobuf.StringValue"
_SCALARS = {getattr(F, name): name[5:].lower() for name in dir(F) if name.startswith("TYPE_")}
_FIRST = (0,)
_MISMATCH = "payload does not match Protobuf schema id"


def protobuf_refusal(schema: str, card: ModelCard, shape: EventShape = DEFAULT_SHAPE) -> str | None:
    """Why no top-level message of a Protobuf schema can carry ``card``'s features in ``shape`` (the
    first one's reason), or why the schema cannot be compiled; None if one can (the values of a
    message that cannot are refused as they come)."""
    try:
        file = compile_schema(schema)
    except ValueError as exc:
        return str(exc)
    messages = list(file.message_types_by_name.values())
    if not messages:
        return "it declares no message"
    reasons = [carry_refusal(_fields(message), card, shape, _FORM) for message in messages]
    return None if None in reasons else reasons[0]


@dataclass(frozen=True, slots=True)
class _Kind:
    """A field of a message, shown as its type in a reason."""

    field: FieldDescriptor

    def __repr__(self) -> str:
        return _type_name(self.field)


def _type_name(field: FieldDescriptor) -> str:
    if is_map(field):
        key, value = (field.message_type.fields_by_name[n] for n in ("key", "value"))
        return f"map<{_type_name(key)}, {_type_name(value)}>"
    if field.message_type is not None:
        name = field.message_type.full_name
    elif field.enum_type is not None:
        name = f"enum {field.enum_type.full_name}"
    else:
        name = _SCALARS.get(field.type, str(field.type))
    return f"repeated {name}" if field.is_repeated else name


def _fields(message: Descriptor) -> Node:
    return Node({field.name: _Kind(field) for field in message.fields}, None)


def _node(kind: Any) -> Node | None:
    """A message's fields (no other name), or a ``map<string, X>``'s values (any name); else None."""
    field = kind.field
    if is_map(field):
        key, value = (field.message_type.fields_by_name[n] for n in ("key", "value"))
        return Node({}, _Kind(value)) if key.type == F.TYPE_STRING else None
    held = field.message_type
    if field.is_repeated or held is None or held.full_name == TIMESTAMP or held.full_name in WRAPPERS:
        return None
    return _fields(held)


def _holds(kind: Any, want: Want) -> bool:
    """Every value the field may have reads as what is wanted (a repeated field's never does)."""
    field = kind.field
    if field.is_repeated:
        return False
    wrapper = field.message_type.full_name if field.message_type is not None else None
    if want == "string":
        return field.type in (F.TYPE_STRING, F.TYPE_ENUM) or wrapper == _STRING_WRAPPER
    if want == "number":
        return field.type in _NUMBERS or wrapper in _NUMBER_WRAPPERS
    return (
        field.type == F.TYPE_STRING
        or field.type in _INTEGERS
        or wrapper in (TIMESTAMP, _STRING_WRAPPER)
        or wrapper in _INTEGER_WRAPPERS
    )


_FORM = Form(node=_node, holds=_holds, absent="it has no field", container="a message or a map<string, X>")


def protobuf_schemas(
    client: SchemaSource, limits: SchemaLimits | None = None, nulls: bool = False
) -> WriterSchemas[ProtoSchema]:
    """Protobuf writer schemas by id, each compiled once (``nulls``: an unset field reads as None,
    as output records want, rather than being left out, as events do)."""
    return WriterSchemas(
        client,
        "PROTOBUF",
        lambda schema: ProtoSchema(compile_schema(schema.schema_str), nulls),
        limits=ProtoLimits.of_limits(limits),
    )


class ProtobufDecoder:
    """Protobuf values (each read with its writer's message) to events, validated in one pydantic call."""

    def __init__(
        self,
        client: SchemaSource,
        max_bytes: int,
        limits: SchemaLimits | None = None,
        shape: EventShape = FIXED_SHAPE,
        card: ModelCard | None = None,
    ) -> None:
        """``shape``: the contract events are validated into; ``card``: when given, the values of a
        message that cannot carry its features in ``shape`` are refused."""
        self.schemas = protobuf_schemas(client, limits)
        self._client = client
        self._max_bytes, self._contract = max_bytes, shape.contract
        self._card, self._shape = card, shape

    def __call__(self, values: Sequence[bytes | None]) -> Decoded:
        schemas, max_bytes, card, start = self.schemas, self._max_bytes, self._card, HEADER.size
        records: list[Any] = []
        last, schema, first = -1, None, None  # the id of the value before, its schema and first message
        for value in values:
            try:
                sid = schema_id(value, max_bytes)
                if sid != last:
                    schema, last = schemas[sid], sid
                    first = schema.messages.get(_FIRST)
                if first is not None and len(value) > start and value[start] == 0:  # type: ignore[arg-type,index]
                    message, pos = first, start + 1
                else:
                    message, pos = self._message(value, sid, schema)  # type: ignore[arg-type]
                if card is not None and (message.refusal is not None or not message.checked):
                    self._check(message, sid)
                try:
                    records.append(message.convert(message.parse(value[pos:])))  # type: ignore[index]
                except Exception as exc:  # cut short, a wrong wire type, a time out of range, ...
                    raise DecodeError(f"{_MISMATCH} {sid}: {_why(exc)}") from None
            except PoisonEvent as exc:
                records.append(exc)
        return _validate(records, self._contract)

    @staticmethod
    def _message(value: bytes, sid: int, schema: ProtoSchema) -> tuple[ProtoMessage, int]:
        try:
            return _message(value, schema)
        except Exception as exc:
            raise DecodeError(f"{_MISMATCH} {sid}: {_why(exc)}") from None

    def _check(self, message: ProtoMessage, sid: int) -> None:
        """Whether ``message`` can carry the card's features, found once; SchemaError if not."""
        if not message.checked:
            refusal = carry_refusal(_fields(message.descriptor), self._card, self._shape, _FORM)  # type: ignore[arg-type]
            if refusal is not None:
                name, where = self._card.name, versions(self._client, sid)  # type: ignore[union-attr]
                refusal = (
                    f"writer schema id {sid}{where} message {message.descriptor.full_name} cannot carry "
                    f"the features of model {name}: {refusal}"
                )
            message.refusal, message.checked = refusal, True
        if message.refusal is not None:
            raise SchemaError(message.refusal)


def _message(value: bytes, schema: ProtoSchema) -> tuple[ProtoMessage, int]:
    """The message a value names, and the offset of its bytes."""
    start = HEADER.size
    if len(value) > start and value[start] == 0:
        made = schema.messages.get(_FIRST)
        if made is not None:
            return made, start + 1
    indexes, pos = read_indexes(value, start, schema.depth)
    return message_at(schema, indexes), pos


def _why(exc: Exception) -> str:
    return one_line(exc) if type(exc) is ValueError else one_line(f"{type(exc).__name__}: {exc}")


def protobuf_record(value: bytes, schemas: WriterSchemas[ProtoSchema]) -> dict[str, Any]:
    """The record of a Protobuf value, read with its writer's message (``tail``, audit, the outcome
    worker's provenance: give it :func:`protobuf_schemas` with ``nulls=True``); DecodeError saying
    why it cannot be read."""
    sid = schema_id(value, len(value) if value else 0)
    schema = schemas[sid]
    try:
        message, pos = _message(value, schema)
        return message.convert(message.parse(value[pos:]))
    except Exception as exc:
        raise DecodeError(f"{_MISMATCH} {sid}: {_why(exc)}") from None


def _reader(schema: Schema) -> Read:
    """The reader of whole values of one writer's schema (an unset field read as None)."""
    compiled = ProtoSchema(compile_schema(schema.schema_str), nulls=True)

    def read(value: bytes) -> dict[str, Any]:
        try:
            message, pos = _message(value, compiled)
            return message.convert(message.parse(value[pos:]))
        except Exception as exc:
            raise DecodeError(f"payload does not match its Protobuf schema: {_why(exc)}") from None

    return read


CODEC = Codec(
    schema_type="PROTOBUF",
    event_schema=event_proto_schema,
    refusal=protobuf_refusal,
    decoder=lambda client, card, size, limits, shape: ProtobufDecoder(client, size, limits, shape, card),
    output_schema=proto_schema,
    serializer=protobuf_serializer,
    event_serializer=protobuf_event_serializer,
    reader=_reader,
)
