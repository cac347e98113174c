"""The embedded broker's warm-up before the ladder: steady traffic until its JIT has compiled.

A broker started with the full JIT (C1 then C2) spends its first tens of seconds under load
compiling, on the same two cores as the scorers; measured then, the first rungs would pay for it.
:func:`run` sends small events through a topic of its own, in bursts as the latency load generator
does and in backlogs as the drains do, read back by a consumer, for :data:`SECONDS`.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, Producer

from stream.kafka.config import client_config
from stream.kafka.topics import ensure_topics

SECONDS = 45.0
TOPIC = "bench-warm-up"


def run(bootstrap: str, seconds: float = SECONDS) -> int:
    """Warm the broker at ``bootstrap`` for ``seconds``; the seconds it took."""
    kafka = client_config(bootstrap)
    ensure_topics(kafka, {TOPIC: 6})
    producer = Producer({**kafka, "linger.ms": 0, "acks": "all"})
    consumer = Consumer(
        {**kafka, "group.id": TOPIC, "auto.offset.reset": "earliest", "enable.auto.commit": False}
    )
    consumer.subscribe([TOPIC])
    started = time.monotonic()
    value, n = b"x" * 300, 0
    while time.monotonic() - started < seconds:
        burst = 5_000 if n % 50 == 0 else 5  # mostly small bursts, now and then a backlog
        for i in range(burst):
            try:
                producer.produce(TOPIC, value, str(i).encode())
            except BufferError:  # the queue is full: let deliveries make room
                producer.poll(0.01)
        producer.poll(0)
        consumer.consume(1_000, 0.001)
        n += 1
    producer.flush(30)
    consumer.close()
    return round(time.monotonic() - started)
