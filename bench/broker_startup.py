"""Embedded broker: start-up time (fresh and on an existing data dir) and a produce/consume round."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from stream.kafka.topics import ensure_topics
from stream.tools.broker import KAFKA_VERSION, EmbeddedKafka, kafka_classpath

MESSAGES = 100_000


def _round_trip(bootstrap: str) -> dict[str, float]:
    ensure_topics(bootstrap, {"bench": 3})
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"})
    value = b"x" * 300
    started = time.perf_counter()
    for i in range(MESSAGES):
        while True:
            try:
                producer.produce("bench", value=value, key=str(i).encode())
                break
            except BufferError:
                producer.poll(0.01)
    producer.flush(60)
    produced = time.perf_counter() - started
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False})
    consumer.assign([TopicPartition("bench", p, 0) for p in range(3)])
    started, got = time.perf_counter(), 0
    while got < MESSAGES and time.perf_counter() - started < 60:
        got += len(consumer.consume(10_000, timeout=0.5))
    consumed = time.perf_counter() - started
    consumer.close()
    return {
        "messages": MESSAGES,
        "value_bytes": len(value),
        "produce_msgs_per_s": round(MESSAGES / produced),
        "consume_msgs_per_s": round(got / consumed),
    }


def run(repeats: int = 3) -> dict[str, object]:
    kafka_classpath()  # resolved before timing: start-up is measured with the jars cached
    fresh, restart = [], []
    result: dict[str, object] = {"kafka_version": KAFKA_VERSION}
    for i in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            data_dir = Path(tmp)
            t0 = time.perf_counter()
            with EmbeddedKafka(data_dir=data_dir) as kafka:
                fresh.append(time.perf_counter() - t0)
                if i == 0:
                    result["round_trip"] = _round_trip(kafka.bootstrap_servers)
            t0 = time.perf_counter()
            with EmbeddedKafka(data_dir=data_dir):
                restart.append(time.perf_counter() - t0)
    result["start_fresh_s"] = {"median": round(statistics.median(fresh), 2), "max": round(max(fresh), 2)}
    result["start_existing_dir_s"] = {
        "median": round(statistics.median(restart), 2),
        "max": round(max(restart), 2),
    }
    return result
