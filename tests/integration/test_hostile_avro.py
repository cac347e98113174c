"""Avro block bombs against a real worker, on the real broker and a real schema registry (Apicurio).

Events whose writer's schema has an array beside the card's fields claim more items than their
bytes can hold (the generated reader's path and fastavro's), or nest a recursive record thousands
deep (fastavro's path): each is a dead letter saying why, the worker's memory stays flat, and the
valid events after them are scored.
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import json

import fastavro
import orjson
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from conftest import MODELS, read_topic
from fuzz.outcomes import zigzag

from stream.formats.avro import event_avro_schema
from stream.formats.events import event_serializer
from stream.formats.registry import header
from stream.kafka.topics import ensure_topics
from stream.scoring.model import load_card, resolve
from stream.settings import Settings
from stream.tools.produce import events

EVENT = event_avro_schema(load_card(resolve(MODELS, "loan-approval")))
NULLS = {"type": "array", "items": "null"}
DECIMAL = {"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2}
NODE = {"type": "record", "name": "Node", "fields": [{"name": "next", "type": ["null", "Node"]}]}
GROWTH_MB = 150
"""Generous: each bomb, read, makes 500 MB to 1 GB, or ends the process."""


def _with(*fields: dict) -> dict:
    """The card's event schema with ``fields`` after its own (read, then refused by the contract)."""
    return {**EVENT, "fields": [*EVENT["fields"], *fields]}


def _event_fields() -> bytes:
    """A valid event's fields in Avro: what every message below starts with."""
    event = orjson.loads(next(events(seed=11))[1])
    event["occurred_at"] = dt.datetime.fromisoformat(event["occurred_at"])
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(EVENT), event)
    return out.getvalue()


def _memory_mb(pid: int) -> dict[str, float]:
    """The worker's resident memory now (VmRSS) and at its peak (VmHWM), in MB."""
    with open(f"/proc/{pid}/status") as status:
        lines = [line.split() for line in status if line.startswith(("VmRSS:", "VmHWM:"))]
    return {line[0].rstrip(":"): int(line[1]) / 1024 for line in lines}


def test_avro_bombs_are_dead_letters_and_the_worker_goes_on(
    kafka_bootstrap, schema_registry, worker_topics, start_worker, unique_name
):
    ensure_topics(kafka_bootstrap, {worker_topics.input: 1})
    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap, schema_registry_url=schema_registry)
    serialize = event_serializer(settings, "avro", worker_topics.input)
    valid = [serialize(value) for _, value, *_ in itertools.islice(events(seed=12), 4)]
    client = SchemaRegistryClient({"url": schema_registry})

    def registered(document: dict) -> int:
        return client.register_schema(unique_name("bomb") + "-value", Schema(json.dumps(document), "AVRO"))

    generated = registered(_with({"name": "tags", "type": NULLS}))
    by_fastavro = registered(_with({"name": "price", "type": DECIMAL}, {"name": "tags", "type": NULLS}))
    chained = registered(_with({"name": "chain", "type": NODE}, {"name": "again", "type": "Node"}))
    fields = _event_fields()
    tails = {  # key: (schema id, what follows the event's fields, reason)
        b"null-blocks": (generated, zigzag(19_990) * 6_663 + b"\x00", "more than"),
        b"negative": (generated, (zigzag(-19_990) + zigzag(0)) * 4_997 + b"\x00", "more than"),
        b"fastavro": (by_fastavro, b"\x00" + zigzag(2**26) + b"\x00", "more than"),
        b"deep": (chained, b"\x02" * 5_000 + b"\x00" * 2, "nested more than"),
    }
    bombs = {key: (header(sid) + fields + tail, sid, reason) for key, (sid, tail, reason) in tails.items()}
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(worker_topics.input, valid[0], b"first")
    producer.flush(30)
    worker = start_worker(input_format="avro", schema_registry_url=schema_registry)
    assert len(read_topic(kafka_bootstrap, worker_topics.predictions, 1, timeout=90, settle=0)) == 1
    before = _memory_mb(worker.proc.pid)

    for key, (value, _, _) in bombs.items():
        producer.produce(worker_topics.input, value, key)
    for value in valid[1:]:
        producer.produce(worker_topics.input, value, b"after")
    producer.flush(30)
    dead = read_topic(kafka_bootstrap, worker_topics.dlq, len(bombs), timeout=60)
    predictions = read_topic(kafka_bootstrap, worker_topics.predictions, len(valid), timeout=30)
    assert worker.proc.poll() is None, worker.output()[-3000:]
    after = _memory_mb(worker.proc.pid)

    assert len(predictions) == len(valid), "the valid events after the bombs are scored"
    assert sorted(m.key() for m in dead) == sorted(bombs)
    for m in dead:
        value, sid, reason = bombs[m.key()]
        headers = {k: v.decode() for k, v in m.headers()}
        message = headers["__connect.errors.exception.message"]
        assert m.value() == value and headers["__connect.errors.stage"] == "decode"
        assert f"payload does not match Avro schema id {sid}" in message and reason in message, message
    assert after["VmHWM"] - before["VmHWM"] < GROWTH_MB, (before, after)
    assert after["VmRSS"] - before["VmRSS"] < GROWTH_MB, (before, after)
