"""Avro: the contracts' Avro schemas, the carry check, the decoder and the serializer.

Prediction and Provenance come from their pydantic models (:mod:`stream.contracts`), through the
JSON Schema pydantic writes: objects with properties become records named by their title, maps
stay maps, ``X | None`` becomes ``["null", X]``, a Literal a string, a timezone-aware datetime a
``timestamp-micros``, and a pydantic default the Avro default (so ``role``, added later, reads
older records as ``champion``). The event's schema is made for a card and the event's shape: a
record of its features, in card order, under the shape's names. A registered event schema carries
the card if the shape's features are a record with a number (a string, for a string feature) for
every feature, or a map of them; other fields may be there, in any order (:func:`~.base.carry_refusal`).

Values are read by code generated for their writer's schema (:mod:`.avro_reader`) and validated
in one pydantic call; one that cannot be read is a dead letter (``decode``). Predictions and
provenance are written by code generated for their schema (:mod:`.avro_writer`).
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Callable, Sequence
from functools import cache, partial
from typing import Any

import fastavro
import orjson
from confluent_kafka.schema_registry import Schema
from pydantic import BaseModel, TypeAdapter, ValidationError

from stream.contracts import Event, ModelCard
from stream.errors import DecodeError, PoisonEvent
from stream.formats.avro_reader import Reader, avro_reader
from stream.formats.avro_writer import compile_writer
from stream.formats.base import Decoded, Form, Node, Want, carry_refusal, dumps
from stream.formats.bounds import SchemaLimits
from stream.formats.codecs import Codec
from stream.formats.registry import SchemaSource, WriterSchemas, header, schema_id
from stream.scoring.codec import schema_error
from stream.scoring.events import DEFAULT_SHAPE, FIXED_SHAPE, EventShape
from stream.scoring.records import Serialize
from stream.settings.events import ENTITY_FIELD

NAMESPACE = "streamscore"
TIMESTAMP = {"type": "long", "logicalType": "timestamp-micros"}
_SCALARS = {"string": "string", "number": "double", "integer": "long", "boolean": "boolean"}

_AVRO_NUMBERS = frozenset(("int", "long", "float", "double"))
_AVRO_TIMES = frozenset(("timestamp-millis", "timestamp-micros"))


def avro_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The Avro record schema of a pydantic contract."""
    document = model.model_json_schema()
    return _avro(document, document.get("$defs", {}), set())


def _avro(node: dict[str, Any], defs: dict[str, Any], named: set[str]) -> Any:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return name if name in named else _avro(defs[name], defs, named)
    if "anyOf" in node:
        kinds = [k for k in node["anyOf"] if k.get("type") != "null"]
        if len(kinds) != 1:
            raise ValueError(f"no Avro form for {node}")
        inner = _avro(kinds[0], defs, named)
        return ["null", inner] if len(kinds) < len(node["anyOf"]) else inner
    kind = node.get("type")
    if kind == "object" and "properties" in node:
        name = node["title"]
        named.add(name)
        required = set(node.get("required", ()))
        fields = []
        for field, spec in node["properties"].items():
            entry: dict[str, Any] = {"name": field, "type": _avro(spec, defs, named)}
            if "description" in spec:
                entry["doc"] = spec["description"]
            if field not in required and "default" in spec:
                entry["default"] = spec["default"]
            fields.append(entry)
        record = {"type": "record", "name": name, "namespace": NAMESPACE, "fields": fields}
        if "description" in node:
            record["doc"] = node["description"]
        return record
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return {"type": "map", "values": _avro(node["additionalProperties"], defs, named)}
    if kind == "string" and node.get("format") == "date-time":
        return dict(TIMESTAMP)
    if kind in _SCALARS:
        return _SCALARS[kind]
    raise ValueError(f"no Avro form for {node}")


_AVRO_TYPES = {"number": "double", "integer": "long", "string": "string"}


def event_avro_schema(card: ModelCard, shape: EventShape = DEFAULT_SHAPE) -> dict[str, Any]:
    """The Avro schema of an event carrying ``card``'s features in ``shape`` (a record of them, in
    card order, under the shape's path; a string feature a string)."""
    features: list[dict[str, Any]] = [{"name": f.name, "type": _AVRO_TYPES[f.type]} for f in card.features]
    envelope = [
        {"name": shape.id_field, "type": "string"},
        {"name": shape.time_field, "type": dict(TIMESTAMP)},
        {"name": ENTITY_FIELD, "type": ["null", "string"], "default": None},
    ]
    if shape.flat:
        return {"type": "record", "name": "Event", "namespace": NAMESPACE, "doc": Event.__doc__,
                "fields": envelope + features}  # fmt: skip
    kind: dict[str, Any] = {"type": "record", "name": "Features", "namespace": NAMESPACE, "fields": features}
    path = shape.path
    for depth in range(len(path) - 1, 0, -1):  # the records holding it, innermost first
        fields = [{"name": path[depth], "type": kind}]
        kind = {"type": "record", "name": f"Within{depth}", "namespace": NAMESPACE, "fields": fields}
    return {"type": "record", "name": "Event", "namespace": NAMESPACE, "doc": Event.__doc__,
            "fields": [*envelope, {"name": path[0], "type": kind}]}  # fmt: skip


def avro_refusal(schema: Any, card: ModelCard, shape: EventShape = DEFAULT_SHAPE) -> str | None:
    """Why an Avro event schema cannot carry ``card``'s features in ``shape``, or None if it can."""
    top = _node(schema)
    if top is None or not isinstance(schema, dict) or schema.get("type") != "record":
        return "it is not an Avro record"
    return carry_refusal(top, card, shape, _FORM)


def _node(kind: Any) -> Node | None:
    """A record's fields (no other name), or a map's values (any name); None for any other type."""
    kind = _non_null(kind)
    if not isinstance(kind, dict):
        return None
    if kind.get("type") == "record":
        fields = kind.get("fields")
        if not isinstance(fields, list) or not all(isinstance(f, dict) and "name" in f for f in fields):
            return None
        return Node({f["name"]: f.get("type") for f in fields}, None)
    if kind.get("type") == "map" and "values" in kind:
        return Node({}, kind["values"])
    return None


def _non_null(kind: Any) -> Any:
    if isinstance(kind, list):
        rest = [k for k in kind if k != "null"]
        return rest[0] if len(rest) == 1 else kind
    return kind


def _holds(kind: Any, want: Want) -> bool:
    """Every branch of ``kind`` but null reads as what is wanted."""
    branches = [k for k in (kind if isinstance(kind, list) else [kind]) if k != "null"]
    return bool(branches) and all(_reads_as(k, want) for k in branches)


def _reads_as(kind: Any, want: Want) -> bool:
    name, logical = (kind.get("type"), kind.get("logicalType")) if isinstance(kind, dict) else (kind, None)
    if want == "string":
        return name in ("string", "enum")
    if want == "number":
        return name in _AVRO_NUMBERS and logical is None
    return (
        name == "string"
        or (name in _AVRO_NUMBERS and logical is None)
        or (name == "long" and logical in _AVRO_TIMES)
    )


_FORM = Form(node=_node, holds=_holds, absent="it has no field", container="a record or a map")


class AvroDecoder:
    """Avro values (each read with its writer's schema) to events, validated in one pydantic call."""

    def __init__(
        self,
        client: SchemaSource,
        max_bytes: int,
        limits: SchemaLimits | None = None,
        shape: EventShape = FIXED_SHAPE,
        card: ModelCard | None = None,
    ) -> None:
        """``shape``: the contract events are validated into (by default the fixed :class:`Event`);
        ``card``: each writer's schema must carry its features in ``shape``, or its events are refused."""
        refuse = None if card is None else partial(_refusal, card=card, shape=shape)
        self.schemas: WriterSchemas[Reader] = WriterSchemas(
            client, "AVRO", avro_reader, limits=limits, refuse=refuse
        )
        self._max_bytes = max_bytes
        self._contract = shape.contract

    def __call__(self, values: Sequence[bytes | None]) -> Decoded:
        schemas, max_bytes = self.schemas, self._max_bytes
        records: list[Any] = []
        last, read = -1, None  # the id of the value before, and its reader: a batch mostly has one
        for value in values:
            try:
                sid = schema_id(value, max_bytes)
                if sid != last:
                    read, last = schemas[sid], sid
                try:
                    record, end = read(value)  # type: ignore[arg-type,misc]
                except Exception as exc:  # a payload cut short, not UTF-8, an index out of range, ...
                    raise DecodeError(f"payload does not match Avro schema id {sid}: {exc!r}") from None
                if end != len(value):  # type: ignore[arg-type]
                    raise DecodeError(
                        f"payload does not match Avro schema id {sid}: {len(value) - end} bytes left over"  # type: ignore[arg-type]
                    )
                records.append(record)
            except PoisonEvent as exc:
                records.append(exc)
        return _validate(records, self._contract)


def _validate(records: list[Any], contract: type[BaseModel]) -> Decoded:
    """Events from decoded records in one pydantic call; record by record if any is refused."""
    if not any(isinstance(r, PoisonEvent) for r in records):
        try:
            return _events(contract).validate_python(records)  # type: ignore[no-any-return]
        except ValidationError:
            pass
    return [r if isinstance(r, PoisonEvent) else _one(r, contract) for r in records]


@cache
def _events(contract: type[BaseModel]) -> TypeAdapter[list[Any]]:
    return TypeAdapter(list[contract])  # type: ignore[valid-type]


def _one(record: Any, contract: type[BaseModel]) -> Any:
    try:
        return contract.model_validate(record)
    except ValidationError as exc:
        return schema_error(exc)


def avro_serializer(schema_id: int, schema: dict[str, Any]) -> Serialize:
    return compile_writer(schema, header(schema_id))


def _refusal(schema: Schema, card: ModelCard, shape: EventShape) -> str | None:
    reason = avro_refusal(json.loads(schema.schema_str), card, shape)
    return None if reason is None else f"cannot carry the features of model {card.name}: {reason}"


def avro_event_serializer(schema_id: int, schema_str: str, time_field: str = "occurred_at") -> Serialize:
    """JSON event bytes -> an Avro wire value of ``schema_str`` (the time, under ``time_field``, an
    RFC 3339 string or epoch milliseconds); a malformed event is its JSON behind the header, for the
    worker to refuse."""
    prefix, parsed = header(schema_id), fastavro.parse_schema(json.loads(schema_str))

    def avro(value: bytes) -> bytes:
        out = io.BytesIO()
        out.write(prefix)
        try:
            event = orjson.loads(value)
            event[time_field] = _time(event[time_field])
            fastavro.schemaless_writer(out, parsed, event, strict=True)
        except Exception:  # a malformed event: its bytes behind the header, for the worker to refuse
            return prefix + value
        return out.getvalue()

    return avro  # type: ignore[return-value]


def _time(value: str | float) -> dt.datetime:
    """An RFC 3339 time or epoch milliseconds, as the datetime fastavro writes as a timestamp."""
    if isinstance(value, str):
        return dt.datetime.fromisoformat(value)
    return dt.datetime.fromtimestamp(value / 1000, dt.UTC)


def _read(schema: Schema) -> Callable[[bytes], object]:
    read = avro_reader(schema)
    return lambda value: read(value)[0]


CODEC = Codec(
    schema_type="AVRO",
    event_schema=lambda card, shape: dumps(event_avro_schema(card, shape)),
    refusal=lambda text, card, shape: avro_refusal(json.loads(text), card, shape),
    decoder=lambda client, card, size, limits, shape: AvroDecoder(client, size, limits, shape, card),
    output_schema=lambda model: dumps(avro_schema(model)),
    serializer=lambda schema_id, text: avro_serializer(schema_id, json.loads(text)),
    event_serializer=avro_event_serializer,
    reader=_read,
)
