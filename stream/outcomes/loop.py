"""The outcome worker's loop: consume a batch, join it, produce, commit. One thread, top to bottom.

A confluent-kafka consumer (:mod:`stream.outcomes.kafka`) reads provenance, outcomes and the
repartition topic in batches; each record is checked against its contract, and the batch is
joined with one lookup pass (:class:`~stream.outcomes.join.Join` over the RocksDB store). The
changes go to the compacted changelog once per key and commit interval. An outcome that finds
nothing waiting and is on another partition than its ``event_id``'s (a producer on librdkafka's
CRC32 default, say) is sent to the repartition topic on its murmur2 partition and joined there.

At least once: offsets are committed every ``commit_interval_ms``, on a revoke and at shutdown,
only after the changelog, moved outcomes, dead letters and reports up to them are acknowledged;
the changelog offset reached is then saved in the store (its checkpoint). After a crash the
batches since the last commit are read again: a half already joined counts as a duplicate only.
Rebalance callbacks run inside ``consume`` on this thread: an assigned partition's store catches
up from its changelog checkpoint (:mod:`stream.outcomes.restore`), then the rolling figures are
rebuilt from the entries joined last.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from pydantic import BaseModel

from stream.drift.performance import PerformanceTracker
from stream.errors import PoisonEvent
from stream.kafka.clients import consume_errors, fatal, take
from stream.kafka.partitioning import partition_of
from stream.outcomes.decode import HalfReader
from stream.outcomes.delivery import Delivery
from stream.outcomes.estimates import Estimates
from stream.outcomes.join import Join
from stream.outcomes.kafka import OutcomeTopics, outcome_consumer_config
from stream.outcomes.pairing import Pairing
from stream.outcomes.report import OutcomeMetrics, performance_report, set_gauges
from stream.outcomes.restore import ChangelogReader
from stream.outcomes.store import Changed, Entry, PendingStore
from stream.outcomes.windows import DriftWindows
from stream.scoring.dead_letters import fit_dead_letter
from stream.settings import Settings
from stream.worker.health import Health

log = logging.getLogger("streamscore.outcomes")
EXPIRE_EVERY_S = 1.0
STATS_EVERY_S = 5.0


@dataclass
class OutcomeLoop:
    """Consumes, joins, produces and commits on one thread until :meth:`stop`."""

    settings: Settings
    store: PendingStore
    metrics: OutcomeMetrics
    health: Health
    topics: OutcomeTopics
    partitions: int
    worker_id: str
    read_provenance: Callable[[bytes], BaseModel] | None = None  # a registry's format; None: JSON
    join: Join = field(init=False)

    def __post_init__(self) -> None:
        settings = self.settings
        self.consumer = Consumer(outcome_consumer_config(settings))
        self.restorer = ChangelogReader(
            outcome_consumer_config(settings, "restore"),
            self.topics.changelog,
            settings.outcome_retention_s,
            self.health.tick,
        )
        self.delivery = Delivery(settings, self.store, self.health, self.topics.changelog)
        self.producer = self.delivery.producer
        self.join = Join(self.store, settings, self.metrics, self._report, self.partitions)
        t, sample, most = self.topics, settings.outcome_sample, settings.max_message_bytes
        self.read = HalfReader(t.provenance, t.repartition, sample, most, self.read_provenance)
        self.pairing = Pairing(
            settings.outcome_window,
            self.metrics.registry,
            self.worker_id,
            lambda report: self.delivery.send(self.topics.drift, report, None, -1),
        )
        self.estimates = Estimates(
            self.metrics.registry,
            self.worker_id,
            lambda report: self.delivery.send(self.topics.drift, report, None, -1),
            settings.outcome_retention_s,
            settings.estimate_check_capacity,
        )
        self.windows = DriftWindows(settings, self.topics.drift)
        self._stopping = threading.Event()
        self._pending: dict[tuple[str, int], int] = {}  # (topic, partition) -> next offset to commit
        self._outbox: dict[int, dict[bytes, Entry | None]] = {}  # partition -> key -> entry now
        self._joins = 0

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> None:
        """The thread's body. Any error it does not handle ends the process without committing."""
        try:
            self._run()
        except KafkaException as exc:
            fatal(f"outcome loop failed: {exc.args[0].str()}; exiting without committing")
        except Exception as exc:  # a bug: nothing more is committed
            fatal(f"outcome loop failed: {exc!r}; exiting without committing")

    def _run(self) -> None:
        t, settings = self.topics, self.settings
        self.consumer.subscribe(
            [t.provenance, t.outcomes, t.repartition],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        self.windows.start()
        batch_size, wait = settings.batch_size, settings.batch_max_wait_ms / 1000.0
        commit_every = settings.commit_interval_ms / 1000.0
        next_commit = next_expiry = next_stats = time.monotonic()
        while not self._stopping.is_set():
            messages = take(self.consumer, batch_size, wait)
            self.health.tick()
            batch = [m for m in messages if m.error() is None]
            if len(batch) != len(messages):
                topics = ", ".join((t.provenance, t.outcomes, t.repartition))
                consume_errors(messages, topics, f"{settings.app_id}-outcomes")
            if batch:
                self.process(batch)
            for report in self.windows.read():  # estimated windows, checked on their outcomes
                self.estimates.window(report)
            self.estimates.tick()
            now = time.monotonic()
            if now >= next_expiry:
                full = self._expire()
                next_expiry = now + (0 if full else EXPIRE_EVERY_S)
            if now >= next_commit:
                self.commit()
                next_commit = now + commit_every
            if now >= next_stats:
                self._log_stats(now - next_stats + STATS_EVERY_S)
                next_stats = now + STATS_EVERY_S
        self._shutdown()

    def process(self, batch: Sequence[Message]) -> None:
        """Decode, check and join one batch; produce its changelog records, moved outcomes and reports."""
        for m in batch:
            self._pending[(m.topic(), m.partition())] = m.offset() + 1
        halves = self.read(batch)
        self.pairing.add(halves)  # live and shadow answers with outcomes (stream.outcomes.pairing)
        self.estimates.add(halves)  # live answers with outcomes, for estimated windows (.estimates)
        for m, reason in halves.refused_provenance:
            self.metrics.invalid_predictions.inc()
            log.warning(
                "provenance %s[%d]@%d breaks the contract (%s): skipped",
                m.topic(),
                m.partition(),
                m.offset(),
                reason,
            )
        for m, reason in halves.refused_outcomes:
            self._dead_letter(m, reason)
        items = halves.items
        items.sort(key=lambda pi: pi[1].at_ms)  # across partitions, in the order of their records' times
        records, joined, moved = self.join.batch(items)
        for partition, changes in records.items():
            self._changelog(partition, changes)
        for partition, outcome in moved:  # not murmur2-partitioned: joined where it belongs
            event_id = outcome.event_id.encode()
            home = partition_of(event_id, self.partitions)
            value = halves.outcome_values[(partition, outcome.event_id)]
            self.delivery.send(self.topics.repartition, value, event_id, home, timestamp=outcome.at_ms)
        self.metrics.repartitioned.inc(len(moved))
        self._joins += len(joined)

    def _report(self, model: str, tracker: PerformanceTracker) -> None:
        counts = {**self.join.counts, "waiting": self.join.waiting()}
        rate = self.settings.outcome_sample
        report = performance_report(model, tracker, self.metrics, self.worker_id, counts, rate)
        self.delivery.send(self.topics.drift, report, None, -1)

    def _dead_letter(self, m: Message, reason: PoisonEvent) -> None:
        self.join.count("invalid")
        key, value, headers = fit_dead_letter(m, reason, None, self.settings.max_record_bytes)
        self.delivery.send(self.topics.dlq, value, key, -1, headers)

    def _expire(self) -> bool:
        """Expire a batch of each owned partition; True if one was full (more may be due)."""
        now_ms, full = int(time.time() * 1000), False
        for partition in sorted(self.join.owned):
            records = self.join.expire(partition, now_ms)
            self._changelog(partition, records)
            full |= len(records) >= 10_000
        self.metrics.pending.set(self.join.waiting())
        return full

    def _changelog(self, partition: int, changed: list[Changed]) -> None:
        """Keep the latest state of each key for the changelog, sent at the commit: an entry changed
        twice within a commit interval (stored, then joined) is sent once."""
        self._outbox.setdefault(partition, {}).update(changed)

    def _send_changelog(self) -> None:
        self.delivery.send_changelog(self._outbox)
        self._outbox.clear()

    # -- commits -------------------------------------------------------------------------------

    def commit(self) -> None:
        """Send the changelog, flush, save the checkpoints reached, then commit the input offsets."""
        self._send_changelog()
        self.delivery.flush()
        self.delivery.save_checkpoints()
        if not self._pending:
            return
        offsets = [TopicPartition(topic, p, o) for (topic, p), o in self._pending.items()]
        self._pending.clear()
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:  # a rebalance under way: the new owner reads again from the last commit
            log.warning("offsets not committed: %s", exc.args[0])

    # -- rebalances (called inside consume, on this thread) --------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        mine = sorted({tp.partition for tp in partitions if tp.topic == self.topics.outcomes})
        started = time.monotonic()
        replayed = sum(self._restore(p) for p in mine)
        held = self.join.rebuild(set(mine))
        for model, tracker in self.join.trackers.items():
            set_gauges(self.metrics, model, tracker.figures())
        took = time.monotonic() - started
        self.metrics.restore_seconds.set(took)
        self.health.partitions = mine
        log.info("join table holds %d entries for partitions %s", held, mine)
        log.info(
            "partitions %s restored in %.2f s (%d changelog records applied)",
            mine, took, replayed, extra={"restore_s": took, "replayed": replayed},
        )  # fmt: skip

    def _restore(self, partition: int) -> int:
        """Bring the store of ``partition`` up to date from its changelog; the records applied."""
        applied, refused = self.restorer.catch_up(self.store, partition)
        for key in refused:  # refused records are dropped from the changelog too
            self.delivery.send(self.topics.changelog, None, key, partition)
        return applied

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.commit()  # the changes and offsets of everything joined so far, before the partitions go
        self.join.owned -= {tp.partition for tp in partitions}
        self.health.partitions = sorted(self.join.owned)
        log.info("revoked partitions %s", sorted({tp.partition for tp in partitions}))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions taken away without a revoke: flush, commit nothing for them.

        Their changes not yet in the changelog are not sent: their new owner reads their inputs again
        from the last commit."""
        for tp in partitions:
            self._outbox.pop(tp.partition, None)
        self._send_changelog()
        self.delivery.flush()
        self._pending.clear()
        self.join.owned -= {tp.partition for tp in partitions}
        self.health.partitions = sorted(self.join.owned)
        log.warning("lost partitions %s: their new owner joins them from the last commit", partitions)

    # -- edges -------------------------------------------------------------------------------

    def _log_stats(self, seconds: float) -> None:
        if self._joins:
            log.info(
                "%d joins in %.0f s (%.0f/s), %d waiting",
                self._joins, seconds, self._joins / seconds, self.join.waiting(),
            )  # fmt: skip
        self._joins = 0

    def stop(self) -> None:
        """Finish the batch in hand, commit, and leave the group."""
        self._stopping.set()

    def _shutdown(self) -> None:
        self.consumer.close()  # revokes (so commits), then leaves the group
        self.commit()
        self.producer.flush(10.0)
        self.restorer.close()
        self.windows.close()
        self.store.close()
