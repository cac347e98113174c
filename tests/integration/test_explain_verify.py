"""Audit against the real broker: trace context and CloudEvents on a worker's outputs, explain, verify.

One worker scores a stream (some inputs carrying W3C trace headers, some malformed); then the
audit commands run as real processes over its topics.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

import orjson
import pytest
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.formats.json import JSONFormat
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from conftest import MODELS, ROOT, read_topic
from prometheus_client.parser import text_string_to_metric_families

from stream.contracts import DeadLetter, Prediction, Provenance
from stream.formats.events import event_serializer
from stream.kafka.topics import ensure_topics
from stream.scoring.model import load
from stream.settings import Settings
from stream.tools.broker import free_port
from stream.tools.produce import events, produce

PARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
STATE = b"congo=t61rcWkgMzE"


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stream.cli.main", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _send_traced(bootstrap: str, topic: str) -> tuple[dict[str, list], str]:
    """Five valid events with trace headers or without (event_id -> the trace their outputs must
    carry), and the id of a malformed one with a traceparent."""
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    sent = {}
    generated = events(seed=77)
    cases = [
        ([("traceparent", PARENT)], [("traceparent", PARENT)]),
        ([("traceparent", PARENT), ("tracestate", STATE)], [("traceparent", PARENT), ("tracestate", STATE)]),
        ([("x-app", b"1")], []),
        (None, []),
        ([("tracestate", STATE)], []),  # no traceparent: nothing carried
    ]
    for headers, carried in cases:
        key, value, _, event_id, _, _ = next(generated)
        producer.produce(topic, value, key, headers=headers)
        sent[event_id] = carried
    key, value, _, event_id, features, _ = next(generated)
    doc = orjson.loads(value)
    doc["features"] = {k: v for k, v in features.items() if k != "age"}  # a features dead letter
    producer.produce(topic, orjson.dumps(doc), key, headers=[("traceparent", PARENT)])
    assert producer.flush(30) == 0
    return sent, event_id


def test_trace_cloudevents_explain_and_verify(kafka_bootstrap, worker_topics, start_worker, tmp_path):
    ensure_topics(kafka_bootstrap, {worker_topics.input: 3})
    worker = start_worker(batch_size=32, batch_max_wait_ms=5)
    produced = produce(kafka_bootstrap, worker_topics.input, count=1_150, seed=31, malformed_fraction=0.03)
    traced, dead_id = _send_traced(kafka_bootstrap, worker_topics.input)
    n_valid = len(produced.valid) + 5
    predictions = read_topic(kafka_bootstrap, worker_topics.predictions, n_valid, timeout=120)
    provenance = read_topic(kafka_bootstrap, worker_topics.provenance, n_valid, timeout=30)
    dead = read_topic(kafka_bootstrap, worker_topics.dlq, len(produced.malformed) + 1, timeout=30)
    assert len(predictions) == len(provenance) == n_valid, worker.output()[-3000:]

    # trace context: carried from input to prediction, provenance and dead letter; none invented
    def trace(m) -> list:
        return [(k, v) for k, v in m.headers() or () if k in ("traceparent", "tracestate")]

    outputs = {}
    for m in predictions + provenance:
        outputs.setdefault(orjson.loads(m.value())["event_id"], []).append(m)
    for event_id, carried in traced.items():
        assert [trace(m) for m in outputs[event_id]] == [carried, carried], event_id
    assert len([m for m in predictions + provenance if trace(m)]) == 4, "no trace invented"
    traced_dead = [m for m in dead if DeadLetter.from_headers(m.headers()).event_id == dead_id]
    assert len(traced_dead) == 1 and trace(traced_dead[0]) == [("traceparent", PARENT)]

    # CloudEvents: read back by the SDK from the records as consumed
    for m, kind in ((predictions[0], "prediction"), (provenance[0], "provenance")):
        ce = from_binary(KafkaMessage(headers=dict(m.headers()), key=m.key(), value=m.value()), JSONFormat())
        record = (Prediction if kind == "prediction" else Provenance).model_validate_json(m.value())
        assert ce.get_id() == record.event_id and ce.get_type() == f"streamscore.{kind}.v1"
        assert ce.get_source() == f"/streamscore/{m.topic()}" and ce.get_specversion() == "1.0"
        assert ce.get_time() == record.scored_at and ce.get_datacontenttype() == "application/json"
        assert ce.get_data()["event_id"] == record.event_id

    env = worker.env
    # explain a scored event, by id and by its input's position: bit-exact, personal features hashed
    by_id = {Prediction.model_validate_json(m.value()).event_id: m for m in predictions}
    chosen = Provenance.model_validate_json(provenance[7].value())
    done = cli(env, "explain", chosen.event_id, "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    then = Prediction.model_validate_json(by_id[chosen.event_id].value())
    assert doc["outcome"] == "scored" and doc["bit_exact"] is True and doc["difference"] is None
    assert doc["score_then"] == doc["score_now"] == then.score and doc["label_now"] == then.label
    assert doc["model"]["sha256"] == load(MODELS, "loan-approval").card.sha256
    assert len(doc["features"]["zipcode"]) == 32 and isinstance(doc["features"]["salary"], float)
    assert doc["code"]["revision"] == chosen.scorer.revision and doc["role"] == "champion"
    if load(MODELS, "loan-approval").card.attribution is None:  # the rest shown, and why no contributions
        assert doc["contributions"] is None
        assert doc["unexplained"].startswith("the model cannot be explained: ")
    else:
        assert len(doc["contributions"]) == 9 and doc["unexplained"] is None
    ref = chosen.input
    text = cli(env, "explain", "--partition", str(ref.partition), "--offset", str(ref.offset))
    assert text.returncode == 0, text.stderr
    assert f"event      {chosen.event_id}" in text.stdout and "bit-exact" in text.stdout
    assert "zipcode=hash:" in text.stdout and text.stdout.count("\nreasons    ") == 1
    traced_id = next(i for i, carried in traced.items() if len(carried) == 2)
    assert PARENT.decode() in cli(env, "explain", traced_id).stdout

    # a dead-lettered event
    done = cli(env, "explain", dead_id)
    assert done.returncode == 0, done.stderr
    assert "dead-lettered at stage features: feature 'age' is missing" in done.stdout

    # verify: 1,000 drawn, all bit-exact
    done = cli(env, "verify", "--sample", "1000", "--seed", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        f"verified 1000 of {n_valid} provenance records: 1000 bit-exact (100.0%), 0 mismatched" in done.stdout
    )

    # continuous verification: a draw every second, counted in its metrics
    port = free_port()
    command = ["verify", "--sample", "50", "--serve", "--every", "1", "--port", str(port)]
    served = subprocess.Popen(
        [sys.executable, "-m", "stream.cli.main", *command], env=env, cwd=ROOT, stdout=subprocess.DEVNULL
    )
    try:
        exact, deadline = 0.0, time.monotonic() + 60
        while exact < 100 and time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                scraped = (
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
                )
            except OSError:
                continue
            samples = {
                (s.name, tuple(s.labels.items())): s.value
                for f in text_string_to_metric_families(scraped)
                for s in f.samples
            }
            exact = samples.get(("streamscore_verify_records_total", (("result", "exact"),)), 0.0)
        assert exact >= 100, "two draws of 50 checked"
        assert samples[("streamscore_verify_records_total", (("result", "mismatched"),))] == 0
    finally:
        served.terminate()
        assert served.wait(30) == 0

    # a tampered provenance record is found, with its first differing field
    tampered = orjson.loads(provenance[3].value())
    tampered["score"] = tampered["score"] * 0.5
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random"})
    producer.produce(worker_topics.provenance, orjson.dumps(tampered), provenance[3].key())
    producer.flush(30)
    done = cli(env, "verify", "--sample", "100000")
    assert done.returncode == 1, done.stdout + done.stderr
    mismatches = [line for line in done.stdout.splitlines() if line.startswith("MISMATCH")]
    assert len(mismatches) == 1 and f"MISMATCH {tampered['event_id']} " in mismatches[0]
    assert f"score: provenance {tampered['score']!r}, re-scored" in mismatches[0]
    assert f"{n_valid} bit-exact" in done.stdout

    # the model version is gone from the registry: one clear line
    empty = tmp_path / "registry"
    empty.mkdir()
    done = cli({**env, "STREAMSCORE_MODEL_DIR": str(empty)}, "explain", chosen.event_id)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().count("\n") == 0
    assert "model loan-approval/1 (sha256" in done.stderr and "is no longer in registry" in done.stderr

    # the input has left the topic (retention): one clear line, with what the provenance said
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    cut = TopicPartition(worker_topics.input, ref.partition, ref.offset + 1)
    for future in admin.delete_records([cut]).values():
        future.result(timeout=30)
    done = cli(env, "explain", chosen.event_id)
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0, done.stderr
    assert (
        f"input {worker_topics.input}[{ref.partition}]@{ref.offset} is no longer in the topic" in done.stderr
    )
    assert f"says score {chosen.score!r}" in done.stderr
    done = cli(env, "verify", "--sample", "100000")
    assert "unverifiable" in done.stdout and " 0 unverifiable" not in done.stdout

    # an unknown id: one line
    done = cli(env, "explain", "no-such-event")
    assert (
        done.returncode == 2 and "no provenance record or dead letter for event no-such-event" in done.stderr
    )


@pytest.mark.parametrize("kind", ["avro", "json-schema"])
def test_explain_and_verify_read_registered_formats(
    kafka_bootstrap, schema_registry, worker_topics, start_worker, kind
):
    ensure_topics(kafka_bootstrap, {worker_topics.input: 3})
    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap, schema_registry_url=schema_registry)
    worker = start_worker(
        batch_size=64, input_format=kind, output_format=kind, schema_registry_url=schema_registry
    )
    serialize = event_serializer(settings, kind, worker_topics.input)
    produced = produce(kafka_bootstrap, worker_topics.input, count=200, seed=9, serialize=serialize)
    provenance = read_topic(kafka_bootstrap, worker_topics.provenance, 200, timeout=90)
    assert len(provenance) == 200 and provenance[0].value()[0] == 0, "provenance in the wire format"
    assert "content-type" not in dict(provenance[0].headers()), "not plain JSON: no content-type"
    assert dict(provenance[0].headers())["ce_type"] == b"streamscore.provenance.v1"

    env = worker.env
    event_id = provenance[5].key().decode()
    done = cli(env, "explain", event_id, "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["bit_exact"] is True and doc["event_id"] == event_id and event_id in produced.valid
    ref = doc["input"]
    done = cli(env, "explain", "--partition", str(ref["partition"]), "--offset", str(ref["offset"]), "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["event_id"] == event_id, done.stderr
    done = cli(env, "verify", "--sample", "200")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verified 200 of 200 provenance records: 200 bit-exact (100.0%)" in done.stdout


def test_explain_shows_contributions_and_verify_checks_recorded_reasons(
    kafka_bootstrap, worker_topics, start_worker, tmp_path
):
    """A worker writing three reasons per prediction, on the demo model (its card has an attribution)."""
    assert load(MODELS, "loan-approval").card.attribution is not None
    ensure_topics(kafka_bootstrap, {worker_topics.input: 3})
    worker = start_worker(batch_size=32, reasons="3")
    produce(kafka_bootstrap, worker_topics.input, count=150, seed=28)
    predictions = read_topic(kafka_bootstrap, worker_topics.predictions, 150, timeout=90)
    assert len(predictions) == 150, worker.output()[-3000:]
    chosen = Prediction.model_validate_json(predictions[11].value())
    assert chosen.reasons is not None and len(chosen.reasons) == 3
    env = worker.env

    # explain: every feature's contribution, largest first, from the expected value to the margin
    done = cli(env, "explain", chosen.event_id, "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    contributions = doc["contributions"]
    assert len(contributions) == 9 and doc["unexplained"] is None and doc["bit_exact"] is True
    magnitudes = [abs(v) for v in contributions.values()]
    assert magnitudes == sorted(magnitudes, reverse=True)
    assert list(contributions.items())[:3] == list(chosen.reasons.items()), "the worker's reasons first"
    assert abs(doc["expected_value"] + sum(contributions.values()) - doc["margin"]) < 1e-4
    text = cli(env, "explain", chosen.event_id).stdout
    assert (
        f"reasons    expected value {doc['expected_value']!r}" in text and f"margin {doc['margin']!r}" in text
    )
    assert sum(line.startswith("           ") for line in text.splitlines()) >= 10

    # verify: the recorded reasons computed again, bit-exactly
    done = cli(env, "verify", "--sample", "1000")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "150 bit-exact (100.0%), 0 mismatched" in done.stdout
    assert "reason codes bit-exact on 150 predictions" in done.stdout

    # a copy of a prediction with one reason changed is a mismatch naming it
    forged = orjson.loads(predictions[11].value())
    name = next(iter(forged["reasons"]))
    forged["reasons"][name] *= 1.5
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(worker_topics.predictions, orjson.dumps(forged), predictions[11].key(),
                     partition=predictions[11].partition())  # fmt: skip
    assert producer.flush(30) == 0
    done = cli(env, "verify", "--sample", "1000")
    assert done.returncode == 1, done.stdout + done.stderr
    mismatches = [line for line in done.stdout.splitlines() if line.startswith("MISMATCH")]
    assert len(mismatches) == 1 and f"MISMATCH {chosen.event_id} " in mismatches[0]
    assert (
        f"reasons.{name}: prediction {forged['reasons'][name]!r}, re-scored {chosen.reasons[name]!r}"
        in mismatches[0]
    )
