"""The outcome worker's topic names and client settings."""

from __future__ import annotations

from stream.outcomes.kafka import OutcomeTopics, outcome_consumer_config, outcome_producer_config
from stream.settings import Settings


def test_internal_topics_are_named_after_the_group():
    topics = OutcomeTopics.of(Settings(app_id="app", outcome_topic="truth"))
    assert (topics.outcomes, topics.changelog, topics.repartition) == (
        "truth",
        "app-outcomes-pending-changelog",
        "app-outcomes-repartition",
    )


def test_the_consumer_assigns_by_range_and_commits_by_hand():
    config = outcome_consumer_config(Settings(app_id="app", instance_id="w1"))
    assert config["group.id"] == "app-outcomes" and config["client.id"] == "app-outcomes-w1"
    assert config["partition.assignment.strategy"] == "range", "co-partitioned topics to one worker"
    assert config["enable.auto.commit"] is False and config["isolation.level"] == "read_committed"
    assert outcome_consumer_config(Settings(app_id="app"), "restore")["group.id"] == "app-outcomes-restore"


def test_the_producer_is_at_least_once_whatever_the_guarantee_setting_and_reports_every_record():
    config = outcome_producer_config(Settings(processing_guarantee="exactly_once"), print)
    assert "transactional.id" not in config and config["enable.idempotence"] is True
    assert config["delivery.report.only.error"] is False and config["on_delivery"] is print
    assert config["partitioner"] == "murmur2_random" and config["acks"] == "all"
