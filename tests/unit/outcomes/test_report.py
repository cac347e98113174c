"""The performance report: the drift topic's contract, the sample rate, the gauges."""

from __future__ import annotations

import orjson

from stream.contracts import PerformanceReport
from stream.drift.performance import PerformanceTracker
from stream.outcomes.report import OutcomeMetrics, performance_report


def test_a_report_meets_the_contract_and_says_the_sample_rate():
    metrics, tracker = OutcomeMetrics(), PerformanceTracker(window=50)
    for i in range(60):
        tracker.add(i % 2 == 0, 0.8 if i % 2 == 0 else 0.3)
    counts = {"joined": 60, "duplicate": 0, "invalid": 0, "unmatched": 0, "expired_predictions": 0}
    raw = performance_report("loan-approval/3", tracker, metrics, "h:1", {**counts, "waiting": 7}, 0.25)
    report = PerformanceReport.model_validate(orjson.loads(raw))
    assert (report.model_name, report.model_version, report.sample) == ("loan-approval", "3", 0.25)
    assert report.accuracy == 1.0 and report.outcomes == 50 and report.counts["waiting"] == 7
    assert (
        metrics.registry.get_sample_value("streamscore_model_accuracy", {"model": "loan-approval/3"}) == 1.0
    )
    assert tracker.since_report == 0
