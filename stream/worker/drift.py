"""Drift on the worker: scored batches feed the monitor; its reports become records, gauges and logs.

Reports go to the drift topic with the batch's records (in its transaction, exactly once): they
describe the stream, and one sent again after a restart is harmless. The monitor's per-partition
state is saved to a compacted state topic after each window report, periodically and when
partitions are revoked, and read back when partitions are assigned, so a restart or a rebalance
resumes the windows and detectors where they were (less what was added since the last save).
Called only from the scoring loop's thread.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence

import orjson
from confluent_kafka import KafkaException

from stream.contracts import ModelCard
from stream.drift.monitor import DriftMonitor, Report
from stream.errors import StateRejected
from stream.kafka.config import client_config
from stream.kafka.state_topic import StateTopic
from stream.keys import keys
from stream.scoring.pipeline import BatchResult
from stream.settings import Settings
from stream.worker.metrics import WorkerMetrics

log = logging.getLogger("streamscore.worker")
#: most events of a batch added to the windows at once: a window ends on whole slices, so this bounds
#: how far its size can stray from STREAMSCORE_DRIFT_WINDOW per partition
SLICE = 64


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

    def update(self, result: BatchResult) -> None:
        if result.scores is None or not len(result.scores):
            return
        assert result.features is not None and result.partitions is not None
        assert result.times is not None and result.offsets is not None
        reports = []
        for a in range(0, len(result.scores), SLICE):  # a window drops whole slices: keep them small
            b = a + SLICE
            reports += self.monitor.update(
                result.features[a:b],
                result.scores[a:b],
                result.partitions[a:b],
                result.times[a:b],
                result.offsets[a:b],
            )
        for report in reports:
            self._publish(report)
        if any(r.kind == "window" for r in reports):
            self.save(self.monitor.owned())

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

    def save(self, partitions: Sequence[int]) -> None:
        """Save the state of ``partitions`` (a failure is logged: the next save tries again)."""
        blobs = {p: b for p in partitions if (b := self.monitor.snapshot(p)) is not None}
        if not blobs:
            return
        try:
            self.state.save(blobs)
        except KafkaException as exc:
            log.warning("drift state not saved: %s", exc)

    def restore(self, partitions: Sequence[int]) -> None:
        """Adopt the saved state of newly assigned partitions; drop the state of partitions lost.

        A saved state that is refused (signature, format, version, model, window shape) is logged and
        counted, and its partition starts fresh.
        """
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
        self.state.close()


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)
