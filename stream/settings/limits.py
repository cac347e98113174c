"""Input bounds: what one event may cost before it is a dead letter, and the largest record produced."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, Field, model_validator

from stream.contracts import MAX_FEATURES, MAX_STRING_LENGTH
from stream.messages import MAX_KEY_BYTES, MAX_RECORD_BYTES

DEFAULT_MAX_CLOCK_SKEW_S = 86_400.0
PREDICTION_ROOM = 32_768  # a prediction's bytes besides its key: value, headers, framing


class InputLimits(BaseModel):
    """What an input may hold, and how large a record may be."""

    max_message_bytes: int = Field(
        65_536, ge=256, description="Larger input messages are dead-lettered unparsed."
    )
    max_key_bytes: int = Field(
        MAX_KEY_BYTES,
        ge=16,
        description="Events with a longer key are dead-lettered (a prediction carries its event's key).",
    )
    max_record_bytes: int = Field(
        MAX_RECORD_BYTES,
        ge=65_536,
        description="Largest record produced (key, value and headers); a dead letter of a larger input is "
        "cut to fit, saying so. At most the output topics' max.message.bytes.",
    )
    max_features: int = Field(
        MAX_FEATURES, ge=1, description="Events with more features are dead-lettered before they are read."
    )
    max_string_length: int = Field(
        MAX_STRING_LENGTH,
        ge=1,
        description="Events with a longer feature name or string value are dead-lettered.",
    )
    max_clock_skew_s: float = Field(
        DEFAULT_MAX_CLOCK_SKEW_S,
        gt=0,
        description="Events whose occurred_at is further than this from the time they are scored (either "
        "way), in seconds, are scored but kept out of the end-to-end latency, and counted in "
        "streamscore_events_clock_skewed_total.",
    )

    @model_validator(mode="after")
    def _predictions_fit(self) -> Self:
        """A prediction carries its event's key: the largest key must leave room for the rest."""
        if self.max_key_bytes + PREDICTION_ROOM > self.max_record_bytes:
            raise ValueError(
                f"STREAMSCORE_MAX_KEY_BYTES={self.max_key_bytes} leaves no room for a prediction in "
                f"STREAMSCORE_MAX_RECORD_BYTES={self.max_record_bytes}: keep the key at least "
                f"{PREDICTION_ROOM} bytes under the record limit"
            )
        return self
