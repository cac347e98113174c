"""The Grafana dashboard and the alert rules ask only for series the worker exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from stream.kafka.lag import LagCollector
from stream.outcomes.estimates import Estimates
from stream.outcomes.pairing import Pairing
from stream.outcomes.report import OutcomeMetrics
from stream.worker.metrics import WorkerMetrics

ROOT = Path(__file__).parents[2]
DASHBOARD = json.loads((ROOT / "deploy/grafana/dashboards/streamscore.json").read_text())


def _exported() -> set[str]:
    """Every family the workers serve: their own metrics and the lag gauges (described, not read)."""
    lag = LagCollector("127.0.0.1:1", ["g"], ["t"])
    comparison = Pairing(
        50, CollectorRegistry(), "w", print
    ).gauges  # the outcome worker's, with a challenger
    outcomes = OutcomeMetrics()
    Estimates(outcomes.registry, "w", print, 60.0)  # the estimate check's gauges, in the same registry
    registries = [WorkerMetrics().registry, outcomes.registry, comparison.registry]
    return {f.name for r in registries for f in r.collect()} | {f.name for f in lag.describe()}


def _referenced(expr: str) -> set[str]:
    """Metric families named in a PromQL expression (sample suffixes of counters and histograms off)."""
    return {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in re.findall(r"streamscore_[a-z_]+", expr)}


def test_dashboard_series_are_exported():
    exported = _exported()
    exprs = [t["expr"] for p in DASHBOARD["panels"] for t in p["targets"]]
    assert exprs
    for expr in exprs:
        assert _referenced(expr) <= exported, expr


def test_alert_series_are_exported():
    exported = _exported()
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())["groups"][0]["rules"]
    for rule in rules:
        assert _referenced(rule["expr"]) <= exported, rule["alert"]


def test_dashboard_has_the_panels_ops_need():
    titles = " ".join(p["title"].lower() for p in DASHBOARD["panels"])
    for word in ("throughput", "latency", "lag", "dead letters", "drift", "model", "outcomes"):
        assert word in titles
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert (
        "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro"
        in compose["services"]["grafana"]["volumes"]
    )


def test_dashboard_shows_what_the_producers_send_that_no_model_reads():
    """Fields no model reads, unseen categories of string features, and events the challenger could
    not read: each has a panel series (the worker counts them; ops see them next to drift)."""
    exprs = " ".join(t["expr"] for p in DASHBOARD["panels"] for t in p["targets"])
    for family in ("streamscore_ignored_fields", "streamscore_drift_unseen", "streamscore_challenger_missed"):
        assert family in _referenced(exprs), family


def test_the_estimate_is_drawn_with_its_band_its_reference_and_the_realised_figure():
    (panel,) = [p for p in DASHBOARD["panels"] if p["title"] == "Estimated vs realised performance"]
    by_family = {}
    for target in panel["targets"]:
        for family in _referenced(target["expr"]):
            by_family[family] = target
    wanted = (
        "streamscore_estimated_performance", "streamscore_estimated_performance_lower",
        "streamscore_estimated_performance_upper", "streamscore_estimated_reference",
        "streamscore_estimate_realised",
    )  # fmt: skip
    assert set(wanted) <= set(by_family)
    for family in wanted:
        assert "accuracy" in by_family[family]["expr"] and "f1" in by_family[family]["expr"], family
    fills = {
        o["matcher"]["options"]: p["value"]
        for o in panel["fieldConfig"]["overrides"]
        for p in o["properties"]
        if p["id"] == "custom.fillBelowTo"
    }
    assert fills == {"upper accuracy": "lower accuracy", "upper f1": "lower f1"}, "the interval as a band"
    legends = [t["legendFormat"] for t in panel["targets"]]
    assert "upper {{metric}}" in legends and "lower {{metric}}" in legends
