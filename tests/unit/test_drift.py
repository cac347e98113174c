"""Drift windows on seeded data: quiet when nothing changes, an alarm soon after a shift."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import MODELS

from stream import datagen
from stream.drift import PSI_THRESHOLD, DriftMonitor, psi
from stream.model import load

WINDOW = 2_000
BATCH = 64


@pytest.fixture(scope="module")
def model():
    return load(MODELS, "loan-approval")


def _reports(model, seed, drift_at=None, kind="concept", n=20_000):
    pairs = list(itertools.islice(datagen.applications(seed, drift_at, kind), n))
    x = np.array([[f[k] for k in model.feature_names] for f, _ in pairs], dtype=np.float32)
    monitor = DriftMonitor(model.card, window=WINDOW)
    out = []
    for i in range(0, n, BATCH):
        report = monitor.update(x[i : i + BATCH], model.predict_proba(x[i : i + BATCH]))
        if report is not None:
            out.append((i + BATCH, report))
    return out


def test_psi_basics():
    ref = np.array([0.25, 0.25, 0.25, 0.25])
    assert psi(ref, ref * 1000) == pytest.approx(0.0)
    assert psi(ref, np.array([700, 100, 100, 100])) > PSI_THRESHOLD


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_stationary_stream_raises_no_alarm(model, seed):
    reports = _reports(model, seed)
    assert len(reports) == 20_000 // WINDOW - 1 or len(reports) == 20_000 // WINDOW
    assert all(not r.drifted for _, r in reports)
    assert max(max(r.psi.values()) for _, r in reports) < 0.05


def test_feature_shift_is_flagged_within_two_windows(model):
    reports = _reports(model, seed=1, drift_at=10_000, kind="feature")
    flagged = [(end, r) for end, r in reports if r.drifted]
    assert flagged, "the shift was never flagged"
    first_end, first = flagged[0]
    assert 10_000 < first_end <= 10_000 + 2 * WINDOW
    assert set(first.drifted) == {"salary", "loan"}, "exactly the shifted features"
    assert all(not r.drifted for end, r in reports if end <= 10_000)


def test_score_change_is_flagged_between_windows(model):
    x = np.array([[model.card.reference[f].mean for f in model.feature_names]] * BATCH, dtype=np.float32)
    monitor = DriftMonitor(model.card, window=WINDOW)
    rng = np.random.default_rng(0)
    flags = []
    for i in range(0, 6_000, BATCH):
        scores = rng.uniform(0.0, 0.2, BATCH) if i < 2_000 else rng.uniform(0.8, 1.0, BATCH)
        report = monitor.update(x, scores)
        if report is not None:
            flags.append((i, report.score_change))
    assert [flag for _, flag in flags] == [False, True], "quiet before the switch at 2,000, flagged after"
