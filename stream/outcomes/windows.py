"""The drift topic's reports, read by the outcome worker for its estimate check (:mod:`.estimates`).

Every outcome worker reads every partition of the drift topic from where it ended at start-up,
committed records only, without blocking the loop: assigned, under the worker's group id (whose ACL
it has) but never joining the group nor committing. A principal without Read on the drift topic
turns the check off with one warning; the join goes on.
"""

from __future__ import annotations

import logging

from confluent_kafka import OFFSET_END, Consumer, KafkaError, KafkaException, TopicPartition

from stream.outcomes.kafka import outcome_consumer_config
from stream.settings import Settings

__all__ = ["DriftWindows"]

log = logging.getLogger("streamscore.outcomes")
_DENIED = {KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED}


class DriftWindows:
    """Reads the drift topic from its end at :meth:`start` on; :meth:`read` never waits."""

    def __init__(self, settings: Settings, topic: str) -> None:
        config = outcome_consumer_config(settings)  # the worker's group id: never joined, nothing committed
        config["client.id"] += "-estimates"
        config["queued.max.messages.kbytes"] = 1024
        self.topic, self.on, self._errors = topic, False, 0
        self.consumer = Consumer(config)

    def start(self, timeout: float = 10.0) -> None:
        """Assign every partition of the drift topic at its end now (the loop's thread, at its start)."""
        self.on, topic = True, self.topic
        try:
            metadata = self.consumer.list_topics(topic, timeout=timeout).topics.get(topic)
            partitions = sorted(metadata.partitions) if metadata is not None and not metadata.error else []
            ends = {p: self._end(p, timeout) for p in partitions}
            self.consumer.assign([TopicPartition(topic, p, o) for p, o in ends.items()])
        except KafkaException as exc:
            self._off(exc.args[0])

    def _end(self, partition: int, timeout: float) -> int:
        """The partition's end now, so that a report written from here on is read."""
        try:
            return self.consumer.get_watermark_offsets(TopicPartition(self.topic, partition), timeout)[1]
        except KafkaException as exc:
            if exc.args[0].code() in _DENIED:
                raise
            return OFFSET_END

    def read(self, most: int = 500) -> list[bytes]:
        """The reports arrived since the last call (none while the check is off)."""
        if not self.on:
            return []
        values = []
        for m in self.consumer.consume(most, 0):
            error = m.error()
            if error is None:
                values.append(m.value() or b"")
            elif error.code() in _DENIED:
                self._off(error)
                return []
            elif error.code() != KafkaError._PARTITION_EOF:
                self._errors += 1
                if self._errors & (self._errors - 1) == 0:
                    n, text = self._errors, error.str()
                    log.warning("drift topic %s not read (%d so far): %s", self.topic, n, text)
        return values

    def _off(self, error: KafkaError) -> None:
        self.on = False
        hint = "; grant Read on it to the outcome worker" if error.code() in _DENIED else ""
        log.warning(
            "estimated performance not checked: the drift topic %s cannot be read (%s)%s",
            self.topic, error.str(), hint,
        )  # fmt: skip

    def close(self) -> None:
        self.consumer.close()
