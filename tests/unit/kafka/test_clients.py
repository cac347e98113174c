"""The scoring loop's Kafka clients are configured for its delivery rules."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from stream.kafka.clients import consumer_config, producer_config
from stream.settings import Settings


def _settings(**kw: object) -> Settings:
    return Settings(app_id="scorer", instance_id="w-1", **kw)


def _ignore(*_: object) -> None:
    return None


def test_consumer_commits_by_hand_and_reads_committed_data_only():
    config = consumer_config(_settings(session_timeout_s=9))
    assert config["group.id"] == "scorer"
    assert config["enable.auto.commit"] is False and config["enable.auto.offset.store"] is False
    assert config["isolation.level"] == "read_committed"
    assert config["auto.offset.reset"] == "earliest"
    assert config["session.timeout.ms"] == 9_000 and config["heartbeat.interval.ms"] == 3_000


def test_at_least_once_producer_is_idempotent_and_not_transactional():
    config = producer_config(_settings(), _ignore)
    assert config["acks"] == "all" and config["enable.idempotence"] is True
    assert config["partitioner"] == "murmur2_random", "provenance must land where Java clients put outcomes"
    assert "transactional.id" not in config
    assert config["delivery.report.only.error"] is True and config["on_delivery"] is _ignore


def test_exactly_once_producer_has_one_transactional_id_per_worker():
    config = producer_config(
        _settings(processing_guarantee="exactly_once", transaction_timeout_s=30), _ignore
    )
    assert config["transactional.id"] == "scorer-w-1"
    assert config["transaction.timeout.ms"] == 30_000
    assert config["client.id"] == "scorer-w-1"


def test_security_settings_reach_both_clients():
    settings = _settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="scorer",
        kafka_sasl_password="secret",
    )
    for config in (consumer_config(settings), producer_config(settings, _ignore)):
        assert config["security.protocol"] == "SASL_PLAINTEXT" and config["sasl.username"] == "scorer"


@pytest.mark.parametrize("bad", ["", "two words", "a/b", "x" * 201])
def test_instance_id_must_be_usable_in_a_transactional_id(bad):
    with pytest.raises(ValidationError, match="instance_id"):
        Settings(app_id="scorer", instance_id=bad)
