"""The registered forms of the contracts: Avro schemas and JSON Schema documents.

Prediction and Provenance come from their pydantic models (:mod:`stream.contracts`), through the
JSON Schema pydantic writes: objects with properties become records named by their title, maps
stay maps, ``X | None`` becomes ``["null", X]``, a Literal a string, a timezone-aware datetime a
``timestamp-micros``, and a pydantic default the Avro default (so ``role``, added later, reads
older records as ``champion``). The event's features are ``dict[str, Any]`` in the contract: their
names and types come from the model card, so the input schemas are made for a card.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from stream.contracts import Event, ModelCard, Prediction, Provenance

NAMESPACE = "streamscore"
TIMESTAMP = {"type": "long", "logicalType": "timestamp-micros"}
_SCALARS = {"string": "string", "number": "double", "integer": "long", "boolean": "boolean"}
OUTPUTS: dict[str, type[BaseModel]] = {"prediction": Prediction, "provenance": Provenance}


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


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema document of a pydantic contract (as in ``schemas/``)."""
    return model.model_json_schema()


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


def dumps(schema: dict[str, Any]) -> str:
    return json.dumps(schema, separators=(",", ":"))
