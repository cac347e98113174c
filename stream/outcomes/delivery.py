"""The outcome worker's producer: records sent as its local queue allows, and their delivery reports.

A record that finds the local queue full waits for room (delivery reports served meanwhile). The
changelog records kept over a commit interval are sent once per key at the commit. Delivery
reports collect failures, which end the process at the next flush without committing, and, per
changelog partition, the next offset after our delivered records: the store's checkpoints, saved
at the commit once everything is flushed.
"""

from __future__ import annotations

from collections.abc import Mapping

from confluent_kafka import KafkaError, Message, Producer

from stream.kafka.clients import fatal
from stream.outcomes.kafka import outcome_producer_config
from stream.outcomes.store import Entry, PendingStore
from stream.settings import Settings
from stream.worker.health import Health

Outbox = Mapping[int, Mapping[bytes, Entry | None]]  # partition -> key -> entry now (None: gone)


class Delivery:
    """Produces the outcome worker's records and follows their delivery."""

    def __init__(self, settings: Settings, store: PendingStore, health: Health, changelog: str) -> None:
        self.store, self.health, self.changelog = store, health, changelog
        self.producer = Producer(outcome_producer_config(settings, self._delivered))
        self._changelog_next: dict[int, int] = {}  # partition -> next offset after our delivered records
        self._failed: list[str] = []

    def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        partition: int,
        headers: list[tuple[str, bytes]] | None = None,
        timestamp: int = 0,
    ) -> None:
        """Produce one record, waiting for room in the local queue."""
        while True:
            try:
                self.producer.produce(topic, value, key, partition, headers=headers, timestamp=timestamp)
                return
            except BufferError:  # the local queue is full: serve delivery reports, then retry
                self.producer.poll(0.05)
                self.health.tick()

    def send_changelog(self, outbox: Outbox) -> None:
        """Produce a signed changelog record (or a tombstone) for each key of ``outbox``."""
        value, changelog, produce = self.store.changelog_value, self.changelog, self.producer.produce
        for partition, changed in outbox.items():
            for key, entry in changed.items():
                record = value(partition, key, entry)
                try:
                    produce(changelog, record, key, partition)
                except BufferError:  # the local queue is full: send waits for room
                    self.send(changelog, record, key, partition)

    def flush(self) -> None:
        """Wait until every record is delivered; end the process if one was not."""
        while self.producer.flush(1.0):
            self.health.tick()
            if self._failed:
                break
        if self._failed:
            fatal(f"records not delivered ({self._failed[0]}); exiting without committing")

    def save_checkpoints(self) -> None:
        """Save in the store the changelog offsets our delivered records reached."""
        for partition, offset in self._changelog_next.items():
            self.store.set_checkpoint(partition, offset)
        self._changelog_next.clear()

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._failed.append(f"{message.topic()}[{message.partition()}]: {error}")
        elif message.topic() == self.changelog:
            partition = message.partition()
            self._changelog_next[partition] = max(
                self._changelog_next.get(partition, 0), message.offset() + 1
            )
