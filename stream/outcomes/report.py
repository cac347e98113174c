"""The outcome worker's Prometheus series and its performance reports (drift topic, ``performance``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge

from stream.drift.performance import Performance, PerformanceTracker
from stream.worker.metrics import state_rejected_counter

__all__ = ["OutcomeMetrics", "performance_report", "set_gauges"]

log = logging.getLogger("streamscore.outcomes")


class OutcomeMetrics:
    """The outcome worker's Prometheus series."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.outcomes = Counter(
            "streamscore_outcomes",
            "Outcomes read, by result: joined, duplicate, invalid, unmatched.",
            ["result"],
            registry=r,
        )
        self.expired = Counter(
            "streamscore_predictions_expired",
            "Predictions whose outcome did not arrive within the retention.",
            registry=r,
        )
        self.pending = Gauge("streamscore_outcomes_pending", "Entries waiting in the join table.", registry=r)
        self.invalid_predictions = Counter(
            "streamscore_predictions_invalid",
            "Provenance records that break the Provenance contract: skipped.",
            registry=r,
        )
        self.repartitioned = Counter(
            "streamscore_outcomes_repartitioned",
            "Outcomes that arrived on another partition than their event_id's (murmur2): moved there.",
            registry=r,
        )
        self.restore_seconds = Gauge(
            "streamscore_outcomes_restore_seconds",
            "Time the last assignment took to bring the join's state up to date from the changelog.",
            registry=r,
        )
        self.state_rejected = state_rejected_counter(r)
        labels = ["model"]
        self.accuracy = Gauge(
            "streamscore_model_accuracy", "Rolling accuracy on outcomes.", labels, registry=r
        )
        self.roc_auc = Gauge("streamscore_model_roc_auc", "Rolling ROC AUC on outcomes.", labels, registry=r)
        self.log_loss = Gauge(
            "streamscore_model_log_loss", "Rolling log loss on outcomes.", labels, registry=r
        )
        self.calibration = Gauge(
            "streamscore_model_calibration_error",
            "Rolling expected calibration error on outcomes.",
            labels,
            registry=r,
        )
        self.loss_alarms = Counter(
            "streamscore_outcome_loss_alarms",
            "Times ADWIN flagged a rise of the per-event log loss.",
            labels,
            registry=r,
        )


def set_gauges(metrics: OutcomeMetrics, model: str, perf: Performance) -> None:
    """The ``streamscore_model_*`` gauges of ``model`` (also right after a restart rebuilt them)."""
    for gauge, value in (
        (metrics.accuracy, perf.accuracy),
        (metrics.roc_auc, perf.roc_auc),
        (metrics.log_loss, perf.log_loss),
        (metrics.calibration, perf.calibration_error),
    ):
        if value is not None:
            gauge.labels(model).set(value)


def performance_report(
    model: str,
    tracker: PerformanceTracker,
    metrics: OutcomeMetrics,
    worker_id: str,
    counts: Mapping[str, int],
    sample: float,
) -> bytes:
    """The report of ``model``'s rolling figures (resets the tracker's alarm); sets the gauges, logs."""
    perf = tracker.report()
    name, _, version = model.partition("/")
    set_gauges(metrics, model, perf)
    decay = perf.loss_alarm
    log.log(
        logging.WARNING if decay else logging.INFO,
        "%s on %d outcomes: accuracy %.3f, log loss %.3f%s",
        model,
        perf.outcomes,
        perf.accuracy,
        perf.log_loss,
        " - the loss rose (ADWIN)" if decay else "",
        extra={"performance": vars(perf), "model": model},
    )
    return orjson.dumps(
        {
            "kind": "performance",
            "model_name": name,
            "model_version": version,
            "worker_id": worker_id,
            **vars(perf),
            "counts": dict(counts),
            "sample": sample,
            "verdict": "decay" if decay else "ok",
        }
    )
