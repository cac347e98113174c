"""A window report's estimate keys, and the one warning line when an estimate falls below the margin."""

from __future__ import annotations

import logging

import pytest

from stream.drift.estimation import Estimate, Interval
from stream.model_card import Calibration
from stream.worker.drift import _estimate_keys, _warn_below

CALIBRATION = Calibration(
    method="platt",
    slope=1.0,
    intercept=0.0,
    error_before=0.01,
    error_after=0.01,
    bins=[],
    reference={"accuracy": 0.9, "precision": 0.8, "recall": 0.7, "f1": 0.75, "roc_auc": 0.95},
    margin=0.05,
    rows=100,
)


def _estimate(**values: float) -> Estimate:
    return Estimate(1_000, {m: Interval(v, v - 0.01, v + 0.01) for m, v in values.items()})


def test_only_estimates_below_reference_minus_margin_are_listed():
    keys = _estimate_keys(
        _estimate(accuracy=0.86, precision=0.74, recall=0.7, f1=0.69, roc_auc=0.9), CALIBRATION, 0.5
    )
    assert keys["estimate_below"] == ["precision", "f1"]  # accuracy 0.86 is within 0.05 of 0.9
    assert keys["estimated"]["f1"] == {"value": 0.69, "lower": 0.68, "upper": 0.7}
    assert keys["estimate_reference"] == CALIBRATION.reference and keys["estimate_margin"] == 0.05
    assert keys["estimate_threshold"] == 0.5


def test_a_report_below_the_margin_logs_one_warning_naming_the_metrics(caplog: pytest.LogCaptureFixture):
    keys = _estimate_keys(_estimate(accuracy=0.8, precision=0.8, roc_auc=0.8), CALIBRATION, 0.5)
    with caplog.at_level(logging.INFO, logger="streamscore.worker"):
        _warn_below(keys, 1_000)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].getMessage() == (
        "estimated performance over 1000 events below the reference by more than 0.05: "
        "accuracy 0.8000 (reference 0.9000), roc_auc 0.8000 (reference 0.9500)"
    )
