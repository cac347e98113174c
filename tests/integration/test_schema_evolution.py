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
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as default

import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from conftest import model_scores, read_topic
from model_versions import NAME, add_version, linear, registry
from schema_changes import AVRO_STEPS, JSON_STEPS, Step, avro_base, json_base, record

from stream.contracts import DeadLetter
from stream.kafka.topics import ensure_topics
from stream.tools.produce import events

PER_STEP = 30


def _serializer(
    kind: str, client: SchemaRegistryClient, schema: dict
) -> Callable[[dict, SerializationContext], bytes]:
    text = orjson.dumps(schema).decode()
    if kind == "avro":
        return AvroSerializer(client, text, conf={"auto.register.schemas": True})
    return JSONSerializer(text, client, conf={"auto.register.schemas": True})


@dataclass
class _Producing:
    """A producer moving through its schema's versions: what it sent, by event id (its version, its step)."""

    kind: str
    client: SchemaRegistryClient
    topic: str
    schema: dict
    producer: Producer
    sent: dict[str, tuple[int, Step]] = default(default_factory=dict)

    @property
    def subject(self) -> str:
        return f"{self.topic}-value"

    def send(self, step: Step, batch: list[dict]) -> None:
        """``batch`` written with the current version (registered on its first event)."""
        serialize, context = _serializer(self.kind, self.client, self.schema), self._context()
        for document in batch:
            value = serialize(record(self.kind, self.schema, document, len(self.sent)), context)
            self.producer.produce(self.topic, value, document["event_id"].encode())
            self.sent[document["event_id"]] = (
                _version(self.client, self.subject, self.kind, self.schema),
                step,
            )
        self.producer.flush(30)

    def change(self, step: Step, batch: list[dict]) -> None:
        """The next version under ``step``'s compatibility: refused by the registry, or sent with."""
        before = copy.deepcopy(self.schema)
        step.edit(self.schema)
        self.client.set_compatibility(self.subject, step.compatibility)
        if step.outcome != "refused":
            self.send(step, batch)
            return
        with pytest.raises(SchemaRegistryError) as refused:
            _serializer(self.kind, self.client, self.schema)(
                record(self.kind, self.schema, batch[0], 0), self._context()
            )
        assert refused.value.http_status_code == 409, refused.value
        self.schema = before

    def _context(self) -> SerializationContext:
        return SerializationContext(self.topic, MessageField.VALUE)


@pytest.mark.parametrize("kind", ["avro", "json-schema"])
def test_a_producer_evolves_its_schema_while_the_worker_scores(
    kind, kafka_bootstrap, schema_registry, worker_topics, start_worker, tmp_path
):
    ensure_topics(kafka_bootstrap, {worker_topics.input: 2})
    documents = [orjson.loads(v) for _, v, *_ in itertools.islice(events(seed=27), PER_STEP * 11)]
    client, producer = (
        SchemaRegistryClient({"url": schema_registry}),
        Producer({"bootstrap.servers": kafka_bootstrap}),
    )
    base = avro_base() if kind == "avro" else json_base()
    producing = _Producing(kind, client, worker_topics.input, base, producer)
    producing.client.set_compatibility(producing.subject, "BACKWARD")
    producing.send(Step("the producer's first version", "BACKWARD", lambda s: None), documents[:PER_STEP])
    root = registry(tmp_path / "registry")
    add_version(root, "2", linear(width=10), edit_card=lambda c: c["features"].append(
        {"name": "tenure", "type": "number"}))  # fmt: skip
    shadow = f"{worker_topics.predictions}.challenger"
    challenger = {"challenger_uri": f"{root}/{NAME}/2", "challenger_topic": shadow}
    worker = start_worker(input_format=kind, schema_registry_url=schema_registry, model_dir=str(root),
                          model_version="1", **challenger)  # fmt: skip
    steps = AVRO_STEPS if kind == "avro" else JSON_STEPS
    for i, step in enumerate(steps, start=1):
        producing.change(step, documents[PER_STEP * i : PER_STEP * (i + 1)])

    sent, subject = producing.sent, producing.subject
    dead_ids = {e for e, (_, step) in sent.items() if step.outcome == "dead"}
    scored_ids = set(sent) - dead_ids
    predictions = read_topic(kafka_bootstrap, worker_topics.predictions, len(scored_ids), timeout=90)
    dead = read_topic(kafka_bootstrap, worker_topics.dlq, len(dead_ids), timeout=30)
    assert worker.proc.poll() is None, worker.output()[-3000:]
    scores = {orjson.loads(m.value())["event_id"]: orjson.loads(m.value())["score"] for m in predictions}
    assert set(scores) == scored_ids and len(predictions) == len(scored_ids), "each good event scored once"
    want = model_scores([d for d in documents if d["event_id"] in scored_ids])
    assert all(scores[e] == pytest.approx(want[e], rel=1e-6) for e in scored_ids), "the same score"
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
