"""A producer's own event shape, on the real broker and a real schema registry (Apicurio on loopback).

confluent-kafka's own AvroSerializer and JSONSerializer register a writer's schema that evolves the
one streamscore makes for the card (an optional field ``channel`` more, its fields reordered): the
worker starts with it, ignores the extra field, and scores every event as the model scores the same
features, with no dead letter. Plain JSON events of a flat shape (id and time under the producer's
names, the time in epoch milliseconds, the features at the top level, fields besides them) are
scored too; one without an id takes its record's key, one without a time its record's timestamp.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time

import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from conftest import MODELS, model_scores, read_topic, scrape

from stream.formats.avro import event_avro_schema
from stream.formats.json_schema import event_json_schema
from stream.kafka.topics import ensure_topics
from stream.scoring.model import load_card, resolve
from stream.tools.broker import free_port
from stream.tools.produce import events

CARD = load_card(resolve(MODELS, "loan-approval"))
N_EVENTS = 200
CHANNELS = ("web", "app", None)


def _events(seed: int) -> list[dict]:
    return [orjson.loads(value) for _, value, *_ in itertools.islice(events(seed=seed), N_EVENTS)]


def _producers_avro() -> dict:
    """The card's Avro schema as a producer evolves it: ``channel`` more, every record reordered."""
    schema = event_avro_schema(CARD)
    fields = [*schema["fields"], {"name": "channel", "type": ["null", "string"], "default": None}][::-1]
    fields = [{**f, "type": {"type": "long", "logicalType": "timestamp-millis"}} if f["name"] == "occurred_at"
              else f for f in fields]  # fmt: skip
    features = next(f for f in fields if f["name"] == "features")
    features["type"]["fields"] = features["type"]["fields"][::-1]
    return {**schema, "name": "LoanApplication", "fields": fields}


def _producers_json() -> dict:
    """The card's JSON Schema as a producer writes it: ``channel`` more, properties reordered."""
    made = event_json_schema(CARD)
    features = made["properties"]["features"]
    features["properties"] = dict(reversed(features["properties"].items()))
    properties = {"channel": {"type": ["string", "null"]}, **dict(reversed(made["properties"].items()))}
    return {"$schema": "http://json-schema.org/draft-07/schema#", "title": "LoanApplication",
            "type": "object", "properties": properties, "required": made["required"]}  # fmt: skip


def _send(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes, int | None]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for key, value, stamp in messages:
        producer.produce(topic, value, key, timestamp=stamp or 0)
    assert producer.flush(30) == 0


def _scored(bootstrap: str, topics, worker, expected: int) -> dict[str, float]:
    """The scores the worker wrote, by event id, once ``expected`` are in; no dead letter."""
    predictions = read_topic(bootstrap, topics.predictions, expected, timeout=90)
    assert worker.proc.poll() is None, worker.output()[-3000:]
    assert not read_topic(bootstrap, topics.dlq, 0, timeout=2, settle=0.5), "no dead letter"
    scores = {p["event_id"]: p["score"] for p in (orjson.loads(m.value()) for m in predictions)}
    assert len(predictions) == len(scores) == expected
    return scores


def _ignored(port: int, field: str) -> float:
    return scrape(port).get(("streamscore_ignored_fields_total", (("field", field),)), 0.0)


@pytest.mark.parametrize("kind", ["avro", "json-schema"])
def test_confluents_serializers_with_an_extra_field_and_their_own_order_are_scored(
    kafka_bootstrap, schema_registry, worker_topics, start_worker, kind
):
    ensure_topics(kafka_bootstrap, {worker_topics.input: 3})
    client = SchemaRegistryClient({"url": schema_registry})
    if kind == "avro":
        serializer = AvroSerializer(client, orjson.dumps(_producers_avro()).decode())
    else:
        serializer = JSONSerializer(orjson.dumps(_producers_json()).decode(), client)
    context = SerializationContext(worker_topics.input, MessageField.VALUE)
    documents = _events(seed=21)
    messages = []
    for i, document in enumerate(documents):
        record = {**document, "channel": CHANNELS[i % 3]}
        if kind == "avro":
            record["occurred_at"] = dt.datetime.fromisoformat(record["occurred_at"])
        messages.append((document["entity_id"].encode(), serializer(record, context), None))
    _send(kafka_bootstrap, worker_topics.input, messages)  # the producer's schema is registered first
    port = free_port()
    worker = start_worker(input_format=kind, schema_registry_url=schema_registry, metrics_port=port)

    scores = _scored(kafka_bootstrap, worker_topics, worker, N_EVENTS)
    want = model_scores(documents)
    assert scores.keys() == want.keys()
    assert all(scores[eid] == pytest.approx(want[eid], rel=1e-6) for eid in want)
    assert _ignored(port, "channel") == N_EVENTS


def test_plain_json_in_a_flat_shape_with_fields_besides_is_scored(
    kafka_bootstrap, worker_topics, start_worker
):
    ensure_topics(kafka_bootstrap, {worker_topics.input: 3})
    documents = _events(seed=22)
    stamp = int(time.time() * 1000)
    messages = []
    for i, document in enumerate(documents):
        flat = {"txn_id": document["event_id"], "ts": stamp - i, "channel": CHANNELS[i % 3],
                "source": {"app": "pos", "v": 2}, **document["features"]}  # fmt: skip
        key = document["event_id"].encode()
        if i % 10 == 0:
            del flat["txn_id"]  # the record's key stands in
        if i % 10 == 1:
            del flat["ts"]  # the record's timestamp stands in
        messages.append((key, orjson.dumps(flat), stamp))
    _send(kafka_bootstrap, worker_topics.input, messages)
    port = free_port()
    worker = start_worker(
        event_id_field="txn_id", event_time_field="ts", features_field="", metrics_port=port
    )

    scores = _scored(kafka_bootstrap, worker_topics, worker, N_EVENTS)
    want = model_scores(documents)
    assert scores.keys() == want.keys(), "an event without txn_id is known by its key"
    assert all(scores[eid] == pytest.approx(want[eid], rel=1e-6) for eid in want)
    assert _ignored(port, "channel") == N_EVENTS and _ignored(port, "source") == N_EVENTS
