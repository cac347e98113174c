"""The ``model-changes`` topic: which model scored which input offsets, recorded as it happens.

A worker records, per input partition, the **first offset scored by a model**: when it starts
(``start``), when it is given partitions later (``assign``), when it switches model between two
batches (``switch``), and when an aborted transaction makes it read partitions again (``rewind``,
only for partitions whose record that transaction held). A partition's record is written with the
first batch that holds one of its messages, from that message's offset: the loop knows it exactly,
and asks the broker for nothing (no committed offsets, no watermarks) on a rebalance or an abort.

The records go out with the batch they explain (in its transaction, exactly once), so a change is
durable exactly when the predictions it explains are. The topic has one partition (one order for
all workers) and is compacted under keys that never repeat (``<app>/<instance>/<ms>/<n>``): nothing
is replaced and nothing expires. :class:`Timeline` reads the records back into "which model scored
partition p at offset o".
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from stream.contracts import ModelCard, ModelRef
from stream.messages import Inbound, Record

__all__ = ["ChangeLog", "ModelChange", "Timeline", "model_ref"]

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
    """One worker's change records: which owned partitions still need one, and why.

    The loop reports what happens (:meth:`assigned`, :meth:`switched`, :meth:`revoked`,
    :meth:`settled`, :meth:`aborted`) and asks :meth:`due` for the records of each batch before it
    produces the batch's own.
    """

    def __init__(self, topic: str, input_topic: str, app_id: str, instance_id: str, worker_id: str) -> None:
        self.topic, self.input_topic = topic, input_topic
        self.app_id, self.instance_id, self.worker_id = app_id, instance_id, worker_id
        self._seq = itertools.count()
        self._started = False
        self._owned: set[int] = set()
        self._due: dict[int, _Why] = {}  # partition -> why its next scored offset needs a record
        self._open: dict[int, _Why] = {}  # recorded since the last commit (undone by an abort)

    def assigned(self, partitions: Iterable[int]) -> None:
        """``partitions`` are now owned: the model of their first scored offset is recorded."""
        why = _Why("assign" if self._started else "start", None)
        self._started = True
        for p in partitions:
            self._owned.add(p)
            self._due[p] = why

    def switched(self, old: ModelCard) -> None:
        """A new model scores from this batch on (a partition not yet recorded keeps its reason)."""
        why = _Why("switch", old)
        for p in self._owned:
            self._due.setdefault(p, why)

    def revoked(self, partitions: Iterable[int]) -> None:
        """``partitions`` are no longer owned (revoked after a commit, or lost)."""
        for p in partitions:
            self._owned.discard(p)
            self._due.pop(p, None)
            self._open.pop(p, None)

    def settled(self) -> None:
        """Everything produced so far is committed."""
        self._open.clear()

    def aborted(self) -> None:
        """The open transaction is gone: its records are due again where the batches are re-read."""
        for p, why in self._open.items():
            if p in self._owned:
                self._due.setdefault(p, why)
        self._open.clear()

    def due(self, batch: Sequence[Inbound], new: ModelCard) -> list[Record]:
        """The records ``batch`` owes: ``new`` scores each due partition from its first offset here."""
        if not self._due:
            return []
        first: dict[int, int] = {}
        due = self._due
        for msg in batch:
            p = msg.partition()
            if p in due and p not in first:
                first[p] = msg.offset()
        grouped: dict[_Why, dict[int, int]] = {}
        for p, offset in first.items():
            why = due.pop(p)
            self._open[p] = why
            grouped.setdefault(why, {})[p] = offset
        return [self.record(why.kind, why.old, new, offsets) for why, offsets in grouped.items()]

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


@dataclass(frozen=True, eq=False)  # one per event, shared by its partitions (grouped by identity)
class _Why:
    """Why a partition needs a record: the change's kind and the model it replaced (if known)."""

    kind: Kind
    old: ModelCard | None


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
