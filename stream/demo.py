"""``streamscore run``: bring up a broker when none is given and show traffic flowing through it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from confluent_kafka import Consumer, Producer

from stream.broker import EmbeddedKafka
from stream.topics import ensure_topics


@contextlib.contextmanager
def kafka_at(bootstrap_servers: str | None) -> Iterator[str]:
    """Yield ``bootstrap_servers``, or those of an embedded broker started for the block."""
    if bootstrap_servers:
        yield bootstrap_servers
        return
    print("KAFKA_BOOTSTRAP_SERVERS not set: starting the embedded Kafka broker", flush=True)
    started = time.monotonic()
    with EmbeddedKafka() as kafka:
        print(
            f"Kafka {kafka.version} ready on {kafka.bootstrap_servers} in {time.monotonic() - started:.1f} s",
            flush=True,
        )
        yield kafka.bootstrap_servers


def run_demo(bootstrap_servers: str | None, seconds: float = 0.0, rate: float = 2_000.0) -> None:
    """Produce timestamped messages at ``rate``/s and consume them back, reporting every 2 s."""
    with kafka_at(bootstrap_servers) as bootstrap:
        topic = "streamscore.demo"
        ensure_topics(bootstrap, {topic: 3})
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1, "log_level": 3})
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "streamscore-demo",
                "auto.offset.reset": "latest",
                "log_level": 3,
            }
        )
        consumer.subscribe([topic])
        start = last = time.monotonic()
        sent = received = 0
        latencies: list[float] = []
        try:
            while seconds <= 0 or time.monotonic() - start < seconds:
                now = time.monotonic()
                while sent < (now - start) * rate:
                    producer.produce(topic, key=str(sent).encode(), value=repr(time.time()).encode())
                    sent += 1
                producer.poll(0)
                for msg in consumer.consume(500, timeout=0.005):
                    if msg.error() is None:
                        received += 1
                        latencies.append(time.time() - float(msg.value()))
                if now - last >= 2.0 and latencies:
                    latencies.sort()
                    p50 = latencies[len(latencies) // 2] * 1e3
                    p99 = latencies[int(len(latencies) * 0.99)] * 1e3
                    print(
                        f"round trip: sent {sent}, received {received}, "
                        f"{len(latencies) / (now - last):.0f} msg/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms",
                        flush=True,
                    )
                    latencies.clear()
                    last = now
        except KeyboardInterrupt:
            pass
        finally:
            producer.flush(10)
            consumer.close()
