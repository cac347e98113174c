"""Registered formats on the real broker and a real schema registry (Apicurio on loopback).

Avro and JSON Schema events are scored end to end with outputs equal to the JSON path's; each kind
of bad registered message is dead-lettered with its reason; a schema that cannot carry the card's
features, or an output schema that breaks BACKWARD compatibility, stops start-up; tail reads all;
the outcome worker joins provenance written in Avro. A worker whose prediction schema adds an
optional field to the one registered registers it as the next version, which a consumer reading
with the previous one still reads.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from conftest import MODELS, ROOT, read_topic

from stream.contracts import DeadLetter, Prediction, Provenance
from stream.formats.avro import avro_schema, event_avro_schema
from stream.formats.events import event_serializer
from stream.formats.reader import WireReader
from stream.formats.registry import header, subject
from stream.kafka.topics import ensure_topics
from stream.keys import keys
from stream.messages import inbound
from stream.scoring.model import load
from stream.scoring.pipeline import Pipeline
from stream.scoring.records import Topics
from stream.settings import Settings
from stream.tools.produce import MALFORMED, events, produce

N_EVENTS = 400
TIMES = {"scored_at", "received_at", "emitted_at"}


def _settings(kafka: str, registry: str) -> Settings:
    return Settings(kafka_bootstrap_servers=kafka, schema_registry_url=registry, model_dir=MODELS)


def _json_path(worker_topics, inputs: list, values: dict[str, bytes]) -> tuple[dict, dict]:
    """Predictions and provenance of the JSON path for the same input records, by event_id."""
    pipeline = Pipeline(
        load(MODELS, "loan-approval"),
        Topics(worker_topics.predictions, worker_topics.provenance, worker_topics.dlq),
        pii_key=keys(Settings()).personal,
        scorer={"version": "0", "revision": None, "worker_id": "json"},
        max_message_bytes=65_536,
    )
    batch = [
        inbound(values[eid], m.key(), m.topic(), m.partition(), m.offset(), m.timestamp()[1])
        for eid, m in inputs
    ]
    result = pipeline.process(batch)
    predictions = [
        Prediction.model_validate_json(r.value)
        for r in result.records
        if r.topic == worker_topics.predictions
    ]
    provenance = [
        Provenance.model_validate_json(r.value) for r in result.records if r.topic == worker_topics.provenance
    ]
    return {p.event_id: p for p in predictions}, {p.event_id: p for p in provenance}


@pytest.mark.parametrize("kind", ["avro", "json-schema"])
def test_registered_events_score_like_json(
    kafka_bootstrap, schema_registry, worker_topics, start_worker, kind
):
    ensure_topics(kafka_bootstrap, {worker_topics.input: 3})
    settings = _settings(kafka_bootstrap, schema_registry)
    serialize = event_serializer(settings, kind, worker_topics.input)
    worker = start_worker(
        batch_size=64, input_format=kind, output_format=kind, schema_registry_url=schema_registry
    )
    produced = produce(kafka_bootstrap, worker_topics.input, count=N_EVENTS, seed=5, serialize=serialize)
    assert len(produced.valid) == N_EVENTS
    wire = WireReader(SchemaRegistryClient({"url": schema_registry}))

    predictions = read_topic(kafka_bootstrap, worker_topics.predictions, N_EVENTS, timeout=90)
    provenance = read_topic(kafka_bootstrap, worker_topics.provenance, N_EVENTS, timeout=30)
    assert worker.proc.poll() is None, worker.output()
    assert len(predictions) == len(provenance) == N_EVENTS
    assert not read_topic(kafka_bootstrap, worker_topics.dlq, 0, timeout=2, settle=0.5)

    # the same events in JSON, through the JSON path, at the same input records
    json_values, inputs = {}, []
    for m in read_topic(kafka_bootstrap, worker_topics.input, N_EVENTS):
        assert m.value()[0] == 0, "the input is in the wire format"
        event = wire(m.value())[1]
        json_values[event["event_id"]] = orjson.dumps(event)
        inputs.append((event["event_id"], m))
    want_pred, want_prov = _json_path(worker_topics, inputs, json_values)

    got_pred = {}
    for m in predictions:
        what, value = wire(m.value())
        assert what.startswith("Avro" if kind == "avro" else "JSON Schema"), what
        p = Prediction.model_validate(value)
        got_pred[p.event_id] = p
    got_prov = {}
    for m in provenance:
        p = Provenance.model_validate(wire(m.value())[1])
        got_prov[p.event_id] = p
    assert set(got_pred) == set(got_prov) == set(produced.valid)
    for eid, p in got_pred.items():
        assert p.model_dump(exclude=TIMES) == want_pred[eid].model_dump(exclude=TIMES)
    for eid, p in got_prov.items():
        assert p.model_dump(exclude=TIMES | {"scorer"}) == want_prov[eid].model_dump(
            exclude=TIMES | {"scorer"}
        )
        assert p.occurred_at <= p.received_at <= p.scored_at <= p.emitted_at


def _registered(registry: str, name: str, document: dict, kind: str) -> int:
    client = SchemaRegistryClient({"url": registry})
    return client.register_schema(name, Schema(json.dumps(document), kind))


@pytest.mark.parametrize("kind", ["avro", "json-schema"])
def test_bad_registered_messages_are_dead_lettered(
    kafka_bootstrap, schema_registry, worker_topics, start_worker, unique_name, kind
):
    ensure_topics(kafka_bootstrap, {worker_topics.input: 1})
    settings = _settings(kafka_bootstrap, schema_registry)
    serialize = event_serializer(settings, kind, worker_topics.input)
    good = [serialize(value) for _, value, *_ in itertools.islice(events(seed=2), 3)]
    card = load(MODELS, "loan-approval").card
    other_avro = _registered(schema_registry, unique_name("o") + "-value", event_avro_schema(card), "AVRO")
    strict = {  # a writer's JSON Schema stricter than the card: salary at most 10
        "type": "object",
        "properties": {"features": {"type": "object", "properties": {"salary": {"maximum": 10}}}},
    }
    strict_json = _registered(schema_registry, unique_name("j") + "-value", strict, "JSON")
    plain = orjson.loads(next(events(seed=3))[1])
    bad = {
        b"no-magic": (orjson.dumps(plain), "decode", "magic byte 123"),
        b"short": (b"\x00\x00", "decode", "too short"),
        b"unknown-id": (header(2_000_000_000) + good[0][5:], "decode", "not in the registry"),
    }
    if kind == "avro":
        bad[b"truncated"] = (good[0][:-3], "decode", "does not match Avro schema")
        bad[b"left-over"] = (good[0] + b"\x02", "decode", "bytes left over")
        bad[b"json-id"] = (header(strict_json) + orjson.dumps(plain), "decode", "not AVRO")
    else:
        bad[b"strict"] = (header(strict_json) + orjson.dumps(plain), "schema", "does not match JSON schema")
        bad[b"avro-id"] = (header(other_avro) + orjson.dumps(plain), "decode", "not JSON")
        broken = orjson.loads(MALFORMED["missing_feature"][1](plain))
        bad[b"features"] = (good[0][:5] + orjson.dumps(broken), "features", "'age' is missing")
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for key, (value, _, _) in bad.items():
        producer.produce(worker_topics.input, value, key)
    for value in good:
        producer.produce(worker_topics.input, value, b"good")
    producer.flush(30)
    worker = start_worker(input_format=kind, schema_registry_url=schema_registry)

    dead = read_topic(kafka_bootstrap, worker_topics.dlq, len(bad), timeout=90)
    predictions = read_topic(kafka_bootstrap, worker_topics.predictions, len(good), timeout=30)
    assert worker.proc.poll() is None, worker.output()
    assert len(predictions) == len(good)
    assert len(dead) == len(bad)
    for m in dead:
        value, stage, reason = bad[m.key()]
        letter = DeadLetter.from_headers(m.headers())
        assert m.value() == value, "the original bytes"
        assert (letter.stage, letter.topic, letter.offset >= 0) == (stage, worker_topics.input, True)
        assert reason in letter.reason, (m.key(), letter.reason)


def _start_fails(start_worker, **settings: str) -> str:
    worker = start_worker(**settings)
    assert worker.proc.wait(60) == 2, worker.output()
    lines = [line for line in worker.output().splitlines() if line.startswith("streamscore: error:")]
    assert len(lines) == 1, worker.output()
    return lines[0]


def test_incompatible_output_schema_stops_start_up(schema_registry, worker_topics, start_worker):
    older = avro_schema(Prediction)
    older["fields"] = [f for f in older["fields"] if f["name"] != "threshold"]  # no default: not readable
    _registered(schema_registry, subject(worker_topics.predictions), older, "AVRO")
    line = _start_fails(start_worker, output_format="avro", schema_registry_url=schema_registry)
    assert f"{worker_topics.predictions}-value is not BACKWARD compatible" in line
    assert "threshold" in line


def test_input_schema_without_the_card_features_stops_start_up(schema_registry, worker_topics, start_worker):
    card = load(MODELS, "loan-approval").card
    document = event_avro_schema(card)
    features = document["fields"][3]["type"]["fields"]
    document["fields"][3]["type"]["fields"] = [f for f in features if f["name"] != "age"]
    _registered(schema_registry, subject(worker_topics.input), document, "AVRO")
    line = _start_fails(start_worker, input_format="avro", schema_registry_url=schema_registry)
    assert "cannot carry the features" in line and "'age'" in line


def test_tail_reads_every_format(kafka_bootstrap, schema_registry, new_topic):
    topic = new_topic(partitions=1)
    settings = _settings(kafka_bootstrap, schema_registry)
    json_value = next(events(seed=4))[1]
    ids = [orjson.loads(json_value)["event_id"]]
    values = [json_value]
    for kind in ("avro", "json-schema", "protobuf"):
        value = next(events(seed=len(values) + 4))[1]
        ids.append(orjson.loads(value)["event_id"])
        subject_topic = f"{topic}-{kind}"  # a subject holds schemas of one type
        values.append(event_serializer(settings, kind, subject_topic)(value))
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for value in values:
        producer.produce(topic, value)
    producer.flush(30)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "STREAMSCORE_SCHEMA_REGISTRY_URL": schema_registry,
    }
    done = subprocess.run(
        [sys.executable, "-m", "stream.cli.main", "tail", topic, "--from-beginning", "--count", "4"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "(Avro schema id" in done.stdout and "(JSON Schema id" in done.stdout
    assert "(Protobuf schema id" in done.stdout
    for event_id in ids:
        assert f'"event_id": "{event_id}"' in done.stdout
    assert done.stdout.count('"salary"') == 4


def test_the_outcome_worker_joins_avro_provenance(
    kafka_bootstrap, schema_registry, worker_topics, start_worker
):
    ensure_topics(kafka_bootstrap, {worker_topics.input: 3})
    registry = {"output_format": "avro", "schema_registry_url": schema_registry}
    start_worker(drift_window=0, **registry)
    judge = start_worker("outcomes", outcome_window=100, **registry)
    produce(
        kafka_bootstrap, worker_topics.input, count=400, seed=8,
        outcome_topic=worker_topics.outcomes, outcome_delay=1.0,
    )  # fmt: skip
    drift = read_topic(kafka_bootstrap, worker_topics.drift, 4, timeout=120, settle=1.0)
    reports = [orjson.loads(m.value()) for m in drift]
    performance = [r for r in reports if r["kind"] == "performance"]
    assert len(performance) == 4, judge.output()[-3_000:]
    assert performance[-1]["counts"]["joined"] == 400 and performance[-1]["counts"]["invalid"] == 0
    assert "breaks the contract" not in judge.output()


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
