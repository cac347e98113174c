"""Schema evolution as producers practise it: versions switched while a worker runs (real registry).

A producer registers its own first schema (Avro: ``salary`` a ``float``, ``age`` an ``int``, a
``channel`` enum; JSON Schema alike), the worker starts on it, and the producer then moves through
the changes of :data:`AVRO_STEPS` / :data:`JSON_STEPS` with confluent-kafka's own serializers
(a version registered before is not checked again: the registry gives its id back),
each version registered under the compatibility level the step sets, all sent in one run while the
worker scores. Each compatible change gives no dead letter and the score the model gives the same
features; the one the registry refuses is never sent; the changes that break the model (a feature it
needs removed, a number become a string) give dead letters naming the field and the writer's
schema version; then the producer goes back to a good version and scoring goes on. Nothing is lost:
every event sent is a prediction or a dead letter. A challenger reading a feature the champion does
not (``tenure``, added by a later version) answers exactly the events that carry it.

The outputs evolve too: a worker whose prediction schema adds an optional field to the one
registered registers it as the next version, and a consumer reading with the previous one still
reads every prediction.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from conftest import MODELS, read_topic
from model_versions import NAME, add_version, linear, registry

from stream.contracts import DeadLetter, Prediction
from stream.formats.avro import avro_schema, event_avro_schema
from stream.formats.json_schema import event_json_schema
from stream.kafka.topics import ensure_topics
from stream.messages import inbound
from stream.scoring.model import load_card, resolve
from stream.settings import Settings
from stream.tools.produce import events, produce
from stream.worker.app import create_pipeline

CARD = load_card(resolve(MODELS, NAME))
PER_STEP = 30
Edit = Callable[[dict], None]


@dataclass(frozen=True)
class Step:
    """A version the producer registers under ``compatibility`` and switches to."""

    name: str
    compatibility: str
    edit: Edit  # the previous version's schema -> this one's
    outcome: str = "scored"  # scored, refused by the registry, or dead letters naming ``field``
    field: str = ""


def _features(schema: dict) -> list[dict]:
    return next(f for f in schema["fields"] if f["name"] == "features")["type"]["fields"]


def _avro_base() -> dict:
    schema = event_avro_schema(CARD)
    for field in _features(schema):
        field["type"] = {"salary": "float", "age": "int"}.get(field["name"], field["type"])
    channel = {"type": "enum", "name": "Channel", "symbols": ["WEB", "APP"], "default": "WEB"}
    schema["fields"].append({"name": "channel", "type": channel})
    return {**schema, "name": "LoanApplication", "namespace": "shop"}


def _avro_set(name: str, kind: object) -> Edit:
    return lambda s: next(f for f in _features(s) if f["name"] == name).update(type=kind)


def _avro_drop(name: str) -> Edit:
    def edit(schema: dict) -> None:
        schema["fields"] = [f for f in schema["fields"] if f["name"] != name]
        _features(schema)[:] = [f for f in _features(schema) if f["name"] != name]

    return edit


def _avro_reorder(schema: dict) -> None:
    schema["fields"].reverse()
    _features(schema).reverse()


def _avro_add(field: dict, into_features: bool = False) -> Edit:
    return lambda s: (_features(s) if into_features else s["fields"]).append(field)


def _avro_enum_symbol(symbol: str) -> Edit:
    return lambda s: next(f for f in s["fields"] if f["name"] == "channel")["type"]["symbols"].append(symbol)


def _edits(*edits: Edit) -> Edit:
    return lambda s: [edit(s) for edit in edits] and None


AVRO_STEPS = (
    Step(
        "an optional field added",
        "BACKWARD",
        _avro_add({"name": "note", "type": ["null", "string"], "default": None}),
    ),
    Step("the optional field removed", "FULL", _avro_drop("note")),
    Step(
        "int widened to long, float to double",
        "BACKWARD",
        _edits(_avro_set("age", "long"), _avro_set("salary", "double")),
    ),
    Step("an enum symbol added", "BACKWARD", _avro_enum_symbol("BRANCH")),
    Step("fields reordered", "FULL", _avro_reorder),
    Step("a feature for the challenger", "FORWARD", _avro_add({"name": "tenure", "type": "double"}, True)),
    Step(
        "a field without a default under FULL",
        "FULL",
        _avro_add({"name": "branch", "type": "string"}),
        "refused",
    ),
    Step("a feature the model needs removed", "BACKWARD", _avro_drop("age"), "dead", "age"),
    Step(
        "a number become a string",
        "NONE",
        _edits(_avro_add({"name": "age", "type": "long"}, True), _avro_set("salary", "string")),
        "dead",
        "salary",
    ),
    Step("back to a good version", "NONE", _avro_set("salary", "double")),
)


def _json_base() -> dict:
    schema = event_json_schema(CARD)
    schema["properties"]["features"]["properties"]["age"] = {"type": "integer"}
    schema["properties"]["channel"] = {"enum": ["web", "app"]}
    return {"$schema": "http://json-schema.org/draft-07/schema#", "title": "LoanApplication",
            **{k: v for k, v in schema.items() if k in ("type", "properties", "required")}}  # fmt: skip


def _json_features(schema: dict) -> dict:
    return schema["properties"]["features"]


def _json_drop(name: str) -> Edit:
    def edit(schema: dict) -> None:
        for node in (schema, _json_features(schema)):
            node["properties"].pop(name, None)
            node["required"] = [r for r in node.get("required", []) if r != name]

    return edit


def _json_set(name: str, kind: str, required: bool = False) -> Edit:
    """A feature's type set (a feature added, when it is new)."""

    def edit(schema: dict) -> None:
        _json_features(schema)["properties"][name] = {"type": kind}
        if required:
            _json_features(schema)["required"].append(name)

    return edit


def _json_reorder(schema: dict) -> None:
    features = _json_features(schema)
    features["properties"] = dict(reversed(features["properties"].items()))


JSON_STEPS = (  # the top level is an open content model, the features a closed one
    Step(
        "an optional field added (open model)",
        "FORWARD",
        lambda s: s["properties"].update(note={"type": "string"}),
    ),
    Step("the optional field removed (open model)", "BACKWARD", _json_drop("note")),
    Step("integer widened to number", "BACKWARD", _json_set("age", "number")),
    Step("an enum value added", "BACKWARD", lambda s: s["properties"]["channel"]["enum"].append("branch")),
    Step("properties reordered", "FULL", _json_reorder),
    Step("a feature for the challenger", "BACKWARD", _json_set("tenure", "number")),
    Step(
        "a required feature added (closed model)", "BACKWARD", _json_set("branch", "string", True), "refused"
    ),
    Step("a feature the model needs removed", "NONE", _json_drop("age"), "dead", "age"),
    Step(
        "a number become a string",
        "NONE",
        _edits(_json_set("age", "number"), _json_set("salary", "string")),
        "dead",
        "salary",
    ),
    Step("back to a good version", "NONE", _json_set("salary", "number")),
)


def _record(kind: str, schema: dict, document: dict, step: int) -> dict:
    """``document`` as the producer of ``schema`` writes it."""
    record = copy.deepcopy(document)
    features = record["features"]
    features["salary"] = float(np.float32(features["salary"]))  # a float's value: the same in every version
    features["tenure"] = float(step)
    avro = kind == "avro"
    declared = (
        {f["name"]: f["type"] for f in _features(schema)} if avro else _json_features(schema)["properties"]
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


def _model_scores(documents: list[dict]) -> dict[str, float]:
    pipeline = create_pipeline(Settings(model_dir=MODELS))
    batch = [inbound(orjson.dumps(d), None, "events", 0, i) for i, d in enumerate(documents)]
    records = pipeline.process(batch).records
    found = [orjson.loads(r.value) for r in records if r.topic == pipeline.topics.predictions]
    return {p["event_id"]: p["score"] for p in found}


def _serializer(
    kind: str, client: SchemaRegistryClient, schema: dict
) -> Callable[[dict, SerializationContext], bytes]:
    text = orjson.dumps(schema).decode()
    if kind == "avro":
        return AvroSerializer(client, text, conf={"auto.register.schemas": True})
    return JSONSerializer(text, client, conf={"auto.register.schemas": True})


@pytest.mark.parametrize("kind", ["avro", "json-schema"])
def test_a_producer_evolves_its_schema_while_the_worker_scores(
    kind, kafka_bootstrap, schema_registry, worker_topics, start_worker, tmp_path
):
    ensure_topics(kafka_bootstrap, {worker_topics.input: 2})
    client = SchemaRegistryClient({"url": schema_registry})
    subject, context = (
        f"{worker_topics.input}-value",
        SerializationContext(worker_topics.input, MessageField.VALUE),
    )
    documents = [orjson.loads(v) for _, v, *_ in itertools.islice(events(seed=27), PER_STEP * 11)]
    schema = _avro_base() if kind == "avro" else _json_base()
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    sent: dict[str, tuple[int, Step]] = {}  # event id -> (the version it was written with, its step)

    def send(step: Step, batch: list[dict]) -> None:
        serialize = _serializer(kind, client, schema)
        for document in batch:
            value = serialize(_record(kind, schema, document, len(sent)), context)
            producer.produce(worker_topics.input, value, document["event_id"].encode())
            sent[document["event_id"]] = (_version(client, subject, kind, schema), step)
        producer.flush(30)

    client.set_compatibility(subject, "BACKWARD")
    send(Step("the producer's first version", "BACKWARD", lambda s: None), documents[:PER_STEP])
    root = registry(tmp_path / "registry")
    add_version(root, "2", linear(width=10), edit_card=lambda c: c["features"].append(
        {"name": "tenure", "type": "number"}))  # fmt: skip
    shadow = f"{worker_topics.predictions}.challenger"
    worker = start_worker(
        input_format=kind,
        schema_registry_url=schema_registry,
        model_dir=str(root),
        model_version="1",
        challenger_uri=f"{root}/{NAME}/2",
        challenger_topic=shadow,
    )
    steps = AVRO_STEPS if kind == "avro" else JSON_STEPS
    for i, step in enumerate(steps, start=1):
        before = copy.deepcopy(schema)
        step.edit(schema)
        client.set_compatibility(subject, step.compatibility)
        if step.outcome == "refused":
            with pytest.raises(SchemaRegistryError) as refused:
                _serializer(kind, client, schema)(_record(kind, schema, documents[0], 0), context)
            assert refused.value.http_status_code == 409, refused.value
            schema = before
            continue
        send(step, documents[PER_STEP * i : PER_STEP * (i + 1)])

    dead_ids = {e for e, (_, step) in sent.items() if step.outcome == "dead"}
    scored_ids = set(sent) - dead_ids
    predictions = read_topic(kafka_bootstrap, worker_topics.predictions, len(scored_ids), timeout=90)
    dead = read_topic(kafka_bootstrap, worker_topics.dlq, len(dead_ids), timeout=30)
    assert worker.proc.poll() is None, worker.output()[-3000:]
    scores = {orjson.loads(m.value())["event_id"]: orjson.loads(m.value())["score"] for m in predictions}
    assert set(scores) == scored_ids and len(predictions) == len(scored_ids), "each good event scored once"
    want = _model_scores([d for d in documents if d["event_id"] in scored_ids])
    assert all(scores[e] == pytest.approx(want[e], rel=1e-6) for e in scored_ids), (
        "the same features, the same score"
    )
    letters = {m.key().decode(): DeadLetter.from_headers(m.headers()) for m in dead}
    assert set(letters) == dead_ids and len(dead) == len(dead_ids), "each broken event a dead letter, once"
    for event_id, letter in letters.items():
        version, step = sent[event_id]
        assert f"'{step.field}'" in letter.reason and f"{subject} version {version}" in letter.reason, (
            letter.reason
        )
    carrying = {e for e, (_, step) in sent.items() if e in scored_ids and _carries_tenure(step, steps)}
    answered = read_topic(kafka_bootstrap, shadow, len(carrying), timeout=30)
    challenged = {orjson.loads(m.value())["event_id"] for m in answered}
    assert challenged == carrying, "the challenger answers the events that carry its feature"


def _version(client: SchemaRegistryClient, subject: str, kind: str, schema: dict) -> int:
    """The subject's version of ``schema``, as the producer registered it."""
    text = orjson.dumps(schema).decode()
    return client.lookup_schema(subject, Schema(text, "AVRO" if kind == "avro" else "JSON")).version


def _carries_tenure(step: Step, steps: tuple[Step, ...]) -> bool:
    names = [s.name for s in steps]
    return step.name in names and names.index(step.name) >= names.index("a feature for the challenger")


def test_the_worker_registers_a_new_prediction_schema_that_a_consumer_of_the_previous_one_reads(
    kafka_bootstrap, schema_registry, worker_topics, start_worker
):
    client = SchemaRegistryClient({"url": schema_registry})
    previous = avro_schema(Prediction)
    previous["fields"] = [f for f in previous["fields"] if f["name"] != "probabilities"]
    subject = f"{worker_topics.predictions}-value"
    client.set_compatibility(subject, "BACKWARD")
    first = client.register_schema(subject, Schema(orjson.dumps(previous).decode(), "AVRO"))
    ensure_topics(kafka_bootstrap, {worker_topics.input: 1})
    sent = produce(kafka_bootstrap, worker_topics.input, count=20, seed=28)
    worker = start_worker(output_format="avro", schema_registry_url=schema_registry)

    predictions = read_topic(kafka_bootstrap, worker_topics.predictions, len(sent.valid), timeout=90)
    assert worker.proc.poll() is None, worker.output()[-3000:]
    latest = client.get_latest_version(subject)
    assert latest.version == 2 and latest.schema_id != first, "the worker's schema is version 2"
    assert "probabilities" in latest.schema.schema_str
    reader = AvroDeserializer(client, orjson.dumps(previous).decode())  # a consumer on version 1
    context = SerializationContext(worker_topics.predictions, MessageField.VALUE)
    read = [reader(m.value(), context) for m in predictions]
    assert {r["event_id"] for r in read} == set(sent.valid)
    assert all(set(r) == {f["name"] for f in previous["fields"]} and 0 <= r["score"] <= 1 for r in read)
