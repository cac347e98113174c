"""At least once under a crash: SIGKILL the worker mid-stream, restart it, and nothing is lost."""

from __future__ import annotations

import signal
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition
from conftest import read_topic

from stream.contracts import DeadLetter, Prediction
from stream.producer import produce
from stream.topics import ensure_topics

N_EVENTS = 20_000


def _written(bootstrap: str, topic: str) -> int:
    """Records in ``topic`` so far (sum of its partitions' end offsets); 0 before it exists."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        metadata = consumer.list_topics(topic, timeout=5).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return 0
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1]
            for p in metadata.partitions
        )
    except KafkaException:  # a topic just made may not have its leaders yet
        return 0
    finally:
        consumer.close()


def test_sigkill_mid_stream_loses_nothing(kafka_bootstrap, worker_topics, start_worker):
    ensure_topics(kafka_bootstrap, {worker_topics.input: 3})
    produced = produce(kafka_bootstrap, worker_topics.input, count=N_EVENTS, seed=31, malformed_fraction=0.02)
    worker = start_worker(batch_size=16)
    deadline = time.monotonic() + 60
    # kill mid-stream, once some offsets have been committed
    while _written(kafka_bootstrap, worker_topics.predictions) < N_EVENTS * 2 // 5:
        assert time.monotonic() < deadline and worker.proc.poll() is None, worker.output()
        time.sleep(0.01)
    worker.proc.send_signal(signal.SIGKILL)
    so_far = read_topic(kafka_bootstrap, worker_topics.predictions, 1, timeout=30, settle=0.5)
    worker.proc.wait(10)
    assert len(so_far) < len(produced.valid), "killed before the end of the stream"

    restarted = start_worker(batch_size=16)
    predictions = read_topic(kafka_bootstrap, worker_topics.predictions, len(produced.valid), 120, 2.0)
    dead = read_topic(kafka_bootstrap, worker_topics.dlq, len(produced.malformed), 30, 1.0)
    assert restarted.proc.poll() is None, restarted.output()

    ids = [Prediction.model_validate_json(m.value()).event_id for m in predictions]
    assert set(ids) == set(produced.valid), "every valid event scored at least once"
    origins = {(h.partition, h.offset) for h in (DeadLetter.from_headers(m.headers()) for m in dead)}
    assert len(origins) == len(produced.malformed), "every malformed event dead-lettered at least once"
    duplicates = len(ids) - len(set(ids))
    print(f"killed after {len(so_far)} predictions; {duplicates} events scored twice after the restart")
    assert duplicates < len(so_far), "offsets were committed before the kill: only the rest is scored again"
