"""JSON Schema: the contracts' documents, the carry check, the decoder and the serializer.

The event's document is made for a card and the event's shape: its features all required, no
others. A registered event document carries the card if each feature may only be a number (a
string, for a string feature), as a property or as additional properties; other properties may be
declared (:func:`~.base.carry_refusal`). Payloads are validated as a batch by the JSON path's
decoder; a writer's schema is checked as well (fastjsonschema, compiled once per id), except the
one streamscore makes for the card (:func:`event_json_schema`), whose every rule the contract and
the card's check enforce. The payload written is the JSON the record builder writes anyway.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import fastjsonschema
import orjson
from confluent_kafka.schema_registry import Schema
from pydantic import BaseModel

from stream.contracts import Event, ModelCard
from stream.errors import PoisonEvent, SchemaError
from stream.formats.base import Decoded, Form, Node, Want, carry_refusal, dumps
from stream.formats.bounds import SchemaLimits
from stream.formats.codecs import Codec
from stream.formats.registry import HEADER, SchemaSource, WriterSchemas, header, schema_id
from stream.scoring.codec import BatchDecoder
from stream.scoring.events import DEFAULT_SHAPE, FIXED_SHAPE, EventShape
from stream.scoring.records import Serialize

Validator = Callable[[Any], object] | None


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema document of a pydantic contract (as in ``schemas/``)."""
    return model.model_json_schema()


def event_json_schema(card: ModelCard, shape: EventShape = DEFAULT_SHAPE) -> dict[str, Any]:
    """The JSON Schema of an event carrying ``card``'s features in ``shape`` (all required, no others)."""
    document = Event.model_json_schema()
    names = {"event_id": shape.id_field, "occurred_at": shape.time_field}
    envelope = {names.get(k, k): v for k, v in document["properties"].items() if k != "features"}
    required = [names.get(k, k) for k in document["required"] if k != "features"]
    features = {
        "type": "object",
        "properties": {f.name: {"type": f.type} for f in card.features},
        "required": [f.name for f in card.features],
        "additionalProperties": False,
    }
    if shape.flat:
        properties, required = {**envelope, **features["properties"]}, required + features["required"]
    else:
        for name in reversed(shape.path[1:]):  # the objects holding it, innermost first
            features = {"type": "object", "properties": {name: features}, "required": [name]}
        properties, required = {**envelope, shape.path[0]: features}, [*required, shape.path[0]]
    if names != {"event_id": "event_id", "occurred_at": "occurred_at"} or shape.path != ("features",):
        document.pop("examples", None)  # they show the default names
    return {**document, "properties": properties, "required": required}


def json_refusal(schema: Any, card: ModelCard, shape: EventShape = DEFAULT_SHAPE) -> str | None:
    """Why a JSON Schema event document cannot carry ``card``'s features in ``shape``, or None if it can."""
    top = _node(schema)
    if top is None:
        return "it is not a JSON Schema object"
    return carry_refusal(top, card, shape, _FORM)


def _node(kind: Any) -> Node | None:
    """An object's properties, and what any other property may hold; None if it is not an object."""
    if not isinstance(kind, dict):
        return None
    kinds = _kinds(kind)
    if kinds is not None and "object" not in kinds:
        return None
    properties = kind.get("properties", {})
    others = kind.get("additionalProperties", True)
    if not isinstance(properties, dict):
        return None
    return Node(properties, None if others is False else (others if isinstance(others, dict) else {}))


def _kinds(kind: dict[str, Any]) -> set[str] | None:
    """The types a subschema allows (None: any)."""
    declared = kind.get("type")
    if declared is None:
        return None
    return {declared} if isinstance(declared, str) else set(declared)


def _holds(kind: Any, want: Want) -> bool:
    """Every type ``kind`` allows but null is what is wanted (a subschema of no type allows any)."""
    if not isinstance(kind, dict):
        return kind is not False
    kinds = _kinds(kind)
    if kinds is None:
        return True
    kinds.discard("null")
    return bool(kinds) and kinds <= _JSON_TYPES[want]


_JSON_TYPES: dict[Want, frozenset[str]] = {
    "string": frozenset(("string",)),
    "number": frozenset(("number", "integer")),
    "time": frozenset(("string", "number", "integer")),
}
_FORM = Form(node=_node, holds=_holds, absent="it allows no property", container="an object")


class JsonSchemaDecoder:
    """JSON Schema values: the header read, the payloads validated as a batch as on the JSON path."""

    def __init__(
        self,
        client: SchemaSource,
        card: ModelCard,
        max_bytes: int,
        limits: SchemaLimits | None = None,
        shape: EventShape = FIXED_SHAPE,
    ) -> None:
        """``shape``: the contract payloads are validated into (by default the fixed :class:`Event`);
        each writer's schema must carry ``card``'s features in it, or its events are refused."""
        own = event_json_schema(card, shape)
        self.schemas: WriterSchemas[Validator] = WriterSchemas(
            client,
            "JSON",
            lambda s: _validator(s, own),
            limits=limits,
            refuse=partial(_refusal, card=card, shape=shape),
        )
        self._max_bytes = max_bytes
        self._payloads = BatchDecoder(max_bytes, shape.contract)

    def __call__(self, values: Sequence[bytes | None]) -> Decoded:
        schemas, max_bytes = self.schemas, self._max_bytes
        refused: list[PoisonEvent | None] = []
        payloads: list[bytes] = []
        last, check = -1, None  # the id of the value before, and its validator
        for value in values:
            try:
                sid = schema_id(value, max_bytes)
                if sid != last:
                    check, last = schemas[sid], sid
                payload = value[HEADER.size :]  # type: ignore[index]
                if check is not None:
                    _check(check, payload, sid)
            except PoisonEvent as exc:
                refused.append(exc)
                continue
            refused.append(None)
            payloads.append(payload)
        events = iter(self._payloads(payloads))
        return [next(events) if poison is None else poison for poison in refused]


def _validator(schema: Schema, own: dict[str, Any]) -> Validator:
    document = json.loads(schema.schema_str)
    return None if document == own else fastjsonschema.compile(document)


def _check(check: Callable[[Any], object], payload: bytes, sid: int) -> None:
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return  # the contract's decoder says why
    try:
        check(document)
    except fastjsonschema.JsonSchemaException as exc:
        raise SchemaError(f"payload does not match JSON schema id {sid}: {exc.message}") from None


def _refusal(schema: Schema, card: ModelCard, shape: EventShape) -> str | None:
    reason = json_refusal(json.loads(schema.schema_str), card, shape)
    return None if reason is None else f"cannot carry the features of model {card.name}: {reason}"


def json_serializer(schema_id: int) -> Serialize:
    prefix, dumps = header(schema_id), orjson.dumps
    return lambda record: prefix + dumps(record)


def _event_serializer(schema_id: int, schema_str: str, time_field: str) -> Callable[[bytes], bytes]:
    """JSON event bytes behind the header: the worker validates them (and refuses malformed ones)."""
    prefix = header(schema_id)
    return lambda value: prefix + value


def _read(schema: Schema) -> Callable[[bytes], object]:
    return lambda value: orjson.loads(value[HEADER.size :])


CODEC = Codec(
    schema_type="JSON",
    event_schema=lambda card, shape: dumps(event_json_schema(card, shape)),
    refusal=lambda text, card, shape: json_refusal(json.loads(text), card, shape),
    decoder=lambda client, card, size, limits, shape: JsonSchemaDecoder(client, card, size, limits, shape),
    output_schema=lambda model: dumps(json_schema(model)),
    serializer=lambda schema_id, text: json_serializer(schema_id),
    event_serializer=_event_serializer,
    reader=_read,
)
