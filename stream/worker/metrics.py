"""Prometheus metrics of the worker, on a registry of their own (served by ``stream.worker.health``)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import HistogramMetricFamily

from stream.contracts import ModelCard
from stream.drift.monitor import Report
from stream.scoring.pipeline import BatchResult
from stream.settings import DEFAULT_MAX_CLOCK_SKEW_S
from stream.worker.estimate_metrics import EstimateGauges
from stream.worker.stats import split_skewed

disable_created_metrics()  # *_created series only add noise to every scrape

#: 100 µs to 30 s: resolves sub-millisecond scoring and multi-second end-to-end delays.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
IGNORED_NAMES = 100
"""Distinct field names ``streamscore_ignored_fields_total`` labels; later ones count as ``other``."""
IGNORED_NAME_LENGTH = 64
_PRINTABLE = re.compile(r"[^\x00-\x1f\x7f-\x9f]+")


def state_rejected_counter(registry: CollectorRegistry) -> Counter:
    """Saved state refused on reading, by ``state`` (drift, pending) and ``reason``."""
    return Counter(
        "streamscore_state_rejected",
        "Saved state refused on reading (it starts fresh), by state and reason: signature, format, "
        "version, model, shape.",
        ["state", "reason"],
        registry=registry,
    )


class BatchHistogram:
    """A Prometheus histogram fed a batch of values at once: one numpy pass instead of a locked
    ``observe`` per value (the end-to-end latency is observed for every event on the hot path)."""

    def __init__(
        self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry
    ) -> None:
        self.name, self.documentation = name, documentation
        self._bounds = np.array(buckets, dtype=float)
        self._counts = np.zeros(len(buckets) + 1, dtype=np.int64)  # the last: above every bound
        self._sum = 0.0
        self._lock = threading.Lock()
        registry.register(self)

    def observe_many(self, values: Sequence[float]) -> None:
        if not len(values):
            return
        array = np.asarray(values, dtype=float)
        # a value counts in the first bucket whose upper bound ("le") is at least the value
        counts = np.bincount(np.searchsorted(self._bounds, array), minlength=len(self._counts))
        with self._lock:
            self._counts += counts
            self._sum += float(array.sum())

    def collect(self) -> Iterator[HistogramMetricFamily]:
        with self._lock:
            cumulative, total = np.cumsum(self._counts).tolist(), self._sum
        buckets = [(repr(float(b)), c) for b, c in zip(self._bounds.tolist(), cumulative, strict=False)]
        yield HistogramMetricFamily(
            self.name, self.documentation, buckets=[*buckets, ("+Inf", cumulative[-1])], sum_value=total
        )


class WorkerMetrics:
    """The worker's counters and histograms; events dated further than ``max_clock_skew_s`` from their
    emission are counted apart, out of the end-to-end latency (:func:`~stream.worker.stats.split_skewed`)."""

    def __init__(
        self, registry: CollectorRegistry | None = None, max_clock_skew_s: float = DEFAULT_MAX_CLOCK_SKEW_S
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self.max_clock_skew_s = max_clock_skew_s
        r = self.registry
        self._add_scoring(r)
        self._add_models(r)
        self.delivered = Counter(
            "streamscore_records_delivered",
            "Output records acknowledged by the broker, by topic.",
            ["topic"],
            registry=r,
        )
        self._add_drift(r)
        self.estimate = EstimateGauges(r)
        self.state_rejected = state_rejected_counter(r)
        ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes, ...
        PlatformCollector(registry=r)

    def _add_scoring(self, r: CollectorRegistry) -> None:
        """Events consumed, scored and dead-lettered; batch sizes and times; end-to-end latency."""
        self.consumed = Counter("streamscore_events_consumed", "Input events consumed.", registry=r)
        self.scored = Counter("streamscore_events_scored", "Events scored.", registry=r)
        self.dead = Counter(
            "streamscore_events_dead_lettered", "Events sent to the dead-letter topic.", ["stage"], registry=r
        )
        self.batch = Histogram(
            "streamscore_batch_size", "Events per scored batch.", buckets=BATCH_BUCKETS, registry=r
        )
        self.process = Histogram(
            "streamscore_batch_process_seconds",
            "Time to decode, validate, score and build the records of one batch.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.end_to_end = BatchHistogram(
            "streamscore_end_to_end_latency_seconds",
            "From the event's occurred_at to its records handed to the producer (clock-skewed events "
            "left out).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.clock_skewed = Counter(
            "streamscore_events_clock_skewed",
            "Events scored whose occurred_at is further than STREAMSCORE_MAX_CLOCK_SKEW_S from the time "
            "they were emitted: left out of the end-to-end latency.",
            registry=r,
        )
        self.ignored = Counter(
            "streamscore_ignored_fields",
            f"Events carrying a field no model read (STREAMSCORE_UNKNOWN_FIELDS=ignore), by field: the "
            f"first {IGNORED_NAMES} names seen (printable, up to {IGNORED_NAME_LENGTH} characters), the "
            "rest 'other'.",
            ["field"],
            registry=r,
        )
        self._ignored_names: set[str] = set()

    def _add_models(self, r: CollectorRegistry) -> None:
        """The model in service, refused reloads, and the challenger beside it."""
        self.model = Gauge(
            "streamscore_model_info", "The model in service.", ["name", "version", "sha256"], registry=r
        )
        self.producers_replaced = Counter(
            "streamscore_transactional_producers_replaced",
            "Exactly once: transactional producers replaced (a new epoch) after an ending call failed.",
            registry=r,
        )
        self.reload_failures = Counter(
            "streamscore_model_reload_failures",
            "New model versions refused at reload; the previous model kept serving.",
            registry=r,
        )
        self.challenger = Gauge(
            "streamscore_challenger_info",
            "The challenger scored beside the model, and how (mode: shadow or canary).",
            ["name", "version", "sha256", "mode"],
            registry=r,
        )
        self.challenger_refused = Counter(
            "streamscore_challenger_refused",
            "Challengers that failed their checks: the champion went on alone.",
            registry=r,
        )
        self.challenger_missed = Counter(
            "streamscore_challenger_missed",
            "Events the challenger could not read (a feature only it needs missing or refused): the "
            "champion answered them alone.",
            registry=r,
        )

    def _add_drift(self, r: CollectorRegistry) -> None:
        """Drift windows: PSI, distance and verdict by feature; change-detector alarms."""
        self.drift_psi = Gauge(
            "streamscore_drift_psi",
            "PSI of the last drift window against the reference.",
            ["feature"],
            registry=r,
        )
        self.drift_detected = Gauge(
            "streamscore_drift_detected",
            "1 when the last window's PSI or distance is above its threshold.",
            ["feature"],
            registry=r,
        )
        self.drift_windows = Counter(
            "streamscore_drift_windows", "Drift windows compared, by verdict.", ["verdict"], registry=r
        )
        self.drift_distance = Gauge(
            "streamscore_drift_distance",
            "Kolmogorov-Smirnov (numeric) or total variation (categorical) distance of the last window.",
            ["feature"],
            registry=r,
        )
        self.drift_unseen = Gauge(
            "streamscore_drift_unseen",
            "Share of the last window's events whose string feature holds a category the reference "
            "never saw.",
            ["feature"],
            registry=r,
        )
        self.drift_alarms = Counter(
            "streamscore_drift_alarms",
            "Change-detector alarms: ADWIN on the score, Page-Hinkley on each feature.",
            ["feature"],
            registry=r,
        )

    def set_model(self, card: ModelCard) -> None:
        self.model.clear()
        self.model.labels(card.name, card.version, card.sha256).set(1)

    def observe(self, n_events: int, result: BatchResult, seconds: float) -> None:
        self.consumed.inc(n_events)
        self.scored.inc(result.scored)
        for stage, n in result.dead_letters.items():
            self.dead.labels(stage).inc(n)
        self.batch.observe(n_events)
        self.process.observe(seconds)
        kept, skewed = split_skewed(result.latencies, self.max_clock_skew_s)
        self.end_to_end.observe_many(kept)
        if skewed:
            self.clock_skewed.inc(skewed)
        for name, n in result.ignored.items():
            self.ignored.labels(self._ignored_label(name)).inc(n)
        if result.missed:
            self.challenger_missed.inc(result.missed)

    def _ignored_label(self, name: str) -> str:
        """``name`` as a label while the names are few, short and printable; else ``other``."""
        names = self._ignored_names
        if name in names:
            return name
        if len(names) < IGNORED_NAMES and len(name) <= IGNORED_NAME_LENGTH and _PRINTABLE.fullmatch(name):
            names.add(name)
            return name
        return "other"

    def count_delivered(self, by_topic: Mapping[str, int]) -> None:
        """Count records, by topic, once the broker has acknowledged them (or their transaction)."""
        for topic, n in by_topic.items():
            self.delivered.labels(topic).inc(n)

    def observe_drift(self, report: Report) -> None:
        for name in report.alarms if report.kind == "alarm" else ():
            self.drift_alarms.labels(name).inc()
        if report.kind != "window":
            return
        for name, value in report.psi.items():
            self.drift_psi.labels(name).set(value)
            self.drift_distance.labels(name).set(report.distance[name])
            self.drift_detected.labels(name).set(1 if name in report.drifted else 0)
        for name, share in report.unseen.items():
            self.drift_unseen.labels(name).set(share)
        if report.estimate is not None:
            self.estimate.observe(report.estimate)
        self.drift_windows.labels(report.verdict).inc()
