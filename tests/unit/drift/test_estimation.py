"""Performance estimated from calibrated scores: exact small cases, windows, saved state."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import orjson
import pytest
from conftest import MODELS

from stream.drift.estimation import Estimator, calibrated
from stream.drift.monitor import DriftMonitor
from stream.errors import StateRejected
from stream.lifecycle import calibration
from stream.model_card import Calibration
from stream.scoring.model import load
from stream.tools import datagen

IDENTITY = Calibration(
    method="isotonic",
    scores=[0.0, 1.0],
    probabilities=[0.0, 1.0],
    error_before=0.0,
    error_after=0.0,
    bins=[],
    reference={},
    rows=2,
)
BATCH, PARTITIONS = 64, 3


def _estimate(scores, threshold=0.5, cal=IDENTITY):
    scores = np.asarray(scores, dtype=np.float64)
    est = Estimator(cal, threshold)
    return est.estimate(est.chunks(scores, np.array([0]), np.array([len(scores)]))).metrics


def _pairwise_auc(scores, p):
    """The expected AUC over every (positive, negative) pair of events, ties (and an event with
    itself) counted half: an independent formula of the trapezoid over the expected rates."""
    above = (scores[:, None] > scores[None, :]) + 0.5 * (scores[:, None] == scores[None, :])
    return float((p[:, None] * (1 - p[None, :]) * above).sum() / (p.sum() * (1 - p).sum()))


def test_four_events_by_hand():
    m = _estimate([0.9, 0.8, 0.3, 0.2])
    # predicted positive: 0.9, 0.8: TP 1.7, FP 0.3; below: FN 0.5, TN 1.5
    assert m["accuracy"].value == pytest.approx(3.2 / 4)
    assert m["precision"].value == pytest.approx(1.7 / 2)
    assert m["recall"].value == pytest.approx(1.7 / 2.2)
    assert m["f1"].value == pytest.approx(3.4 / 4.2)
    v_pos, v_neg = 0.09 + 0.16, 0.21 + 0.16  # sums of p(1 - p) above and below the threshold
    half = 1.959964 * math.sqrt(v_pos + v_neg) / 4
    assert (m["accuracy"].lower, m["accuracy"].upper) == pytest.approx((0.8 - half, min(1.0, 0.8 + half)))
    half = 1.959964 * math.sqrt(v_pos) / 2
    assert (m["precision"].lower, m["precision"].upper) == pytest.approx((0.85 - half, 1.0))  # clipped
    recall_sd = math.sqrt((0.5**2 * v_pos + 1.7**2 * v_neg) / 2.2**4)  # delta method on TP / (TP + FN)
    assert m["recall"].lower == pytest.approx(1.7 / 2.2 - 1.959964 * recall_sd)
    scores = np.array([0.9, 0.8, 0.3, 0.2])
    assert m["roc_auc"].value == pytest.approx(_pairwise_auc(scores, scores))


def test_events_of_one_bin_are_ties_counted_half():
    scores = np.array([0.7001, 0.7004, 0.7002, 0.1, 0.95])  # the first three share a bin of width 0.001
    m = _estimate(scores)
    tied = np.array([0.7, 0.7, 0.7, 0.1, 0.95])  # their order inside the bin does not count
    assert m["roc_auc"].value == pytest.approx(_pairwise_auc(tied, scores), abs=1e-12)
    assert m["roc_auc"].value != pytest.approx(_pairwise_auc(scores, scores), abs=1e-6)


def test_the_threshold_is_a_bin_edge():
    threshold = 0.50037  # not on the grid of 1,000 bins
    below, at = _estimate([0.50036], threshold), _estimate([threshold], threshold)
    assert "precision" not in below  # nothing predicted positive
    assert at["precision"].value == pytest.approx(threshold)
    assert _estimate([1.0], 1.0)["precision"].value == pytest.approx(1.0)


def test_undefined_metrics_are_left_out():
    assert set(_estimate([0.0, 0.0])) == {"accuracy"}
    assert set(_estimate([1.0, 1.0])) == {"accuracy", "precision", "recall", "f1"}


def test_platt_calibration_is_the_sigmoid_of_the_logit():
    cal = IDENTITY.model_copy(update={"method": "platt", "scores": [], "slope": 2.0, "intercept": -0.5})
    s = np.array([0.1, 0.5, 0.9])
    expected = 1 / (1 + np.exp(-(2.0 * np.log(s / (1 - s)) - 0.5)))
    np.testing.assert_allclose(calibrated(cal, s), expected)


@pytest.fixture(scope="module")
def card():
    """The demo model, its card stripped of its calibration, and with one fitted here on its holdout."""
    shipped = load(MODELS, "loan-approval")
    model = dataclasses.replace(shipped, card=shipped.card.model_copy(update={"calibration": None}))
    pairs = list(itertools.islice(datagen.applications(7), 20_000))[15_000:]
    x = np.array([[f[k] for k in model.feature_names] for f, _ in pairs], dtype=np.float32)
    y = np.array([label == 1 for _, label in pairs])
    fitted = calibration.fit(y, model.predict_proba(x), 0.5)
    return model, model.card.model_copy(update={"calibration": fitted})


def _stream(model, seed, n=6_000):
    pairs = list(itertools.islice(datagen.applications(seed, 3_000, "feature"), n))
    x = np.array([[f[k] for k in model.feature_names] for f, _ in pairs], dtype=np.float32)
    parts = np.random.default_rng(seed).integers(0, PARTITIONS, n)
    offsets = np.zeros(n, dtype=np.int64)
    for p in range(PARTITIONS):
        offsets[parts == p] = np.arange((parts == p).sum())
    return x, model.predict_proba(x), parts, 1.8e9 + np.arange(n) / 1_000.0, offsets


def _feed(monitor, data, stop=None):
    x, scores, parts, times, offsets = data
    reports = []
    for i in range(0, stop or len(x), BATCH):
        j = slice(i, i + BATCH)
        reports += monitor.update(x[j], scores[j], parts[j], times[j], offsets[j])
    return reports


def test_each_window_estimate_equals_one_computed_afresh_from_its_events(card):
    model, calibrated_card = card
    data = _stream(model, 3)
    monitor = DriftMonitor(calibrated_card, window=1_500, partitions=PARTITIONS)
    windows = [r for r in _feed(monitor, data) if r.kind == "window"]
    assert len(windows) >= 3
    scores, parts, offsets = data[1], data[2], data[4]
    estimator = Estimator(calibrated_card.calibration, 0.5)
    for report in windows:
        chosen = np.zeros(len(scores), dtype=bool)
        for p, (a, b) in report.offsets.items():
            chosen |= (parts == p) & (offsets >= a) & (offsets <= b)
        assert chosen.sum() == report.events
        fresh = estimator.estimate(estimator.chunks(scores[chosen], np.array([0]), np.array([report.events])))
        assert report.estimate.events == report.events
        for m, interval in fresh.metrics.items():
            got = report.estimate.metrics[m]
            assert (got.value, got.lower, got.upper) == pytest.approx(
                (interval.value, interval.lower, interval.upper), abs=1e-9
            )


def test_the_estimate_survives_a_snapshot(card):
    model, calibrated_card = card
    data = _stream(model, 4)
    before = DriftMonitor(calibrated_card, window=3_000, partitions=PARTITIONS)
    _feed(before, data, 2_048)
    after = DriftMonitor(calibrated_card, window=3_000, partitions=PARTITIONS)
    for p in before.owned():
        after.restore(p, before.snapshot(p))
    a, b = before.current().estimate, after.current().estimate
    assert a.events == b.events == 2_048
    for m in a.metrics:  # the saved sums have six decimals
        assert b.metrics[m].value == pytest.approx(a.metrics[m].value, abs=1e-6)
    x, scores, parts, times, offsets = data
    rest = slice(2_048, 2_048 + 512)
    both = [m.update(x[rest], scores[rest], parts[rest], times[rest], offsets[rest]) for m in (before, after)]
    assert [r.kind for r in both[0]] == [r.kind for r in both[1]]
    assert after.current().estimate.metrics["f1"].value == pytest.approx(
        before.current().estimate.metrics["f1"].value, abs=1e-6
    )


def _tampered(body: bytes, change) -> bytes:
    data = orjson.loads(body)
    change(data)
    return orjson.dumps(data)


@pytest.mark.parametrize(
    ("reason", "change"),
    [
        ("version", lambda d: d.update(version=2)),
        ("shape", lambda d: d["shape"].update(estimate=[])),
        ("shape", lambda d: d["slices"]["estimate_counts"][0].__setitem__(0, 10_000)),
        ("shape", lambda d: d["slices"]["estimate_sums"][0].__setitem__(0, 1e6)),
        ("format", lambda d: d["slices"]["estimate_bins"].pop()),
    ],
)
def test_a_saved_estimate_that_does_not_fit_is_refused(card, reason, change):
    model, calibrated_card = card
    monitor = DriftMonitor(calibrated_card, window=3_000, partitions=PARTITIONS)
    _feed(monitor, _stream(model, 5), 1_024)
    body = _tampered(monitor.snapshot(0), change)
    fresh = DriftMonitor(calibrated_card, window=3_000, partitions=PARTITIONS)
    with pytest.raises(StateRejected) as caught:
        fresh.restore(0, body)
    assert caught.value.reason == reason


def test_a_card_without_calibration_estimates_nothing(card):
    model, calibrated_card = card
    assert Estimator.of(model.card) is None
    plain = DriftMonitor(model.card, window=1_000, partitions=PARTITIONS)
    reports = _feed(plain, _stream(model, 6), 1_536)
    assert reports and all(r.estimate is None for r in reports)
    assert plain.shape().estimate == []
    with pytest.raises(StateRejected) as caught:  # a calibrated state is not adopted without one
        calibrated_monitor = DriftMonitor(calibrated_card, window=1_000, partitions=PARTITIONS)
        _feed(calibrated_monitor, _stream(model, 6), 640)
        plain.restore(0, calibrated_monitor.snapshot(0))
    assert caught.value.reason == "shape"
