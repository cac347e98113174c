"""Drift on the worker: scored batches feed the monitor; its reports become records, gauges and logs.

Reports go to the drift topic with the batch's records (in its transaction, exactly once): they
describe the stream, and one sent again after a restart is harmless. The monitor's per-partition
state is saved to a compacted state topic after each window report, periodically and when
partitions are revoked, and read back when partitions are assigned, so a restart or a rebalance
resumes the windows and detectors where they were (less what was added since the last save).
Scored batches are added to the windows in slices of at least :data:`SLICE_EVENTS` events, or
after :data:`PENDING_S`: a lone event scored at once does not pay for a whole window update.
Called only from the scoring loop's thread.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import orjson
from confluent_kafka import KafkaException

from stream.contracts import ModelCard
from stream.drift.estimation import Estimate
from stream.drift.monitor import DriftMonitor, Report
from stream.drift.partition import SLICE_EVENTS
from stream.errors import StateRejected
from stream.kafka.config import client_config
from stream.kafka.state_topic import StateTopic
from stream.keys import keys
from stream.model_card import Calibration
from stream.scoring.pipeline import BatchResult
from stream.settings import Settings
from stream.worker.metrics import WorkerMetrics

log = logging.getLogger("streamscore.worker")
PENDING_S = 0.1
"""Longest a scored batch waits to be added to the windows while fewer than SLICE_EVENTS wait."""


class DriftReporter:
    """Feeds scored batches to a :class:`DriftMonitor` and publishes what it reports."""

    def __init__(
        self,
        settings: Settings,
        card: ModelCard,
        metrics: WorkerMetrics,
        worker_id: str,
        partitions: int,
        send: Callable[[str, bytes], None],
    ) -> None:
        self.settings, self.metrics, self.partitions = settings, metrics, partitions
        self.worker_id, self.send = worker_id, send
        self._pending: list[BatchResult] = []
        self._pending_events, self._pending_since = 0, 0.0
        self.use_model(card)
        self.state = StateTopic(
            client_config(settings),
            f"{settings.app_id}-drift-state",
            partitions,
            keys(settings).state,
            settings.replication_factor,
        )

    def use_model(self, card: ModelCard) -> None:
        """Compare with this model's reference from now on (windows and detectors start afresh)."""
        self.catch_up()  # what the previous model scored goes to its own windows
        owned = self.monitor.owned() if hasattr(self, "monitor") else []
        self.card = card
        self.monitor = DriftMonitor(
            card,
            window=self.settings.drift_window,
            partitions=self.partitions,
            window_seconds=self.settings.drift_window_s,
            psi_threshold=self.settings.drift_psi_threshold,
            distance_threshold=self.settings.drift_distance_threshold,
        )
        self.monitor.own(owned)
        c = card.calibration
        self.metrics.estimate.use(c.reference if c else None, c.margin if c else 0.0)

    def update(self, result: BatchResult) -> None:
        """Add a scored batch (at once when SLICE_EVENTS events wait, else by :meth:`tick`)."""
        if result.scores is None or not len(result.scores):
            return
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.append(result)
        self._pending_events += len(result.scores)
        if self._pending_events >= SLICE_EVENTS:
            self.catch_up()

    def tick(self, now: float) -> None:
        """Add the batches that have waited :data:`PENDING_S` (``now``: ``time.monotonic()``)."""
        if self._pending and now - self._pending_since >= PENDING_S:
            self.catch_up()

    def catch_up(self) -> None:
        """Add every waiting batch to the windows; publish the reports it makes."""
        if not self._pending:
            return
        batches, self._pending, self._pending_events = self._pending, [], 0
        x, scores, partitions, times, offsets = (
            np.concatenate([getattr(r, f) for r in batches]) if len(batches) > 1 else getattr(batches[0], f)
            for f in ("features", "scores", "partitions", "times", "offsets")
        )
        reports = []
        for a in range(0, len(scores), SLICE_EVENTS):  # a window drops whole slices
            b = a + SLICE_EVENTS
            reports += self.monitor.update(x[a:b], scores[a:b], partitions[a:b], times[a:b], offsets[a:b])
        for report in reports:
            self._publish(report)
        if any(r.kind == "window" for r in reports):
            self.save(self.monitor.owned(), wait=False)

    def _publish(self, report: Report) -> None:
        self.metrics.observe_drift(report)
        topic = self.settings.input_topic
        record = {
            "kind": report.kind,
            "model_name": self.card.name,
            "model_version": self.card.version,
            "worker_id": self.worker_id,
            "partitions": report.partitions,
            "events": report.events,
            "window_start": _utc(report.window_start),
            "window_end": _utc(report.window_end),
            "offsets": {f"{topic}[{p}]": {"first": a, "last": b} for p, (a, b) in report.offsets.items()},
            "psi": report.psi,
            "distance": report.distance,
            "thresholds": {"psi": self.monitor.psi_threshold, "distance": self.monitor.distance_threshold},
            "drifted": report.drifted,
            "alarms": report.alarms,
            "verdict": report.verdict,
        }
        if report.unseen:
            record["unseen"] = report.unseen
        if report.estimate is not None and self.card.calibration is not None:
            record |= _estimate_keys(report.estimate, self.card.calibration, self.card.output.threshold)
        self.send(self.settings.drift_topic, orjson.dumps(record))
        log.log(
            logging.WARNING if report.verdict == "drift" else logging.INFO,
            "drift %s over %d events: %s%s%s",
            report.kind,
            report.events,
            report.verdict,
            f", beyond thresholds: {report.drifted}" if report.drifted else "",
            f", detectors fired: {report.alarms}" if report.alarms else "",
            extra={"drift_verdict": report.verdict, "psi": report.psi, "distance": report.distance},
        )
        if record.get("estimate_below"):
            _warn_below(record, report.events)

    def save(self, partitions: Sequence[int], wait: bool = True) -> None:
        """Save the state of ``partitions`` (a failure is logged: the next save tries again); without
        ``wait`` the records are handed to the producer and the loop goes on (a failure is logged by
        a later save)."""
        self.catch_up()
        blobs = {p: b for p in partitions if (b := self.monitor.snapshot(p)) is not None}
        if not blobs:
            return
        try:
            self.state.save(blobs, wait=wait)
        except KafkaException as exc:
            log.warning("drift state not saved: %s", exc)

    def restore(self, partitions: Sequence[int]) -> None:
        """Adopt the saved state of newly assigned partitions; drop the state of partitions lost.

        A saved state that is refused (signature, format, version, model, window shape) is logged and
        counted, and its partition starts fresh.
        """
        self.catch_up()  # before partitions taken away are dropped
        wanted = [p for p in partitions if p not in self.monitor.owned()]
        for p in self.monitor.owned():
            if p not in partitions:
                self.monitor.release(p)
        if not wanted:
            return
        bodies, rejected = self.state.load(wanted)
        self.monitor.own(wanted)
        for p, body in bodies.items():
            try:
                self.monitor.restore(p, body)
            except StateRejected as exc:
                rejected[p] = exc
        for p, exc in sorted(rejected.items()):
            self.metrics.state_rejected.labels("drift", exc.reason).inc()
            log.warning(
                "drift state of partition %d refused (%s): %s; starting fresh",
                p,
                exc.reason,
                exc,
                extra={"state_rejected": exc.reason, "partition": p},
            )
        restored = sorted(bodies.keys() - rejected.keys())
        if restored:
            log.info(
                "drift state restored for partitions %s (%d events seen)",
                restored,
                sum(self.monitor.seen(p) for p in restored),
                extra={"drift_restored": restored},
            )

    def close(self) -> None:
        self.catch_up()
        self.state.close()


def _estimate_keys(estimate: Estimate, calibration: Calibration, threshold: float) -> dict[str, object]:
    """A window report's estimated performance at ``threshold``, its reference and the metrics below it."""
    return {
        "estimated": {
            m: {"value": round(i.value, 6), "lower": round(i.lower, 6), "upper": round(i.upper, 6)}
            for m, i in estimate.metrics.items()
        },
        "estimate_reference": calibration.reference,
        "estimate_margin": calibration.margin,
        "estimate_below": estimate.below(calibration.reference, calibration.margin),
        "estimate_threshold": threshold,
    }


def _warn_below(record: dict[str, Any], events: int) -> None:
    """One WARNING line naming the estimates below their reference by more than the margin."""
    estimated, reference = record["estimated"], record["estimate_reference"]
    names = record["estimate_below"]
    below = [f"{m} {estimated[m]['value']:.4f} (reference {reference[m]:.4f})" for m in names]
    log.warning(
        "estimated performance over %d events below the reference by more than %s: %s",
        events,
        record["estimate_margin"],
        ", ".join(below),
        extra={"estimate_below": record["estimate_below"]},
    )


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)
