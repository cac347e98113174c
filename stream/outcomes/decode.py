"""The outcome worker's input, a batch at a time: provenance and outcome records to join halves.

The values of each topic are validated in one pydantic call (:class:`~stream.scoring.codec.BatchDecoder`:
the same per-value fallback, bounds and reasons as the scorer's input). Of a provenance record
only the fields the join and the estimate check read are checked (event id, score, model, role,
input position), the rest is not parsed into objects; an outcome is checked against its whole
contract. A record that fails is returned with its reason: an outcome goes to the dead-letter
topic, a provenance record is counted and logged.
Provenance written in a schema registry's format (``STREAMSCORE_OUTPUT_FORMAT``) is read value by
value with that format's reader.

With ``STREAMSCORE_OUTCOME_SAMPLE`` below 1, a record whose key is outside the sample is not even
read, and one whose event id is outside it is dropped once read (the key need not be the id).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import Message
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stream.contracts import Identifier, ModelRef, Outcome, Role
from stream.errors import PoisonEvent
from stream.kafka.partitioning import sampled
from stream.messages import TIMESTAMP_NOT_AVAILABLE
from stream.outcomes.join import Observed, Predicted
from stream.scoring.codec import BatchDecoder, schema_error

__all__ = ["HalfReader", "Halves", "InputPosition", "ProvenanceScore"]


class InputPosition(BaseModel):
    """Where the judged event was read: the part of :class:`~stream.contracts.InputRef` kept."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    topic: str
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)


class ProvenanceScore(BaseModel):
    """The part of a :class:`~stream.contracts.Provenance` record the join and the estimate check read."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: Identifier
    score: float = Field(ge=0.0, le=1.0)
    model: ModelRef
    role: Role = "champion"
    input: InputPosition | None = None  # read by the estimate check (stream.outcomes.estimates)


@dataclass(slots=True)
class Halves:
    """One batch read: the halves to join, each with its partition, and the records refused."""

    items: list[tuple[int, Predicted | Observed]] = field(default_factory=list)
    outcome_values: dict[tuple[int, str], bytes] = field(default_factory=dict)  # as read, should they move
    refused_outcomes: list[tuple[Message, PoisonEvent]] = field(default_factory=list)
    refused_provenance: list[tuple[Message, PoisonEvent]] = field(default_factory=list)
    answers: list[ProvenanceScore] = field(default_factory=list)  # every prediction read, shadow ones too

    def hand_to(self, follower: Follower) -> None:
        """Every prediction read, then every outcome, to an in-memory pairing (challenger, estimates)."""
        for record in self.answers:
            follower.predicted(record)
        for _, half in self.items:
            if isinstance(half, Observed):
                follower.observed(half.event_id, half.positive)


class Follower(Protocol):
    """What follows the predictions and outcomes read, beside the join."""

    def predicted(self, record: ProvenanceScore) -> None: ...

    def observed(self, event_id: str, positive: bool) -> None: ...


class HalfReader:
    """Turns a batch of provenance, outcome and repartitioned outcome records into join halves."""

    def __init__(
        self,
        provenance_topic: str,
        repartition_topic: str,
        sample: float,
        max_bytes: int,
        read_provenance: Callable[[bytes], BaseModel] | None = None,
    ) -> None:
        """``read_provenance`` reads one value of a registered format (default: JSON, in batches)."""
        self._provenance_topic, self._repartition_topic = provenance_topic, repartition_topic
        self._sample = sample
        self._provenance: Callable[[Sequence[bytes | None]], Sequence[Any]] = (
            BatchDecoder(max_bytes, ProvenanceScore) if read_provenance is None else _each(read_provenance)
        )
        self._outcomes = BatchDecoder(max_bytes, Outcome)
        self._models: dict[tuple[str, str], str] = {}  # (name, version) -> name/version

    def __call__(self, batch: Sequence[Message]) -> Halves:
        """The halves of ``batch`` (in no particular order: the join sorts them by time)."""
        rate, provenance_topic = self._sample, self._provenance_topic
        predictions: list[Message] = []
        outcomes: list[Message] = []
        for m in batch:
            if rate < 1.0:
                key = m.key()
                if key is not None and not sampled(key, rate):
                    continue
            (predictions if m.topic() == provenance_topic else outcomes).append(m)
        out = Halves()
        items, models = out.items, self._models
        now_ms = int(time.time() * 1000)  # for a record without a timestamp
        for m, record in zip(predictions, self._provenance([m.value() for m in predictions]), strict=True):
            if isinstance(record, PoisonEvent):
                out.refused_provenance.append((m, record))
            elif rate >= 1.0 or sampled(record.event_id.encode(), rate):
                out.answers.append(record)
                if record.role == "shadow":
                    continue  # compared with the live answer (stream.outcomes.pairing), not joined
                model = record.model
                ref = (model.name, model.version)
                name = models.get(ref)
                if name is None:
                    if len(models) >= 1_024:  # names come from the records: the cache stays bounded
                        models.clear()
                    name = models[ref] = f"{model.name}/{model.version}"
                kind, ms = m.timestamp()
                at_ms = ms if kind != TIMESTAMP_NOT_AVAILABLE and ms > 0 else now_ms
                items.append(
                    (m.partition(), Predicted(record.event_id, name, model.sha256, record.score, at_ms))
                )
        repartition_topic, values = self._repartition_topic, out.outcome_values
        outcome_values = [m.value() for m in outcomes]
        for m, value, outcome in zip(outcomes, outcome_values, self._outcomes(outcome_values), strict=True):
            if isinstance(outcome, PoisonEvent):
                out.refused_outcomes.append((m, outcome))
            elif rate >= 1.0 or sampled(outcome.event_id.encode(), rate):
                partition, event_id = m.partition(), outcome.event_id
                kind, ms = m.timestamp()
                at_ms = ms if kind != TIMESTAMP_NOT_AVAILABLE and ms > 0 else now_ms
                placed = m.topic() == repartition_topic
                items.append((partition, Observed(event_id, outcome.positive, at_ms, placed)))
                values[(partition, event_id)] = value
        return out


def _each(read: Callable[[bytes], BaseModel]) -> Callable[[Sequence[bytes | None]], list[Any]]:
    """A batch reader from a reader of one value: each value's record, or the reason it is refused."""

    def batch(values: Sequence[bytes | None]) -> list[Any]:
        out: list[Any] = []
        for value in values:
            try:
                out.append(read(value or b""))
            except ValidationError as exc:
                out.append(schema_error(exc))
            except PoisonEvent as exc:
                out.append(exc)
        return out

    return batch
