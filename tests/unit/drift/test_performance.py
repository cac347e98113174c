"""The rolling performance figures: equal to River's rolling metrics over the same pairs."""

from __future__ import annotations

import numpy as np
import pytest
from river import metrics, utils

from stream.drift.performance import PerformanceTracker, calibration_error, roc_auc


def test_calibration_error():
    assert calibration_error([True, False], [0.95, 0.05]) == pytest.approx(0.05)
    # every score 0.8 but only half positive: a gap of 0.3
    assert calibration_error([True, False] * 50, [0.8] * 100) == pytest.approx(0.3)
    assert calibration_error([], []) == 0.0


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("window", [50, 1_000])
def test_figures_equal_rivers_rolling_metrics(seed, window):
    rng = np.random.default_rng(seed)
    n = 3 * window + 17  # the ring buffer has wrapped, not at a multiple of its size
    y = rng.random(n) < 0.4
    scores = np.where(y, rng.beta(5, 3, n), rng.beta(3, 5, n))
    scores[:5] = [0.0, 1.0, 0.5, 0.5, 0.5]  # clipped scores and ties
    tracker = PerformanceTracker(window=window)
    accuracy = utils.Rolling(metrics.Accuracy, window_size=window)
    log_loss = utils.Rolling(metrics.LogLoss, window_size=window)
    auc = metrics.RollingROCAUC(window_size=window)
    for positive, score in zip(y.tolist(), scores.tolist(), strict=True):
        tracker.add(positive, score)
        accuracy.update(positive, score >= 0.5)
        log_loss.update(positive, score)
        auc.update(positive, score)
    figures = tracker.figures()
    assert figures.outcomes == window
    assert figures.accuracy == round(accuracy.get(), 4)
    assert figures.log_loss == round(log_loss.get(), 4)
    assert figures.roc_auc == pytest.approx(auc.get(), abs=1e-4)


def test_roc_auc_counts_ties_half_and_needs_both_classes():
    assert roc_auc(np.array([True, False]), np.array([0.5, 0.5])) == 0.5
    assert roc_auc(np.array([True, False, True]), np.array([0.9, 0.1, 0.1])) == 0.75
    assert roc_auc(np.array([True, True]), np.array([0.2, 0.9])) is None


def test_figures_of_a_window_not_yet_full():
    tracker = PerformanceTracker(window=100)
    assert tracker.figures().outcomes == 0 and tracker.figures().roc_auc is None
    for positive, score in [(True, 0.9), (False, 0.2), (True, 0.4)]:
        tracker.add(positive, score)
    figures = tracker.figures()
    assert (figures.outcomes, figures.accuracy, figures.roc_auc) == (3, round(2 / 3, 4), 1.0)
