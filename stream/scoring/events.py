"""The event contract of a shape: where a producer's events keep their id, time and features.

An :class:`EventShape` names the top-level field of the event's id and of its time, and where its
features are: an object under a field (``features``), under a dotted path (``a.b``), or the event's
top-level fields themselves (empty). :attr:`EventShape.contract` is the pydantic model of its events,
built once (``create_model`` with validation aliases), whose objects offer what the hot path reads:
``event_id``, ``occurred_at``, ``entity_id`` (the entity's field keeps its name) and ``features``
(a dict). With features at the top level they are the event's extra fields.

Fields the shape does not read are ignored (``unknown_fields="ignore"``, the default): kept as the
model's extras so that :meth:`EventShape.ignored` counts them. An event of such a shape may lack its
id or its time: :meth:`EventShape.complete` gives it its record's key (else ``topic-partition-offset``)
and its record's timestamp. With ``unknown_fields="dead-letter"`` the contract is strict as the
fixed :class:`~stream.contracts.Event` is (which it is, under the default names): id and time
required, any other top-level field refused.

A time is an RFC 3339 string with an offset or a number of epoch milliseconds (an Avro timestamp
reads as a time); one that does not parse, or a missing id or time the record cannot make up for,
is a schema error naming the field.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import AliasPath, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from stream.contract_types import EventTime, InputId
from stream.contracts import Event
from stream.errors import PoisonEvent, SchemaError
from stream.messages import TIMESTAMP_NOT_AVAILABLE, Inbound
from stream.settings.events import ENTITY_FIELD, EventFields, UnknownFields, names_problem

__all__ = ["DEFAULT_SHAPE", "FIXED_SHAPE", "EventShape", "ShapedEvent"]

_ID = TypeAdapter(InputId)
_TIME = TypeAdapter(EventTime, config=ConfigDict(val_temporal_unit="milliseconds"))
_EXTRAS = operator.attrgetter("__pydantic_extra__")


class ShapedEvent(BaseModel):
    """An event of a shape that ignores the fields it does not read (they stay as extras)."""

    model_config = ConfigDict(extra="allow", frozen=True, val_temporal_unit="milliseconds")


class _StrictEvent(BaseModel):
    """An event of a shape that refuses the fields it does not read."""

    model_config = ConfigDict(extra="forbid", frozen=True, val_temporal_unit="milliseconds")


class _TopLevel(BaseModel):
    """An event whose features are its top-level fields besides the id, the time and the entity."""

    model_config = ConfigDict(extra="allow", frozen=True, val_temporal_unit="milliseconds")

    @property
    def features(self) -> dict[str, Any]:
        """The event's features: its fields besides the id, the time and the entity."""
        return self.__pydantic_extra__  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class EventShape:
    """Where an event keeps its id, time and features; what becomes of the fields not read."""

    id_field: str = "event_id"
    time_field: str = "occurred_at"
    features_field: str = "features"
    unknown_fields: UnknownFields = "ignore"

    def __post_init__(self) -> None:
        problem = names_problem(self.id_field, self.time_field, self.features_field)
        if problem:
            raise ValueError(problem)

    @classmethod
    def of(cls, settings: EventFields) -> EventShape:
        """The shape the settings describe (``STREAMSCORE_EVENT_ID_FIELD`` and the others)."""
        return cls(
            settings.event_id_field,
            settings.event_time_field,
            settings.features_field,
            settings.unknown_fields,
        )

    @property
    def strict(self) -> bool:
        """Fields not read make the event a dead letter (and a writer's schema declaring them is refused)."""
        return self.unknown_fields == "dead-letter"

    @property
    def flat(self) -> bool:
        """The features are the event's top-level fields."""
        return not self.features_field

    @property
    def path(self) -> tuple[str, ...]:
        """The fields leading to the features' object (empty: the event itself)."""
        return tuple(self.features_field.split(".")) if self.features_field else ()

    @property
    def completes(self) -> bool:
        """An event may lack its id or time: :meth:`complete` gives it its record's."""
        return not self.strict

    @property
    def envelope(self) -> tuple[str, ...]:
        """The top-level fields read besides the features of a flat shape: id, time, entity, features."""
        return (self.id_field, self.time_field, ENTITY_FIELD, *self.path[:1])

    @property
    def required(self) -> tuple[str, ...]:
        """The top-level fields every event must carry (a writer's schema must declare them)."""
        return (*((self.id_field, self.time_field) if self.strict else ()), *self.path[:1])

    @property
    def contract(self) -> type[BaseModel]:
        """The pydantic model of this shape's events (built once per shape)."""
        return _contract(self)

    def complete(self, batch: Sequence[Inbound], decoded: list[Any]) -> None:
        """Give each event of ``decoded`` lacking its id its record's key (UTF-8 and a valid id), else
        ``topic-partition-offset``, and lacking its time its record's timestamp, in place; one that
        cannot be completed becomes a :class:`SchemaError` naming the field."""
        contract = self.contract
        for i, event in enumerate(decoded):
            if type(event) is contract and (event.event_id is None or event.occurred_at is None):
                decoded[i] = self._completed(batch[i], event)

    def _completed(self, msg: Inbound, event: BaseModel) -> BaseModel | PoisonEvent:
        update: dict[str, Any] = {}
        if event.event_id is None:  # type: ignore[attr-defined]
            found = record_id(msg)
            if found is None:
                return SchemaError(
                    f"{self.id_field}: missing, and neither the record's key nor its topic-partition-offset "
                    "is a valid id"
                )
            update["event_id"] = found
        if event.occurred_at is None:  # type: ignore[attr-defined]
            kind, ms = msg.timestamp()
            if kind == TIMESTAMP_NOT_AVAILABLE:
                return SchemaError(f"{self.time_field}: missing, and the record has no timestamp")
            try:
                update["occurred_at"] = _TIME.validate_python(ms)
            except ValidationError:
                return SchemaError(
                    f"{self.time_field}: missing, and the record's timestamp {ms} is out of range"
                )
        return event.model_copy(update=update)

    def extras(self, event: BaseModel) -> dict[str, Any] | None:
        """The top-level fields of ``event`` the shape does not read (None: a flat shape's extras are
        its features, and a strict contract keeps none)."""
        return None if self.flat else event.__pydantic_extra__

    def ignored(self, events: Sequence[BaseModel]) -> dict[str, int]:
        """Field name -> events of ``events`` that carried it at their top level unread (none for a
        flat shape, whose top-level fields are its features: the feature reader counts those unread)."""
        counts: dict[str, int] = {}
        if self.strict or self.flat or not any(map(_EXTRAS, events)):
            return counts
        for event in events:
            for name in event.__pydantic_extra__ or ():
                counts[name] = counts.get(name, 0) + 1
        return counts


DEFAULT_SHAPE = EventShape()
"""The settings' default: ``event_id``, ``occurred_at``, ``features``; other fields ignored."""
FIXED_SHAPE = EventShape(unknown_fields="dead-letter")
"""The fixed contract, :class:`~stream.contracts.Event`: ids and times required, no other field."""


def record_id(msg: Inbound) -> str | None:
    """The id an event without one takes: its record's key (UTF-8 and a valid id), else
    ``topic-partition-offset``; None when neither is a valid id."""
    key = msg.key()
    if key:
        try:
            return _ID.validate_python(key.decode())
        except (UnicodeDecodeError, ValidationError):
            pass
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    if topic is None or partition is None or offset is None or offset < 0:
        return None
    try:
        return _ID.validate_python(f"{topic}-{partition}-{offset}")
    except ValidationError:
        return None


@cache
def _contract(shape: EventShape) -> type[BaseModel]:
    """The pydantic model of ``shape``'s events: :class:`Event` itself for the fixed shape."""
    if shape == FIXED_SHAPE:
        return Event
    about = Event.model_fields
    optional = not shape.strict
    fields: dict[str, Any] = {
        "event_id": _field(InputId, optional, shape.id_field, "event_id", about["event_id"].description),
        "occurred_at": _field(
            EventTime, optional, shape.time_field, "occurred_at", about["occurred_at"].description
        ),
        "entity_id": (InputId | None, Field(None, description=about["entity_id"].description)),
    }
    if shape.flat:
        base: type[BaseModel] = _TopLevel
    else:
        base = _StrictEvent if shape.strict else ShapedEvent
        path = shape.path
        alias = (AliasPath(*path) if len(path) > 1 else path[0]) if path != ("features",) else None
        fields["features"] = (
            dict[str, Any],
            Field(validation_alias=alias, description=about["features"].description),
        )
    return create_model("Event", __base__=base, __doc__=Event.__doc__, **fields)


def _field(
    kind: Any, optional: bool, name: str, default_name: str, description: str | None
) -> tuple[Any, Any]:
    """A field of the contract read from ``name``: optional (None when missing) or required."""
    alias = name if name != default_name else None
    if optional:
        return kind | None, Field(None, validation_alias=alias, description=description)
    return kind, Field(validation_alias=alias, description=description)
