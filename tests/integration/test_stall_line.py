"""On the real broker: a topic that needs more in-sync replicas than it has is named, a healthy one is not.

One broker shows the shortfall of a cluster that lost brokers: a topic of one replica whose
``min.insync.replicas`` is 2 refuses every ``acks=all`` write, as a three-replica topic does with two
brokers down.
"""

from __future__ import annotations

from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from stream.kafka.stall import StallExplainer


def test_a_topic_short_of_in_sync_replicas_is_named_and_a_healthy_one_is_not(kafka_bootstrap, new_topic):
    healthy, short = new_topic(2, "healthy"), new_topic(1, "short")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    raise_min_isr = ConfigEntry("min.insync.replicas", "2", incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ResourceType.TOPIC, short, incremental_configs=[raise_min_isr])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=10)
    [broker] = admin.list_topics(short, timeout=10).topics[short].partitions[0].replicas

    config = {"bootstrap.servers": kafka_bootstrap}
    assert StallExplainer(config, [healthy]).explain() is None
    explainer = StallExplainer(config, [healthy, short])
    assert explainer.explain() == (
        f"writes to {short}[0] wait: 1 in-sync replica (broker {broker}) of 1, min.insync.replicas is 2"
    )
    assert StallExplainer(config, [healthy, "no-such-topic"]).explain() == (
        "writes to no-such-topic wait: the topic does not exist"
    )
    assert "no-such-topic" not in admin.list_topics(timeout=10).topics  # looking did not create it
