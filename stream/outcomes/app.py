"""The outcome worker's Faust shell: topics, the store, the loop on its own thread, metrics.

The outcome worker (group ``<app_id>-outcomes``, at least once) joins true outcomes with the
predictions they judge and tracks each model version's performance, scaled on its own so that the
scoring path pays nothing for it. As with the scoring worker, Faust runs the process (start-up,
signals, shutdown) and none of its own Kafka clients: the join runs in
:class:`~stream.outcomes.loop.OutcomeLoop` (a confluent-kafka batch loop), its pending entries in a
RocksDB store on disk (:mod:`stream.outcomes.store`) backed by a compacted changelog, the join
itself in :mod:`stream.outcomes.join`, reports and metrics in :mod:`stream.outcomes.report`.

Everything read from Kafka is untrusted until checked: provenance records and outcomes against
their contracts (a provenance record that breaks it is counted and skipped, an outcome is
dead-lettered), changelog records by their signature under the state key before they are parsed.
"""

from __future__ import annotations

import logging
import os
import socket

import faust

from stream.errors import ConfigError
from stream.formats.startup import provenance_reader
from stream.kafka import permissions
from stream.kafka.config import client_config, connect
from stream.kafka.topics import ensure_topics, prepare_topics
from stream.keys import keys
from stream.outcomes.kafka import OutcomeTopics
from stream.outcomes.loop import OutcomeLoop
from stream.outcomes.report import OutcomeMetrics
from stream.outcomes.store import PendingStore
from stream.settings import Settings
from stream.worker.health import Health
from stream.worker.health import serve as serve_http
from stream.worker.http_server import HttpLimits
from stream.worker.shell import LoopService, ShellApp

__all__ = ["create_outcome_app"]

log = logging.getLogger("streamscore.outcomes")
DAY_MS = 86_400_000


def prepare_internal_topics(settings: Settings, topics: OutcomeTopics, partitions: int) -> None:
    """The changelog (compacted; tombstones kept longer than the retention) and the repartition topic."""
    kafka = client_config(settings)
    keep_tombstones = max(DAY_MS, int(settings.outcome_retention_s * 1000) + DAY_MS)
    changelog = {"cleanup.policy": "compact", "delete.retention.ms": str(keep_tombstones)}
    rf = settings.replication_factor
    existing = connect(kafka)[1].topics
    counts = {n: len(existing[n].partitions) for n in (topics.changelog, topics.repartition) if n in existing}
    wrong = {n: c for n, c in counts.items() if c != partitions}
    if wrong:
        raise ConfigError(
            f"topics {wrong} do not have the {partitions} partitions of the outcomes topic: the join "
            "keeps each event's entries on its event_id's partition number in all of them; delete them "
            "(pending entries are lost) or use another STREAMSCORE_APP_ID"
        )
    ensure_topics(kafka, {topics.changelog: partitions}, replication_factor=rf, config=changelog)
    ensure_topics(kafka, {topics.repartition: partitions}, replication_factor=rf)


def create_outcome_app(settings: Settings) -> faust.App:
    """The outcome worker: its topics, store, loop, metrics and health, in a Faust shell."""
    signer = keys(settings).state  # first: no secret, no start
    if not settings.outcome_topic:
        raise ConfigError("STREAMSCORE_OUTCOME_TOPIC is empty: set it to the topic of true outcomes")
    group = f"{settings.app_id}-outcomes"
    topics = OutcomeTopics.of(settings)
    needs = permissions.outcome_worker(settings, topics.changelog, topics.repartition)
    permissions.check(settings, needs, group)
    partitions = prepare_topics(settings)
    prepare_internal_topics(settings, topics, partitions)
    permissions.check(settings, needs, group)  # again, now that every topic exists
    metrics = OutcomeMetrics()

    refused: dict[str, int] = {}

    def rejected(reason: str) -> None:
        metrics.state_rejected.labels("pending", reason).inc()
        refused[reason] = n = refused.get(reason, 0) + 1
        if (
            n & (n - 1) == 0
        ):  # the 1st, 2nd, 4th, 8th...: a changelog of refused records does not flood the log
            log.warning(
                "changelog record refused (%s): treated as absent (%d so far)",
                reason, n, extra={"state_rejected": reason, "refused": n},
            )  # fmt: skip

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = PendingStore(settings.data_dir / f"{group}-store", signer, topics.changelog, rejected)
    health = Health()
    health.model = "outcomes"
    worker_id = f"{socket.gethostname()}:{os.getpid()}"
    read_provenance = provenance_reader(settings)  # None for JSON
    loop = OutcomeLoop(settings, store, metrics, health, topics, partitions, worker_id, read_provenance)
    app = ShellApp(
        group,
        autodiscover=False,
        web_enabled=False,
        store="memory://",
        datadir=str(settings.data_dir / group),
    )
    app.service(LoopService(loop, loop=app.loop, beacon=app.beacon))
    if settings.metrics_port:
        serve_http(settings.metrics_port, metrics.registry, health, HttpLimits.of(settings))
    return app
