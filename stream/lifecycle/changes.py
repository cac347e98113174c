"""The ``model-changes`` topic: which model scored which input offsets, recorded as it happens.

Every worker writes a :class:`ModelChange` when it starts scoring partitions (``start`` at its first
assignment, ``assign`` at later ones), when it switches model between two batches (``switch``), and
when an aborted transaction made it read partitions again with a model other than the one their
committed offsets were scored with (``rewind``). Each record gives, per input partition, the
**first offset scored by the new model**: the batch's own first offset for the partitions in the
switching batch, the consumer's position for the others, and for a partition not read yet its
committed offset (or the log's start when nothing is committed).

The records go out with the batch's records (in its transaction, exactly once), so a change is
durable exactly when the predictions it explains are. The topic has one partition (one order for
all workers) and is compacted under keys that never repeat (``<app>/<instance>/<ms>/<n>``): nothing
is replaced and nothing expires. :class:`Timeline` reads the records back into "which model scored
partition p at offset o".
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Sequence
from typing import Literal

from confluent_kafka import Consumer, TopicPartition
from pydantic import AwareDatetime, BaseModel, ConfigDict

from stream.contracts import ModelCard, ModelRef
from stream.messages import Inbound, Record

__all__ = ["ChangeLog", "ModelChange", "Timeline", "first_offsets", "model_ref", "starting_offsets"]

Kind = Literal["start", "assign", "switch", "rewind"]


def model_ref(card: ModelCard) -> ModelRef:
    """A model version as provenance names it."""
    return ModelRef(name=card.name, version=card.version, sha256=card.sha256)


class ModelChange(BaseModel):
    """One record of the ``model-changes`` topic."""

    model_config = ConfigDict(extra="forbid")
    kind: Kind
    old: ModelRef | None
    new: ModelRef
    app_id: str
    instance_id: str
    worker_id: str
    at: AwareDatetime
    topic: str
    first_offsets: dict[int, int]  # input partition -> first offset scored by ``new``


class ChangeLog:
    """Builds one worker's change records."""

    def __init__(self, topic: str, input_topic: str, app_id: str, instance_id: str, worker_id: str) -> None:
        self.topic, self.input_topic = topic, input_topic
        self.app_id, self.instance_id, self.worker_id = app_id, instance_id, worker_id
        self._seq = itertools.count()
        self.started = False

    def record(
        self,
        kind: Kind,
        old: ModelCard | None,
        new: ModelCard,
        offsets: dict[int, int],
    ) -> Record:
        """The record of ``kind``: ``new`` scores each partition from its offset in ``offsets`` on."""
        at = dt.datetime.now(dt.UTC)
        change = ModelChange(
            kind=kind,
            old=model_ref(old) if old is not None else None,
            new=model_ref(new),
            app_id=self.app_id,
            instance_id=self.instance_id,
            worker_id=self.worker_id,
            at=at,
            topic=self.input_topic,
            first_offsets=dict(sorted(offsets.items())),
        )
        key = f"{self.app_id}/{self.instance_id}/{int(at.timestamp() * 1000)}/{next(self._seq)}"
        return Record(self.topic, key.encode(), change.model_dump_json().encode(), 0, -1)


def first_offsets(consumer: Consumer, batch: Sequence[Inbound], timeout: float) -> dict[int, int]:
    """Per owned partition, the first offset of ``batch`` or, for partitions not in it, the next one."""
    first: dict[int, int] = {}
    for msg in batch:
        first.setdefault(msg.partition(), msg.offset())
    others = [tp for tp in consumer.assignment() if tp.partition not in first]
    unread = []
    for tp in consumer.position(others) if others else []:
        if tp.offset >= 0:
            first[tp.partition] = tp.offset
        else:
            unread.append(tp)
    return first | starting_offsets(consumer, unread, timeout)


def starting_offsets(
    consumer: Consumer, partitions: Iterable[TopicPartition], timeout: float
) -> dict[int, int]:
    """Where reading ``partitions`` starts: the committed offset, else the log's start (``earliest``)."""
    wanted = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
    if not wanted:
        return {}
    out = {}
    for tp in consumer.committed(wanted, timeout=timeout):
        if tp.offset >= 0:
            out[tp.partition] = tp.offset
        else:
            out[tp.partition] = consumer.get_watermark_offsets(tp, timeout=timeout, cached=False)[0]
    return out


class Timeline:
    """Which model scored which offsets, from the change records in topic order."""

    def __init__(self, changes: Iterable[ModelChange] = ()) -> None:
        self._segments: dict[int, list[tuple[int, ModelRef]]] = {}
        for change in changes:
            self.add(change)

    def add(self, change: ModelChange) -> None:
        """From each partition's first offset on, ``change.new`` (what came after it is replaced)."""
        for partition, offset in change.first_offsets.items():
            kept = [s for s in self._segments.get(partition, []) if s[0] < offset]
            self._segments[partition] = [*kept, (offset, change.new)]

    def model(self, partition: int, offset: int) -> ModelRef | None:
        """The model that scored ``offset`` of ``partition`` (None before any record covers it)."""
        found = None
        for start, model in self._segments.get(partition, []):
            if start > offset:
                break
            found = model
        return found

    def switches(self, partition: int) -> list[tuple[int, ModelRef]]:
        """``(first offset, model)`` of each stretch of ``partition``."""
        return list(self._segments.get(partition, []))
