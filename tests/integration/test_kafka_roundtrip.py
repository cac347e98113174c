"""The real broker carries 10,000 messages across 3 partitions to a consumer group, each exactly once."""

from __future__ import annotations

import threading
import time

from confluent_kafka import Consumer, Producer

N = 10_000


def _consume_in_group(bootstrap: str, topic: str, group: str, out: list, stop: threading.Event):
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    try:
        while not stop.is_set():
            msgs = consumer.consume(1000, timeout=0.2)
            for m in msgs:
                assert m.error() is None, m.error()
                out.append((m.partition(), m.offset(), m.key(), m.value()))
            if msgs:
                consumer.commit(asynchronous=False)
    finally:
        consumer.close()


def test_round_trip_through_consumer_group(kafka_bootstrap, new_topic, unique_name):
    topic = new_topic(partitions=3)
    group = unique_name("g")
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all", "linger.ms": 5})
    delivered: list[tuple[int, int]] = []

    def on_delivery(err, msg):
        assert err is None, err
        delivered.append((msg.partition(), msg.offset()))

    for i in range(N):
        producer.produce(topic, key=f"k{i % 97}".encode(), value=f"v{i}".encode(), on_delivery=on_delivery)
        if i % 1000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0
    assert len(delivered) == N
    assert {p for p, _ in delivered} == {0, 1, 2}

    received: list[list] = [[], []]
    stop = threading.Event()
    threads = [
        threading.Thread(target=_consume_in_group, args=(kafka_bootstrap, topic, group, out, stop))
        for out in received
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while sum(map(len, received)) < N and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # anything beyond N would be a duplicate: give it a moment to show up
    stop.set()
    for t in threads:
        t.join(10)

    everything = received[0] + received[1]
    values = sorted(int(v[1:]) for _, _, _, v in everything)
    assert values == list(range(N)), "every message exactly once"
    assert sorted((p, o) for p, o, _, _ in everything) == sorted(delivered)
    # same key, same partition: ordering per key holds
    partition_of_key: dict[bytes, int] = {}
    for p, _, k, _ in everything:
        assert partition_of_key.setdefault(k, p) == p
