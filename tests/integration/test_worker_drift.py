"""The worker reports drift on its drift topic: quiet on the reference distribution, loud after a shift."""

from __future__ import annotations

from conftest import read_topic

from stream.contracts import DriftReport
from stream.producer import produce
from stream.topics import ensure_topics

WINDOW = 1_000
SHIFT_AT = 3_000
N_EVENTS = 8_000


def test_feature_shift_shows_in_drift_reports(kafka_bootstrap, worker_topics, start_worker, unique_name):
    drift_topic = unique_name("drift")
    ensure_topics(kafka_bootstrap, {worker_topics.input: 3})
    worker = start_worker(drift_window=WINDOW, drift_topic=drift_topic)
    produce(
        kafka_bootstrap, worker_topics.input, count=N_EVENTS, seed=61, drift_at=SHIFT_AT, drift_kind="feature"
    )
    expected = N_EVENTS // WINDOW - 1
    messages = read_topic(kafka_bootstrap, drift_topic, expected, timeout=90, settle=1.0)
    assert worker.proc.poll() is None, worker.output()
    reports = [DriftReport.model_validate_json(m.value()) for m in messages]
    assert len(reports) >= expected

    before = [r for r in reports if r.events and sum(r.last_offsets.values()) < SHIFT_AT - 3 * 20]
    assert before and all(r.verdict == "ok" and not r.drifted for r in before[:2])
    assert max(max(r.values.values()) for r in before[:2]) < 0.1
    last = reports[-1]
    assert last.verdict == "drift" and {"salary", "loan"} <= set(last.drifted)
    assert last.threshold == 0.25 and last.window_start <= last.window_end
    assert '"drift_verdict":"drift"' in worker.output()
