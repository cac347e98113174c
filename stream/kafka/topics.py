"""Create the topics the project needs, with explicit partition counts (auto-creation is off)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import ConfigResource, NewTopic, ResourceType

from stream.errors import ConfigError
from stream.kafka.config import Connection, client_config, connect, principal
from stream.settings import Settings

log = logging.getLogger("streamscore.worker")
RECORD_FRAMING = 100
"""Bytes a topic's limit must allow beyond a record's own: the record batch's header."""


def ensure_topics(
    kafka: Connection,
    partitions: Mapping[str, int],
    replication_factor: int = 1,
    timeout: float = 30.0,
    config: Mapping[str, str] | None = None,
) -> list[str]:
    """Create each missing topic with its partition count; return the names that were created."""
    admin, metadata = connect(kafka, timeout)
    existing = set(metadata.topics)
    wanted = [
        NewTopic(name, num_partitions=n, replication_factor=replication_factor, config=dict(config or {}))
        for name, n in partitions.items()
        if name not in existing
    ]
    if not wanted:
        return []
    created = []
    for name, future in admin.create_topics(wanted, request_timeout=timeout).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            code = exc.args[0].code()
            if code in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED):
                raise ConfigError(
                    f"{principal(kafka)} may not CREATE topic {name!r} ({exc.args[0].name()}): create it "
                    "as an administrator, or grant CREATE on it (docs/operations/security.md, Kafka ACLs: "
                    "the permissions each worker needs)"
                ) from None
            if code != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return created


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
    check_record_limit(kafka, names[1:4], settings.max_record_bytes)
    return partitions


def check_record_limit(kafka: Connection, topics: Sequence[str], max_record_bytes: int) -> None:
    """Refuse to start if an output topic takes smaller records than the worker may produce (every
    dead letter after the first too large would fail to be written). Skipped, with a log line, where
    the topics' configuration may not be read."""
    admin, _ = connect(kafka)
    wanted = [ConfigResource(ResourceType.TOPIC, name) for name in topics]
    for resource, future in admin.describe_configs(wanted, request_timeout=10).items():
        try:
            entry = future.result().get("max.message.bytes")
        except KafkaException as exc:
            log.info("the record limit of topic %r is not known (%s)", resource.name, exc.args[0].str())
            continue
        limit = int(entry.value) if entry is not None and entry.value else None
        if limit is not None and limit < max_record_bytes + RECORD_FRAMING:
            raise ConfigError(
                f"topic {resource.name!r} takes records of at most {limit} bytes (max.message.bytes), less "
                f"than STREAMSCORE_MAX_RECORD_BYTES={max_record_bytes} and {RECORD_FRAMING} for framing: "
                "lower the setting, or raise the topic's max.message.bytes"
            )
