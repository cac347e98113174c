"""The scorers the ladder compares, each run as its own process: ``python -m bench.rungs RUNG``.

They read the same settings as the worker (``KAFKA_BOOTSTRAP_SERVERS``, ``STREAMSCORE_*``):

- ``floor``: the latency floor. The same loop as the passthrough, sending each record as soon as
  it is produced (``linger.ms`` 0), and flushing and committing every 100 ms (at least once, as the
  worker does): the least latency Kafka allows on the machine.
- ``passthrough``: the limit. A bare confluent-kafka loop: wait for the first message, take what has
  arrived, produce two records per input (stand-ins for prediction and provenance), flush and
  commit every second.
- ``bare``: the same loop doing the real work with :class:`stream.scoring.pipeline.Pipeline`.
- ``naive``: what tutorials write: a Faust agent that decodes each event with the stdlib json,
  runs onnxruntime once per event, and awaits each send.

The Quix Streams peer is :mod:`bench.quix_peer` (it runs from a venv of its own), the load
generator :mod:`bench.load`.
"""

from __future__ import annotations

import json
import signal
import sys
import time

from confluent_kafka import Consumer, Producer

from stream.kafka.config import client_config, faust_broker
from stream.settings import Settings


def _clients(settings: Settings, linger_ms: float) -> tuple[Consumer, Producer]:
    consumer = Consumer(
        client_config(
            settings,
            **{
                "group.id": settings.app_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 10,
            },
        )
    )
    producer = Producer(
        client_config(settings, **{"linger.ms": linger_ms, "acks": "all", "partitioner": "murmur2_random"})
    )  # murmur2: keys land where the worker's producer (aiokafka, Java's partitioner) puts them
    consumer.subscribe([settings.input_topic])
    return consumer, producer


def _loop(settings: Settings, work: bool, commit_s: float = 1.0, linger_ms: float = 1) -> None:
    """Take what has arrived, send two records per input; flush, then commit, every ``commit_s``."""
    consumer, producer = _clients(settings, linger_ms)
    running = True

    def stop(*_: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    pipeline = None
    if work:
        from stream.worker.app import create_pipeline

        pipeline = create_pipeline(settings)
    pred, prov = settings.prediction_topic, settings.provenance_topic

    def produce(
        topic: str, value: bytes | None, key: bytes | None, partition: int, headers: object = None
    ) -> None:
        while True:
            try:
                return producer.produce(topic, value, key, partition, headers=headers)
            except BufferError:  # the producer's queue is full: let deliveries make room
                producer.poll(0.01)

    last_commit = time.monotonic()
    uncommitted = False
    while running:
        first = consumer.poll(0.05)  # wait for the first message only, then take what is there
        msgs = [first, *consumer.consume(499, timeout=0)] if first is not None else []
        msgs = [m for m in msgs if m.error() is None]
        if msgs:
            uncommitted = True
            if pipeline is None:
                for m in msgs:
                    p = m.partition()
                    produce(pred, m.value(), m.key(), p)
                    produce(prov, m.value(), m.key(), p)
            else:
                for r in pipeline.process(msgs).records:
                    partition = -1 if r.partition is None else r.partition  # -1: by key
                    produce(r.topic, r.value, r.key, partition, headers=r.headers)
        producer.poll(0)
        if uncommitted and time.monotonic() - last_commit >= commit_s:
            producer.flush()
            consumer.commit(asynchronous=False)
            last_commit, uncommitted = time.monotonic(), False
    producer.flush()
    consumer.close()


def naive(settings: Settings) -> None:
    import faust
    import numpy as np

    from stream.scoring.model import load

    model = load(settings.model_dir, settings.model_name, settings.model_version)
    names = model.feature_names
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    session, inp, out = model.session, model.card.input_tensor, model.card.output.tensor
    app = faust.App(
        settings.app_id,
        **faust_broker(settings),
        store="memory://",
        datadir=str(settings.data_dir / "naive"),
        web_enabled=False,
        topic_partitions=settings.partitions,
        consumer_auto_offset_reset="earliest",
    )
    source = app.topic(settings.input_topic, value_serializer="raw")
    predictions = app.topic(settings.prediction_topic, value_serializer="raw")
    provenance = app.topic(settings.provenance_topic, value_serializer="raw")

    @app.agent(source)
    async def score(stream: faust.StreamT) -> None:
        async for value in stream:
            event = json.loads(value)
            x = np.array([[event["features"][n] for n in names]], dtype=np.float32)
            p = float(session.run([out], {inp: x})[0][0, 1])
            prediction = {"event_id": event["event_id"], "score": p, "occurred_at": event["occurred_at"]}
            await predictions.send(value=json.dumps(prediction).encode())
            await provenance.send(
                value=json.dumps({"event_id": event["event_id"], "model": model.card.sha256}).encode()
            )

    worker = faust.Worker(app, loglevel="warn", quiet=True)
    worker.spinner = None
    worker.execute_from_commandline()


def main() -> None:
    settings = Settings()
    rung = sys.argv[1]
    if rung == "floor":
        _loop(settings, work=False, commit_s=0.1, linger_ms=0)
    elif rung == "passthrough":
        _loop(settings, work=False)
    elif rung == "bare":
        _loop(settings, work=True)
    elif rung == "naive":
        naive(settings)
    else:
        sys.exit(f"unknown rung {rung!r}")


if __name__ == "__main__":
    main()
