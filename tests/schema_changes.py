"""A producer's schema changes, step by step, in Avro and in JSON Schema (``test_schema_evolution``).

Each :class:`Step` edits the previous version of the producer's schema and says under which
compatibility level it is registered and what the worker must make of its events.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from conftest import MODELS

from stream.formats.avro import event_avro_schema
from stream.formats.json_schema import event_json_schema
from stream.scoring.model import load_card, resolve

CARD = load_card(resolve(MODELS, "loan-approval"))
Edit = Callable[[dict], None]


@dataclass(frozen=True)
class Step:
    """A version the producer registers under ``compatibility`` and switches to."""

    name: str
    compatibility: str
    edit: Edit  # the previous version's schema -> this one's
    outcome: str = "scored"  # scored, refused by the registry, or dead letters naming ``field``
    field: str = ""


def avro_features(schema: dict) -> list[dict]:
    return next(f for f in schema["fields"] if f["name"] == "features")["type"]["fields"]


def avro_base() -> dict:
    schema = event_avro_schema(CARD)
    for field in avro_features(schema):
        field["type"] = {"salary": "float", "age": "int"}.get(field["name"], field["type"])
    channel = {"type": "enum", "name": "Channel", "symbols": ["WEB", "APP"], "default": "WEB"}
    schema["fields"].append({"name": "channel", "type": channel})
    return {**schema, "name": "LoanApplication", "namespace": "shop"}


def avro_set(name: str, kind: object) -> Edit:
    return lambda s: next(f for f in avro_features(s) if f["name"] == name).update(type=kind)


def avro_drop(name: str) -> Edit:
    def edit(schema: dict) -> None:
        schema["fields"] = [f for f in schema["fields"] if f["name"] != name]
        avro_features(schema)[:] = [f for f in avro_features(schema) if f["name"] != name]

    return edit


def avro_reorder(schema: dict) -> None:
    schema["fields"].reverse()
    avro_features(schema).reverse()


def avro_add(field: dict, into_features: bool = False) -> Edit:
    return lambda s: (avro_features(s) if into_features else s["fields"]).append(field)


def avro_enum_symbol(symbol: str) -> Edit:
    return lambda s: next(f for f in s["fields"] if f["name"] == "channel")["type"]["symbols"].append(symbol)


def edits(*edits: Edit) -> Edit:
    return lambda s: [edit(s) for edit in edits] and None


AVRO_STEPS = (
    Step(
        "an optional field added",
        "BACKWARD",
        avro_add({"name": "note", "type": ["null", "string"], "default": None}),
    ),
    Step("the optional field removed", "FULL", avro_drop("note")),
    Step(
        "int widened to long, float to double",
        "BACKWARD",
        edits(avro_set("age", "long"), avro_set("salary", "double")),
    ),
    Step("an enum symbol added", "BACKWARD", avro_enum_symbol("BRANCH")),
    Step("fields reordered", "FULL", avro_reorder),
    Step("a feature for the challenger", "FORWARD", avro_add({"name": "tenure", "type": "double"}, True)),
    Step(
        "a field without a default under FULL",
        "FULL",
        avro_add({"name": "branch", "type": "string"}),
        "refused",
    ),
    Step("a feature the model needs removed", "BACKWARD", avro_drop("age"), "dead", "age"),
    Step(
        "a number become a string",
        "NONE",
        edits(avro_add({"name": "age", "type": "long"}, True), avro_set("salary", "string")),
        "dead",
        "salary",
    ),
    Step("back to a good version", "NONE", avro_set("salary", "double")),
)


def json_base() -> dict:
    schema = event_json_schema(CARD)
    schema["properties"]["features"]["properties"]["age"] = {"type": "integer"}
    schema["properties"]["channel"] = {"enum": ["web", "app"]}
    return {"$schema": "http://json-schema.org/draft-07/schema#", "title": "LoanApplication",
            **{k: v for k, v in schema.items() if k in ("type", "properties", "required")}}  # fmt: skip


def json_features(schema: dict) -> dict:
    return schema["properties"]["features"]


def json_drop(name: str) -> Edit:
    def edit(schema: dict) -> None:
        for node in (schema, json_features(schema)):
            node["properties"].pop(name, None)
            node["required"] = [r for r in node.get("required", []) if r != name]

    return edit


def json_set(name: str, kind: str, required: bool = False) -> Edit:
    """A feature's type set (a feature added, when it is new)."""

    def edit(schema: dict) -> None:
        json_features(schema)["properties"][name] = {"type": kind}
        if required:
            json_features(schema)["required"].append(name)

    return edit


def json_reorder(schema: dict) -> None:
    features = json_features(schema)
    features["properties"] = dict(reversed(features["properties"].items()))


JSON_STEPS = (  # the top level is an open content model, the features a closed one
    Step(
        "an optional field added (open model)",
        "FORWARD",
        lambda s: s["properties"].update(note={"type": "string"}),
    ),
    Step("the optional field removed (open model)", "BACKWARD", json_drop("note")),
    Step("integer widened to number", "BACKWARD", json_set("age", "number")),
    Step("an enum value added", "BACKWARD", lambda s: s["properties"]["channel"]["enum"].append("branch")),
    Step("properties reordered", "FULL", json_reorder),
    Step("a feature for the challenger", "BACKWARD", json_set("tenure", "number")),
    Step(
        "a required feature added (closed model)", "BACKWARD", json_set("branch", "string", True), "refused"
    ),
    Step("a feature the model needs removed", "NONE", json_drop("age"), "dead", "age"),
    Step(
        "a number become a string",
        "NONE",
        edits(json_set("age", "number"), json_set("salary", "string")),
        "dead",
        "salary",
    ),
    Step("back to a good version", "NONE", json_set("salary", "number")),
)


def record(kind: str, schema: dict, document: dict, step: int) -> dict:
    """``document`` as the producer of ``schema`` writes it."""
    record = copy.deepcopy(document)
    features = record["features"]
    features["salary"] = float(np.float32(features["salary"]))  # a float's value: the same in every version
    features["tenure"] = float(step)
    avro = kind == "avro"
    declared = (
        {f["name"]: f["type"] for f in avro_features(schema)} if avro else json_features(schema)["properties"]
    )
    for name in list(features):
        if name not in declared:
            del features[name]
        elif declared[name] in ("string", {"type": "string"}):
            features[name] = str(features[name])
    symbols = next(f["type"]["symbols"] for f in schema["fields"] if f["name"] == "channel") if avro else (
        schema["properties"]["channel"]["enum"])  # fmt: skip
    record["channel"] = symbols[step % len(symbols)]
    if avro:
        record["occurred_at"] = dt.datetime.fromisoformat(record["occurred_at"])
    return record
