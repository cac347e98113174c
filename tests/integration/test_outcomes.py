"""True outcomes joined with predictions: rolling performance, decay after a concept change, a restart."""

from __future__ import annotations

import re
import time

import orjson
from confluent_kafka import Producer
from conftest import read_topic

from stream.contracts import DeadLetter, PerformanceReport
from stream.kafka.topics import ensure_topics
from stream.tools.produce import produce

WINDOW = 500
PARTITIONS = 3


def _performance(kafka_bootstrap, topic, expected):
    messages = read_topic(kafka_bootstrap, topic, expected, timeout=120, settle=2.0)
    values = [orjson.loads(m.value()) for m in messages]
    return [PerformanceReport.model_validate(v) for v in values if v["kind"] == "performance"]


def test_outcomes_reveal_a_concept_change(kafka_bootstrap, worker_topics, start_worker):
    ensure_topics(kafka_bootstrap, {worker_topics.input: PARTITIONS})
    start_worker(drift_window=0)
    judge = start_worker("outcomes", outcome_window=WINDOW)

    # 1. 2,000 events and their outcomes one second later
    first = produce(
        kafka_bootstrap, worker_topics.input, count=2_000, seed=71,
        outcome_topic=worker_topics.outcomes, outcome_delay=1.0,
    )  # fmt: skip
    reports = _performance(kafka_bootstrap, worker_topics.drift, 2_000 // WINDOW)
    assert len(reports) == 4, judge.output()[-3_000:]
    assert all(r.verdict == "ok" and r.accuracy > 0.9 and r.roc_auc > 0.95 for r in reports)
    assert reports[-1].outcomes == WINDOW and reports[-1].counts["joined"] == 2_000

    # 2. the outcome worker restarts: its join table and rolling window come back from the changelog;
    # an invalid outcome and a repeated one are counted
    assert judge.stop() == 0
    judge = start_worker("outcomes", outcome_window=WINDOW)
    repeated = next(iter(first.labels))
    extra = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random"})
    extra.produce(worker_topics.outcomes, b'{"event_id": "x", "positive": "maybe"}', b"x")
    outcome = {
        "event_id": repeated,
        "positive": bool(first.labels[repeated]),
        "observed_at": "2026-11-27T10:00:00Z",
    }
    extra.produce(worker_topics.outcomes, orjson.dumps(outcome), repeated.encode())
    extra.flush(10)
    deadline = time.monotonic() + 120
    while "join table holds" not in judge.output() and time.monotonic() < deadline:
        time.sleep(0.2)  # restarted: its state is back before the events flow
    # a live stream (the scorer keeps up, outcomes follow their events in order): joins in event order
    produce(
        kafka_bootstrap, worker_topics.input, count=3_000, rate=500, seed=72, drift_at=1_000,
        drift_kind="concept", outcome_topic=worker_topics.outcomes, outcome_delay=1.0,
    )  # fmt: skip
    reports = _performance(kafka_bootstrap, worker_topics.drift, 4 + 6)
    assert judge.proc.poll() is None, judge.output()
    held = re.search(r"join table holds (\d+) entries", judge.output())
    assert held and int(held.group(1)) >= 2_000, judge.output()[-2_000:]
    after = reports[4:]
    assert after[0].outcomes == WINDOW, "the rolling window was rebuilt, not started empty"
    assert after[-1].counts["duplicate"] == 1 and after[-1].counts["invalid"] == 1
    (dead,) = read_topic(kafka_bootstrap, worker_topics.dlq, 1)
    assert DeadLetter.from_headers(dead.headers()).topic == worker_topics.outcomes

    # 3. the concept changes 1,000 events after the restart: the loss detector fires soon after
    change = 1_000  # joined by the restarted worker before the change
    decay = [r for r in after if r.verdict == "decay"]
    assert decay, [(r.counts["joined"], r.accuracy) for r in after]
    delay = decay[0].counts["joined"] - change
    print(f"concept change: the loss detector fired {delay} outcomes after it")
    assert 0 < delay <= 300, f"flagged {delay} outcomes after the change"
    assert after[-1].accuracy < 0.8 and after[-1].log_loss > reports[3].log_loss
    assert "the loss rose" in judge.output()
