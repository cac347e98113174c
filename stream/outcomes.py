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

Everything read from Kafka is untrusted until checked: provenance records and outcomes are
validated against their contracts (a provenance record that breaks it is counted and skipped), and
the table's entries are plain JSON signed with the state key (:class:`SignedEntries`), stored as
raw bytes so that Faust's model registry never sees them; an entry read back from the changelog
that is wrongly signed or malformed is counted and treated as absent.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator, MutableMapping
from typing import (
    Any,
    NotRequired,  # pydantic needs it before Python 3.12
)

import faust
import orjson
from faust.types import Message
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import ConfigDict, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from stream import permissions
from stream.contracts import Outcome, Provenance
from stream.errors import ConfigError, SchemaError, StateRejected
from stream.health import Health
from stream.health import serve as serve_http
from stream.kafka_config import faust_broker
from stream.keys import Signer, keys
from stream.messages import TIMESTAMP_NOT_AVAILABLE, Headers
from stream.metrics import state_rejected_counter
from stream.performance import PerformanceTracker
from stream.records import dead_letter_headers
from stream.settings import Settings
from stream.topics import prepare_topics

log = logging.getLogger("streamscore.outcomes")


class Entry(TypedDict):
    """A pending entry: a prediction (model, score), an outcome, or both once joined."""

    __pydantic_config__ = ConfigDict(extra="forbid", allow_inf_nan=False)  # type: ignore[misc]
    p: int  # input partition
    t: float  # stored at
    m: NotRequired[str]  # model name/version
    s: NotRequired[float]  # score
    y: NotRequired[bool]  # outcome
    r: NotRequired[float]  # joined at


_ENTRY = TypeAdapter(Entry)


def _entry_is_coherent(e: dict[str, Any]) -> bool:
    return (
        e["p"] >= 0
        and ("s" in e) == ("m" in e)
        and ("s" in e or "y" in e)
        and ("r" not in e or ("s" in e and "y" in e))
        and (0.0 <= e.get("s", 0.0) <= 1.0)
        and len(e.get("m", "")) <= 512
    )


class SignedEntries(MutableMapping[str, dict[str, Any]]):
    """The join table's entries as signed JSON over a Faust table of raw bytes.

    Keys are the event ids as JSON strings, values the entry's JSON prefixed with its HMAC (over the
    table and the key, so an entry copied to another key does not verify). An entry that is not
    signed by the current or a previous secret, or is not a coherent :class:`Entry`, reads as absent
    and is reported to ``rejected`` with the reason.
    """

    def __init__(
        self, table: MutableMapping[bytes, bytes], name: str, signer: Signer, rejected: Callable[[str], None]
    ) -> None:
        self.table, self.name, self.signer, self.rejected = table, name, signer, rejected

    def _open(self, key: str, raw: bytes | None) -> dict[str, Any] | None:
        if raw is None:
            return None
        try:
            entry = dict(_ENTRY.validate_json(self.signer.verify(f"{self.name}[{key}]", raw)))
        except StateRejected as exc:
            self.rejected(exc.reason)
            return None
        except ValidationError:
            self.rejected("format")
            return None
        if not _entry_is_coherent(entry):
            self.rejected("format")
            return None
        return entry

    def get(self, key: str, default: Any = None) -> Any:
        entry = self._open(key, self.table.get(orjson.dumps(key)))
        return default if entry is None else entry

    def __getitem__(self, key: str) -> dict[str, Any]:
        entry = self.get(key)
        if entry is None:
            raise KeyError(key)
        return entry

    def __setitem__(self, key: str, entry: dict[str, Any]) -> None:
        self.table[orjson.dumps(key)] = self.signer.sign(f"{self.name}[{key}]", orjson.dumps(entry))

    def __delitem__(self, key: str) -> None:
        del self.table[orjson.dumps(key)]

    def pop(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        entry = self._open(key, self.table.pop(orjson.dumps(key), None))
        return default if entry is None else entry

    def __iter__(self) -> Iterator[str]:
        for raw in list(self.table):
            try:
                key = orjson.loads(raw)
            except orjson.JSONDecodeError:
                self.rejected("format")
                continue
            if isinstance(key, str):
                yield key
            else:
                self.rejected("format")

    def items(self) -> Iterator[tuple[str, dict[str, Any]]]:  # type: ignore[override]
        """The entries that verify and validate (the others are reported once each)."""
        for key in self:
            entry = self.get(key)
            if entry is not None:
                yield key, entry

    def __len__(self) -> int:
        return len(self.table)


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
    signer = keys(settings).state  # first: no secret, no start
    if not settings.outcome_topic:
        raise ConfigError("STREAMSCORE_OUTCOME_TOPIC is empty: set it to the topic of true outcomes")
    group = f"{settings.app_id}-outcomes"
    needs = permissions.outcome_worker(settings, f"{group}-pending-changelog")  # Faust's name for it
    permissions.check(settings, needs, group)
    partitions = prepare_topics(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        group,
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
        topic_disable_leader=True,  # no timer runs on the leader only: one internal topic less
    )
    source = app.topic(
        settings.provenance_topic,
        settings.outcome_topic,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
        internal=False,
    )
    # bytes (Faust's "raw" codec): its JSON codec would build the Faust model a "__faust" key names
    table = app.Table("pending", partitions=partitions, key_type=bytes, value_type=bytes)
    changelog = table.changelog_topic.get_topic_name()
    assert changelog in needs, f"Faust names the changelog {changelog}"
    # Faust declares its changelog at every start, even when it exists (CREATE needed): with
    # topic_allow_declare=False and the changelog made here, a restarted worker skipped records
    permissions.check(settings, needs, group)  # again, now that the input and output topics exist
    metrics = OutcomeMetrics()

    def rejected(reason: str) -> None:
        metrics.state_rejected.labels("pending", reason).inc()
        log.warning(
            "join table entry refused (%s): treated as absent", reason, extra={"state_rejected": reason}
        )

    join = Join(SignedEntries(table, changelog, signer, rejected), settings, metrics)
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
                try:
                    record = Provenance.model_validate_json(msg.value)
                except ValidationError as exc:
                    metrics.invalid_predictions.inc()
                    log.warning(
                        "provenance %s[%d]@%d breaks the contract (%s): skipped",
                        msg.topic, msg.partition, msg.offset, exc.errors()[0]["msg"],
                    )  # fmt: skip
                    continue
                model = f"{record.model.name}/{record.model.version}"
                joined = join.prediction(msg.partition, record.event_id, model, record.score, now)
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
