"""The Faust worker: the only module that imports faust.

One agent (concurrency 1: faust-streaming can commit past an in-flight event otherwise, #606)
reads the input topic in micro-batches of at most ``batch_size`` events, waiting at most
``batch_max_wait_ms``, hands each batch to :class:`~stream.pipeline.Pipeline` and sends what it
returns. Delivery rule, at least once: a batch's events are acked to Faust, which commits acked
offsets every second, only once the broker has acknowledged every record of that batch (see
:class:`Emitter`). No exception escapes the agent (faust-streaming acks and commits events whose
agent raised, #189): poison input is a dead letter, and anything else (a failed delivery, a bug)
ends the process at once without committing, so a restart scores those events again. With
``exactly_once`` the records and the offsets are committed in one Kafka transaction per input
partition: every output is sent in the transaction of its input's partition, and no commit falls
between a batch's outputs and its acks. Predictions and dead letters keep the input's partition
(and key); provenance is keyed by ``event_id``, which co-partitions it with the outcomes topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import socket
import statistics
import subprocess
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from functools import partial
from pathlib import Path

import faust
import orjson
from confluent_kafka import KafkaException
from faust.exceptions import ProducerSendError
from faust.types import TP, ConsumerT, EventT

from stream import __version__, model, permissions
from stream.contracts import ModelCard
from stream.drift import DriftMonitor, Report
from stream.errors import ConfigError, StateRejected
from stream.health import Health
from stream.health import serve as serve_http
from stream.kafka_config import client_config, connect, faust_broker
from stream.keys import keys
from stream.logs import logging_config
from stream.metrics import WorkerMetrics
from stream.pipeline import BatchResult, Pipeline, Record, Topics
from stream.reload import ModelWatcher
from stream.settings import Settings
from stream.state import StateTopic
from stream.topics import ensure_topics

log = logging.getLogger("streamscore.worker")
EXIT_FATAL = 70


def code_revision() -> str | None:
    """The git revision of the running code: ``STREAMSCORE_REVISION``, else ``git rev-parse``."""
    if os.environ.get("STREAMSCORE_REVISION"):
        return os.environ["STREAMSCORE_REVISION"]
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def prepare_topics(settings: Settings) -> int:
    """Create missing topics; all share the input's partition count. Return that count."""
    kafka = client_config(settings)
    names = [settings.input_topic, settings.prediction_topic, settings.provenance_topic, settings.dlq_topic]
    names += [settings.outcome_topic] if settings.outcome_topic else []
    existing = connect(kafka)[1].topics
    counts = {n: len(existing[n].partitions) for n in names if n in existing}
    partitions = counts.get(settings.input_topic, settings.partitions)
    wrong = {n: c for n, c in counts.items() if c != partitions}
    if wrong:
        raise ConfigError(
            f"topics {wrong} do not have the {partitions} partitions of input topic "
            f"{settings.input_topic!r}: outputs share the input's partitions so that keys keep their "
            "order, and provenance and outcomes (both keyed by event_id) land in matching partitions; "
            "recreate them or choose other topic names"
        )
    ensure_topics(
        kafka,
        {n: partitions for n in names} | {settings.drift_topic: 1},
        replication_factor=settings.replication_factor,
    )
    return partitions


def create_pipeline(settings: Settings) -> Pipeline:
    """Load and verify the model and build the hot path around it."""
    personal = keys(settings).personal  # first: no secret, no start
    loaded = model.load(settings.model_dir, settings.model_name, settings.model_version)
    return Pipeline(
        loaded,
        Topics(settings.prediction_topic, settings.provenance_topic, settings.dlq_topic),
        pii_key=personal,
        scorer={
            "version": __version__,
            "revision": code_revision(),
            "worker_id": f"{socket.gethostname()}:{os.getpid()}",
        },
        max_message_bytes=settings.max_message_bytes,
        max_features=settings.max_features,
        max_string_length=settings.max_string_length,
    )


def create_app(settings: Settings) -> faust.App:
    """Build the hot path, prepare the topics, and wire the agent."""
    pipeline = create_pipeline(settings)
    needs = permissions.scoring_worker(settings)
    permissions.check(settings, needs, settings.app_id)  # before making topics, and once they all exist
    partitions = prepare_topics(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        **faust_broker(settings),
        processing_guarantee=settings.processing_guarantee,
        store="memory://",
        autodiscover=False,
        web_enabled=False,
        datadir=str(settings.data_dir / settings.app_id),
        topic_partitions=partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger=0.001,
        producer_max_batch_size=256 * 1024,  # 16 KiB batches (the default) stall sends at about 5k events/s
        stream_buffer_maxsize=max(4 * settings.batch_size, 1024),
        broker_commit_interval=1.0,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.session_timeout_s / 3,
        topic_disable_leader=True,  # no timer runs on the leader only: one internal topic less
    )
    source = app.topic(
        settings.input_topic,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
        internal=False,
    )
    stats = Stats()
    metrics = WorkerMetrics()
    metrics.set_model(pipeline.model.card)
    metrics.watch_lag(client_config(settings), settings.app_id, settings.input_topic)
    health = Health()
    health.model = f"{pipeline.model.card.name}/{pipeline.model.card.version}"
    if settings.metrics_port:
        serve_http(settings.metrics_port, metrics.registry, health)
    within = settings.batch_max_wait_ms / 1000.0

    drift = (
        DriftReporter(app, settings, pipeline.model.card, metrics, pipeline.scorer_id, partitions)
        if settings.drift_window
        else None
    )
    permissions.check(settings, needs, settings.app_id)
    emitter = Emitter(
        app,
        settings.input_topic,
        exactly_once=settings.processing_guarantee == "exactly_once",
        on_delivered=metrics.count_delivered,
    )

    @app.agent(source, concurrency=1)
    async def score(stream: faust.StreamT) -> None:
        async for taken in stream.take_events(settings.batch_size, within=within):
            batch = _current(app, taken)
            if not batch:
                continue
            try:
                started = time.perf_counter()
                result = pipeline.process([e.message for e in batch])
                metrics.observe(len(batch), result, time.perf_counter() - started)
                await emitter.emit(batch, result)
                if drift is not None:
                    await drift.update(result)
            except Exception as exc:  # never let it escape: faust would ack and commit the batch
                _fatal(f"{_describe(batch)} not emitted: {exc!r}; exiting without committing", batch)
            stats.add(result)

    def inputs(tps: Iterable[TP]) -> list[int]:
        return sorted(tp.partition for tp in tps if tp.topic == settings.input_topic)

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: faust.App, revoked: set[TP], **_: object) -> None:
        health.partitions = []
        if emitter.exactly_once:  # commit the open transactions' acked offsets before Faust seeks back
            await app.consumer.commit()
            await emitter.end_transactions()
        if drift is not None:
            await drift.save(inputs(revoked))

    @app.on_partitions_assigned.connect
    async def on_partitions_assigned(sender: faust.App, assigned: set[TP], **_: object) -> None:
        if drift is not None:
            await drift.restore(inputs(assigned))

    @app.on_rebalance_complete.connect
    async def on_assigned(sender: faust.App, **_: object) -> None:
        assigned = inputs(app.consumer.assignment())
        health.partitions = assigned
        log.info("assigned partitions %s of %s", assigned, settings.input_topic)

    @app.timer(interval=1.0)
    async def heartbeat() -> None:
        health.tick()

    @app.timer(interval=10.0)
    async def save_drift_state() -> None:
        if drift is not None:
            await drift.save(drift.monitor.owned())

    @app.on_before_shutdown.connect
    async def save_drift_state_on_shutdown(sender: faust.App, **_: object) -> None:
        if drift is not None:
            await drift.save(drift.monitor.owned())

    if settings.model_reload_s and settings.model_version == "latest":
        watcher = ModelWatcher(settings.model_dir, settings.model_name, pipeline, metrics)

        @app.timer(interval=settings.model_reload_s)
        async def reload_model() -> None:
            if card := await watcher.poll():
                health.model = f"{card.name}/{card.version}"
                if drift is not None:
                    drift.use_model(card)

    @app.timer(interval=5.0)
    async def report() -> None:
        report = stats.line()
        if report:
            log.info(report[0], extra=report[1])

    return app


class DriftReporter:
    """Feeds scored batches to the drift monitor; its reports become records, gauges and log lines.

    Reports go to the drift topic outside any transaction: they describe the stream, and one sent
    again after a restart is harmless. The monitor's per-partition state is saved to a compacted
    state topic after each window report, every ``save_every`` seconds and when partitions are
    revoked, and read back when partitions are assigned, so a restart or a rebalance resumes the
    windows and detectors where they were (less what was added since the last save).
    """

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        card: ModelCard,
        metrics: WorkerMetrics,
        worker_id: str,
        partitions: int,
    ) -> None:
        self.app, self.settings, self.metrics, self.partitions = app, settings, metrics, partitions
        self.use_model(card)
        self.state = StateTopic(
            client_config(settings),
            f"{settings.app_id}-drift-state",
            partitions,
            keys(settings).state,
            settings.replication_factor,
        )
        self.worker_id = worker_id

    def use_model(self, card: ModelCard) -> None:
        """Compare with this model's reference from now on (windows and detectors start afresh)."""
        self.card = card
        self.monitor = DriftMonitor(
            card,
            window=self.settings.drift_window,
            partitions=self.partitions,
            window_seconds=self.settings.drift_window_s,
            psi_threshold=self.settings.drift_psi_threshold,
            distance_threshold=self.settings.drift_distance_threshold,
        )

    async def update(self, result: BatchResult) -> None:
        if result.scores is None or not len(result.scores):
            return
        assert result.partitions is not None and result.times is not None and result.offsets is not None
        reports = self.monitor.update(
            result.features, result.scores, result.partitions, result.times, result.offsets
        )
        for report in reports:
            await self._publish(report)
        if any(r.kind == "window" for r in reports):
            await self.save(self.monitor.owned())

    async def _publish(self, report: Report) -> None:
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
        await self.app.producer.send(self.settings.drift_topic, None, orjson.dumps(record), None, None, None)
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

    async def save(self, partitions: Sequence[int]) -> None:
        """Save the state of ``partitions`` (a failure is logged: the next save tries again)."""
        blobs = {p: b for p in partitions if (b := self.monitor.snapshot(p)) is not None}
        if not blobs:
            return
        try:
            await asyncio.to_thread(self.state.save, blobs)
        except KafkaException as exc:
            log.warning("drift state not saved: %s", exc)

    async def restore(self, partitions: Sequence[int]) -> None:
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
        bodies, rejected = await asyncio.to_thread(self.state.load, wanted)
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


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


class Emitter:
    """Sends a batch's records; its events are acked (so become committable) once the broker has them.

    At least once, batches are pipelined: each event holds an extra reference (Faust's own message
    refcount) until a callback sees every record of its batch acknowledged, and at most
    ``max_in_flight`` batches are unacknowledged at once. A failed delivery ends the process before
    its events are acked. Exactly once, a batch's records and acks happen while Faust's commit is
    held off, so that a transaction never commits a batch's outputs without its offsets.
    """

    def __init__(
        self,
        app: faust.App,
        input_topic: str,
        exactly_once: bool,
        on_delivered: Callable[[Sequence[Record]], None],
        max_in_flight: int = 8,
    ) -> None:
        self.app, self.input_topic = app, input_topic
        self.on_delivered = on_delivered
        self.exactly_once = exactly_once
        self.max_in_flight = max_in_flight
        self.in_flight: deque[asyncio.Future[list[object]]] = deque()

    async def emit(self, batch: Sequence[EventT], result: BatchResult) -> None:
        if self.exactly_once:
            async with _commits_held(self.app.consumer):
                lost = await self._send_in_transactions(batch, result)
                self._ack([e for e in batch if e.message.partition not in lost])
            self.on_delivered([r for r in result.records if r.source not in lost])
            return
        for event in batch:
            event.message.incref()
        delivered = asyncio.gather(*await self._send(result))
        delivered.add_done_callback(partial(self._on_delivered, batch, result))
        self.in_flight.append(delivered)
        while self.in_flight and (self.in_flight[0].done() or len(self.in_flight) > self.max_in_flight):
            await self.in_flight.popleft()

    async def _send(self, result: BatchResult) -> list[Awaitable[object]]:
        send = (await self.app.maybe_start_producer()).send
        return [await send(r.topic, r.key, r.value, r.partition, None, r.headers) for r in result.records]

    async def _send_in_transactions(self, batch: Sequence[EventT], result: BatchResult) -> set[int]:
        """Send each record in the transaction of its input partition; return partitions lost meanwhile.

        Faust's own routing picks a transaction by the destination topic, which works only for
        topics it consumes; outputs are sent with the id Faust commits the input's offsets under.
        A partition revoked by a rebalance has no transaction any more: its events are not acked
        and its new owner scores them again from the committed offset.
        """
        producer = self.app.producer
        group = self.app.assignor.group_for_topic(batch[0].message.topic)
        prefix = f"{self.app.conf.id}-{group}-"
        lost: set[int] = set()
        pending = []
        for r in result.records:
            if r.source in lost:
                continue
            try:
                pending.append(
                    await producer.send(
                        r.topic, r.key, r.value, r.partition, None, r.headers,
                        transactional_id=f"{prefix}{r.source}",
                    )
                )  # fmt: skip
            except ProducerSendError:
                lost.add(r.source)
        await asyncio.gather(*pending)
        if lost:
            log.warning(
                "partitions %s were revoked while their batch was sent: left to their new owner", lost
            )
        return lost

    async def end_transactions(self) -> None:
        """Close every transactional producer of the input partitions, on a rebalance.

        Faust begins them again for the partitions it assigns; without this it keeps the producer of
        a partition that turns standby, the partition's new owner fences it, and when the partition
        comes back (1 -> 2 -> 1 workers) the fenced producer fails its first send. Uses the producer's
        private map of transactional producers (faust-streaming 0.15).
        """
        producer = self.app.producer
        try:
            group = self.app.assignor.group_for_topic(self.input_topic)
        except KeyError:  # the first assignment has not happened yet: no producers
            return
        prefix = f"{self.app.conf.id}-{group}-"
        for tid in [t for t in producer._transaction_producers if t.startswith(prefix)]:  # type: ignore[attr-defined]
            await producer.stop_transaction(tid)

    def _ack(self, batch: Sequence[EventT]) -> None:
        consumer = self.app.consumer
        for event in batch:
            event.message.ack(consumer)

    def _on_delivered(
        self, batch: Sequence[EventT], result: BatchResult, delivered: asyncio.Future[list[object]]
    ) -> None:
        if delivered.cancelled() or delivered.exception() is not None:
            reason = "cancelled" if delivered.cancelled() else repr(delivered.exception())
            _fatal(f"{_describe(batch)} not delivered: {reason}; exiting without committing", batch)
        self._ack(batch)
        self.on_delivered(result.records)


@contextlib.asynccontextmanager
async def _commits_held(consumer: ConsumerT) -> AsyncIterator[None]:
    """Hold Faust's periodic commit off for the block; one that was due runs right after it.

    Uses the consumer's own single-flight commit future (faust-streaming 0.15): a commit that finds
    it pending waits for it, and a cancelled one tells the waiter to commit after all.
    """
    await consumer.maybe_wait_for_commit_to_finish()
    held: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    consumer._commit_fut = held  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if consumer._commit_fut is held:  # type: ignore[attr-defined]
            consumer._commit_fut = None  # type: ignore[attr-defined]
        held.cancel()


def _current(app: faust.App, batch: Sequence[EventT]) -> Sequence[EventT]:
    """The events of a batch fetched in the current consumer generation.

    Events taken before a rebalance are stale: Faust seeks every partition back to its committed
    offset, so they are read again. They keep an extra reference so that they never count as
    acked (a stale ack could let an offset be committed before its re-read copy is delivered).
    """
    generation = app.consumer_generation_id
    if all(e.message.generation_id == generation for e in batch):
        return batch
    fresh = [e for e in batch if e.message.generation_id == generation]
    for e in batch:
        if e.message.generation_id != generation:
            e.message.incref()
    log.info("skipped %d events fetched before a rebalance: they are read again", len(batch) - len(fresh))
    return fresh


def _describe(batch: Sequence[EventT]) -> str:
    first, last = batch[0].message, batch[-1].message
    return f"batch {first.topic}[{first.partition}]@{first.offset}..[{last.partition}]@{last.offset}"


def _fatal(message: str, batch: Sequence[EventT] = ()) -> None:
    origin = {"last_offsets": {f"{e.message.topic}[{e.message.partition}]": e.message.offset for e in batch}}
    log.critical(message, extra=origin if batch else {})
    logging.shutdown()
    sys.stderr.flush()
    os._exit(EXIT_FATAL)


class Stats:
    """Counts and end-to-end latencies since the last report line."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.scored = self.dead = self.total_scored = self.total_dead = 0
        self.latencies: list[float] = []

    def add(self, result: BatchResult) -> None:
        dead = sum(result.dead_letters.values())
        self.scored += result.scored
        self.dead += dead
        self.total_scored += result.scored
        self.total_dead += dead
        if len(self.latencies) < 100_000:
            self.latencies += result.latencies

    def line(self) -> tuple[str, dict[str, float]] | None:
        """The report since the last call: a sentence, and its figures as log fields."""
        now = time.monotonic()
        elapsed, self.started = now - self.started, now
        if not self.scored and not self.dead:
            return None
        lat = sorted(self.latencies)
        p50 = statistics.median(lat) * 1e3 if lat else float("nan")
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3 if lat else float("nan")
        fields = {
            "scored_per_s": round(self.scored / elapsed, 1),
            "dead_lettered_per_s": round(self.dead / elapsed, 1),
            "scored_total": self.total_scored,
            "dead_lettered_total": self.total_dead,
            "latency_p50_ms": round(p50, 2),
            "latency_p99_ms": round(p99, 2),
        }
        line = (
            f"scored {fields['scored_per_s']:.0f}/s, dead-lettered {fields['dead_lettered_per_s']:.0f}/s "
            f"(total {self.total_scored} scored, {self.total_dead} dead letters); "
            f"event time to emit p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        )
        self.scored = self.dead = 0
        self.latencies = []
        return line, fields


def run_worker(settings: Settings, create: Callable[[Settings], faust.App] = create_app) -> None:
    """Run the app ``create`` makes until SIGINT/SIGTERM (Faust's worker handles signals and shutdown)."""
    app = create(settings)
    worker = faust.Worker(
        app,
        loglevel="warn",
        quiet=True,
        redirect_stdouts=False,
        logging_config=logging_config(settings.log_level),
    )
    worker.spinner = None  # no terminal animation in logs
    worker.execute_from_commandline()
