"""Metrics of what inputs hold beside the features: fields no model read (labels bounded: the first
names seen get their own, the rest ``other``), events the challenger could not read, unseen categories."""

from __future__ import annotations

from collections import Counter

from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from stream.scoring.pipeline import BatchResult
from stream.worker.metrics import IGNORED_NAMES, WorkerMetrics


def _ignored(metrics: WorkerMetrics) -> dict[str, float]:
    text = generate_latest(metrics.registry).decode()
    return {
        s.labels["field"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "streamscore_ignored_fields_total"
    }


def _batch(ignored: dict[str, int]) -> BatchResult:
    result = BatchResult()
    result.ignored = Counter(ignored)
    return result


def test_ignored_fields_are_counted_by_name():
    metrics = WorkerMetrics()
    metrics.observe(10, _batch({"channel": 10, "source": 3}), 0.01)
    metrics.observe(5, _batch({"channel": 5}), 0.01)
    assert _ignored(metrics) == {"channel": 15, "source": 3}


def test_names_past_the_first_hundred_and_long_or_unprintable_ones_count_as_other():
    metrics = WorkerMetrics()
    first = {f"f{i}": 1 for i in range(IGNORED_NAMES)}
    metrics.observe(1, _batch(first), 0.01)
    metrics.observe(1, _batch({f"g{i}": 2 for i in range(1_000)}), 0.01)
    metrics.observe(1, _batch({"f7": 4}), 0.01)
    got = _ignored(metrics)
    assert len(got) == IGNORED_NAMES + 1
    assert got["other"] == 2_000 and got["f7"] == 5

    fresh = WorkerMetrics()
    fresh.observe(1, _batch({"x" * 65: 1, "bell\x07": 1, "ok": 1}), 0.01)
    assert _ignored(fresh) == {"other": 2, "ok": 1}


def test_the_challengers_misses_are_counted():
    metrics = WorkerMetrics()
    for missed in (3, 0, 4):
        result = BatchResult()
        result.missed = missed
        metrics.observe(10, result, 0.01)
    assert metrics.registry.get_sample_value("streamscore_challenger_missed_total") == 7


def test_the_share_of_unseen_categories_is_a_gauge_per_string_feature():
    from stream.drift.monitor import Report

    metrics = WorkerMetrics()
    report = Report("window", [0], 10, 0.0, 1.0, {0: (0, 9)}, {"region": 0.3, "score": 0.0},
                    {"region": 0.2, "score": 0.0}, ["region"], [], unseen={"region": 0.25})  # fmt: skip
    metrics.observe_drift(report)
    assert metrics.registry.get_sample_value("streamscore_drift_unseen", {"feature": "region"}) == 0.25
