"""Finding records: provenance by ``event_id``, an input at its offset, a dead letter, a range of a topic.

Everything is read with a consumer of no group (``assign``, nothing committed), ``read_committed``
like the workers. A scan ends at each partition's end as it was when the scan began, or when the
broker says the partition is at its end, or after ``timeout`` seconds: no read runs unbounded.
Provenance is keyed by ``event_id`` (murmur2, as the scorer sends it), so finding it reads one
partition from ``--since`` on.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from collections.abc import Iterable, Iterator

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from stream.audit.errors import AuditError, InputGone, NotFound
from stream.kafka.config import Connection, client_config
from stream.kafka.partitioning import partition_of

__all__ = ["Reader", "parse_offsets", "parse_time"]

_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_GAP = 5_000  # wanted offsets further apart than this are reached by a seek, not read through


def parse_time(text: str, now: float | None = None) -> int:
    """Epoch ms of ``text``: an ISO 8601 time (UTC if it has no offset) or an age (``90m``, ``2d``)."""
    text = text.strip()
    relative = _RELATIVE.fullmatch(text)
    if relative:
        seconds = float(relative[1]) * _UNIT_S[relative[2]]
        return int(((time.time() if now is None else now) - seconds) * 1000)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise AuditError(
            f"cannot read time {text!r}: give an ISO 8601 time (2026-11-30T09:00:00Z) or an age (90m, 2d)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def parse_offsets(text: str) -> dict[int, int]:
    """``0:100,1:250`` -> {partition: offset}."""
    offsets = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        partition, sep, offset = part.partition(":")
        if not sep or not partition.isdigit() or not offset.isdigit():
            raise AuditError(f"cannot read offsets {text!r}: give PARTITION:OFFSET pairs, e.g. 0:100,1:250")
        offsets[int(partition)] = int(offset)
    if not offsets:
        raise AuditError(f"cannot read offsets {text!r}: give PARTITION:OFFSET pairs, e.g. 0:100,1:250")
    return offsets


class Reader:
    """Reads records by position from any topic, with a consumer of no group."""

    def __init__(self, kafka: Connection, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self.consumer = Consumer(
            client_config(
                kafka,
                **{
                    "group.id": f"streamscore-audit-{uuid.uuid4().hex[:8]}",
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "enable.partition.eof": True,
                    "isolation.level": "read_committed",
                    "log_level": 3,
                },
            )
        )

    def close(self) -> None:
        self.consumer.close()

    def partitions(self, topic: str) -> list[int]:
        metadata = self.consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            raise NotFound(f"no topic {topic!r} on the cluster")
        return sorted(metadata.partitions)

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        """The first offset still held and the next offset to be written."""
        return self.consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)

    def offset_at(self, topic: str, partition: int, ms: int) -> int:
        """The first offset of ``partition`` written at or after ``ms`` (its end if none)."""
        found = self.consumer.offsets_for_times([TopicPartition(topic, partition, ms)], timeout=10)[0]
        return found.offset if found.offset >= 0 else self.watermarks(topic, partition)[1]

    def range_since(
        self, topic: str, since_ms: int | None, partitions: list[int] | None = None
    ) -> dict[int, tuple[int, int]]:
        """Each partition's ``[first, end)`` from ``since_ms`` (or the first offset held) to its end now."""
        ranges = {}
        for p in self.partitions(topic) if partitions is None else partitions:
            low, high = self.watermarks(topic, p)
            start = low if since_ms is None else max(low, self.offset_at(topic, p, since_ms))
            ranges[p] = (start, high)
        return ranges

    def scan(self, topic: str, ranges: dict[int, tuple[int, int]]) -> Iterator[Message]:
        """Every record of ``topic`` in each partition's ``[first, end)``; AuditError past the timeout."""
        open_ = {p: end for p, (first, end) in ranges.items() if first < end}
        if not open_:
            return
        self.consumer.assign([TopicPartition(topic, p, ranges[p][0]) for p in open_])
        deadline = time.monotonic() + self.timeout
        try:
            while open_:
                if time.monotonic() > deadline:
                    raise AuditError(
                        f"reading {topic} took more than {self.timeout:g} s: narrow the range (--since)"
                    )
                for m in self.consumer.consume(1000, 0.5):
                    p = m.partition()
                    if p not in open_:
                        continue
                    error = m.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            del open_[p]
                        elif error.fatal():
                            raise AuditError(f"cannot read {topic}[{p}]: {error.str()}")
                        continue
                    if m.offset() >= open_[p]:
                        del open_[p]
                        continue
                    yield m
                    if m.offset() + 1 >= open_.get(p, 0):
                        open_.pop(p, None)
        finally:
            self.consumer.unassign()

    def read_at(self, topic: str, partition: int, offsets: Iterable[int]) -> dict[int, Message]:
        """The records of ``partition`` at ``offsets``; :class:`InputGone` for one no longer held."""
        wanted = sorted(set(offsets))
        if not wanted:
            return {}
        if partition not in self.partitions(topic):
            raise NotFound(f"topic {topic!r} has no partition {partition}")
        low, high = self.watermarks(topic, partition)
        gone = [o for o in wanted if o < low]
        if gone:
            raise InputGone(
                f"input {topic}[{partition}]@{gone[0]} is no longer in the topic: its first offset held is "
                f"now {low} (deleted by retention or delete-records)"
            )
        found: dict[int, Message] = {}
        clusters: list[list[int]] = [[wanted[0]]]
        for o in wanted[1:]:
            if o - clusters[-1][-1] < _GAP:
                clusters[-1].append(o)
            else:
                clusters.append([o])
        for cluster in clusters:
            for m in self.scan(topic, {partition: (cluster[0], min(cluster[-1] + 1, high))}):
                if m.offset() in cluster:
                    found[m.offset()] = m
        return found

    def provenance(self, topic: str, event_id: str, since_ms: int | None) -> list[Message]:
        """The provenance records of ``event_id`` (several if it was scored more than once), oldest first."""
        key = event_id.encode()
        partition = partition_of(key, len(self.partitions(topic)))
        ranges = self.range_since(topic, since_ms, [partition])
        return [m for m in self.scan(topic, ranges) if m.key() == key]

    def dead_letters(
        self,
        topic: str,
        since_ms: int | None,
        event_id: str | None = None,
        origin: tuple[str, int, int] | None = None,
    ) -> list[Message]:
        """Dead letters of ``event_id``, or of the input at ``origin`` (topic, partition, offset)."""
        ranges = self.range_since(topic, since_ms, None if origin is None else [origin[1]])
        if origin is not None:  # a dead letter goes to its input's partition number
            want = {
                "__connect.errors.topic": origin[0].encode(),
                "__connect.errors.partition": str(origin[1]).encode(),
                "__connect.errors.offset": str(origin[2]).encode(),
            }
        else:
            want = {"streamscore.event_id": (event_id or "").encode()}
        found = []
        for m in self.scan(topic, ranges):
            headers = dict(m.headers() or ())
            if all(headers.get(k) == v for k, v in want.items()):
                found.append(m)
        return found
