"""The hot loop: consume a batch, score it, produce its records, commit. One thread, top to bottom.

A confluent-kafka consumer takes whatever has arrived on the input topic, up to ``batch_size``
messages, and waits (up to ``batch_max_wait_ms``) only when nothing has: a lone event is scored at
once and batches grow with the load (:func:`~stream.kafka.clients.take`).
:class:`~stream.scoring.pipeline.Pipeline` turns each batch into records (predictions, provenance,
dead letters) that one producer sends at once (no linger by default). Offsets are committed every
``commit_interval_ms``, on a rebalance and at shutdown, and only ever for batches whose records are
safe:

- **at least once**: offsets are committed only when the broker has acknowledged every record
  produced before them (``acks=all``, idempotent). The periodic commit waits for a turn of the loop
  when the producer's queue is empty, so no event waits for a flush; a commit a whole interval late
  flushes first. Before a rebalance and at shutdown the producer is flushed and the commit is
  synchronous. A failed delivery ends the process before anything more is committed: a restart
  scores those events again.
- **exactly once** (KIP-447): one transactional producer per process. A transaction holds the
  records of every batch since the last commit and, through ``send_offsets_to_transaction`` with
  the consumer's group metadata, their input offsets; it commits or aborts as one. The group
  generation fences a zombie: a worker that lost its partitions cannot commit offsets for them.
  An abortable error aborts the transaction and rewinds the consumer to the committed offsets.
  After an ending call that timed out or failed otherwise, no other transaction begins on that
  producer: a new one with the same transactional id bumps the epoch first, fencing whatever of the
  old transaction is still in flight (:mod:`stream.worker.fencing`, librdkafka#5423).

Rebalance callbacks run inside ``consume`` on this same thread, so they see no half-done batch:
partitions are revoked only after their records and offsets are committed (or, when they were
lost, the open transaction is aborted). The loop also runs the side work that must not overlap a
batch: drift updates, reports and state saves, adopting a reloaded model's card, the stats line,
and the records of the ``model-changes`` topic (:mod:`stream.lifecycle.changes`), which it knows
exactly because a new model begins at a batch boundary: they go out with the batch they explain.
"""

# Over 300 lines on purpose: the delivery rules (produce, flush or transaction, commit, abort and
# rewind, and the rebalance callbacks that run inside consume) are read top to bottom in one file,
# as the docstring above describes them; cut apart, each half would hide half of every guarantee.

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from stream.kafka.clients import consume_errors, consumer_config, fatal, producer_config, take
from stream.kafka.config import client_config
from stream.kafka.stall import StallExplainer, StallReporter
from stream.lifecycle.changes import ChangeLog
from stream.messages import Record
from stream.scoring.pipeline import BatchResult, Pipeline
from stream.settings import Settings
from stream.worker.drift import DriftReporter
from stream.worker.fencing import ENDING_CALLS, must_exit, needs_new_producer
from stream.worker.health import Health
from stream.worker.metrics import WorkerMetrics
from stream.worker.stats import Stats
from stream.worker.watchdog import Watchdog

log = logging.getLogger("streamscore.worker")
STATS_EVERY_S = 5.0
DRIFT_SAVE_EVERY_S = 10.0
RETRY_FOR_S = 300.0  # a broker away longer than this ends the process (a restart reads again)
STUCK_AFTER_S = 10.0  # a transactional call still running this long past its own timeout is stuck
T = TypeVar("T")


class Bound(Protocol):
    """Where a bounded run ends (a replay, :mod:`stream.audit.replay`): which messages of a batch to
    score, and, checked after each commit, whether everything in range is scored and committed."""

    def clip(self, batch: list[Message]) -> list[Message]: ...

    def done(self, consumer: Consumer) -> bool: ...


@dataclass
class ScoringLoop:
    """Consumes, scores, produces and commits on one thread until :meth:`stop` (or its ``bound``)."""

    settings: Settings
    pipeline: Pipeline
    metrics: WorkerMetrics
    health: Health
    drift: DriftReporter | None = None
    changes: ChangeLog | None = None  # the model-changes topic (off when None)
    stats: Stats = field(default_factory=Stats)
    bound: Bound | None = None

    def __post_init__(self) -> None:
        self.exactly_once = self.settings.processing_guarantee == "exactly_once"
        self.consumer = Consumer({**consumer_config(self.settings), "on_commit": _on_committed})
        self.producer = self._new_producer()
        self._stale: str | None = None  # why the producer must be replaced before the next transaction
        self._stopping = threading.Event()
        self._pending: dict[int, int] = {}  # input partition -> next offset, not yet committed
        self._unconfirmed: dict[str, int] = {}  # topic -> records produced since the last commit
        self._in_transaction = False
        self._failed: list[str] = []
        outputs = [self.settings.prediction_topic, self.settings.provenance_topic, self.settings.dlq_topic]
        self._stall = StallReporter(StallExplainer(client_config(self.settings), outputs).explain)
        self._watchdog = Watchdog(  # a call blocked in C says why writes wait, then ends the process
            lambda reason: _stuck(reason, self._stall.said), on_wait=self._waiting_since
        )

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> None:
        """The thread's body. Any error it does not handle ends the process without committing."""
        try:
            self._run()
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() == KafkaError._FENCED:
                fatal(
                    f"transactional id {self.settings.app_id}-{self.settings.instance_id} was taken over by "
                    "another worker: give each worker its own STREAMSCORE_INSTANCE_ID (a restarted worker "
                    "fences its earlier self this way); exiting without committing"
                )
            fatal(f"scoring loop failed: {error.str()}; exiting without committing")
        except Exception as exc:  # a bug: nothing more is committed
            fatal(f"scoring loop failed: {exc!r}; exiting without committing")

    def _run(self) -> None:
        settings = self.settings
        gc.collect()
        gc.freeze()  # what start-up made lives as long as the process: the collector stops walking it
        topic = settings.input_topic
        batch_size, wait = settings.batch_size, settings.batch_max_wait_ms / 1000.0
        commit_every = settings.commit_interval_ms / 1000.0
        if self.exactly_once:
            self._transactional("init_transactions", timeout=settings.transaction_timeout_s)
        self.consumer.subscribe(
            [topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        consumer, process = self.consumer, self.pipeline.process
        next_commit = next_stats = time.monotonic()
        next_save = next_commit + DRIFT_SAVE_EVERY_S
        while not self._stopping.is_set():
            messages = take(consumer, batch_size, wait)
            self.health.tick()
            batch = [m for m in messages if m.error() is None] if messages else messages
            if len(batch) != len(messages):
                consume_errors(messages, self.settings.input_topic, self.settings.app_id)
            if self.bound is not None:
                batch = self.bound.clip(batch)
            if batch:
                started = time.perf_counter()
                result = process(batch)
                changes = self._changes(batch, result)
                self.metrics.observe(len(batch), result, time.perf_counter() - started)
                if not self._produce(result, changes):
                    continue  # aborted: the batch is read again
                for m in batch:
                    self._pending[m.partition()] = m.offset() + 1
                if self.drift is not None:
                    if result.switched is not None:
                        self.drift.use_model(self.pipeline.serving.card)
                    self.drift.update(result)
                self.stats.add(result)
            now = time.monotonic()
            if now >= next_commit and self._commit_due(overdue=now >= next_commit + commit_every):
                next_commit = now + commit_every
                if self.bound is not None and self.bound.done(self.consumer):
                    self.stop()
            if now >= next_stats:
                self._log_stats()
                next_stats = now + STATS_EVERY_S
            if self.drift is not None:
                self.drift.tick(now)
            if self.drift is not None and now >= next_save:
                self.drift.save(self.drift.monitor.owned(), wait=False)
                next_save = now + DRIFT_SAVE_EVERY_S
        self._shutdown()

    def _produce(self, result: BatchResult, first: Sequence[Record] = ()) -> bool:
        """Hand every record of a batch to the producer (inside the open transaction, exactly once).

        False if the transaction failed meanwhile (exactly once): it is aborted and every owned
        partition is read again from its committed offset, this batch included. ``first`` (the
        batch's model-change records) goes out before the batch's own records.
        """
        self._begin()
        produce = self.producer.produce
        records = [*first, *result.records] if first else result.records
        try:
            for r in records:
                partition = -1 if r.partition is None else r.partition
                while True:
                    try:
                        produce(r.topic, r.value, r.key, partition, headers=r.headers)
                        break
                    except BufferError:  # the local queue is full: serve delivery reports, then retry
                        self.producer.poll(0.05)
                        self.health.tick()
        except KafkaException as exc:  # a transaction in an error state (fenced by a new generation)
            if not self.exactly_once or exc.args[0].fatal():
                raise
            log.warning("transaction failed while producing (%s): aborting it", exc.args[0].str())
            self._abort()
            return False
        self.producer.poll(0)
        if first:
            self._count(first[0].topic, len(first))
        topics = self.settings
        dead = sum(result.dead_letters.values())
        self._count(topics.prediction_topic, result.scored)
        self._count(topics.provenance_topic, result.scored + result.shadowed)
        self._count(topics.challenger_topic, result.shadowed)
        self._count(topics.dlq_topic, dead)
        return True

    def _changes(self, batch: list[Message], result: BatchResult) -> list[Record]:
        """The model-change records this batch owes (see :mod:`stream.lifecycle.changes`)."""
        if self.changes is None:
            return []
        if result.switched is not None:  # a new model from this batch on
            self.changes.switched(result.switched.card)
        return self.changes.due(batch, self.pipeline.serving.card)

    def send(self, topic: str, value: bytes) -> None:
        """Produce one side record (a drift report) with the batch's records, in its transaction."""
        if self._produce(BatchResult(records=[Record(topic, None, value, None, -1)])):
            self._count(topic, 1)

    def _begin(self) -> None:
        if self.exactly_once and not self._in_transaction:
            if self._stale is not None:
                self._replace_producer()
            self.producer.begin_transaction()
            self._in_transaction = True

    def _new_producer(self) -> Producer:
        return Producer(producer_config(self.settings, self._on_failed))

    def _replace_producer(self) -> None:
        """A new transactional producer in place of the one whose ending call failed: its
        ``init_transactions`` bumps the epoch (fencing the old one's late requests), then the old one
        is closed."""
        reason, self._stale = self._stale, None
        old, self.producer = self.producer, self._new_producer()
        timeout = self.settings.transaction_timeout_s
        self._retrying(lambda: self._transactional("init_transactions", timeout=timeout))
        try:  # a producer in a fatal state refuses these too: it goes all the same
            old.purge()
            old.close()
        except KafkaException as exc:
            log.info("the replaced producer closed with: %s", exc.args[0].str())
        self.metrics.producers_replaced.inc()
        log.warning(
            "transactional producer replaced after %s: its new epoch fences the last transaction's "
            "requests still in flight (librdkafka#5423)",
            reason,
            extra={"producer_replaced": reason},
        )

    def _count(self, topic: str, n: int) -> None:
        if n:
            self._unconfirmed[topic] = self._unconfirmed.get(topic, 0) + n

    # -- commits -------------------------------------------------------------------------------

    def commit(self) -> None:
        """Make the records produced so far and their input offsets durable, together; return when
        they are (before partitions are revoked, and at shutdown)."""
        if self.exactly_once:
            self._commit_transaction()
        else:
            self._flush()
            self._commit_offsets(asynchronous=False)

    def _commit_due(self, overdue: bool) -> bool:
        """The periodic commit, without stalling the loop while events wait. True once committed.

        At least once, the input offsets are committed only when the producer holds no record the
        broker has not acknowledged (its queue is empty once the delivery reports are served, and a
        failed one has ended the process): nothing waits for a broker round trip, and the commit
        itself goes out asynchronously. While records are in flight the commit waits for a later
        turn of the loop; once it is ``overdue`` (a whole commit interval late, as under a backlog,
        when the queue is never empty), it flushes the producer first, as :meth:`commit` does.
        Exactly once, the transaction commits as :meth:`commit` does.
        """
        if self.exactly_once:
            self._commit_transaction()
            return True
        self.producer.poll(0)  # serve delivery reports: a failure ends the process before a commit
        if len(self.producer) and not overdue:
            return False
        self._flush()  # returns at once when every record is acknowledged
        self._commit_offsets(asynchronous=True)
        return True

    def _commit_offsets(self, asynchronous: bool) -> None:
        if not self._pending:
            return
        offsets = [TopicPartition(self.settings.input_topic, p, o) for p, o in self._pending.items()]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=asynchronous)
        except KafkaException as exc:  # e.g. a rebalance under way: the new owner reads from the last commit
            log.warning("offsets %s not committed: %s", _describe(offsets), exc.args[0])
        self._pending.clear()
        self._confirmed()

    def _commit_transaction(self) -> None:
        if not self._in_transaction:
            return
        offsets = [TopicPartition(self.settings.input_topic, p, o) for p, o in self._pending.items()]
        self._pending.clear()
        try:
            if offsets:
                metadata = self.consumer.consumer_group_metadata()
                self._transactional("send_offsets_to_transaction", offsets, metadata)
        except KafkaException as exc:  # a new generation, or a coordinator away: not these offsets
            if must_exit(exc.args[0]) or (exc.args[0].fatal() and self._stale is None):
                raise
            log.warning(
                "offsets %s not added to the transaction (%s): aborting it, reading again from the "
                "committed offsets",
                _describe(offsets),
                exc.args[0].str(),
            )
            self._abort()
            return
        try:
            self._retrying(lambda: self._transactional("commit_transaction"))
        except KafkaException as exc:  # abortable; or anything else that a new producer cures
            if must_exit(exc.args[0]) or not (exc.args[0].txn_requires_abort() or self._stale):
                raise
            log.warning("transaction with offsets %s aborted: %s", _describe(offsets), exc.args[0].str())
            self._abort()
            return
        self._in_transaction = False
        self._confirmed()

    def _abort(self, rewind: bool = True) -> None:
        """Abort the open transaction; with ``rewind``, read every owned partition again from its
        committed offset (partitions being lost are read again by their next owner instead)."""
        self._in_transaction = False
        if self.changes is not None:
            self.changes.aborted()
        self._pending.clear()
        self._unconfirmed.clear()
        timeout = self.settings.session_timeout_s
        try:
            self._retrying(lambda: self._transactional("abort_transaction"))
        except KafkaException as exc:  # refused or timed out after a failed call: the new epoch ends it
            if self._stale is None or must_exit(exc.args[0]):
                raise
            log.warning("abort not confirmed (%s): a new producer ends the transaction", exc.args[0].str())
        if self._stale is not None:  # settle the transaction's fate before reading the offsets it set
            self._replace_producer()
        assignment = self.consumer.assignment() if rewind else []
        if not assignment:
            return
        committed = self._retrying(lambda: self.consumer.committed(assignment, timeout=timeout))
        for tp in committed:
            if tp.offset < 0:  # nothing committed yet: from the start, as auto.offset.reset says
                tp.offset = OFFSET_BEGINNING
            self.consumer.seek(tp)
        log.info("read again from the committed offsets %s", _describe(committed))

    def _transactional(self, call: str, *args: object, timeout: float | None = None) -> Any:
        """``producer.<call>(*args, timeout)``; if it is still running :data:`STUCK_AFTER_S` past
        ``timeout`` (by default the session timeout), the process ends (see :mod:`stream.worker.watchdog`)."""
        timeout = self.settings.session_timeout_s if timeout is None else timeout
        with self._watchdog.bound(call, timeout + STUCK_AFTER_S):
            try:
                result = getattr(self.producer, call)(*args, timeout)
            except KafkaException as exc:
                if call in ENDING_CALLS and needs_new_producer(exc.args[0]):
                    self._stale = f"{call} failed ({exc.args[0].str()})"
                raise
        self._stall.flowing(time.monotonic())
        return result

    def _retrying(self, call: Callable[[], T]) -> T:
        """``call`` again while it fails with a retriable error (the broker is away), for a bounded time."""
        began = time.monotonic()
        while True:
            try:
                result = call()
            except KafkaException as exc:
                if not exc.args[0].retriable() or time.monotonic() > began + RETRY_FOR_S:
                    raise
                log.warning("retrying: %s", exc.args[0].str())
                self._waiting_since(began)
                self.health.tick()
                continue
            self._stall.flowing(time.monotonic())
            return result

    def _waiting_since(self, began: float) -> None:
        """Writes or commits have waited on the cluster since ``began`` (monotonic): past a few
        seconds, one line says why (:mod:`stream.kafka.stall`)."""
        self._stall.waiting(began)
        self._stall.waiting(time.monotonic())

    def _flush(self) -> None:
        """Wait until the broker has every produced record; a failed delivery ends the process."""
        while self.producer.flush(1.0):
            self.health.tick()  # the broker may be away for a while: the producer keeps retrying
            self._stall.waiting(time.monotonic())
            if self._failed:
                break
        self._stall.flowing(time.monotonic())
        if self._failed:
            fatal(f"records not delivered ({self._failed[0]}); exiting without committing")

    def _on_failed(self, error: KafkaError, message: Message) -> None:
        """Delivery report of a record the broker did not take (only failures are reported).

        Exactly once there is nothing to do: such a record makes the transaction's commit fail, and
        the transaction is aborted (which purges the records still queued, reported here too).
        """
        if not self.exactly_once:
            self._failed.append(f"{message.topic()}[{message.partition()}]: {error}")

    def _confirmed(self) -> None:
        """Everything produced so far is committed."""
        self.metrics.count_delivered(self._unconfirmed)
        self._unconfirmed = {}
        if self.changes is not None:
            self.changes.settled()

    # -- rebalances (called inside consume, on this thread) --------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        owned = sorted(tp.partition for tp in partitions)
        if self.drift is not None:
            self.drift.restore(owned)
        if self.changes is not None:
            self.changes.assigned(owned)
        self.health.partitions = owned
        log.info("assigned partitions %s of %s", owned, self.settings.input_topic)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.health.partitions = []
        if self.drift is not None:
            self.drift.catch_up()  # its reports go out with the last commit
        self.commit()  # the records and offsets of everything scored so far, before the partitions go
        if self.changes is not None:
            self.changes.revoked(tp.partition for tp in partitions)
        if self.drift is not None:
            self.drift.save([tp.partition for tp in partitions])
        log.info("revoked partitions %s", sorted(tp.partition for tp in partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions taken away without a revoke (the session timed out): commit nothing for them."""
        self.health.partitions = []
        if self.changes is not None:  # their next owner records where it begins
            self.changes.revoked(tp.partition for tp in partitions)
        if self.exactly_once:
            if self._in_transaction:
                self._abort(rewind=False)
        else:
            self._flush()
            self._pending.clear()
            self._confirmed()
        owned = sorted(tp.partition for tp in partitions)
        log.warning("lost partitions %s: their new owner scores them from the last commit", owned)

    # -- edges -------------------------------------------------------------------------------

    def _log_stats(self) -> None:
        report = self.stats.line()
        if report:
            log.info(report[0], extra=report[1])

    def stop(self) -> None:
        """Finish the batch in hand, commit, and leave the group."""
        self._stopping.set()

    def _shutdown(self) -> None:
        self.consumer.close()  # revokes (so commits and saves drift state), then leaves the group
        self.commit()
        self.producer.flush(10.0)
        if self.drift is not None:
            self.drift.close()
        self._log_stats()


def _on_committed(error: KafkaError | None, offsets: list[TopicPartition]) -> None:
    """The result of a commit: a failed one is logged (the next commit, or the next owner reading
    from the last commit, makes up for it: at least once, never a loss)."""
    if error is not None and error.code() != KafkaError._NO_OFFSET:
        log.warning("offsets %s not committed: %s", _describe(offsets), error.str())


def _describe(offsets: Sequence[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]@{tp.offset}" for tp in offsets) or "none"


def _stuck(reason: str, cause: str | None = None) -> None:
    """End the process: a transactional call outlived its bound (``cause``: why writes waited, if known)."""
    meanwhile = f"; meanwhile {cause}" if cause else ""
    fatal(
        f"exactly once: {reason} (librdkafka can wait forever for a group coordinator it lost in a "
        f"broker restart: confluentinc/librdkafka#5511){meanwhile}; exiting without committing: the "
        "next start of this worker aborts the open transaction and reads again from the committed offsets"
    )
