"""The errors streamscore raises, and what becomes of each.

    StreamscoreError
    ├── PoisonEvent          the event itself is bad: it goes to the dead-letter topic, the worker goes on
    │   ├── DecodeError      too large, not UTF-8 JSON                         (stage "decode")
    │   ├── SchemaError      the envelope breaks the Event contract            (stage "schema")
    │   ├── FeatureError     features missing, unknown, mistyped, not finite   (stage "features")
    │   └── ScoreError       the model's output for it is not a probability    (stage "score")
    ├── ModelError           a model or card that cannot serve: start-up stops, saying what to fix
    ├── ConfigError          a setting, topic layout or missing permission that cannot work: start-up stops
    └── StateRejected        saved state not ours or not usable: logged, counted, it starts fresh

Transient failures (a broker away, a delivery timing out) are not caught as values: the worker
stops without committing, and a restart resumes from the last committed offset.
"""

from __future__ import annotations

from typing import ClassVar


class StreamscoreError(Exception):
    """Base of streamscore's own errors."""


class PoisonEvent(StreamscoreError):
    """An event that can never be scored; ``stage`` says where it failed."""

    stage: ClassVar[str] = "decode"


class DecodeError(PoisonEvent):
    stage = "decode"


class SchemaError(PoisonEvent):
    stage = "schema"


class FeatureError(PoisonEvent):
    stage = "features"


class ScoreError(PoisonEvent):
    stage = "score"


class ModelError(StreamscoreError):
    """A model, its file or its card cannot be served."""


class ConfigError(StreamscoreError):
    """A setting, or the layout of existing topics, that the worker cannot run with."""


class StateRejected(StreamscoreError):
    """Saved state refused on reading; ``reason``: signature, format, version, model or shape."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
