"""What a worker's Kafka principal must be allowed to do, checked before it starts.

With ACLs on, a missing permission shows up late and vaguely (a consumer that never gets records, a
send that fails minutes later). So before starting, the workers ask the cluster what their principal
may do on each of their topics and on their consumer group (Kafka's "authorized operations", KIP-430)
and stop with one line naming the first missing operation, the resource and how to grant it.

A topic that does not exist yet is skipped: the workers check before creating their topics (a
principal that may not even DESCRIBE a topic would otherwise be told it may not CREATE it) and
again once every topic exists. Topics are created by :func:`stream.kafka.topics.ensure_topics`, which
needs CREATE unless an administrator made them first. The scoring worker's transactional ids
(``exactly_once``) cannot be asked about this way: a missing WRITE on them fails the first
transaction.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient

from stream.errors import ConfigError
from stream.kafka.config import Connection, client_config, connect, principal
from stream.settings import Settings

READ, WRITE, DESCRIBE = "READ", "WRITE", "DESCRIBE"
_ORDER = (READ, WRITE, DESCRIBE)
_COORDINATOR_MOVING = (
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
)  # READ and WRITE imply DESCRIBE: name the one that grants the most


def scoring_worker(settings: Settings) -> dict[str, set[str]]:
    """Operations the scoring worker needs on each topic."""
    needs = {
        settings.input_topic: {READ, DESCRIBE},
        settings.prediction_topic: {WRITE, DESCRIBE},
        settings.provenance_topic: {WRITE, DESCRIBE},
        settings.dlq_topic: {WRITE, DESCRIBE},
    }
    if settings.outcome_topic:
        needs[settings.outcome_topic] = {DESCRIBE}  # its partition count is checked against the input's
    if settings.model_changes_topic:
        needs[settings.model_changes_topic] = {WRITE, DESCRIBE}
    if settings.challenger_uri:
        needs[settings.challenger_topic] = {WRITE, DESCRIBE}
    if settings.drift_window:
        needs[settings.drift_topic] = {WRITE, DESCRIBE}
        needs[f"{settings.app_id}-drift-state"] = {READ, WRITE, DESCRIBE}
    return needs


def outcome_worker(settings: Settings, changelog: str, repartition: str) -> dict[str, set[str]]:
    """Operations the outcome worker needs on each topic (its changelog and repartition topic included)."""
    return {
        settings.input_topic: {DESCRIBE},
        settings.prediction_topic: {DESCRIBE},
        settings.provenance_topic: {READ, DESCRIBE},
        settings.outcome_topic: {READ, DESCRIBE},
        settings.dlq_topic: {WRITE, DESCRIBE},
        settings.drift_topic: {WRITE, DESCRIBE},
        changelog: {READ, WRITE, DESCRIBE},
        repartition: {READ, WRITE, DESCRIBE},
    }


def check(settings: Settings, topics: Mapping[str, set[str]], group: str, timeout: float = 15.0) -> None:
    """Raise a one-line :class:`ConfigError` naming the first operation the principal lacks."""
    kafka = client_config(settings)
    admin, _ = connect(kafka, timeout)
    described = admin.describe_topics(
        TopicCollection(sorted(topics)), request_timeout=timeout, include_authorized_operations=True
    )
    for name, future in sorted(described.items()):
        try:
            allowed = {op.name for op in future.result(timeout).authorized_operations or ()}
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                continue  # not made yet
            if error.code() != KafkaError.TOPIC_AUTHORIZATION_FAILED:
                raise
            allowed = set()
        for operation in (op for op in _ORDER if op in topics[name] - allowed):
            raise ConfigError(_missing(kafka, operation, "topic", name))
    allowed = _group_operations(admin, group, timeout)
    if allowed is not None and READ not in allowed:
        raise ConfigError(_missing(kafka, READ, "group", group))


def _group_operations(admin: AdminClient, group: str, timeout: float) -> set[str] | None:
    """What the principal may do on ``group``; None when the group coordinator did not answer in time.

    A new group's coordinator may be moving or loading (NOT_COORDINATOR and the like): asked again.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = admin.describe_consumer_groups(
                [group], request_timeout=timeout, include_authorized_operations=True
            )[group].result(timeout)
            return {op.name for op in found.authorized_operations or ()}
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() == KafkaError.GROUP_AUTHORIZATION_FAILED:
                return set()
            if not (error.retriable() or error.code() in _COORDINATOR_MOVING) or time.monotonic() > deadline:
                return None  # not a missing permission: the consumer will say what is wrong
            time.sleep(0.5)


def _missing(kafka: Connection, operation: str, kind: str, name: str) -> str:
    user = client_config(kafka).get("sasl.username")
    code = "TOPIC_AUTHORIZATION_FAILED" if kind == "topic" else "GROUP_AUTHORIZATION_FAILED"
    acl_principal = f"User:{user}" if user else "<principal>"
    return (
        f"{principal(kafka)} may not {operation} {kind} {name!r} ({code}): grant it, e.g. "
        f"kafka-acls.sh --add --allow-principal {acl_principal} --operation {operation.title()} "
        f"--{kind} {name} (docs/operations/security.md, Kafka ACLs: the permissions each worker needs)"
    )
