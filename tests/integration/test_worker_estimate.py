"""A worker serving a calibrated model estimates its performance in each drift window, without labels:
the report's keys, the gauges a scrape reads, and the drop when applicants move to the ages where the
model is least sure, shown in the first window after the change (no outcome is ever published)."""

from __future__ import annotations

import time

import pytest
from conftest import read_topic, scrape
from typer.testing import CliRunner

from stream.cli.main import app
from stream.contracts import DriftReport, ModelCard
from stream.kafka.topics import ensure_topics
from stream.tools.broker import free_port
from stream.tools.produce import produce

WINDOW = 1_000
EVENTS = 4_000
CHANGE_AT = 2_000
METRICS = {"accuracy", "precision", "recall", "f1", "roc_auc"}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A registry whose model was trained with a calibration (a small, quick training)."""
    folder = tmp_path_factory.mktemp("registry")
    result = CliRunner().invoke(
        app,
        ["model", "train", "--registry", str(folder), "--samples", "6000", "--estimate-margin", "0.03"],
        env={"MLFLOW_TRACKING_URI": ""},
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].startswith("performance estimate: isotonic calibration")
    return folder


def test_window_reports_carry_the_estimate_and_the_gauges_follow(
    kafka_bootstrap, worker_topics, start_worker, registry
):
    card = ModelCard.model_validate_json((registry / "loan-approval" / "1" / "card.json").read_text())
    assert card.calibration is not None
    # one partition: a window is full once it holds 1,000 events of every partition owned, so two
    # partitions read one after the other (a loaded machine) would give two reports in 4,000 events
    ensure_topics(kafka_bootstrap, {worker_topics.input: 1})
    port = free_port()
    worker = start_worker(model_dir=str(registry), drift_window=WINDOW, metrics_port=port)
    produce(kafka_bootstrap, worker_topics.input, count=EVENTS, seed=71, drift_at=CHANGE_AT, drift_kind="age")
    reports, deadline = [], time.monotonic() + 90
    # a window report once each 1,000 more events have come (whole slices of them): three or four
    while sum(r.kind == "window" for r in reports) < 3 and time.monotonic() < deadline:
        time.sleep(1)
        found = read_topic(kafka_bootstrap, worker_topics.drift, 1, 30)
        reports = [DriftReport.model_validate_json(m.value()) for m in found]
    windows = [r for r in reports if r.kind == "window"]
    assert len(windows) >= 3, ([(r.kind, r.events) for r in reports], worker.output()[-2_000:])
    for r in windows:
        assert set(r.estimated) == METRICS
        assert r.estimate_reference == card.calibration.reference and r.estimate_margin == 0.03
        for figure in r.estimated.values():
            assert 0.0 <= figure.lower <= figure.value <= figure.upper <= 1.0
        expected_below = [m for m, f in r.estimated.items() if f.value < card.calibration.reference[m] - 0.03]
        assert r.estimate_below == expected_below
    assert all(r.estimated is None for r in reports if r.kind == "alarm")
    before, after = windows[0], windows[-1]  # the first 1,000 events, and 1,000 after the change
    reference = card.calibration.reference["accuracy"]
    assert abs(before.estimated["accuracy"].value - reference) < 0.03, before.estimated
    assert before.estimate_below == [], "the demo's own distribution: no alarm"
    assert after.estimated["accuracy"].value < reference - 0.05, after.estimated
    assert "accuracy" in after.estimate_below
    samples = scrape(port)
    last = windows[-1].estimated
    for m in METRICS:
        labels = (("metric", m),)
        assert samples[("streamscore_estimated_performance", labels)] == pytest.approx(last[m].value)
        assert samples[("streamscore_estimated_performance_lower", labels)] == pytest.approx(last[m].lower)
        assert samples[("streamscore_estimated_performance_upper", labels)] == pytest.approx(last[m].upper)
        reference = samples[("streamscore_estimated_reference", labels)]
        assert reference == pytest.approx(card.calibration.reference[m])
    assert samples[("streamscore_estimated_margin", ())] == 0.03
