"""The input event's shape: where an event keeps its id, its time and its features, and what becomes
of the fields streamscore does not read (:mod:`stream.scoring.events` makes the contract of a shape)."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, Field, model_validator

UnknownFields = Literal["ignore", "dead-letter"]
ENTITY_FIELD = "entity_id"
"""The entity's field keeps its name whatever the shape."""


class EventFields(BaseModel):
    """The names under which an input event carries what streamscore reads."""

    event_id_field: str = Field(
        "event_id",
        min_length=1,
        max_length=256,
        description="Top-level field holding the event's id; an event without one takes its record's key "
        "(when UTF-8 and a valid id), else topic-partition-offset (dead-lettered with UNKNOWN_FIELDS="
        "dead-letter).",
    )
    event_time_field: str = Field(
        "occurred_at",
        min_length=1,
        max_length=256,
        description="Top-level field holding when the event happened: an RFC 3339 time with offset, or "
        "epoch milliseconds; an event without one takes its record's timestamp (dead-lettered with "
        "UNKNOWN_FIELDS=dead-letter).",
    )
    features_field: str = Field(
        "features",
        max_length=1024,
        description="Field holding the object of features: empty for features at the top level of the "
        "event, a dotted path (a.b) for an object nested in another.",
    )
    unknown_fields: UnknownFields = Field(
        "ignore",
        description="Fields of an event streamscore does not read: ignore them (counted in "
        "streamscore_ignored_fields_total), or dead-letter the event (dead-letter: the strict contract, "
        "id and time required, and a writer's schema declaring other fields refused at start-up).",
    )

    @model_validator(mode="after")
    def _names_apart(self) -> Self:
        """Each name reads one thing: the id, the time, the entity and the features never share a field."""
        problem = names_problem(self.event_id_field, self.event_time_field, self.features_field)
        if problem:
            raise ValueError(problem)
        return self


def names_problem(id_field: str, time_field: str, features: str) -> str | None:
    """What makes the three names unusable together, or None."""
    for var, name in (("EVENT_ID_FIELD", id_field), ("EVENT_TIME_FIELD", time_field)):
        if "." in name:
            return (
                f"STREAMSCORE_{var}={name!r}: name a top-level field (no '.'); only "
                "STREAMSCORE_FEATURES_FIELD takes a dotted path"
            )
        if name == ENTITY_FIELD:
            return f"STREAMSCORE_{var}={name!r} is the entity's field: choose another name"
    if id_field == time_field:
        return (
            f"STREAMSCORE_EVENT_ID_FIELD and STREAMSCORE_EVENT_TIME_FIELD are both {id_field!r}: "
            "the id and the time need fields of their own"
        )
    if features:
        if any(not part for part in features.split(".")):
            return f"STREAMSCORE_FEATURES_FIELD={features!r}: a name, or names joined by '.' (a.b), or empty"
        top = features.split(".")[0]
        if top in (id_field, time_field, ENTITY_FIELD):
            return (
                f"STREAMSCORE_FEATURES_FIELD={features!r} starts at the field {top!r}, which holds the "
                "event's id, time or entity: choose another"
            )
    return None
