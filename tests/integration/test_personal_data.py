"""Features the card marks personal never leave the worker in clear, except in the dead-letter topic.

The card of a registry copy marks salary and zipcode personal; events carry distinctive values of
both. Predictions, provenance, drift reports and the worker's log (at debug) are searched for those
values as they could be rendered; the dead-letter topic keeps original bytes by design (for replay),
which the search confirms it can find.
"""

from __future__ import annotations

import json

import numpy as np
import orjson
from confluent_kafka import Producer
from conftest import read_topic
from fuzz.outcomes import valid_events
from model_versions import add_version

from stream.keys import Keys, derive
from stream.scoring.codec import keyed_hash

SALARIES = (123456.78, 234567.89)
ZIPCODES = (9753186, 8642097)
SECRET = "personal-data-test-secret-of-32-or-more-characters"
N = 300


def _rendered(value):
    """The ways a value could be written out: as given, as float32, and as floats or ints."""
    f32 = np.float32(value)
    forms = {str(value), repr(float(value)), str(f32), repr(float(f32)), f"{float(f32):.2f}"}
    if float(value).is_integer():
        forms |= {str(int(value)), f"{int(value)}.0"}
    return {form.encode() for form in forms}


def _mark_personal(card):
    for feature in card["features"]:
        feature["personal"] = feature["name"] in ("salary", "zipcode")


def test_personal_features_are_only_keyed_hashes(
    kafka_bootstrap, worker_topics, start_worker, unique_name, tmp_path
):
    root = tmp_path / "registry"
    add_version(root, "1", edit_card=_mark_personal)
    drift_topic = unique_name("drift")
    worker = start_worker(
        model_dir=root,
        secret=SECRET,
        drift_window=100,
        drift_topic=drift_topic,
        log_level="debug",
        batch_size=16,
    )

    producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all"})
    events = valid_events(N, seed=83)
    for i, event in enumerate(events):
        event["features"].update(salary=SALARIES[i % 2], zipcode=ZIPCODES[i % 2])
        producer.produce(worker_topics.input, orjson.dumps(event), key=event["entity_id"].encode())
    bad = [
        {
            **events[0],
            "event_id": "bad-1",
            "features": {k: v for k, v in events[0]["features"].items() if k != "age"},
        },
        {**events[1], "event_id": "bad-2", "features": {**events[1]["features"], "salary": 1e39}},
        {**events[1], "event_id": "bad-3", "features": {**events[1]["features"], "zipcode": 9753186.5}},
    ]
    for event in bad:
        producer.produce(worker_topics.input, json.dumps(event).encode(), key=b"bad")
    assert producer.flush(30) == 0

    outputs = {
        topic: read_topic(kafka_bootstrap, topic, expected, timeout=90, settle=1.0)
        for topic, expected in [
            (worker_topics.predictions, N),
            (worker_topics.provenance, N),
            (drift_topic, N // 100 - 1),
            (worker_topics.dlq, len(bad)),
        ]
    }
    assert worker.stop() == 0
    log = worker.output().encode()
    assert len(outputs[worker_topics.provenance]) == N and len(outputs[drift_topic]) >= 2, "all were made"
    assert b"assigned partitions" in log, "the log was written"

    clear = set().union(*(_rendered(v) for v in (*SALARIES, *ZIPCODES)))
    for topic in (worker_topics.predictions, worker_topics.provenance, drift_topic):
        for m in outputs[topic]:
            blob = b"".join([m.key() or b"", m.value() or b"", *(v for _, v in m.headers() or [])])
            found = {c for c in clear if c in blob}
            assert not found, f"{found} in clear on {topic}: {blob[:300]!r}"
    assert not {c for c in clear if c in log}, "personal values in the worker's log"

    dead = outputs[worker_topics.dlq]
    assert all(any(c in m.value() for c in clear) for m in dead), "dead letters keep the original bytes"
    reasons = b" ".join(v for m in dead for k, v in m.headers() if k == "__connect.errors.exception.message")
    assert (
        b"'salary' is a personal value" in reasons and b"1e+39" not in reasons and b"9753186" not in reasons
    )

    # keyed: the hash is the worker's personal-data key's (derived from its secret), not another key's
    # (not the secret itself, not the state key), and one value gives one hash
    key = Keys.from_secret(SECRET).personal
    by_id = {
        orjson.loads(m.value())["event_id"]: orjson.loads(m.value())["personal"]
        for m in outputs[worker_topics.provenance]
    }
    for i, event in enumerate(events[:4]):
        personal = by_id[event["event_id"]]
        assert set(personal) == {"salary", "zipcode"}
        for name, value in (("salary", SALARIES[i % 2]), ("zipcode", ZIPCODES[i % 2])):
            data = name.encode() + b"=" + np.float32(value).tobytes()
            assert personal[name] == keyed_hash(key, data)
            for other in (SECRET.encode(), derive(SECRET.encode(), "state-signing v1"), b"another-key"):
                assert personal[name] != keyed_hash(other, data)
    assert len({p["salary"] for p in by_id.values()}) == len(SALARIES)
