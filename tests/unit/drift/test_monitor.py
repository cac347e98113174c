"""Drift windows and detectors on seeded data: quiet when nothing changes, an alarm soon after a shift."""

from __future__ import annotations

import itertools

import numpy as np
import orjson
import pytest
from conftest import MODELS

from stream.drift.distances import distance, psi
from stream.drift.monitor import PSI_THRESHOLD, DriftMonitor
from stream.drift.partition import DETECTOR_EVERY, SLICE_EVENTS
from stream.errors import StateRejected
from stream.scoring.model import load
from stream.tools import datagen

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


def test_the_feature_detectors_see_the_same_runs_however_events_are_batched(model):
    """The feature alarms do not depend on where batches begin and end (under load a worker takes
    bigger batches): each detector update is one run of exactly DETECTOR_EVERY events."""
    x, scores, parts, times, offsets = _stream(model, 7, drift_at=6_000, kind="feature", n=9_000)

    def feature_alarms(sizes):
        monitor, fired, i = DriftMonitor(model.card, window=WINDOW, partitions=PARTITIONS), [], 0
        for size in itertools.cycle(sizes):
            if i >= len(x):
                return fired
            j = slice(i, i + size)
            for report in monitor.update(x[j], scores[j], parts[j], times[j], offsets[j]):
                fired += [name for name in report.alarms if report.kind == "alarm" and name != "score"]
            i += size

    small = feature_alarms([BATCH])
    assert small, "the shift is detected"
    assert feature_alarms([500]) == small
    assert feature_alarms([1, 7, 300, 41, 64]) == small


def test_lone_events_share_slices_so_the_window_is_the_same_however_they_were_batched(model):
    """A lone event scored at once makes a batch of one: the window holds it in a shared slice (at
    most SLICE_EVENTS events), so its contents and its saved size do not grow with the batches."""
    x, scores, parts, times, offsets = _stream(model, 3, n=6_000)

    def fed(size):
        monitor = DriftMonitor(model.card, window=WINDOW, partitions=PARTITIONS)
        for i in range(0, len(x), size):
            j = slice(i, i + size)
            monitor.update(x[j], scores[j], parts[j], times[j], offsets[j])
        return monitor

    ones, batches = fed(1), fed(SLICE_EVENTS * PARTITIONS)
    for p in range(PARTITIONS):
        lone, batched = ones._states[p], batches._states[p]
        assert len(lone.slices) <= WINDOW / PARTITIONS / SLICE_EVENTS + 2
        assert all(sl.events <= SLICE_EVENTS for sl in lone.slices)
        assert abs(lone.events - batched.events) <= SLICE_EVENTS
        assert lone.seen == batched.seen
        assert len(ones.snapshot(p)) < 2 * len(batches.snapshot(p))
    report = ones.current()
    assert report.events == sum(s.events for s in ones._states.values())
    assert max(report.psi.values()) < PSI_THRESHOLD  # a quiet stream stays quiet


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
    before = DriftMonitor(model.card, window=WINDOW, partitions=PARTITIONS)
    _run(before, data, stop=3_008)
    saved = {p: before.snapshot(p) for p in before.owned()}
    assert all(b is not None and b.startswith(b"{") for b in saved.values()), "plain JSON"

    after = DriftMonitor(model.card, window=WINDOW, partitions=PARTITIONS)
    for p, body in saved.items():
        after.restore(p, body)
    assert [after.seen(p) for p in after.owned()] == [before.seen(p) for p in before.owned()]
    assert after.current() == before.current()
    assert {p: after.snapshot(p) for p in after.owned()} == saved, "restored exactly: the same state again"
    # both continue identically: the same alarms at the same events, the same windows at the end
    alarms_after = [(end, r.alarms) for end, r in _run(after, data, start=3_008) if r.kind == "alarm"]
    alarms_before = [(end, r.alarms) for end, r in _run(before, data, start=3_008) if r.kind == "alarm"]
    assert alarms_after == alarms_before and alarms_after, "the shift at 3,000 is flagged by both"
    assert after.current() == before.current()
    assert after.current().drifted == ["salary", "loan"]
    assert {p: after.snapshot(p) for p in after.owned()} == {p: before.snapshot(p) for p in before.owned()}


def _edit(body: bytes, change) -> bytes:
    data = orjson.loads(body)
    change(data)
    return orjson.dumps(data)


@pytest.fixture(scope="module")
def saved_state(model):
    monitor = DriftMonitor(model.card, window=WINDOW, partitions=PARTITIONS)
    _run(monitor, _stream(model, 4, n=3_000))
    return monitor.snapshot(0)


def _set(path: str, value):
    def change(data):
        *parents, last = path.split(".")
        for name in parents:
            data = data[name]
        data[last] = value

    return change


@pytest.mark.parametrize(
    ("reason", "change"),
    [
        ("version", _set("version", 1)),
        ("version", _set("version", 99)),
        ("version", lambda d: d.pop("version")),
        ("format", _set("planted", {"__reduce__": "os.system"})),
        ("format", _set("seen", "many")),
        ("format", _set("seen", -1)),
        ("format", _set("slices.events", [])),
        ("format", _set("score_detector.buckets", [])),
        ("format", _set("score_detector.width", 1e9)),
        ("model", _set("model", "0" * 64 + ":1")),
        ("shape", _set("shape.window_events", 10)),
        ("shape", _set("shape.bins", [1, 2, 3])),
        ("shape", lambda d: d["feature_sums"].pop()),
        ("shape", lambda d: d["feature_detectors"].pop()),
        ("shape", lambda d: d["slices"]["counts"][0].__setitem__(0, 10**6)),
        ("shape", lambda d: d["slices"]["bins"][0].__setitem__(-1, 10**6)),
        ("shape", lambda d: d["score_detector"]["buckets"][0]["totals"].append(0.0)),
        ("shape", _set("feature_count", DETECTOR_EVERY)),
    ],
)
def test_a_state_that_does_not_fit_is_refused_and_nothing_changes(model, saved_state, reason, change):
    monitor = DriftMonitor(model.card, window=WINDOW, partitions=PARTITIONS)
    with pytest.raises(StateRejected) as refused:
        monitor.restore(0, _edit(saved_state, change))
    assert refused.value.reason == reason, str(refused.value)
    assert monitor.owned() == []


@pytest.mark.parametrize(
    "body", [b"", b"\x80\x05K\x01.", b"[1, 2]", b"null", b'{"version": 2', b"\xff" * 100]
)
def test_what_is_not_a_state_record_is_refused(model, body):
    monitor = DriftMonitor(model.card, window=WINDOW, partitions=PARTITIONS)
    with pytest.raises(StateRejected) as refused:
        monitor.restore(0, body)
    assert refused.value.reason in ("format", "version")
    assert monitor.owned() == []


def test_a_state_of_another_window_shape_is_refused(model, saved_state):
    for other in (
        DriftMonitor(model.card, window=WINDOW // 2, partitions=PARTITIONS),
        DriftMonitor(model.card, window=WINDOW, partitions=PARTITIONS, window_seconds=60.0),
    ):
        with pytest.raises(StateRejected, match="does not fit") as refused:
            other.restore(0, saved_state)
        assert refused.value.reason == "shape" and other.owned() == []
