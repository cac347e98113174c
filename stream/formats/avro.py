"""Avro: the contracts' Avro schemas, the carry check, the decoder and the serializer.

Prediction and Provenance come from their pydantic models (:mod:`stream.contracts`), through the
JSON Schema pydantic writes: objects with properties become records named by their title, maps
stay maps, ``X | None`` becomes ``["null", X]``, a Literal a string, a timezone-aware datetime a
``timestamp-micros``, and a pydantic default the Avro default (so ``role``, added later, reads
older records as ``champion``). The event's schema is made for a card: a record of its features,
in card order. A registered event schema carries the card if ``features`` is a record with a
number for every feature, or a map of numbers.

Values are read by code generated for their writer's schema (:mod:`.avro_reader`) and validated
in one pydantic call; one that cannot be read is a dead letter (``decode``). Predictions and
provenance are written by code generated for their schema (:mod:`.avro_writer`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from stream.contracts import Event, ModelCard
from stream.errors import DecodeError, PoisonEvent
from stream.formats.avro_reader import Reader, avro_reader
from stream.formats.avro_writer import compile_writer
from stream.formats.base import ENVELOPE, Decoded
from stream.formats.bounds import SchemaLimits
from stream.formats.registry import SchemaSource, WriterSchemas, header, schema_id
from stream.scoring.codec import schema_error
from stream.scoring.records import Serialize

NAMESPACE = "streamscore"
TIMESTAMP = {"type": "long", "logicalType": "timestamp-micros"}
_SCALARS = {"string": "string", "number": "double", "integer": "long", "boolean": "boolean"}

_AVRO_NUMBERS = frozenset(("int", "long", "float", "double"))

_events = TypeAdapter(list[Event])


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


def event_avro_schema(card: ModelCard) -> dict[str, Any]:
    """The Avro schema of an event carrying ``card``'s features (a record of them, in card order)."""
    features = [{"name": f.name, "type": "long" if f.type == "integer" else "double"} for f in card.features]
    return {
        "type": "record",
        "name": "Event",
        "namespace": NAMESPACE,
        "doc": Event.__doc__,
        "fields": [
            {"name": "event_id", "type": "string"},
            {"name": "occurred_at", "type": dict(TIMESTAMP)},
            {"name": "entity_id", "type": ["null", "string"], "default": None},
            {
                "name": "features",
                "type": {"type": "record", "name": "Features", "namespace": NAMESPACE, "fields": features},
            },
        ],
    }


def avro_refusal(schema: Any, card: ModelCard) -> str | None:
    """Why an Avro event schema cannot carry ``card``'s features, or None if it can."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return "it is not an Avro record"
    fields = {f["name"]: f["type"] for f in schema.get("fields", [])}
    missing = [name for name in ENVELOPE if name not in fields]
    if missing:
        return f"it has no field {missing[0]!r}"
    features = _non_null(fields["features"])
    if isinstance(features, dict) and features.get("type") == "map":
        return None if _avro_number(features["values"]) else "its features map does not hold numbers"
    if not isinstance(features, dict) or features.get("type") != "record":
        return "its 'features' field is neither a record nor a map"
    declared = {f["name"]: f["type"] for f in features.get("fields", [])}
    for spec in card.features:
        if spec.name not in declared:
            return f"feature {spec.name!r} of the model card is not among its features"
        if not _avro_number(declared[spec.name]):
            return f"feature {spec.name!r} is {declared[spec.name]!r} there, not a number"
    return None


def _non_null(kind: Any) -> Any:
    if isinstance(kind, list):
        rest = [k for k in kind if k != "null"]
        return rest[0] if len(rest) == 1 else kind
    return kind


def _avro_number(kind: Any) -> bool:
    kind = _non_null(kind)
    name = kind.get("type") if isinstance(kind, dict) else kind
    return name in _AVRO_NUMBERS


class AvroDecoder:
    """Avro values (each read with its writer's schema) to events, validated in one pydantic call."""

    def __init__(self, client: SchemaSource, max_bytes: int, limits: SchemaLimits | None = None) -> None:
        self.schemas: WriterSchemas[Reader] = WriterSchemas(client, "AVRO", avro_reader, limits=limits)
        self._max_bytes = max_bytes

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
        return _validate(records)


def _validate(records: list[Any]) -> Decoded:
    """Events from decoded records in one pydantic call; record by record if any is refused."""
    if not any(isinstance(r, PoisonEvent) for r in records):
        try:
            return _events.validate_python(records)  # type: ignore[return-value]
        except ValidationError:
            pass
    return [r if isinstance(r, PoisonEvent) else _one(r) for r in records]


def _one(record: Any) -> Event | PoisonEvent:
    try:
        return Event.model_validate(record)
    except ValidationError as exc:
        return schema_error(exc)


def avro_serializer(schema_id: int, schema: dict[str, Any]) -> Serialize:
    return compile_writer(schema, header(schema_id))
