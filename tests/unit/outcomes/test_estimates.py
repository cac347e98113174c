"""The estimate check: each estimated drift window's figures beside those realised on its outcomes."""

from __future__ import annotations

import datetime as dt

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from stream.contracts import EstimateCheckReport
from stream.outcomes.decode import ProvenanceScore
from stream.outcomes.estimates import MAX_CHECKS, Estimates, realised

SHA = "ab" * 32
START = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _checker(capacity: int = 1_000, wait_s: float = 60.0):
    sent: list[bytes] = []
    registry, clock = CollectorRegistry(), Clock()
    estimates = Estimates(registry, "judge:1", sent.append, wait_s, capacity, clock)
    return estimates, sent, registry, clock


def _window(offsets: dict[str, tuple[int, int]], events: int, end_s: int = 0, **extra) -> bytes:
    """A scoring worker's window report with estimates, as the drift topic carries it."""
    figures = {
        m: {"value": 0.8, "lower": 0.7, "upper": 0.9} for m in ("accuracy", "precision", "recall", "f1")
    }
    figures["roc_auc"] = {"value": 0.85, "lower": 0.75, "upper": 0.95}
    record = {
        "kind": "window", "model_name": "m", "model_version": "1", "worker_id": "scorer:7",
        "partitions": [0, 1], "events": events,
        "window_start": START.isoformat(), "window_end": (START + dt.timedelta(seconds=end_s)).isoformat(),
        "offsets": {k: {"first": a, "last": b} for k, (a, b) in offsets.items()},
        "psi": {}, "distance": {}, "thresholds": {"psi": 0.25, "distance": 0.1}, "drifted": [], "alarms": [],
        "verdict": "ok", "estimated": figures, "estimate_reference": {"accuracy": 0.82},
        "estimate_margin": 0.05, "estimate_below": [], **extra,
    }  # fmt: skip
    return orjson.dumps(record)


def _answer(estimates: Estimates, event_id: str, partition: int, offset: int, score: float, **kw) -> None:
    role, version = kw.get("role", "champion"), kw.get("version", "1")
    estimates.predicted(
        ProvenanceScore.model_validate(
            {
                "event_id": event_id, "score": score, "role": role,
                "model": {"name": "m", "version": version, "sha256": SHA},
                "input": {"topic": "events", "partition": partition, "offset": offset, "timestamp_ms": None},
            }
        )
    )  # fmt: skip


def _reports(sent: list[bytes]) -> list[EstimateCheckReport]:
    return [EstimateCheckReport.model_validate_json(v) for v in sent]


def _events(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    positives = rng.random(n) < 0.4
    scores = np.clip(np.where(positives, 0.65, 0.35) + rng.normal(0, 0.2, n), 0, 1)
    return positives, scores


def test_realised_figures_are_sklearns_at_the_threshold():
    positives, scores = _events(300)
    got = realised(positives, scores, 0.6)
    predicted = scores >= 0.6
    assert got["accuracy"] == pytest.approx(accuracy_score(positives, predicted))
    assert got["precision"] == pytest.approx(precision_score(positives, predicted))
    assert got["recall"] == pytest.approx(recall_score(positives, predicted))
    assert got["f1"] == pytest.approx(f1_score(positives, predicted))
    assert got["roc_auc"] == pytest.approx(roc_auc_score(positives, scores))
    none = realised(np.zeros(5, bool), np.full(5, 0.1), 0.5)
    assert none["accuracy"] == 1.0 and none["precision"] is None and none["recall"] is None
    assert none["roc_auc"] is None, "one class: undefined, not 0"


def test_only_the_windows_offsets_and_model_count_and_pairs_before_and_after_the_report():
    estimates, sent, registry, _ = _checker()
    positives, scores = _events(40, seed=1)
    # the window: events[0] offsets 100..119 and events[1] offsets 10..29, 40 events
    inside = [(0, 100 + i) for i in range(20)] + [(1, 10 + i) for i in range(20)]
    _answer(estimates, "v2", 0, 101, 0.99, version="2")  # another model version: not this window's
    estimates.observed("v2", False)
    _answer(estimates, "in0", 0, 100, 0.01, role="shadow", version="2")  # a shadow answer is not judged
    for i, (p, o) in enumerate(inside[:25]):  # joined before the report arrives
        _answer(estimates, f"in{i}", p, o, float(scores[i]))
        estimates.observed(f"in{i}", bool(positives[i]))
    outside = [(0, 99), (0, 120), (1, 9), (1, 30), (2, 105)]  # next to the ranges, another partition
    for j, (p, o) in enumerate(outside):
        _answer(estimates, f"out{j}", p, o, 0.99)
        estimates.observed(f"out{j}", False)
    estimates.window(_window({"events[0]": (100, 119), "events[1]": (10, 29)}, events=40))
    assert not sent, "15 of the window's events have no outcome yet"
    for i in range(25, 40):  # joined after: outcome first, then the prediction
        p, o = inside[i]
        estimates.observed(f"in{i}", bool(positives[i]))
        estimates.observed(f"in{i}", bool(positives[i]))  # read twice (moved to its partition)
        assert not sent
        _answer(estimates, f"in{i}", p, o, float(scores[i]))
    (report,) = _reports(sent)
    assert (report.outcomes, report.events, report.complete, report.threshold) == (40, 40, True, 0.5)
    expected = realised(positives, scores, 0.5)
    for metric, check in report.metrics.items():
        assert check.realised == pytest.approx(expected[metric], abs=1e-6)
        assert check.error == pytest.approx(check.estimate - expected[metric], abs=1e-6)
        assert check.inside == (check.interval[0] <= expected[metric] <= check.interval[1])
        labels = {"model": "m/1", "metric": metric}
        assert registry.get_sample_value("streamscore_estimate_realised", labels) == pytest.approx(
            expected[metric]
        )
        assert registry.get_sample_value("streamscore_estimate_error", labels) == pytest.approx(
            check.estimate - expected[metric]
        )
    assert report.window.worker_id == "scorer:7" and report.window.offsets["events[1]"].first == 10


def test_the_cards_threshold_when_the_report_gives_it():
    estimates, sent, _, _ = _checker()
    for i, score in enumerate((0.55, 0.65, 0.75)):
        _answer(estimates, f"e{i}", 0, i, score)
        estimates.observed(f"e{i}", True)
    estimates.window(_window({"events[0]": (0, 2)}, events=3, estimate_threshold=0.7))
    (report,) = _reports(sent)
    assert report.threshold == 0.7 and report.metrics["recall"].realised == pytest.approx(1 / 3)


def test_a_window_whose_outcomes_never_all_come_is_checked_once_the_retention_has_passed():
    estimates, sent, registry, clock = _checker(wait_s=60.0)
    estimates.window(_window({"events[0]": (0, 9)}, events=10))
    for i in range(6):  # all positive: ROC AUC undefined
        _answer(estimates, f"e{i}", 0, i, 0.9 if i < 4 else 0.3)
        estimates.observed(f"e{i}", True)
    clock.now = 59.0
    estimates.tick()
    assert not sent
    clock.now = 60.0
    estimates.tick()
    (report,) = _reports(sent)
    assert (report.outcomes, report.complete) == (6, False)
    assert report.metrics["accuracy"].realised == pytest.approx(4 / 6)
    assert report.metrics["roc_auc"].realised is None and report.metrics["roc_auc"].error is None
    assert (
        registry.get_sample_value("streamscore_estimate_realised", {"model": "m/1", "metric": "roc_auc"})
        is None
    )
    estimates.tick()
    assert len(sent) == 1, "published once"


def test_memory_is_bounded_oldest_first():
    estimates, sent, _, _ = _checker(capacity=1_000)
    for i in range(150):  # before any estimated report: a tenth of the capacity waits
        _answer(estimates, f"early{i}", 0, i, 0.9)
    assert len(estimates._predicted) == 100 and estimates.dropped == 50
    estimates.observed("early0", True)  # its prediction was dropped: it waits alone
    estimates.window(_window({"events[9]": (0, 0)}, events=1))
    assert estimates.active and not sent
    for i in range(2_500):
        _answer(estimates, f"e{i}", 1, i, 0.9)
        estimates.observed(f"e{i}", True)
    assert len(estimates.pairs) == 1_000 and estimates.pairs[0].offset == 1_500, "the newest pairs kept"
    for i in range(1_200):
        _answer(estimates, f"late{i}", 1, 10_000 + i, 0.9)
    assert len(estimates._predicted) == 1_000
    for k in range(MAX_CHECKS + 1):  # one window more than are kept waiting: the oldest goes out now
        estimates.window(_window({"events[9]": (k, k)}, events=1, end_s=k))
    (report,) = _reports(sent)
    assert (report.complete, report.outcomes, report.window.offsets["events[9]"].first) == (False, 0, 0)
    assert len(estimates.checks) == MAX_CHECKS


def test_other_reports_are_ignored_and_a_broken_estimate_is_counted():
    estimates, sent, _, _ = _checker()
    performance = orjson.dumps({"kind": "performance", "model_name": "m", "accuracy": 0.9})
    plain = orjson.loads(_window({"events[0]": (0, 0)}, events=1))
    del plain["estimated"]
    assert estimates.window(performance) is None and estimates.window(orjson.dumps(plain)) is None
    broken = _window({"events[0]": (0, 0)}, events=-1)
    assert estimates.window(broken) is None and estimates.refused == 1
    assert estimates.window(b'\xff not json "estimated" "kind":"window"') is None
    assert estimates.refused == 2 and not estimates.checks and not sent


def test_overlapping_windows_each_count_a_pair_and_a_report_read_again_is_checked_once():
    estimates, sent, _, _ = _checker()
    first = _window({"events[0]": (0, 5)}, events=6, end_s=1)
    estimates.window(first)
    estimates.window(_window({"events[0]": (4, 7), "events[1]": (0, 1)}, events=6, end_s=2))
    for i in range(8):
        _answer(estimates, f"e{i}", 0, i, 0.9)
        estimates.observed(f"e{i}", i % 2 == 0)
    assert [r.window.window_end.second for r in _reports(sent)] == [1], "the second one waits for events[1]"
    for i in range(2):
        estimates.observed(f"f{i}", True)
        _answer(estimates, f"f{i}", 1, i, 0.2)
    early, late = _reports(sent)
    assert (early.outcomes, late.outcomes) == (6, 6)
    assert late.metrics["accuracy"].realised == pytest.approx(2 / 6), "offsets 4 and 6 of events[0] only"
    assert estimates.window(first) is None and len(sent) == 2, "sent again: checked once"
    assert not estimates.checks and not estimates._spans
