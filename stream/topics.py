"""Create the topics the project needs, with explicit partition counts (auto-creation is off)."""

from __future__ import annotations

from collections.abc import Mapping

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import NewTopic

from stream.kafka_config import Connection, connect


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
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return created
