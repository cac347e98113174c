"""Whether a registered input schema can carry the model card's features (checked at start-up).

The card is the feature contract: the schema registered for the input topic must have the event's
envelope (``event_id``, ``occurred_at``, ``features``) and, under ``features``, a number for every
feature the card lists, by name (an Avro record field or map of numbers, a JSON Schema property or
additional properties that may be numbers). A schema that cannot is refused with the first reason.
"""

from __future__ import annotations

from typing import Any

from stream.contracts import ModelCard

_AVRO_NUMBERS = frozenset(("int", "long", "float", "double"))
_JSON_NUMBERS = frozenset(("number", "integer"))
_ENVELOPE = ("event_id", "occurred_at", "features")


def avro_refusal(schema: Any, card: ModelCard) -> str | None:
    """Why an Avro event schema cannot carry ``card``'s features, or None if it can."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return "it is not an Avro record"
    fields = {f["name"]: f["type"] for f in schema.get("fields", [])}
    missing = [name for name in _ENVELOPE if name not in fields]
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


def json_refusal(schema: Any, card: ModelCard) -> str | None:
    """Why a JSON Schema event document cannot carry ``card``'s features, or None if it can."""
    if not isinstance(schema, dict):
        return "it is not a JSON Schema object"
    properties = schema.get("properties", {})
    if schema.get("additionalProperties") is False:
        missing = [name for name in _ENVELOPE if name not in properties]
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
