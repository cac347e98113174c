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

from stream.kafka.config import Connection, client_config, connect
from stream.kafka.lag_status import Snapshot, Status, Window, group_status


@dataclass(frozen=True, slots=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int | None  # None: the group never committed this partition
    end: int
    lag: int
    lag_seconds: float | None  # None when nothing is waiting, or the record could not be read
    owned: bool = False  # a member of the group holds the partition now
    status: Status = Status.OK  # over a window of snapshots (stream.kafka.lag_status); OK from one alone


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
    owned = _owned(admin, group, timeout)
    ends = _offsets(admin, wanted, OffsetSpec.latest(), timeout)
    starts = _offsets(admin, wanted, OffsetSpec.earliest(), timeout)
    rows = []
    for topic, partition in sorted(wanted):
        offset = committed.get((topic, partition))
        position = offset if offset is not None and offset >= 0 else None
        end = ends[(topic, partition)]
        lag = max(0, end - (position if position is not None else starts[(topic, partition)]))
        rows.append(
            PartitionLag(group, topic, partition, position, end, lag, None, (topic, partition) in owned)
        )
    if with_seconds:
        rows = _with_ages(kafka, rows, starts, timeout)
    return rows


def _owned(admin: AdminClient, group: str, timeout: float) -> set[tuple[str, int]]:
    """The partitions the group's live members hold."""
    described = admin.describe_consumer_groups([group], request_timeout=timeout)[group].result(timeout)
    return {(tp.topic, tp.partition) for m in described.members for tp in m.assignment.topic_partitions or []}


def sample(
    kafka: Connection, groups: Iterable[str], topics: Iterable[str], window: Window, with_seconds: bool = True
) -> list[PartitionLag]:
    """The lag of ``groups`` now, each row with its status over ``window`` (which takes this snapshot)."""
    groups, topics = list(groups), list(topics)
    rows = [row for g in groups for row in consumer_lag(kafka, g, topics, with_seconds=with_seconds)]
    at = time.monotonic()
    window.forget({(r.group, r.topic, r.partition) for r in rows}, among=lambda key: key[0] in groups)
    return [
        replace(
            r, status=window.add((r.group, r.topic, r.partition), Snapshot(at, r.committed, r.lag, r.owned))
        )
        for r in rows
    ]


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
    """A fixed-width table like ``kafka-consumer-groups --describe``, a total per group and topic below."""
    shape = "{:<28} {:<28} {:>9} {:>10} {:>10} {:>8} {:>8}  {}"
    rendered = [shape.format("GROUP", "TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "LAG_S", "STATUS")]
    totals: dict[tuple[str, str], list[PartitionLag]] = {}
    for r in rows:
        committed = "-" if r.committed is None else r.committed
        rendered.append(
            shape.format(
                r.group, r.topic, r.partition, committed, r.end, r.lag, _seconds(r.lag_seconds), r.status.name
            )
        )
        totals.setdefault((r.group, r.topic), []).append(r)
    if totals:
        rendered.append("")
    for (group, topic), part in totals.items():
        oldest = max((r.lag_seconds for r in part if r.lag_seconds is not None), default=None)
        status = group_status(r.status for r in part).name
        lag, end = sum(r.lag for r in part), sum(r.end for r in part)
        rendered.append(shape.format(group, topic, "TOTAL", "", end, lag, _seconds(oldest), status))
    return "\n".join(rendered)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


class LagCollector(Collector):
    """Prometheus gauges of the lag of some consumer groups and their status, computed at each scrape.

    Each scrape is a snapshot of the status window (``window_s`` seconds, :mod:`stream.kafka.lag_status`).
    """

    def __init__(
        self, kafka: Connection, groups: Iterable[str], topics: Iterable[str] = (), window_s: float = 120.0
    ) -> None:
        self.kafka = kafka
        self.groups = list(groups)
        self.topics = list(topics)
        self.window = Window(window_s)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The families, without reading offsets (so registering costs no broker round trip)."""
        return iter(self._families())

    def _families(self) -> tuple[GaugeMetricFamily, ...]:
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
            GaugeMetricFamily(
                "streamscore_consumer_status",
                "Partition status over the lag window: 0 OK, 1 WARN, 2 STALL, 3 STOP, 4 ERR.",
                labels=labels,
            ),
            GaugeMetricFamily(
                "streamscore_consumer_group_status",
                "Worst partition status of the group (4 ERR when its lag cannot be read).",
                labels=["group"],
            ),
        )

    def collect(self) -> Iterator[GaugeMetricFamily]:
        messages, seconds, up, status, group_gauge = self._families()
        for group in self.groups:
            try:
                rows = sample(self.kafka, [group], self.topics, self.window)
            except Exception:  # the broker away: say so in a gauge, keep serving
                up.add_metric([group], 0)
                group_gauge.add_metric([group], Status.ERR)
                continue
            up.add_metric([group], 1)
            group_gauge.add_metric([group], group_status(r.status for r in rows))
            for r in rows:
                values = [r.group, r.topic, str(r.partition)]
                messages.add_metric(values, r.lag)
                seconds.add_metric(values, r.lag_seconds or 0.0)
                status.add_metric(values, r.status)
        yield from (messages, seconds, up, status, group_gauge)
