"""The embedded broker keeps its topics, data and address across a stop and a start on --data-dir."""

from __future__ import annotations

import socket

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from stream.kafka.topics import ensure_topics
from stream.tools.broker import BrokerError, EmbeddedKafka


def _read_all(bootstrap: str, topic: str, partitions: int) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    values: list[bytes] = []
    for _ in range(100):
        msgs = consumer.consume(500, timeout=0.5)
        values += [m.value() for m in msgs if m.error() is None]
        if len(values) >= 200 and not msgs:
            break
    consumer.close()
    return values


def test_data_survives_restart(tmp_path):
    data_dir = tmp_path / "kafka"
    with EmbeddedKafka(data_dir=data_dir) as kafka:
        first_address = kafka.bootstrap_servers
        ensure_topics(first_address, {"kept": 2})
        producer = Producer({"bootstrap.servers": first_address, "acks": "all"})
        for i in range(200):
            producer.produce("kept", key=str(i).encode(), value=f"m{i}".encode())
        assert producer.flush(30) == 0
    assert not kafka.running
    assert (data_dir / "log" / "meta.properties").exists()

    with EmbeddedKafka(data_dir=data_dir) as again:
        assert again.bootstrap_servers == first_address, "same data dir, same address"
        assert ensure_topics(again.bootstrap_servers, {"kept": 2}) == [], "the topic is still there"
        values = _read_all(again.bootstrap_servers, "kept", 2)
    assert sorted(values) == sorted(f"m{i}".encode() for i in range(200))


def test_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BrokerError, match=f"port {port} .* in use"):
            EmbeddedKafka(port=port, data_dir=tmp_path / "k").start()
