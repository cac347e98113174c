"""What every registered format shares: the carry check, the output contracts, a decoder's result.

Each format (:mod:`.avro`, :mod:`.json_schema`) makes the registered forms of the contracts;
checks that a registered input schema can carry the model card's features in the event's shape
(:class:`~stream.scoring.events.EventShape`: the id, time and features under the names the settings
give; under the features, the right type for every feature the card lists, by name; a schema that
cannot is refused with the first reason); decodes registered input values to the same validated
events as JSON's, or the poison that refuses each; and writes predictions and provenance: the
header of their registered schema, then the payload. Dead letters keep the input's bytes; other
topics stay JSON.

The carry check (:func:`carry_refusal`) agrees with the per-event contract: fields the shape does
not read may be declared, in any order, and are ignored; with ``STREAMSCORE_UNKNOWN_FIELDS=dead-letter``
a schema declaring one is refused, as each event carrying one would be.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from stream.contracts import Event, ModelCard, Prediction, Provenance
from stream.errors import PoisonEvent
from stream.scoring.events import EventShape
from stream.settings.events import ENTITY_FIELD

OUTPUTS: dict[str, type[BaseModel]] = {"prediction": Prediction, "provenance": Provenance}

Decoded = list[Event | PoisonEvent]
Want = Literal["string", "number", "time"]
WANTS: dict[Want, str] = {
    "string": "a string",
    "number": "a number",
    "time": "a time (an RFC 3339 string or epoch milliseconds)",
}
STRICT = "STREAMSCORE_UNKNOWN_FIELDS=dead-letter refuses it"


@dataclass(frozen=True, slots=True)
class Node:
    """An object of a writer's schema: its declared names and their types, and the type of any other
    name (None: no other name may be there)."""

    declared: dict[str, Any]
    others: Any


@dataclass(frozen=True, slots=True)
class Form:
    """How a format's schema is read by :func:`carry_refusal`."""

    node: Callable[[Any], Node | None]  # an object of the schema, or None if the type is none
    holds: Callable[[Any, Want], bool]  # every value the type allows is what is wanted (or null)
    absent: str  # "it has no field", "it allows no property"
    container: str  # "a record or a map", "an object"


def carry_refusal(top: Node, card: ModelCard, shape: EventShape, form: Form) -> str | None:
    """Why a writer's schema whose top object is ``top`` cannot carry ``card``'s features in
    ``shape``, or None if it can."""
    for name in shape.required:
        if name not in top.declared and top.others is None:
            return f"{form.absent} {name!r}"
    if shape.strict:
        read = {*shape.envelope, *(f.name for f in card.features if shape.flat)}
        unread = [name for name in top.declared if name not in read]
        if unread:
            return f"it declares {unread[0]!r}, a field the event's shape does not read ({STRICT})"
    wanted: tuple[tuple[str, Want], ...] = (
        (shape.id_field, "string"), (shape.time_field, "time"), (ENTITY_FIELD, "string"),
    )  # fmt: skip
    for name, want in wanted:
        if name in top.declared and not form.holds(top.declared[name], want):
            return f"its field {name!r} is {top.declared[name]!r}, not {WANTS[want]}"
    features = top
    for name in shape.path:
        kind = features.declared.get(name, features.others)
        inner = None if kind is None else form.node(kind)
        if inner is None:
            return (
                f"{form.absent} {name!r}" if kind is None else f"its {name!r} field is not {form.container}"
            )
        features = inner
    return _features_refusal(features, card, shape, form)


def _features_refusal(features: Node, card: ModelCard, shape: EventShape, form: Form) -> str | None:
    """Why the object of features cannot carry the card's, or None."""
    for spec in card.features:
        kind = features.declared.get(spec.name, features.others)
        if kind is None:
            return f"feature {spec.name!r} of the model card is not among its features"
        want: Want = "string" if spec.type == "string" else "number"
        if not form.holds(kind, want):
            return f"feature {spec.name!r} is {kind!r} there, not {WANTS[want]}"
    if shape.strict and not shape.flat:
        listed = {f.name for f in card.features}
        unknown = [name for name in features.declared if name not in listed]
        if unknown:
            return f"its features declare {unknown[0]!r}, which the model card does not list ({STRICT})"
    return None


def dumps(schema: dict[str, Any]) -> str:
    return json.dumps(schema, separators=(",", ":"))
