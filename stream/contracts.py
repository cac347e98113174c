"""The message contracts and the model card, as pydantic models.

These are the contracts: the JSON Schema documents in ``schemas/`` are generated from them
(``streamscore schemas``), and a test fails when a checked-in document is stale. The hot path
builds output records directly for speed; tests check those records validate against these models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from stream.contract_types import EventTime, Identifier, InputId, Sha256
from stream.model_card import FeatureSpec, InputType, ModelCard, ModelInput, ModelOutput, ReferenceStats, Task
from stream.reports import DriftReport, EstimateCheckReport, OffsetRange, PerformanceReport

__all__ = [
    "CONTRACTS",
    "MAX_FEATURES",
    "MAX_STRING_LENGTH",
    "DeadLetter",
    "DriftReport",
    "EstimateCheckReport",
    "Event",
    "FeatureSpec",
    "InputRef",
    "InputType",
    "ModelCard",
    "ModelInput",
    "ModelOutput",
    "ModelRef",
    "OffsetRange",
    "Outcome",
    "PerformanceReport",
    "Prediction",
    "Provenance",
    "ReferenceStats",
    "Role",
    "ScorerRef",
    "Task",
]  # fmt: skip

Role = Literal["champion", "canary", "shadow", "replay"]
"""Which part a model played for an event: the live answer (``champion``, or ``canary`` for the
challenger's share of keys), a ``shadow`` answer nobody acts on, or a ``replay`` of history."""

MAX_FEATURES = 256
MAX_STRING_LENGTH = 256


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Event(_Contract):
    """An input event on the events topic (JSON, UTF-8)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "event_id": "3f1c9e0a-5b7d-4c1e-9a53-2f0d8c6b7e41",
                    "occurred_at": "2026-11-27T09:30:00.125Z",
                    "entity_id": "applicant-18231",
                    "features": {"salary": 103125.48, "commission": 0, "age": 21, "elevel": 2, "car": 8,
                                 "zipcode": 3, "hvalue": 319768.96, "hyears": 4, "loan": 338349.74},
                }
            ]
        },
    )  # fmt: skip

    event_id: InputId = Field(description="Unique id of the event, chosen by the producer.")
    occurred_at: EventTime = Field(
        description="When the event happened (RFC 3339, with offset), from 0001-01-01T00:00:00Z to "
        "9999-12-31T23:59:59Z."
    )
    entity_id: InputId | None = Field(None, description="Who or what the event is about.")
    features: dict[str, Any] = Field(
        description="Feature values by name; names, types and meaning come from the model card."
    )


class Prediction(_Contract):
    """A prediction on the predictions topic, keyed like its input event."""

    event_id: Identifier
    entity_id: Identifier | None = None
    score: float = Field(
        description="Binary classifier: probability of the positive class. Multiclass: probability of "
        "the decided label. Regressor: the predicted value."
    )
    label: str = Field(
        description="Binary: the positive label when score >= threshold, else the negative one. "
        "Multiclass: the most probable class. Regressor: empty (no class is decided)."
    )
    threshold: float = Field(ge=0.0, le=1.0, description="The card's decision threshold (binary only).")
    model_name: Identifier
    model_version: Identifier
    role: Role = Field("champion", description="The part the model played for this event.")
    occurred_at: AwareDatetime
    scored_at: AwareDatetime
    probabilities: dict[str, float] | None = Field(
        None, description="Multiclass: each class's probability, by label. Absent for other tasks."
    )
    reasons: dict[str, float] | None = Field(
        None,
        description="With STREAMSCORE_REASONS=K: the K features whose exact contributions to the score's "
        "margin are largest in magnitude, largest first: feature name -> contribution. Absent otherwise.",
    )


class InputRef(_Contract):
    """Where an input event was read."""

    topic: str
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    timestamp_ms: int | None = Field(description="Kafka timestamp of the input record.")


class ModelRef(_Contract):
    name: Identifier
    version: Identifier
    sha256: Sha256


class ScorerRef(_Contract):
    version: str = Field(description="streamscore package version.")
    revision: str | None = Field(description="git revision of the code, when known.")
    worker_id: str = Field(description="host:pid of the worker process.")


class Provenance(_Contract):
    """How one prediction was made: exact input, exact model, exact code, and when.

    Keyed by ``event_id`` (not like the input), so that it is co-partitioned with the outcomes.
    """

    event_id: Identifier
    score: float = Field(description="The prediction's score (a regressor's value).")
    input: InputRef
    model: ModelRef
    role: Role = Field("champion", description="The part the model played for this event.")
    feature_hash: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")] = Field(
        description="Keyed BLAKE2b-128 of the float32 feature vector in card order (a string "
        "feature's column holds its category code), then each string feature's UTF-8 value and a zero byte."
    )
    personal: dict[str, str] = Field(
        description="Keyed hashes of the features the card marks personal; never clear values."
    )
    scorer: ScorerRef
    occurred_at: AwareDatetime
    received_at: AwareDatetime
    scored_at: AwareDatetime
    emitted_at: AwareDatetime


class DeadLetter(_Contract):
    """The headers of a record on the dead-letter topic (Kafka Connect's names).

    The record's key and value are the original bytes, unchanged.
    """

    topic: str = Field(alias="__connect.errors.topic")
    partition: int = Field(alias="__connect.errors.partition")
    offset: int = Field(alias="__connect.errors.offset")
    timestamp_ms: int | None = Field(None, alias="__connect.errors.timestamp")
    exception_class: str = Field(alias="__connect.errors.exception.class.name")
    reason: str = Field(alias="__connect.errors.exception.message")
    stage: Literal["decode", "schema", "features", "score"] = Field(alias="__connect.errors.stage")
    event_id: str | None = Field(None, alias="streamscore.event_id")

    @classmethod
    def from_headers(cls, headers: list[tuple[str, bytes]] | None) -> DeadLetter:
        known = {field.alias for field in cls.model_fields.values()}
        return cls.model_validate({k: v.decode() for k, v in headers or [] if k in known})


class Outcome(_Contract):
    """A true outcome on the outcomes topic, keyed by ``event_id`` (Kafka's default partitioner)."""

    event_id: InputId
    positive: bool = Field(description="True when the event turned out to be of the positive class.")
    observed_at: AwareDatetime = Field(description="When the outcome became known.")


CONTRACTS: dict[str, type[BaseModel]] = {
    "event": Event,
    "prediction": Prediction,
    "provenance": Provenance,
    "dead-letter-headers": DeadLetter,
    "drift-report": DriftReport,
    "outcome": Outcome,
    "performance-report": PerformanceReport,
    "estimate-check-report": EstimateCheckReport,
    "model-card": ModelCard,
}


def json_schemas() -> dict[str, str]:
    """File name -> JSON Schema document of each contract, as written to ``schemas/``."""
    return {
        f"{name}.schema.json": json.dumps(model.model_json_schema(by_alias=True), indent=2) + "\n"
        for name, model in CONTRACTS.items()
    }


def write_schemas(folder: Path, documents: dict[str, str] | None = None) -> list[Path]:
    """Write ``documents`` (file name -> text; by default :func:`json_schemas`) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (json_schemas() if documents is None else documents).items():
        (folder / name).write_text(text)
        written.append(folder / name)
    return written
