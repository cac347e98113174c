"""The Faust worker: the only module that imports faust.

One agent (concurrency 1: faust-streaming can commit past an in-flight event otherwise, #606)
reads the input topic in micro-batches of at most ``batch_size`` events, waiting at most
``batch_max_wait_ms``, hands each batch to :class:`~stream.pipeline.Pipeline` and sends what it
returns. Delivery rule, at least once: the agent waits until the broker has acknowledged every
record of a batch before it takes the next one, and Faust acks (and later commits) a batch's
offsets only then. No exception escapes the agent (faust-streaming acks and commits events whose
agent raised, #189): poison input is a dead letter, and anything else (a failed delivery, a bug)
ends the process at once without committing, so a restart scores those events again. With
``exactly_once`` the records and the offsets are committed in one Kafka transaction per input
partition; outputs go to the same partition number as their input so that they join the
transaction of that partition.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import faust
from confluent_kafka.admin import AdminClient

from stream import __version__, model
from stream.errors import ConfigError
from stream.metrics import WorkerMetrics
from stream.pipeline import BatchResult, Pipeline, Topics
from stream.settings import Settings
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
    """Create missing topics; all four share the input's partition count. Return that count."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers, "log_level": 3})
    names = [settings.input_topic, settings.prediction_topic, settings.provenance_topic, settings.dlq_topic]
    existing = admin.list_topics(timeout=30).topics
    counts = {n: len(existing[n].partitions) for n in names if n in existing}
    partitions = counts.get(settings.input_topic, settings.partitions)
    wrong = {n: c for n, c in counts.items() if c != partitions}
    if wrong:
        raise ConfigError(
            f"topics {wrong} do not have the {partitions} partitions of input topic "
            f"{settings.input_topic!r}: outputs share the input's partitions so that keys keep their "
            "order and exactly-once transactions line up; recreate them or choose other topic names"
        )
    ensure_topics(
        settings.kafka_bootstrap_servers,
        {n: partitions for n in names},
        replication_factor=settings.replication_factor,
    )
    return partitions


def create_app(settings: Settings) -> faust.App:
    """Load and verify the model, prepare the topics, and wire the agent."""
    loaded = model.load(settings.model_dir, settings.model_name, settings.model_version)
    partitions = prepare_topics(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    pipeline = Pipeline(
        loaded,
        Topics(settings.prediction_topic, settings.provenance_topic, settings.dlq_topic),
        pii_key=settings.pii_key.get_secret_value().encode(),
        scorer={
            "version": __version__,
            "revision": code_revision(),
            "worker_id": f"{socket.gethostname()}:{os.getpid()}",
        },
        max_message_bytes=settings.max_message_bytes,
    )
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{host}" for host in settings.kafka_bootstrap_servers.split(",")],
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
        stream_buffer_maxsize=max(4 * settings.batch_size, 1024),
        broker_commit_interval=1.0,
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
    metrics.set_model(loaded.card)
    metrics.serve(settings.metrics_port)
    within = settings.batch_max_wait_ms / 1000.0

    @app.agent(source, concurrency=1)
    async def score(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(settings.batch_size, within=within):
            try:
                started = time.perf_counter()
                result = pipeline.process([e.message for e in batch])
                metrics.observe(len(batch), result, time.perf_counter() - started)
                await _send_all(app, result)
            except Exception as exc:  # never let it escape: faust would ack and commit the batch
                first, last = batch[0].message, batch[-1].message
                _fatal(
                    f"batch {first.topic}[{first.partition}]@{first.offset}..[{last.partition}]@"
                    f"{last.offset} not emitted: {exc!r}; exiting without committing"
                )
            stats.add(result)

    @app.timer(interval=5.0)
    async def report() -> None:
        line = stats.line()
        if line:
            log.info(line)

    return app


async def _send_all(app: faust.App, result: BatchResult) -> None:
    """Hand every record to the producer, then wait until the broker acknowledged all of them."""
    producer = await app.maybe_start_producer()
    send = producer.send
    pending = [
        await send(r.topic, r.key, r.value, r.partition, None, r.headers, transactional_id=None)
        for r in result.records
    ]
    if pending:
        await asyncio.gather(*pending)


def _fatal(message: str) -> None:
    log.critical(message)
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

    def line(self) -> str | None:
        now = time.monotonic()
        elapsed, self.started = now - self.started, now
        if not self.scored and not self.dead:
            return None
        lat = sorted(self.latencies)
        p50 = statistics.median(lat) * 1e3 if lat else float("nan")
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3 if lat else float("nan")
        line = (
            f"scored {self.scored / elapsed:.0f}/s, dead-lettered {self.dead / elapsed:.0f}/s "
            f"(total {self.total_scored} scored, {self.total_dead} dead letters); "
            f"event time to emit p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        )
        self.scored = self.dead = 0
        self.latencies = []
        return line


def run_worker(settings: Settings) -> None:
    """Run the worker until SIGINT/SIGTERM (Faust's worker handles the signals and shutdown)."""
    app = create_app(settings)
    own = logging.getLogger("streamscore")
    own.setLevel(settings.log_level.upper())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"))
    own.addHandler(handler)
    own.propagate = False
    worker = faust.Worker(app, loglevel="warn", quiet=True, redirect_stdouts=False)
    worker.spinner = None  # no terminal animation in logs
    worker.execute_from_commandline()
