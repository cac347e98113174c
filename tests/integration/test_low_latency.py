"""The hot loop answers at once, on the real broker: a batch takes what has arrived without waiting
to fill, and the periodic at-least-once commit never waits for the broker, yet commits only input
offsets whose records the broker has acknowledged."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from confluent_kafka import Consumer, Producer, TopicPartition

from stream.drift.partition import SLICE_EVENTS
from stream.kafka.clients import take
from stream.scoring.pipeline import BatchResult
from stream.settings import Settings
from stream.worker.app import create_pipeline
from stream.worker.drift import PENDING_S, DriftReporter
from stream.worker.health import Health
from stream.worker.loop import ScoringLoop
from stream.worker.metrics import WorkerMetrics

LONG_WAIT_S = 30.0  # a batch that waited to fill would wait this long


def _reader(bootstrap: str, topic: str) -> Consumer:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    return consumer


def test_a_batch_takes_what_has_arrived_without_waiting_to_fill(
    kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    topic = new_topic(partitions=1)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(3):
        producer.produce(topic, f"event {i}".encode())
    producer.flush(10)
    consumer = _reader(kafka_bootstrap, topic)
    try:
        started = time.monotonic()
        taken = take(consumer, 256, LONG_WAIT_S)  # waits for the first, then takes what came with it
        while len(taken) < 3 and time.monotonic() - started < LONG_WAIT_S:
            taken += take(consumer, 256, LONG_WAIT_S)
        took = time.monotonic() - started
        assert [m.value() for m in taken] == [b"event 0", b"event 1", b"event 2"]
        assert took < LONG_WAIT_S / 3, f"took {took:.1f} s: the batch waited to fill"
        assert take(consumer, 256, 0.2) == []  # nothing more: an empty batch after the wait
    finally:
        consumer.close()


def _loop(kafka_bootstrap: str, input_topic: str, output_topic: str, group: str) -> ScoringLoop:
    settings = Settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        app_id=group,
        input_topic=input_topic,
        prediction_topic=output_topic,
        drift_window=0,
    )
    return ScoringLoop(settings, create_pipeline(settings), WorkerMetrics(), Health())


def _committed(loop: ScoringLoop, topic: str) -> int:
    return loop.consumer.committed([TopicPartition(topic, 0)], timeout=10)[0].offset


def _scored_in_flight(loop: ScoringLoop, topic: str, next_offset: int) -> None:
    """As after a batch: its input's next offset pending, its records handed to the producer."""
    loop._pending[0] = next_offset
    for i in range(20_000):
        loop.producer.produce(topic, b"x" * 100, str(i).encode())


def _wait_committed(loop: ScoringLoop, topic: str, offset: int, deadline: float) -> None:
    while _committed(loop, topic) != offset:  # the commit went out asynchronously
        assert time.monotonic() < deadline, "the offsets were never committed"
        loop.consumer.poll(0.05)


def test_the_periodic_commit_waits_for_acknowledgements_without_blocking(
    kafka_bootstrap: str, new_topic: Callable[..., str], unique_name: Callable[[str], str]
) -> None:
    input_topic, output_topic = new_topic(partitions=1), new_topic(partitions=1)
    loop = _loop(kafka_bootstrap, input_topic, output_topic, unique_name("group"))
    try:
        _scored_in_flight(loop, output_topic, 7)
        assert len(loop.producer) > 0
        assert loop._commit_due(overdue=False) is False  # not committed, and it did not wait
        assert len(loop.producer) > 0
        assert _committed(loop, input_topic) < 0  # nothing committed yet
        deadline = time.monotonic() + 30
        while not loop._commit_due(overdue=False):  # later turns of the loop: once all are acknowledged
            assert time.monotonic() < deadline, "the records were never acknowledged"
            time.sleep(0.001)
        assert len(loop.producer) == 0
        _wait_committed(loop, input_topic, 7, deadline)
    finally:
        loop.producer.flush(10)
        loop.consumer.close()


def test_an_overdue_commit_flushes_first(
    kafka_bootstrap: str, new_topic: Callable[..., str], unique_name: Callable[[str], str]
) -> None:
    input_topic, output_topic = new_topic(partitions=1), new_topic(partitions=1)
    loop = _loop(kafka_bootstrap, input_topic, output_topic, unique_name("group"))
    try:
        _scored_in_flight(loop, output_topic, 11)
        assert loop._commit_due(overdue=True) is True
        assert len(loop.producer) == 0  # every record acknowledged before the offsets went
        _wait_committed(loop, input_topic, 11, time.monotonic() + 30)
    finally:
        loop.consumer.close()


FEATURES = 9  # the demo model's


def _scored(n: int, partition: int, first_offset: int) -> BatchResult:
    """A scored batch of ``n`` events of one partition, as the pipeline hands it to drift."""
    rng = np.random.default_rng(first_offset)
    return BatchResult(
        scored=n,
        features=rng.normal(size=(n, FEATURES)).astype(np.float32),
        scores=rng.uniform(size=n).astype(np.float32),
        partitions=np.full(n, partition),
        offsets=np.arange(first_offset, first_offset + n),
        times=np.full(n, time.time()),
    )


def test_drift_adds_lone_events_in_slices_and_before_every_save(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    """A batch of one is not a window update of its own: drift takes batches together once
    SLICE_EVENTS wait or after PENDING_S, and always before the state is saved."""
    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap, app_id=unique_name("app"))
    card = create_pipeline(settings).serving.card
    assert len(card.features) == FEATURES
    sent: list[tuple[str, bytes]] = []
    drift = DriftReporter(settings, card, WorkerMetrics(), "w", 3, lambda t, v: sent.append((t, v)))
    try:
        drift.monitor.own([0, 1, 2])
        for i in range(SLICE_EVENTS - 1):
            drift.update(_scored(1, i % 3, i))
        assert sum(drift.monitor.seen(p) for p in range(3)) == 0  # waiting, not yet in the windows
        drift.update(_scored(1, 0, 1_000))
        assert sum(drift.monitor.seen(p) for p in range(3)) == SLICE_EVENTS  # taken together at once
        drift.update(_scored(2, 1, 2_000))
        drift.tick(time.monotonic())
        assert sum(drift.monitor.seen(p) for p in range(3)) == SLICE_EVENTS  # too soon
        drift.tick(time.monotonic() + PENDING_S)
        seen = sum(drift.monitor.seen(p) for p in range(3))
        assert seen == SLICE_EVENTS + 2
        drift.update(_scored(3, 2, 3_000))
        drift.save([0, 1, 2])  # what waits is in the saved state
        assert sum(drift.monitor.seen(p) for p in range(3)) == seen + 3
    finally:
        drift.close()
