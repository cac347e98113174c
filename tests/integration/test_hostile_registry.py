"""The schema registry as a failing or hostile party, against real workers on the real broker.

A real registry (Apicurio on loopback): events naming ids not registered yet are dead-lettered, and
once the id is registered the events after it are scored; a writer's schema over the bounds is a
dead letter naming the limit, refused before it is compiled (the worker's peak memory stays
flat). A stand-in registry (``tests/standin_registry.py``) for what a real one does not do on
request: a burst of random ids makes no more lookups than the rate allows; an HTML page or a
silence ends the worker with one line naming the registry (exit code 70, nothing committed), also
under SIGTERM; at start-up either stops the worker with one line (exit code 2).
"""

from __future__ import annotations

import itertools
import json
import random
import signal
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from conftest import MODELS, read_topic
from standin_registry import StandInRegistry

from stream.contracts import DeadLetter
from stream.formats.events import event_serializer_for
from stream.formats.json_schema import event_json_schema
from stream.formats.registry import header, subject
from stream.formats.startup import event_schema
from stream.kafka.topics import ensure_topics
from stream.scoring.model import load_card, resolve
from stream.tools.produce import events

CARD = load_card(resolve(MODELS, "loan-approval"))
AVRO = event_schema("avro", CARD)
EXIT_FATAL = 70


def _values(seed: int, n: int) -> list[bytes]:
    return [value for _, value, *_ in itertools.islice(events(seed=seed), n)]


def _send(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for key, value in messages:
        producer.produce(topic, value, key)
    assert producer.flush(30) == 0


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def _reasons(bootstrap: str, topic: str, expected: int) -> list[str]:
    dead = read_topic(bootstrap, topic, expected, timeout=90, settle=0.5)
    return [DeadLetter.from_headers(m.headers()).reason for m in dead]


def test_a_wide_schema_is_refused_unparsed_and_an_id_registered_after_its_events_is_then_scored(
    kafka_bootstrap, schema_registry, worker_topics, start_worker, unique_name
):
    ensure_topics(kafka_bootstrap, {worker_topics.input: 1})
    client = SchemaRegistryClient({"url": schema_registry})
    own = event_json_schema(CARD)
    first = client.register_schema(subject(worker_topics.input), Schema(json.dumps(own), "JSON"))
    worker = start_worker(
        input_format="json-schema", schema_registry_url=schema_registry, schema_registry_miss_ttl_s=1
    )
    values = iter(_values(seed=11, n=40))
    _send(kafka_bootstrap, worker_topics.input, [(b"known", header(first) + next(values))])
    assert len(read_topic(kafka_bootstrap, worker_topics.predictions, 1, timeout=60, settle=0.2)) == 1
    before = _peak_rss_mb(worker.proc.pid)

    wide = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "properties": {
        f"field_{i}": {"type": "number", "maximum": i} for i in range(10_000)}}  # fmt: skip
    wide_id = client.register_schema(unique_name("wide") + "-value", Schema(json.dumps(wide), "JSON"))
    after_it = [(b"after", header(first) + next(values)) for _ in range(5)]
    _send(kafka_bootstrap, worker_topics.input, [(b"wide", header(wide_id) + next(values)), *after_it])
    (reason,) = _reasons(kafka_bootstrap, worker_topics.dlq, 1)
    assert f"schema id {wide_id}" in reason and "STREAMSCORE_SCHEMA_MAX_BYTES" in reason, reason
    assert len(read_topic(kafka_bootstrap, worker_topics.predictions, 6, timeout=60)) == 6
    assert _peak_rss_mb(worker.proc.pid) < before + 150, "the wide schema was never compiled"

    early = [(b"early", header(wide_id + i) + next(values)) for i in range(1, 21)]  # not registered yet
    _send(kafka_bootstrap, worker_topics.input, early)
    reasons = _reasons(kafka_bootstrap, worker_topics.dlq, 1 + len(early))[1:]
    assert len(reasons) == len(early)
    assert all("not in the registry" in r or "rate-limited" in r for r in reasons), reasons
    newer = {**own, "title": "Event, version 2"}
    second = client.register_schema(subject(worker_topics.input), Schema(json.dumps(newer), "JSON"))
    assert wide_id < second <= wide_id + 20, "an id the early events named"
    time.sleep(1.5)  # the misses remembered for 1 s are forgotten
    late = [(b"late", header(second) + next(values)) for _ in range(5)]
    _send(kafka_bootstrap, worker_topics.input, late)
    predictions = read_topic(kafka_bootstrap, worker_topics.predictions, 6 + len(late), timeout=60)
    assert len(predictions) == 6 + len(late), worker.output()[-2000:]
    assert worker.proc.poll() is None, worker.output()[-2000:]


@pytest.fixture
def standin(worker_topics) -> Iterator[StandInRegistry]:
    with StandInRegistry() as registry:
        registry.schemas[1] = (AVRO.schema_str, "AVRO")
        registry.subjects[subject(worker_topics.input)] = 1
        yield registry


def _avro(schema_id: int, value: bytes) -> bytes:
    return event_serializer_for("avro", schema_id, AVRO.schema_str)(value)


def _last_line(output: str) -> str:
    return [line for line in output.splitlines() if line.strip()][-1]


def test_random_ids_make_at_most_the_rate_of_lookups_and_an_html_answer_ends_the_worker(
    kafka_bootstrap, worker_topics, start_worker, standin
):
    ensure_topics(kafka_bootstrap, {worker_topics.input: 1})
    worker = start_worker(
        input_format="avro", schema_registry_url=standin.url, schema_registry_lookups_per_s=5
    )
    value = _values(seed=12, n=1)[0]
    ids = random.Random(12).sample(range(2, 2**31), 2_000)
    good = [(b"good", _avro(1, v)) for v in _values(seed=13, n=20)]
    _send(kafka_bootstrap, worker_topics.input, [(b"random", _avro(i, value)) for i in ids] + good)
    reasons = _reasons(kafka_bootstrap, worker_topics.dlq, len(ids))
    assert len(reasons) == len(ids)
    assert len(read_topic(kafka_bootstrap, worker_topics.predictions, len(good), timeout=60)) == len(good)
    lookups = standin.lookups()
    span = lookups[-1] - lookups[0]
    assert len(lookups) <= 5 * (span + 1) + 1, (len(lookups), span)  # 5 a second, 5 at once, and id 1
    assert sum("rate-limited" in r for r in reasons) >= len(ids) - len(lookups)

    standin.mode = "garbage"
    _send(kafka_bootstrap, worker_topics.input, [(b"new", _avro(77, value))])
    assert worker.proc.wait(60) == EXIT_FATAL, worker.output()[-2000:]
    line = _last_line(worker.output())
    assert f"schema registry {standin.url}: lookup of schema id 77: HTTP 200 (<html>" in line, line
    assert "not a schema registry's answer" in line and "JSONDecodeError" not in worker.output(), line


def test_sigterm_while_the_registry_hangs_names_the_registry_not_the_broker(
    kafka_bootstrap, worker_topics, start_worker, standin
):
    ensure_topics(kafka_bootstrap, {worker_topics.input: 1})
    worker = start_worker(input_format="avro", schema_registry_url=standin.url, schema_registry_timeout_s=3)
    values = _values(seed=14, n=2)
    _send(kafka_bootstrap, worker_topics.input, [(b"good", _avro(1, values[0]))])
    assert len(read_topic(kafka_bootstrap, worker_topics.predictions, 1, timeout=60, settle=0.2)) == 1
    standin.mode = "hang"
    _send(kafka_bootstrap, worker_topics.input, [(b"new", _avro(8, values[1]))])
    assert standin.hanging.wait(30), worker.output()[-2000:]
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(30) == EXIT_FATAL, worker.output()[-2000:]
    line = _last_line(worker.output())
    assert f"schema registry {standin.url}: lookup of schema id 8: no answer within 3 s" in line, line
    assert "broker" not in line, line


@pytest.mark.parametrize(
    ("mode", "says"), [("hang", "did not answer within 2 s"), ("garbage", "not a schema registry's answer")]
)
def test_a_failing_registry_stops_start_up_with_one_line(start_worker, standin, mode, says):
    standin.mode = mode
    worker = start_worker(input_format="avro", schema_registry_url=standin.url, schema_registry_timeout_s=2)
    assert worker.proc.wait(60) == 2, worker.output()[-2000:]
    lines = [line for line in worker.output().splitlines() if line.startswith("streamscore: error:")]
    assert len(lines) == 1, worker.output()
    assert f"schema registry {standin.url}" in lines[0] and says in lines[0], lines[0]
