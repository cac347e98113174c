"""Bringing a partition's store up to date from its changelog when the partition is assigned.

The store saves, with its entries, the next changelog offset it has applied (its checkpoint,
written at each commit). On assignment the changelog is read from there to its end: a restarted
worker reads only what it had not applied (nothing after a clean stop; the last commit interval
after SIGKILL), a new host reads it all. A checkpoint the changelog no longer matches (outside its
offsets: a recreated topic) or older than the retention (compaction may have dropped tombstones
since) is not trusted: the partition's entries are dropped and read again from the start.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from stream.outcomes.store import PendingStore

__all__ = ["ChangelogReader", "start_offset"]

BATCH = 10_000


def start_offset(
    saved: tuple[int, float] | None, low: int, high: int, now: float, retention_s: float
) -> int | None:
    """Where to read the changelog from, or None when the store's copy is not to be trusted."""
    if saved is None or now - saved[1] > retention_s or not low <= saved[0] <= high:
        return None
    return saved[0]


class ChangelogReader:
    """Reads changelog partitions into the store (its own consumer, assigned, never committing)."""

    def __init__(
        self, config: dict[str, Any], changelog: str, retention_s: float, tick: Callable[[], None]
    ) -> None:
        self.consumer = Consumer({**config, "enable.auto.commit": False})
        self.changelog, self.retention_s, self.tick = changelog, retention_s, tick

    def catch_up(self, store: PendingStore, partition: int) -> tuple[int, set[bytes]]:
        """Apply the records ``store`` lacks; the records applied and the keys left refused."""
        tp = TopicPartition(self.changelog, partition)
        low, high = self.consumer.get_watermark_offsets(tp, timeout=10)
        start = start_offset(store.checkpoint(partition), low, high, time.time(), self.retention_s)
        if start is None:
            store.drop(partition)
            start = low
        applied, refused = 0, set()
        if start < high:
            self.consumer.assign([TopicPartition(self.changelog, partition, start)])
            position = start
            while position < high:
                self.tick()
                wanted = min(BATCH, high - position)  # returns once they are in, not after the timeout
                got = [m for m in self.consumer.consume(wanted, 1.0) if m.error() is None]
                if got:
                    refused |= store.restore(partition, [(m.key() or b"", m.value()) for m in got])
                    applied += len(got)
                    position = got[-1].offset() + 1
                else:  # the last offsets may be gone (compacted): where the consumer stands says
                    position = max(position, self.consumer.position([tp])[0].offset)
            self.consumer.unassign()
        store.set_checkpoint(partition, high)
        return applied, refused

    def close(self) -> None:
        self.consumer.close()
