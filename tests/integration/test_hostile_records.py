"""Records too large to copy, against a real broker: a dead letter cut to fit, never a crash loop.

Each oversized input (a value over the producer's limit, a key too long for a prediction, megabytes
of headers, a 5 MB value where the input topic takes 20 MB) sits between valid events; the worker
must stay up, dead-letter it with its origin, reason and what was cut, and score every event after.
"""

from __future__ import annotations

import orjson
import pytest
from confluent_kafka import Producer
from conftest import read_topic
from fuzz.outcomes import valid_events

from stream.contracts import DeadLetter, Prediction
from stream.kafka.topics import ensure_topics
from stream.scoring.dead_letters import CUT_HEADER, record_size

VALID = valid_events(40, seed=5)
TOPIC_MAX = 20 * 1024 * 1024


def _oversized() -> list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]] | None]]:
    """(name, key, value, headers) of each hostile record."""
    event = dict(VALID[0], event_id="big-key")
    return [
        ("value", b"value", b"v" * 1_040_000, None),
        ("key", b"k" * 999_700, orjson.dumps(event), None),
        ("headers", b"headers", b"not json", [(f"h{i}", b"h" * 350_000) for i in range(3)]),
        ("huge", b"huge", b"x" * 5_000_000, None),
    ]


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_oversized_records_become_cut_dead_letters_and_the_stream_goes_on(
    kafka_bootstrap, worker_topics, start_worker, guarantee
):
    ensure_topics(kafka_bootstrap, {worker_topics.input: 1}, config={"max.message.bytes": str(TOPIC_MAX)})
    worker = start_worker(processing_guarantee=guarantee, batch_size=16)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "message.max.bytes": TOPIC_MAX + 100_000})
    hostile = _oversized()
    for i, doc in enumerate(VALID):
        producer.produce(worker_topics.input, orjson.dumps(doc), doc["event_id"].encode(), 0)
        if i % 10 == 4:  # a hostile record after every tenth valid event
            name, key, value, headers = hostile[i // 10]
            producer.produce(worker_topics.input, value, key, 0, headers=headers)
    assert producer.flush(30) == 0

    predictions = read_topic(kafka_bootstrap, worker_topics.predictions, len(VALID), timeout=90)
    dead = read_topic(kafka_bootstrap, worker_topics.dlq, len(hostile), timeout=30)
    log = worker.output()
    assert worker.proc.poll() is None and "scoring loop failed" not in log, log[-2000:]
    scored = {Prediction.model_validate_json(m.value()).event_id for m in predictions}
    assert scored == {doc["event_id"] for doc in VALID}, "every valid event, before and after, is scored"

    assert len(dead) == len(hostile)
    cuts = {}
    for m, (name, key, value, _) in zip(dead, hostile, strict=True):
        assert record_size(m.key(), m.value(), m.headers()) <= 960_000
        letter = DeadLetter.from_headers(m.headers())
        assert (letter.topic, letter.stage) == (worker_topics.input, "decode")
        assert (key or b"").startswith(m.key() or b"") and value.startswith(m.value() or b"")
        cuts[name] = (letter.reason, dict(m.headers())[CUT_HEADER].decode())
    assert cuts["value"][0].startswith("message of 1040000 bytes exceeds")
    assert cuts["value"][1].startswith("value: 1040000 bytes cut to")
    assert cuts["key"][0] == "key of 999700 bytes exceeds the 16384-byte limit (STREAMSCORE_MAX_KEY_BYTES)"
    assert cuts["key"][1].startswith("key: 999700 bytes cut to")
    assert cuts["headers"][1].startswith("headers: 3 of 1050")
    assert cuts["huge"][1].startswith("value: 5000000 bytes cut to")


def test_a_dead_letter_topic_that_takes_smaller_records_stops_start_up(
    kafka_bootstrap, worker_topics, start_worker
):
    ensure_topics(kafka_bootstrap, {worker_topics.input: 1})
    ensure_topics(kafka_bootstrap, {worker_topics.dlq: 1}, config={"max.message.bytes": "500000"})
    worker = start_worker()
    assert worker.proc.wait(60) == 2
    errors = [line for line in worker.output().splitlines() if "error" in line.lower()]
    assert len(errors) == 1, worker.output()
    assert f"topic '{worker_topics.dlq}' takes records of at most 500000 bytes" in errors[0]
    assert "STREAMSCORE_MAX_RECORD_BYTES=960000" in errors[0]
