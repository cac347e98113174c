"""The outcome worker's topics and Kafka clients, built on the scoring loop's client settings.

The consumer is the scoring loop's (:func:`stream.kafka.clients.consumer_config`: manual commits, committed
reads only) in group ``<app_id>-outcomes`` with range assignment, so that the same partition
number of provenance, outcomes and the repartition topic goes to the same worker. The producer is
the scoring loop's (idempotent, ``acks=all``, murmur2) without transactions (the outcome worker is
at least once) and with a delivery report for every record: the changelog offsets reached are
the store's checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Message

from stream.kafka.clients import consumer_config, producer_config
from stream.settings import Settings

__all__ = ["OutcomeTopics", "outcome_consumer_config", "outcome_producer_config"]


@dataclass(frozen=True)
class OutcomeTopics:
    """The topics the outcome worker reads and writes."""

    provenance: str
    outcomes: str
    repartition: str  # outcomes moved to their event_id's partition, keyed by event_id
    changelog: str  # the store's entries, compacted
    dlq: str
    drift: str

    @classmethod
    def of(cls, settings: Settings) -> OutcomeTopics:
        group = f"{settings.app_id}-outcomes"
        return cls(
            settings.provenance_topic,
            settings.outcome_topic,
            f"{group}-repartition",
            f"{group}-pending-changelog",
            settings.dlq_topic,
            settings.drift_topic,
        )


def outcome_consumer_config(settings: Settings, purpose: str = "") -> dict[str, Any]:
    """The group consumer (``purpose`` empty), or another one of the worker's (e.g. ``restore``)."""
    group = f"{settings.app_id}-outcomes"
    suffix = f"-{purpose}" if purpose else ""
    return {
        **consumer_config(settings),
        "group.id": group + suffix,
        "client.id": f"{group}-{settings.instance_id}{suffix}",
        "partition.assignment.strategy": "range",
        "queued.max.messages.kbytes": 4 * 1024,  # prefetch per partition (64 MiB by default; 3 topics)
        # a partition whose prefetch is full is fetched again after this long (1 s by default, which
        # starves a reader slower than the broker: librdkafka#2879): 1.8-2.0x the messages/s for a
        # reader spending 40 µs a message (bench/fetch_backoff.py, 2026-11-30)
        "fetch.queue.backoff.ms": 10,
    }


def outcome_producer_config(
    settings: Settings, delivered: Callable[[KafkaError | None, Message], None]
) -> dict[str, Any]:
    """Idempotent, every replica's ack, murmur2, no transactions; ``delivered`` hears of every record."""
    config = producer_config(settings, delivered)
    config.pop("transactional.id", None)
    config.pop("transaction.timeout.ms", None)
    return {
        **config,
        "client.id": f"{settings.app_id}-outcomes-{settings.instance_id}",
        "delivery.report.only.error": False,
    }
