"""Worker state kept in Kafka: one compacted topic, one record per input partition.

The state of input partition *p* is written to partition *p* of the state topic under key *p*, so
the latest state of a partition is the last record of one partition: a new owner reads exactly
that after a rebalance or a restart. Compaction keeps the topic to one record per partition.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from stream.errors import StateRejected
from stream.kafka.config import Connection, client_config
from stream.kafka.topics import ensure_topics
from stream.keys import Signer

_NOT_YET = frozenset(
    (
        KafkaError._UNKNOWN_PARTITION,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
    )
)


class StateTopic:
    """Save and load signed per-partition state in a compacted topic."""

    def __init__(
        self, kafka: Connection, topic: str, partitions: int, signer: Signer, replication_factor: int = 1
    ) -> None:
        self.kafka, self.topic, self.signer = kafka, topic, signer
        ensure_topics(
            kafka,
            {topic: partitions},
            replication_factor=replication_factor,
            config={"cleanup.policy": "compact", "segment.ms": "600000"},
        )
        self._producer = Producer(client_config(kafka, **{"acks": "all", "linger.ms": 0, "log_level": 0}))
        self._failed: list[str] = []

    def save(self, states: dict[int, bytes], timeout: float = 10.0, wait: bool = True) -> None:
        """Sign and write each partition's state; with ``wait``, wait for the broker.

        Raises if a record is not acknowledged: with ``wait``, any of these or of earlier saves;
        without, only the failures already reported of earlier saves (the next save raises the rest).
        """
        for partition, blob in states.items():
            signed = self.signer.sign(self._context(partition), blob)
            self._producer.produce(
                self.topic, signed, str(partition).encode(), partition, on_delivery=self._delivered
            )
        left = 0
        if wait:
            left = self._producer.flush(timeout)
        else:
            self._producer.poll(0)  # serves the reports of earlier saves
        failed, self._failed = self._failed, []
        if failed or left:
            raise KafkaException(f"state of {sorted(states)} not saved to {self.topic}: {failed or left}")

    def _delivered(self, err: object, _msg: object) -> None:
        if err is not None:
            self._failed.append(str(err))

    def load(
        self, partitions: Iterable[int], timeout: float = 10.0
    ) -> tuple[dict[int, bytes], dict[int, StateRejected]]:
        """The last saved state of each partition that has one, and why the others' were refused."""
        consumer = Consumer(
            client_config(
                self.kafka,
                **{"group.id": f"{self.topic}-reader", "enable.auto.commit": False, "log_level": 0},
            )
        )
        try:
            wanted = []
            deadline = time.monotonic() + timeout
            for p in partitions:
                low, high = _watermarks(consumer, TopicPartition(self.topic, p), deadline)
                if high > low:
                    wanted.append(TopicPartition(self.topic, p, high - 1))
            found: dict[int, bytes | None] = {}  # None: a tombstone, no state
            if wanted:
                consumer.assign(wanted)
            for _ in range(100 if wanted else 0):  # bounded: one last record per partition
                for msg in consumer.consume(len(wanted), timeout=timeout / 10):
                    if msg.error() is None:
                        found[msg.partition()] = msg.value()
                if len(found) == len(wanted):
                    break
        finally:
            consumer.close()
        bodies: dict[int, bytes] = {}
        rejected: dict[int, StateRejected] = {}
        for partition, blob in found.items():
            if blob is None:
                continue
            try:
                bodies[partition] = self.signer.verify(self._context(partition), blob)
            except StateRejected as exc:
                rejected[partition] = exc
        return bodies, rejected

    def _context(self, partition: int) -> str:
        return f"{self.topic}[{partition}]"

    def close(self) -> None:
        self._producer.flush(5)


def _watermarks(consumer: Consumer, tp: TopicPartition, deadline: float) -> tuple[int, int]:
    """The partition's low and high offsets. A topic created a moment ago may not be in a new
    client's metadata yet, or have no leader yet: asked again until ``deadline``."""
    while True:
        try:
            return consumer.get_watermark_offsets(tp, timeout=max(0.1, deadline - time.monotonic()))  # type: ignore[no-any-return]
        except KafkaException as exc:
            if exc.args[0].code() not in _NOT_YET or time.monotonic() >= deadline:
                raise
            time.sleep(0.1)
