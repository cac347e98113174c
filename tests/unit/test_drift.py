"""Drift windows and detectors on seeded data: quiet when nothing changes, an alarm soon after a shift."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import MODELS

from stream import datagen
from stream.drift import PSI_THRESHOLD, DriftMonitor, distance, psi
from stream.model import load

WINDOW = 2_000
BATCH = 64
PARTITIONS = 6
SHIFT_AT = 10_000


@pytest.fixture(scope="module")
def model():
    return load(MODELS, "loan-approval")


def _stream(model, seed, drift_at=None, kind="concept", n=20_000):
    """Rows, scores, and (partition, time, offset) of each event, as a keyed topic would spread them."""
    pairs = list(itertools.islice(datagen.applications(seed, drift_at, kind), n))
    x = np.array([[f[k] for k in model.feature_names] for f, _ in pairs], dtype=np.float32)
    parts = np.random.default_rng(seed).integers(0, PARTITIONS, n)
    offsets = np.zeros(n, dtype=np.int64)
    for p in range(PARTITIONS):
        offsets[parts == p] = np.arange((parts == p).sum())
    times = 1.8e9 + np.arange(n) / 1_000.0
    return x, model.predict_proba(x), parts, times, offsets


def _run(monitor, data, start=0, stop=None):
    x, scores, parts, times, offsets = data
    out = []
    for i in range(start, stop or len(x), BATCH):
        j = slice(i, i + BATCH)
        out += [(i + BATCH, r) for r in monitor.update(x[j], scores[j], parts[j], times[j], offsets[j])]
    return out


def test_psi_and_distance_basics():
    ref = np.array([0.25, 0.25, 0.25, 0.25])
    assert psi(ref, ref * 1000) == pytest.approx(0.0)
    assert psi(ref, np.array([700, 100, 100, 100])) > PSI_THRESHOLD
    assert distance(ref, np.array([700, 100, 100, 100]), categorical=False) == pytest.approx(0.45)
    assert distance(ref, np.array([0, 0, 500, 500]), categorical=True) == pytest.approx(0.5)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_stationary_stream_raises_no_alarm(model, seed):
    """20,000 events, 6 partitions: no window over a threshold and no detector alarm (5 seeds)."""
    reports = _run(DriftMonitor(model.card, window=WINDOW, partitions=PARTITIONS), _stream(model, seed))
    windows = [r for _, r in reports if r.kind == "window"]
    assert len(windows) in (9, 10)
    assert [r for _, r in reports if r.verdict == "drift"] == []
    assert max(max(r.psi.values()) for r in windows) < 0.05
    assert max(max(r.distance.values()) for r in windows) < 0.08
    assert all(r.events >= WINDOW * 0.9 and r.partitions == list(range(PARTITIONS)) for r in windows)


def test_feature_shift_alarms_within_a_thousand_events(model):
    """salary x1.6 and loan x0.5 from event 10,000: detectors fire first, then the window names both."""
    reports = _run(
        DriftMonitor(model.card, window=WINDOW, partitions=PARTITIONS),
        _stream(model, 1, drift_at=SHIFT_AT, kind="feature"),
    )
    assert all(r.verdict == "ok" for end, r in reports if end <= SHIFT_AT)
    alarms = [(end, r) for end, r in reports if r.kind == "alarm"]
    assert alarms, "no detector fired"
    first_end, first = alarms[0]
    assert SHIFT_AT < first_end <= SHIFT_AT + 1_000
    assert set(first.alarms) <= {"salary", "loan"}
    fired = {a for _, r in alarms for a in r.alarms}
    assert fired == {"salary", "loan"}, "exactly the shifted features"
    window = next(r for end, r in reports if r.kind == "window" and end > SHIFT_AT and r.drifted)
    assert set(window.drifted) == {"salary", "loan"}


def test_concept_change_is_invisible_in_the_inputs(model):
    """Only outcomes reveal a concept change: the inputs keep their distribution."""
    reports = _run(
        DriftMonitor(model.card, window=WINDOW, partitions=PARTITIONS),
        _stream(model, 1, drift_at=SHIFT_AT, kind="concept"),
    )
    assert [r for _, r in reports if r.verdict == "drift"] == []


def test_score_change_is_flagged_between_windows(model):
    x = np.array([[model.card.reference[f].mean for f in model.feature_names]] * BATCH, dtype=np.float32)
    monitor = DriftMonitor(model.card, window=WINDOW)
    rng = np.random.default_rng(0)
    zeros = np.zeros(BATCH, dtype=np.int64)
    alarms = []
    for i in range(0, 3_000, BATCH):
        scores = rng.uniform(0.0, 0.2, BATCH) if i < 2_000 else rng.uniform(0.8, 1.0, BATCH)
        t = 1.8e9 + np.arange(i, i + BATCH) / 1_000.0
        for report in monitor.update(x, scores, zeros, t, np.arange(i, i + BATCH)):
            if report.kind == "alarm":
                alarms.append((i, report.alarms))
    assert alarms and alarms[0][1] == ["score"]
    assert 2_000 <= alarms[0][0] < 2_000 + 2 * BATCH, "flagged within two batches of the switch"


def test_time_bounded_windows(model):
    """With window_seconds, a window ends after that much event time and holds no older events."""
    data = _stream(model, 2, n=6_000)
    monitor = DriftMonitor(model.card, window=100_000, partitions=PARTITIONS, window_seconds=1.0)
    windows = [r for _, r in _run(monitor, data) if r.kind == "window"]
    assert len(windows) in (5, 6)  # 6 s of event time at 1,000 events/s
    for r in windows:
        assert r.window_end - r.window_start <= 1.0 + BATCH / 1_000
        assert 700 <= r.events <= 1_000 + PARTITIONS * BATCH


def test_state_survives_a_snapshot_and_moves_with_its_partition(model):
    data = _stream(model, 3, drift_at=3_000, kind="feature", n=8_000)
    key = b"k" * 32
    before = DriftMonitor(model.card, window=WINDOW, partitions=PARTITIONS)
    _run(before, data, stop=3_008)
    saved = {p: before.snapshot(p, key) for p in before.owned()}

    after = DriftMonitor(model.card, window=WINDOW, partitions=PARTITIONS)
    assert all(after.restore(p, blob, key) for p, blob in saved.items())
    assert [after.seen(p) for p in after.owned()] == [before.seen(p) for p in before.owned()]
    assert after.current() == before.current()
    # both continue identically: the same alarms at the same events, the same windows at the end
    alarms_after = [(end, r.alarms) for end, r in _run(after, data, start=3_008) if r.kind == "alarm"]
    alarms_before = [(end, r.alarms) for end, r in _run(before, data, start=3_008) if r.kind == "alarm"]
    assert alarms_after == alarms_before and alarms_after, "the shift at 3,000 is flagged by both"
    assert after.current() == before.current()
    assert after.current().drifted == ["salary", "loan"]

    fresh = DriftMonitor(model.card, window=WINDOW, partitions=PARTITIONS)
    assert not fresh.restore(0, saved[0][:-1] + b"x", key), "a tampered state is refused"
    assert not fresh.restore(0, saved[0], b"another key"), "a state signed with another key is refused"
    other = DriftMonitor(model.card, window=WINDOW // 2, partitions=PARTITIONS)
    assert not other.restore(0, saved[0], key), "a state of another window shape is refused"
    assert fresh.owned() == [] and other.owned() == []
