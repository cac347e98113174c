"""What every registered format shares: the event's envelope, the output contracts, a decoder's result.

Each format (:mod:`.avro`, :mod:`.json_schema`) makes the registered forms of the contracts;
checks that a registered input schema can carry the model card's features (the envelope
``event_id``, ``occurred_at``, ``features``, and under ``features`` a number for every feature the
card lists, by name; a schema that cannot is refused with the first reason); decodes registered
input values to the same validated events as JSON's, or the poison that refuses each; and writes
predictions and provenance: the header of their registered schema, then the payload. Dead letters
keep the input's bytes; other topics stay JSON.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from stream.contracts import Event, Prediction, Provenance
from stream.errors import PoisonEvent

OUTPUTS: dict[str, type[BaseModel]] = {"prediction": Prediction, "provenance": Provenance}

ENVELOPE = ("event_id", "occurred_at", "features")

Decoded = list[Event | PoisonEvent]


def dumps(schema: dict[str, Any]) -> str:
    return json.dumps(schema, separators=(",", ":"))
