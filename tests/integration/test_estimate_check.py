"""The outcome worker on the real broker checks an estimated drift window on the window's outcomes."""

from __future__ import annotations

import datetime as dt
import socket

import numpy as np
import orjson
from confluent_kafka import Producer
from conftest import read_topic, scrape
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from stream.contracts import EstimateCheckReport, Outcome, Provenance
from stream.kafka.topics import ensure_topics

PARTITIONS = 2
SHA = "cd" * 32


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _provenance(event_id: str, score: float, topic: str, partition: int, offset: int) -> bytes:
    now = dt.datetime.now(dt.UTC)
    return Provenance(
        event_id=event_id, score=score,
        input={"topic": topic, "partition": partition, "offset": offset, "timestamp_ms": None},
        model={"name": "loan-approval", "version": "4", "sha256": SHA}, feature_hash="0" * 32, personal={},
        scorer={"version": "0", "revision": None, "worker_id": "scorer:1"},
        occurred_at=now, received_at=now, scored_at=now, emitted_at=now,
    ).model_dump_json().encode()  # fmt: skip


def _outcome(event_id: str, positive: bool) -> bytes:
    now = dt.datetime.now(dt.UTC)
    return Outcome(event_id=event_id, positive=positive, observed_at=now).model_dump_json().encode()


def _window(topic: str, events: int) -> bytes:
    """A window report as a scoring worker with a calibrated card writes it."""
    now = dt.datetime.now(dt.UTC)
    estimated = {
        m: {"value": 0.8, "lower": 0.7, "upper": 0.9} for m in ("accuracy", "precision", "recall", "f1")
    }
    estimated["roc_auc"] = {"value": 0.9, "lower": 0.85, "upper": 0.95}
    return orjson.dumps({
        "kind": "window", "model_name": "loan-approval", "model_version": "4", "worker_id": "scorer:1",
        "partitions": [0, 1], "events": events, "window_start": (now - dt.timedelta(minutes=1)).isoformat(),
        "window_end": now.isoformat(),
        "offsets": {f"{topic}[0]": {"first": 0, "last": 39}, f"{topic}[1]": {"first": 0, "last": 39}},
        "psi": {}, "distance": {}, "thresholds": {"psi": 0.25, "distance": 0.1}, "drifted": [],
        "alarms": [], "verdict": "ok", "estimated": estimated,
        "estimate_reference": {"accuracy": 0.85}, "estimate_margin": 0.05, "estimate_below": [],
    })  # fmt: skip


def test_an_estimated_window_is_checked_on_its_outcomes(kafka_bootstrap, worker_topics, start_worker):
    t = worker_topics
    ensure_topics(kafka_bootstrap, {t.input: PARTITIONS, t.provenance: PARTITIONS, t.outcomes: PARTITIONS})
    ensure_topics(kafka_bootstrap, {t.drift: 1})
    port = _free_port()
    judge = start_worker("outcomes", metrics_port=port)
    judge.wait_for("restored in", timeout=60)

    rng = np.random.default_rng(5)
    positives = rng.random(80) < 0.5
    scores = np.clip(np.where(positives, 0.7, 0.3) + rng.normal(0, 0.25, 80), 0.0, 1.0)
    where = [(p, o) for p in range(PARTITIONS) for o in range(40)]  # the window's 80 events
    where += [(0, 40), (1, 40), (1, 41)]  # scored after the window: not its events
    extra = len(where) - 80
    scores, positives = np.r_[scores, [0.99] * extra], np.r_[positives, [False] * extra]
    ids = [f"ev-{i}" for i in range(len(where))]
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random"})

    def send(indices: range) -> None:
        for i in indices:
            p, o = where[i]
            producer.produce(
                t.provenance, _provenance(ids[i], float(scores[i]), t.input, p, o), ids[i].encode()
            )
            producer.produce(t.outcomes, _outcome(ids[i], bool(positives[i])), ids[i].encode())
        assert producer.flush(30) == 0

    send(range(0, 50))  # joined before the report
    producer.produce(t.drift, _window(t.input, 80))
    send(range(50, len(where)))  # and after

    messages = read_topic(kafka_bootstrap, t.drift, 2, timeout=60, settle=1.0)
    checks = [
        EstimateCheckReport.model_validate_json(m.value()) for m in messages if b"estimate_check" in m.value()
    ]
    assert len(checks) == 1, judge.output()[-3_000:]
    (check,) = checks
    assert (check.events, check.outcomes, check.complete) == (80, 80, True)
    y, s = positives[:80], scores[:80]
    expected = {
        "accuracy": accuracy_score(y, s >= 0.5), "precision": precision_score(y, s >= 0.5),
        "recall": recall_score(y, s >= 0.5), "f1": f1_score(y, s >= 0.5), "roc_auc": roc_auc_score(y, s),
    }  # fmt: skip
    samples = scrape(port)
    for metric, value in expected.items():
        got = check.metrics[metric]
        assert abs(got.realised - value) < 1e-6 and abs(got.error - (got.estimate - value)) < 1e-6, metric
        labels = (("metric", metric), ("model", "loan-approval/4"))
        assert abs(samples[("streamscore_estimate_realised", labels)] - value) < 1e-9
        assert abs(samples[("streamscore_estimate_error", labels)] - (got.estimate - value)) < 1e-9
    assert "estimate check of loan-approval/4" in judge.output()
