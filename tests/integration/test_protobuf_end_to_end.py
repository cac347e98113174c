"""Protobuf in and out on a real registry and broker, checked against confluent-kafka's own serde.

A producer with its own ``.proto`` (compiled here with grpcio-tools' protoc, as a producer's build
does) writes events with confluent-kafka's ``ProtobufSerializer``, then evolves its message (a field
added, a field removed) while the worker runs, and sends bad payloads; the worker reads Protobuf and
writes Protobuf. Every good event is scored as the model scores its features, its prediction read
back with confluent-kafka's ``ProtobufDeserializer`` and a class compiled from the ``.proto`` the
worker registered; each bad payload is a dead letter with the reason its Avro twin gets; the
registry refuses a renumbered field. ``tail``, ``explain`` and ``verify`` read the same topics, and
``produce --format protobuf`` writes events ``tail`` reads.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.resources
import itertools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, record_subject_name_strategy
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from conftest import MODELS, ROOT, WorkerProcess, WorkerTopics, model_scores, read_topic
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_tools import protoc

from stream.contracts import DeadLetter
from stream.formats.registry import header
from stream.kafka.topics import ensure_topics
from stream.scoring.model import load_card, resolve
from stream.tools.produce import events

CARD = load_card(resolve(MODELS, "loan-approval"))
PER_VERSION = 40
PROTO = """syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";

message LoanApplication {{
  string event_id = 1;
  google.protobuf.Timestamp occurred_at = 2;
  optional string entity_id = 3;
  Features features = 4;
{extra}
  message Features {{
{features}
  }}
}}

enum Channel {{
  CHANNEL_UNSPECIFIED = 0;
  WEB = 1;
  APP = 2;
}}
"""
CHANNEL = "  Channel channel = 5;"
NOTE = "  optional string note = 6;"
REMOVED = "  reserved 5;"


def _features(renumbered: bool = False) -> str:
    lines = []
    for number, spec in enumerate(CARD.features, start=1):
        kind = "int32" if spec.name == "age" else ("int64" if spec.type == "integer" else "double")
        lines.append(f"    {kind} {spec.name} = {number + 20 if renumbered and number == 1 else number};")
    return "\n".join(lines)


def _compile(text: str, name: str = "loan.proto") -> type:
    """The first message of ``text``, as a producer's generated class (protoc, a pool of its own)."""
    include = str(importlib.resources.files("grpc_tools") / "_proto")
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / name).write_text(text)
        out = Path(folder) / "set.pb"
        args = [
            "protoc",
            f"-I{folder}",
            f"-I{include}",
            "--include_imports",
            f"--descriptor_set_out={out}",
            name,
        ]
        assert protoc.main(args) == 0, text
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    top = next(f for f in files.file if f.name == name)
    package = f"{top.package}." if top.package else ""
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(package + top.message_type[0].name))


def _message(cls: type, document: dict, with_channel: bool, with_note: bool) -> object:
    message = cls(event_id=document["event_id"], entity_id=document["entity_id"])
    message.occurred_at.FromDatetime(dt.datetime.fromisoformat(document["occurred_at"]))
    for name, value in document["features"].items():
        setattr(message.features, name, value)
    if with_channel:
        message.channel = 1
    if with_note:
        message.note = "v2"
    return message


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stream.cli.main", *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


VERSIONS = (  # (extra fields, has channel, has note): version 1, a field added, a field removed
    (CHANNEL, True, False), (f"{CHANNEL}\n{NOTE}", True, True), (f"{REMOVED}\n{NOTE}", False, True),
)  # fmt: skip
BAD = {  # as their Avro twins: tests/integration/test_schema_registry.py
    b"short": "too short",
    b"unknown-id": "not in the registry",
    b"truncated": "does not match Protobuf schema",
    b"bad-index": "does not match Protobuf schema",
}


@dataclass
class Run:
    """A worker reading and writing Protobuf, and what was sent to it."""

    worker: WorkerProcess
    topics: WorkerTopics
    client: SchemaRegistryClient
    subject: str
    documents: list[dict]
    predictions: list[Any]  # read back with confluent-kafka's ProtobufDeserializer
    dead: list[Any]


def _send_versions(client: SchemaRegistryClient, subject: str, texts: list[str], documents: list[dict],
                   producer: Producer, topic: str) -> bytes:  # fmt: skip
    """Each version registered while the worker runs, and its share of the events written with it
    (behind the wire header, as the producer's generated code writes them); the first value."""
    values = []
    for i, (text, (_, channel, note)) in enumerate(zip(texts, VERSIONS, strict=True)):
        # Apicurio 3.0.9 refuses a removed Protobuf field at every level but NONE, reserved or not
        client.set_compatibility(subject, "NONE" if i == 2 else "BACKWARD")
        schema_id = client.register_schema(subject, Schema(text, "PROTOBUF"))
        cls = _compile(text)
        for document in documents[i * PER_VERSION : (i + 1) * PER_VERSION]:
            values.append(
                header(schema_id) + b"\x00" + _message(cls, document, channel, note).SerializeToString()
            )
            producer.produce(topic, values[-1], document["event_id"].encode())
    return values[0]


def _topics() -> WorkerTopics:
    base = f"protobuf-{os.getpid()}-{time.monotonic_ns()}"
    names = ("events", "predictions", "provenance", "dlq", "outcomes", "drift", "model-changes")
    return WorkerTopics(*(f"{base}.{name}" for name in names))


@contextlib.contextmanager
def _worker(
    kafka_bootstrap: str, registry: str, topics: WorkerTopics, folder: Path
) -> Iterator[WorkerProcess]:
    """A worker reading and writing Protobuf on ``topics``, stopped at the end."""
    env = {
        **os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "STREAMSCORE_APP_ID": topics.input,
        "STREAMSCORE_INPUT_TOPIC": topics.input, "STREAMSCORE_PREDICTION_TOPIC": topics.predictions,
        "STREAMSCORE_PROVENANCE_TOPIC": topics.provenance, "STREAMSCORE_DLQ_TOPIC": topics.dlq,
        "STREAMSCORE_OUTCOME_TOPIC": topics.outcomes, "STREAMSCORE_DRIFT_TOPIC": topics.drift,
        "STREAMSCORE_MODEL_CHANGES_TOPIC": topics.model_changes, "STREAMSCORE_MODEL_DIR": str(MODELS),
        "STREAMSCORE_DATA_DIR": str(folder / "data"), "STREAMSCORE_METRICS_PORT": "0",
        "STREAMSCORE_INPUT_FORMAT": "protobuf", "STREAMSCORE_OUTPUT_FORMAT": "protobuf",
        "STREAMSCORE_SCHEMA_REGISTRY_URL": registry,
    }  # fmt: skip
    worker = WorkerProcess(env, folder / "worker.log").start()
    try:
        yield worker
    finally:
        worker.stop()


@pytest.fixture(scope="module")
def run(kafka_bootstrap, schema_registry, tmp_path_factory) -> Iterator[Run]:
    topics, client = _topics(), SchemaRegistryClient({"url": schema_registry})
    ensure_topics(kafka_bootstrap, {topics.input: 2})
    subject, context = f"{topics.input}-value", SerializationContext(topics.input, MessageField.VALUE)
    documents = [orjson.loads(v) for _, v, *_ in itertools.islice(events(seed=29), 4 * PER_VERSION)]
    texts = [PROTO.format(extra=extra, features=_features()) for extra, _, _ in VERSIONS]
    client.set_compatibility(subject, "BACKWARD")
    client.register_schema(subject, Schema(texts[0], "PROTOBUF"))  # the producer's version 1, first
    with _worker(kafka_bootstrap, schema_registry, topics, tmp_path_factory.mktemp("protobuf")) as worker:
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        first = _send_versions(client, subject, texts, documents, producer, topics.input)
        # confluent-kafka's own serializer registers a base64 descriptor; Apicurio checks the
        # compatibility of .proto text only, so it registers under a subject of its own
        cls = _compile(texts[1])
        conf = {"use.deprecated.format": False, "subject.name.strategy": record_subject_name_strategy}
        serialize = ProtobufSerializer(cls, client, conf)
        for document in documents[3 * PER_VERSION :]:
            value = serialize(_message(cls, document, True, True), context)
            producer.produce(topics.input, value, document["event_id"].encode())
        bad = {
            b"short": b"\x00\x00",
            b"unknown-id": header(2_000_000_000) + first[5:],
            b"truncated": first[:-3],
            b"bad-index": first[:5] + b"\x02\x0e" + first[6:],
        }
        for key, value in bad.items():
            producer.produce(topics.input, value, key)
        producer.flush(30)
        found = read_topic(kafka_bootstrap, topics.predictions, len(documents), timeout=90)
        dead = read_topic(kafka_bootstrap, topics.dlq, len(bad), timeout=30)
        assert worker.proc.poll() is None, worker.output()[-3000:]
        registered = client.get_latest_version(f"{topics.predictions}-value").schema
        assert registered.schema_type == "PROTOBUF"
        read = ProtobufDeserializer(
            _compile(registered.schema_str, "prediction.proto"), {"use.deprecated.format": False}
        )
        predictions = [
            read(m.value(), SerializationContext(topics.predictions, MessageField.VALUE)) for m in found
        ]
        yield Run(worker, topics, client, subject, documents, predictions, dead)


def test_every_version_scores_as_the_model_and_confluents_deserializer_reads_the_predictions(run):
    scores = {p.event_id: p.score for p in run.predictions}
    want = model_scores(run.documents)
    assert scores.keys() == want.keys() and len(run.predictions) == len(run.documents), "each scored once"
    assert all(scores[e] == pytest.approx(want[e], rel=1e-6) for e in want)
    sent = {d["event_id"]: d for d in run.documents}
    times = {p.event_id: p.occurred_at.ToDatetime(dt.UTC) for p in run.predictions}
    assert all(t == dt.datetime.fromisoformat(sent[e]["occurred_at"]) for e, t in times.items())
    assert {p.model_name for p in run.predictions} == {"loan-approval"}


def test_bad_payloads_are_dead_letters_with_the_reasons_of_the_other_formats(run):
    letters = {m.key(): DeadLetter.from_headers(m.headers()) for m in run.dead}
    assert letters.keys() == BAD.keys()
    for key, letter in letters.items():
        assert BAD[key] in letter.reason and letter.stage == "decode", (key, letter.reason)


def test_the_registry_refuses_a_renumbered_field(run):
    renumbered = PROTO.format(extra=f"{REMOVED}\n{NOTE}", features=_features(renumbered=True))
    run.client.set_compatibility(run.subject, "BACKWARD")
    with pytest.raises(SchemaRegistryError) as refused:
        run.client.register_schema(run.subject, Schema(renumbered, "PROTOBUF"))
    assert refused.value.http_status_code == 409, "a renumbered field breaks BACKWARD compatibility"


def test_tail_explain_verify_and_produce_read_and_write_protobuf(run, kafka_bootstrap):
    env, topics = run.worker.env, run.topics
    done = _cli(env, "tail", topics.predictions, "--from-beginning", "--count", "2")
    assert done.returncode == 0 and "(Protobuf schema id" in done.stdout and '"score"' in done.stdout, (
        done.stderr
    )
    done = _cli(env, "explain", run.predictions[7].event_id, "--json")
    assert done.returncode == 0 and orjson.loads(done.stdout)["bit_exact"] is True, done.stderr
    produced = f"{topics.input}.produced"
    ensure_topics(kafka_bootstrap, {produced: 1})
    done = _cli(env, "produce", "--format", "protobuf", "--count", "5", "--topic", produced)
    assert done.returncode == 0 and "published 5 valid" in done.stdout, done.stderr
    done = _cli(env, "tail", produced, "--from-beginning", "--count", "5")
    assert done.stdout.count("(Protobuf schema id") == 5 and done.stdout.count('"salary"') == 5, done.stderr
    done = _cli(env, "verify", "--sample", "1000")
    n = len(run.documents)
    assert done.returncode == 0 and f"verified {n} of {n} provenance records: {n} bit-exact" in done.stdout, (
        done.stdout + done.stderr
    )


def test_a_schema_without_the_cards_features_is_refused_in_protobuf_too(
    schema_registry, worker_topics, start_worker
):
    text = PROTO.format(extra=CHANNEL, features=_features()).replace("    int32 age = 3;\n", "")
    SchemaRegistryClient({"url": schema_registry}).register_schema(
        f"{worker_topics.input}-value", Schema(text, "PROTOBUF")
    )
    worker = start_worker(input_format="protobuf", schema_registry_url=schema_registry)
    assert worker.proc.wait(60) == 2, worker.output()
    lines = [line for line in worker.output().splitlines() if line.startswith("streamscore: error:")]
    assert len(lines) == 1 and "cannot carry the features" in lines[0] and "'age'" in lines[0], (
        worker.output()
    )
