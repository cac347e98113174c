"""JSON Schema: the contracts' documents, the carry check, the decoder and the serializer.

The event's document is made for a card: its features all required, no others. A registered
event document carries the card if each feature may be a number (a property, or additional
properties). Payloads are validated as a batch by the JSON path's decoder; a writer's schema is
checked as well (fastjsonschema, compiled once per id), except the one streamscore makes for the
card (:func:`event_json_schema`), whose every rule the contract and the card's check enforce. The
payload written is the JSON the record builder writes anyway.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import fastjsonschema
import orjson
from confluent_kafka.schema_registry import Schema
from pydantic import BaseModel

from stream.contracts import Event, ModelCard
from stream.errors import PoisonEvent, SchemaError
from stream.formats.base import ENVELOPE, Decoded
from stream.formats.bounds import SchemaLimits
from stream.formats.registry import HEADER, SchemaSource, WriterSchemas, header, schema_id
from stream.scoring.codec import BatchDecoder
from stream.scoring.records import Serialize

_JSON_NUMBERS = frozenset(("number", "integer"))

Validator = Callable[[Any], object] | None


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema document of a pydantic contract (as in ``schemas/``)."""
    return model.model_json_schema()


def event_json_schema(card: ModelCard) -> dict[str, Any]:
    """The JSON Schema of an event carrying ``card``'s features (all required, no others)."""
    document = Event.model_json_schema()
    document["properties"]["features"] = {
        "type": "object",
        "properties": {f.name: {"type": f.type} for f in card.features},
        "required": [f.name for f in card.features],
        "additionalProperties": False,
    }
    return document


def json_refusal(schema: Any, card: ModelCard) -> str | None:
    """Why a JSON Schema event document cannot carry ``card``'s features, or None if it can."""
    if not isinstance(schema, dict):
        return "it is not a JSON Schema object"
    properties = schema.get("properties", {})
    if schema.get("additionalProperties") is False:
        missing = [name for name in ENVELOPE if name not in properties]
        if missing:
            return f"it allows no property {missing[0]!r}"
    features = properties.get("features", {})
    declared = features.get("properties", {})
    others = features.get("additionalProperties", True)
    for spec in card.features:
        kind = declared.get(spec.name)
        if kind is None:
            if others is False:
                return f"feature {spec.name!r} of the model card is not among its features"
            kind = others if isinstance(others, dict) else {}
        if not _json_number(kind):
            return f"feature {spec.name!r} is {kind!r} there, not a number"
    return None


def _json_number(kind: dict[str, Any]) -> bool:
    declared = kind.get("type")
    if declared is None:  # any value
        return True
    kinds = {declared} if isinstance(declared, str) else set(declared)
    return bool(kinds & _JSON_NUMBERS)


class JsonSchemaDecoder:
    """JSON Schema values: the header read, the payloads validated as a batch as on the JSON path."""

    def __init__(
        self, client: SchemaSource, card: ModelCard, max_bytes: int, limits: SchemaLimits | None = None
    ) -> None:
        own = event_json_schema(card)
        self.schemas: WriterSchemas[Validator] = WriterSchemas(
            client, "JSON", lambda s: _validator(s, own), limits=limits
        )
        self._max_bytes = max_bytes
        self._payloads = BatchDecoder(max_bytes)

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


def json_serializer(schema_id: int) -> Serialize:
    prefix, dumps = header(schema_id), orjson.dumps
    return lambda record: prefix + dumps(record)
