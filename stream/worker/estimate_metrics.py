"""The worker's gauges of performance estimated without labels (a calibrated binary model card)."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Gauge

from stream.drift.estimation import Estimate


class EstimateGauges:
    """Estimated performance of the last drift window, its interval, the reference and the margin."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.value = Gauge(
            "streamscore_estimated_performance",
            "Performance of the last drift window estimated without labels from calibrated scores: "
            "accuracy, precision, recall, f1, roc_auc.",
            ["metric"],
            registry=r,
        )
        self.lower, self.upper = (
            Gauge(
                f"streamscore_estimated_performance_{end}",
                f"The {end} end of the 95% interval of the realised figure if the calibration holds.",
                ["metric"],
                registry=r,
            )
            for end in ("lower", "upper")
        )
        self.reference = Gauge(
            "streamscore_estimated_reference",
            "The realised figure on the model card's labelled reference, at its threshold.",
            ["metric"],
            registry=r,
        )
        self.margin = Gauge(
            "streamscore_estimated_margin",
            "An estimate below its reference figure by more than this is reported (estimate_below).",
            registry=r,
        )

    def use(self, reference: Mapping[str, float] | None, margin: float) -> None:
        """The model's reference figures and margin (None: no calibration, the gauges cleared)."""
        for gauge in (self.value, self.lower, self.upper, self.reference):
            gauge.clear()
        for metric, value in (reference or {}).items():
            self.reference.labels(metric).set(value)
        self.margin.set(margin if reference is not None else float("nan"))

    def observe(self, estimate: Estimate) -> None:
        """A window's estimate."""
        for metric, interval in estimate.metrics.items():
            self.value.labels(metric).set(interval.value)
            self.lower.labels(metric).set(interval.lower)
            self.upper.labels(metric).set(interval.upper)
