"""Consumer lag of any consumer group, exactly, from the broker's own offsets.

Lag in messages is log-end offset minus committed offset per partition, as Kafka's
``kafka-consumer-groups --describe`` computes it (a partition the group never committed counts from
the log-start offset). Lag in seconds is the age of the oldest unconsumed message: now minus the
timestamp of the record at the committed offset. Served as Prometheus gauges by
:class:`LagCollector`, computed when scraped.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from stream.kafka_config import Connection, client_config, connect


@dataclass(frozen=True, slots=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int | None  # None: the group never committed this partition
    end: int
    lag: int
    lag_seconds: float | None  # None when nothing is waiting, or the record could not be read


def consumer_lag(
    kafka: Connection,
    group: str,
    topics: Iterable[str] = (),
    timeout: float = 10.0,
    with_seconds: bool = True,
) -> list[PartitionLag]:
    """Lag of ``group`` on every partition it committed, and on every partition of ``topics``."""
    admin, metadata = connect(kafka, timeout)
    committed_tps = []
    # before any group has committed there is no offsets topic, and librdkafka 2.16 crashes on the request
    if "__consumer_offsets" in metadata.topics:
        request = [ConsumerGroupTopicPartitions(group)]
        committed_tps = (
            admin.list_consumer_group_offsets(request)[group].result(timeout=timeout).topic_partitions
        )
    committed = {(tp.topic, tp.partition): tp.offset for tp in committed_tps or []}
    wanted = set(committed)
    topics = list(topics)
    for topic in topics:
        if topic in metadata.topics:
            wanted |= {(topic, p) for p in metadata.topics[topic].partitions}
    if not wanted:
        return []
    ends = _offsets(admin, wanted, OffsetSpec.latest(), timeout)
    starts = _offsets(admin, wanted, OffsetSpec.earliest(), timeout)
    rows = []
    for topic, partition in sorted(wanted):
        offset = committed.get((topic, partition))
        position = offset if offset is not None and offset >= 0 else None
        end = ends[(topic, partition)]
        lag = max(0, end - (position if position is not None else starts[(topic, partition)]))
        rows.append(PartitionLag(group, topic, partition, position, end, lag, None))
    if with_seconds:
        rows = _with_ages(kafka, rows, starts, timeout)
    return rows


def _offsets(
    admin: AdminClient, tps: set[tuple[str, int]], spec: OffsetSpec, timeout: float
) -> dict[tuple[str, int], int]:
    futures = admin.list_offsets({TopicPartition(t, p): spec for t, p in tps}, request_timeout=timeout)
    return {(tp.topic, tp.partition): f.result(timeout=timeout).offset for tp, f in futures.items()}


def _with_ages(
    kafka: Connection, rows: list[PartitionLag], starts: dict[tuple[str, int], int], timeout: float
) -> list[PartitionLag]:
    """Fill lag_seconds from the timestamp of the first unconsumed record of each lagging partition."""
    waiting = {(r.topic, r.partition): r for r in rows if r.lag > 0}
    if not waiting:
        return rows
    consumer = Consumer(
        client_config(
            kafka,
            **{
                "group.id": f"streamscore-lag-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "fetch.max.bytes": 1 << 20,
                "log_level": 3,
            },
        )
    )
    consumer.assign(
        [
            TopicPartition(t, p, r.committed if r.committed is not None else starts[(t, p)])
            for (t, p), r in waiting.items()
        ]
    )
    ages: dict[tuple[str, int], float] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(ages) < len(waiting) and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None or msg.error() is not None:
                continue
            key = (msg.topic(), msg.partition())
            if key in waiting and key not in ages:
                ages[key] = max(0.0, time.time() - msg.timestamp()[1] / 1000)
                consumer.pause([TopicPartition(*key)])
    finally:
        consumer.close()
    return [replace(r, lag_seconds=ages.get((r.topic, r.partition))) if r.lag > 0 else r for r in rows]


def table(rows: list[PartitionLag]) -> str:
    """A fixed-width table like ``kafka-consumer-groups --describe``."""
    shape = "{:<28} {:<28} {:>9} {:>10} {:>10} {:>8} {:>8}"
    rendered = [shape.format("GROUP", "TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "LAG_S")]
    for r in rows:
        committed = "-" if r.committed is None else r.committed
        seconds = "-" if r.lag_seconds is None else f"{r.lag_seconds:.1f}"
        rendered.append(shape.format(r.group, r.topic, r.partition, committed, r.end, r.lag, seconds))
    return "\n".join(rendered)


class LagCollector(Collector):
    """Prometheus gauges of the lag of some consumer groups, computed at each scrape."""

    def __init__(self, kafka: Connection, groups: Iterable[str], topics: Iterable[str] = ()) -> None:
        self.kafka = kafka
        self.groups = list(groups)
        self.topics = list(topics)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The families, without reading offsets (so registering costs no broker round trip)."""
        return iter(self._families())

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        labels = ["group", "topic", "partition"]
        return (
            GaugeMetricFamily(
                "streamscore_consumer_lag_messages", "Log-end offset minus committed offset.", labels=labels
            ),
            GaugeMetricFamily(
                "streamscore_consumer_lag_seconds", "Age of the oldest unconsumed message.", labels=labels
            ),
            GaugeMetricFamily(
                "streamscore_consumer_lag_up", "1 when the lag could be read.", labels=["group"]
            ),
        )

    def collect(self) -> Iterator[GaugeMetricFamily]:
        messages, seconds, up = self._families()
        for group in self.groups:
            try:
                rows = consumer_lag(self.kafka, group, self.topics, timeout=5.0)
            except Exception:  # the broker away: say so in a gauge, keep serving
                up.add_metric([group], 0)
                continue
            up.add_metric([group], 1)
            for r in rows:
                values = [r.group, r.topic, str(r.partition)]
                messages.add_metric(values, r.lag)
                seconds.add_metric(values, r.lag_seconds or 0.0)
        yield from (messages, seconds, up)
