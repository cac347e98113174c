"""The outcome worker: joins true outcomes with the predictions they judge, and tracks performance.

A second Faust app (group ``<app_id>-outcomes``, at least once), scaled on its own, so that the
scoring hot path pays nothing for it. It reads the provenance topic (one record per prediction,
keyed by ``event_id``, with its score and model) and the outcomes topic (keyed by ``event_id``):
co-partitioned, so an event's prediction and outcome reach the same worker. Whichever side
comes first waits in the ``pending`` table (changelog-backed, so it survives restarts and moves
with its partition on a rebalance) for at most ``outcome_retention_s`` and at most
``outcome_max_pending`` entries per worker. A joined pair updates the rolling metrics of its
model version (:class:`~stream.performance.PerformanceTracker`); joined entries stay as markers
until they expire, which catches duplicate outcomes and lets a restarted worker rebuild its
rolling metrics from the table. Every outcome is counted: joined, duplicate, invalid (dead-
lettered with the reason), or unmatched (no prediction within retention, late ones included).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import deque
from collections.abc import MutableMapping
from typing import Any

import faust
import orjson
from faust.types import Message
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import ValidationError

from stream.contracts import Outcome
from stream.errors import ConfigError, SchemaError
from stream.health import Health
from stream.health import serve as serve_http
from stream.kafka_config import faust_broker
from stream.messages import TIMESTAMP_NOT_AVAILABLE, Headers
from stream.performance import PerformanceTracker
from stream.records import dead_letter_headers
from stream.settings import Settings
from stream.topics import prepare_topics

log = logging.getLogger("streamscore.outcomes")

# pending entries: {"p": partition, "t": stored at, "m": model, "s": score, "y": outcome, "r": joined at}


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


class FaustMessage:
    """A Faust message read the way the pipeline reads confluent-kafka's (methods, milliseconds)."""

    __slots__ = ("_m",)

    def __init__(self, message: Message) -> None:
        self._m = message

    def value(self) -> bytes | None:
        return self._m.value

    def key(self) -> bytes | None:
        return self._m.key

    def topic(self) -> str:
        return self._m.topic

    def partition(self) -> int:
        return self._m.partition

    def offset(self) -> int:
        return self._m.offset

    def timestamp(self) -> tuple[int, int]:
        """aiokafka numbers create time 0 and log-append time 1; confluent-kafka 1 and 2, 0 for none."""
        if self._m.timestamp is None:
            return (TIMESTAMP_NOT_AVAILABLE, -1)
        return (self._m.timestamp_type + 1, round(self._m.timestamp * 1000))

    def headers(self) -> Headers | None:
        headers = self._m.headers
        if not headers:
            return None
        return list(headers.items() if isinstance(headers, dict) else headers)

    def error(self) -> None:
        return None


class Join:
    """The join of predictions and outcomes over one worker's partitions (no I/O: the agent's state)."""

    def __init__(
        self, table: MutableMapping[str, dict[str, Any]], settings: Settings, metrics: OutcomeMetrics
    ) -> None:
        self.table, self.settings, self.metrics = table, settings, metrics
        self.trackers: dict[str, PerformanceTracker] = {}
        self.expiry: dict[int, deque[tuple[float, str]]] = {}  # partition -> (stored at, event_id)
        self.counts = dict.fromkeys(("joined", "duplicate", "invalid", "unmatched", "expired_predictions"), 0)

    def tracker(self, model: str) -> PerformanceTracker:
        if model not in self.trackers:
            self.trackers[model] = PerformanceTracker(window=self.settings.outcome_window)
        return self.trackers[model]

    def prediction(self, partition: int, event_id: str, model: str, score: float, now: float) -> str | None:
        """A prediction arrived; the model whose tracker it updated, if its outcome was waiting."""
        entry = self.table.get(event_id)
        if entry is None:
            self._store(partition, event_id, {"p": partition, "t": now, "m": model, "s": score})
            return None
        if "s" in entry:  # the same prediction read again (at least once): nothing new
            return None
        self.table[event_id] = {**entry, "m": model, "s": score, "r": now}
        return self._joined(model, entry["y"], score)

    def outcome(self, partition: int, event_id: str, positive: bool, now: float) -> str | None:
        """An outcome arrived; the model whose tracker it updated, if its prediction was waiting."""
        entry = self.table.get(event_id)
        if entry is None:
            self._store(partition, event_id, {"p": partition, "t": now, "y": positive})
            return None
        if "r" in entry or "y" in entry:
            self.count("duplicate")
            return None
        self.table[event_id] = {**entry, "y": positive, "r": now}
        return self._joined(entry["m"], positive, entry["s"])

    def _joined(self, model: str, positive: bool, score: float) -> str:
        self.count("joined")
        if self.tracker(model).add(positive, score):
            self.metrics.loss_alarms.labels(model).inc()
        return model

    def _store(self, partition: int, event_id: str, entry: dict[str, object]) -> None:
        self.table[event_id] = entry
        self.expiry.setdefault(partition, deque()).append((float(entry["t"]), event_id))  # type: ignore[arg-type]

    def expire(self, partition: int, now: float) -> None:
        """Drop this partition's entries past retention or over the size bound, counting what never joined."""
        queue = self.expiry.get(partition)
        if not queue:
            return
        horizon = now - self.settings.outcome_retention_s
        limit = self.settings.outcome_max_pending / max(1, len(self.expiry))
        while queue and (queue[0][0] < horizon or len(queue) > limit):
            _, event_id = queue.popleft()
            entry = self.table.pop(event_id, None)
            if entry is None or "r" in entry:
                continue
            if "s" in entry:
                self.count("expired_predictions")
            else:
                self.count("unmatched")

    def count(self, what: str) -> None:
        """Count an outcome (or an expired prediction) in the totals and the metrics."""
        self.counts[what] += 1
        if what == "expired_predictions":
            self.metrics.expired.inc()
        else:
            self.metrics.outcomes.labels(what).inc()

    def rebuild(self, partitions: set[int]) -> int:
        """After recovery: expiry queues and rolling metrics from the table's entries; return their count."""
        entries = [(k, v) for k, v in self.table.items() if v.get("p") in partitions]
        self.expiry = {}
        for key, entry in sorted(entries, key=lambda kv: kv[1]["t"]):
            self.expiry.setdefault(entry["p"], deque()).append((entry["t"], key))
        self.trackers = {}
        joined = sorted((v for _, v in entries if "r" in v), key=lambda v: v["r"])
        for entry in joined[-self.settings.outcome_window :]:
            self.tracker(entry["m"]).add(entry["y"], entry["s"])
        for tracker in self.trackers.values():
            tracker.report()  # replayed pairs are not new: no alarm, no report due
        return len(entries)


def create_outcome_app(settings: Settings) -> faust.App:
    """The outcome worker's app: the join agent, its table, reports and metrics."""
    if not settings.outcome_topic:
        raise ConfigError("STREAMSCORE_OUTCOME_TOPIC is empty: set it to the topic of true outcomes")
    partitions = prepare_topics(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        f"{settings.app_id}-outcomes",
        **faust_broker(settings),
        processing_guarantee="at_least_once",
        store="memory://",
        key_serializer="json",
        value_serializer="json",
        autodiscover=False,
        web_enabled=False,
        datadir=str(settings.data_dir / f"{settings.app_id}-outcomes"),
        topic_partitions=partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_commit_interval=1.0,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.session_timeout_s / 3,
    )
    source = app.topic(
        settings.provenance_topic,
        settings.outcome_topic,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
        internal=False,
    )
    table = app.Table("pending", partitions=partitions)  # keys and values as JSON (the app's default)
    metrics = OutcomeMetrics()
    join = Join(table, settings, metrics)
    health = Health()
    health.model = "outcomes"
    if settings.metrics_port:
        serve_http(settings.metrics_port, metrics.registry, health)
    worker_id = f"{socket.gethostname()}:{os.getpid()}"
    generation: list[int] = [-1]

    @app.agent(source, concurrency=1)
    async def outcomes(stream: faust.StreamT) -> None:
        async for event in stream.events():
            msg = event.message
            now = time.time()
            if generation[0] != app.consumer_generation_id:  # the table has just been recovered
                generation[0] = app.consumer_generation_id
                mine = {
                    tp.partition for tp in app.consumer.assignment() if tp.topic == settings.outcome_topic
                }
                health.partitions = sorted(mine)
                log.info("join table holds %d entries for partitions %s", join.rebuild(mine), sorted(mine))
            if msg.topic == settings.provenance_topic:
                record = orjson.loads(msg.value)
                model = f"{record['model']['name']}/{record['model']['version']}"
                joined = join.prediction(msg.partition, record["event_id"], model, record["score"], now)
            else:
                try:
                    outcome = Outcome.model_validate_json(msg.value)
                except ValidationError as exc:
                    join.count("invalid")
                    reason = SchemaError(f"outcome does not match the contract: {exc.errors()[0]['msg']}")
                    headers = dead_letter_headers(FaustMessage(msg), reason, None)
                    await app.producer.send(settings.dlq_topic, msg.key, msg.value, None, None, headers)
                    continue
                joined = join.outcome(msg.partition, outcome.event_id, outcome.positive, now)
            join.expire(msg.partition, now)
            if joined is not None:
                tracker = join.trackers[joined]
                if tracker.since_report >= settings.outcome_window or tracker.alarm:
                    await publish(joined, tracker)

    async def publish(model: str, tracker: PerformanceTracker) -> None:
        perf = tracker.report()
        name, _, version = model.partition("/")
        for gauge, value in (
            (metrics.accuracy, perf.accuracy),
            (metrics.roc_auc, perf.roc_auc),
            (metrics.log_loss, perf.log_loss),
            (metrics.calibration, perf.calibration_error),
        ):
            if value is not None:
                gauge.labels(model).set(value)
        decay = perf.loss_alarm
        record = {
            "kind": "performance",
            "model_name": name,
            "model_version": version,
            "worker_id": worker_id,
            **{k: v for k, v in vars(perf).items()},
            "counts": {**join.counts, "waiting": sum(len(q) for q in join.expiry.values())},
            "verdict": "decay" if decay else "ok",
        }
        await app.producer.send(settings.drift_topic, None, orjson.dumps(record), None, None, None)
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

    @app.timer(interval=1.0)
    async def heartbeat() -> None:
        health.tick()
        metrics.pending.set(sum(len(q) for q in join.expiry.values()))

    return app
