"""Producer -> real worker process -> real broker: every event ends as exactly one outcome."""

from __future__ import annotations

import time
import urllib.request
from collections import Counter

import numpy as np
import orjson
from conftest import MODELS, read_topic
from prometheus_client.parser import text_string_to_metric_families

from stream.contracts import DeadLetter, Prediction, Provenance
from stream.kafka.topics import ensure_topics
from stream.scoring.model import load
from stream.tools.broker import free_port
from stream.tools.produce import MALFORMED, produce

N_EVENTS = 3_000


def test_every_event_is_scored_or_dead_lettered_once(kafka_bootstrap, worker_topics, start_worker):
    ensure_topics(kafka_bootstrap, {worker_topics.input: 3})
    metrics_port = free_port()
    worker = start_worker(batch_size=32, batch_max_wait_ms=5, metrics_port=metrics_port)
    produced = produce(kafka_bootstrap, worker_topics.input, count=N_EVENTS, seed=11, malformed_fraction=0.08)
    n_valid, n_bad = len(produced.valid), len(produced.malformed)
    assert n_bad > 100 and set(produced.malformed.values()) == set(MALFORMED)

    predictions = read_topic(kafka_bootstrap, worker_topics.predictions, n_valid, timeout=90)
    provenance = read_topic(kafka_bootstrap, worker_topics.provenance, n_valid, timeout=30)
    dead = read_topic(kafka_bootstrap, worker_topics.dlq, n_bad, timeout=30)
    assert worker.proc.poll() is None, worker.output()

    # predictions: one per valid event, equal to an offline onnxruntime run on the same features
    by_id = {}
    for m in predictions:
        p = Prediction.model_validate_json(m.value())
        assert p.event_id not in by_id, f"duplicate prediction for {p.event_id}"
        by_id[p.event_id] = p
    assert set(by_id) == set(produced.valid)
    model = load(MODELS, "loan-approval")
    ids = sorted(produced.valid)
    x = np.array([[produced.valid[i][f] for f in model.feature_names] for i in ids], dtype=np.float32)
    offline = model.predict_proba(x)
    online = np.array([by_id[i].score for i in ids])
    assert np.array_equal(online.astype(np.float32), offline), "bit-exact with an offline run"
    labels = Counter(by_id[i].label for i in ids)
    assert set(labels) == {"approve", "deny"}
    for i, s in zip(ids, offline, strict=True):
        assert by_id[i].label == ("approve" if s >= 0.5 else "deny")

    # provenance: one per prediction, joined by event_id, pointing at the exact input record
    prov = {}
    for m in provenance:
        record = Provenance.model_validate_json(m.value())
        assert record.event_id not in prov
        prov[record.event_id] = record
        assert m.key() == predictions[0].key() or m.key()  # keyed like its input
    assert set(prov) == set(by_id)
    assert {r.model.sha256 for r in prov.values()} == {model.card.sha256}
    assert {r.input.topic for r in prov.values()} == {worker_topics.input}
    offsets = {(r.input.partition, r.input.offset) for r in prov.values()}
    assert len(offsets) == n_valid
    for r in prov.values():
        assert r.occurred_at <= r.received_at <= r.scored_at <= r.emitted_at
        assert set(r.personal) == {"zipcode"}
        assert "zipcode" not in orjson.loads(orjson.dumps(r.model_dump(mode="json")))["input"]

    # dead letters: one per malformed event, original bytes and key, stage as the producer intended
    assert len(dead) == n_bad
    stages = {}
    for m in dead:
        headers = DeadLetter.from_headers(m.headers())
        assert headers.topic == worker_topics.input
        kind = produced.malformed[m.key().decode()]
        assert headers.stage == MALFORMED[kind][0], (kind, headers.reason)
        assert headers.reason
        stages[m.key().decode()] = headers.stage
    assert set(stages) == set(produced.malformed)
    all_offsets = offsets | {
        (DeadLetter.from_headers(m.headers()).partition, DeadLetter.from_headers(m.headers()).offset)
        for m in dead
    }
    assert len(all_offsets) == N_EVENTS, "every input offset accounted for exactly once"

    # the worker's own metrics agree with what the topics hold
    scraped = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(scraped)
        for s in f.samples
    }
    assert samples[("streamscore_events_scored_total", ())] == n_valid
    assert samples[("streamscore_events_consumed_total", ())] == N_EVENTS
    for topic, n in (
        (worker_topics.predictions, n_valid),
        (worker_topics.provenance, n_valid),
        (worker_topics.dlq, n_bad),
    ):
        assert samples[("streamscore_records_delivered_total", (("topic", topic),))] == n
    assert samples[("process_resident_memory_bytes", ())] > 0
    dead_by_stage = Counter(MALFORMED[k][0] for k in produced.malformed.values())
    for stage, n in dead_by_stage.items():
        assert samples[("streamscore_events_dead_lettered_total", (("stage", stage),))] == n
    assert (
        samples[
            (
                "streamscore_model_info",
                (("name", "loan-approval"), ("sha256", model.card.sha256), ("version", model.card.version)),
            )
        ]
        == 1
    )

    # the worker's own lag gauge is there, and its probes say it is alive and ready
    assert ("streamscore_consumer_lag_up", (("group", worker.env["STREAMSCORE_APP_ID"]),)) in samples
    for probe in ("healthz", "readyz"):
        doc = orjson.loads(
            urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/{probe}", timeout=5).read()
        )
        assert doc["ok"] is True, doc
    assert doc["model"] == "loan-approval/1" and sorted(doc["partitions"]) == [0, 1, 2]

    # logs: JSON lines, with a periodic report carrying its figures as fields
    deadline = time.monotonic() + 10
    while '"scored_total"' not in worker.output() and time.monotonic() < deadline:
        time.sleep(0.2)
    docs = [orjson.loads(line) for line in worker.output().splitlines() if line.strip()]
    reports = [d for d in docs if "scored_total" in d]
    assert reports and reports[-1]["scored_total"] == n_valid and reports[-1]["level"] == "info"
