"""The registered formats by name: what each gives the worker and the commands.

A format is one module (:mod:`.avro`, :mod:`.json_schema`, :mod:`.protobuf`) ending in a
:class:`Codec`; :func:`codec` imports the one asked for, so a worker imports no other format's
libraries. Adding a format is a new module and a line of :data:`MODULES`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka.schema_registry import Schema
from pydantic import BaseModel

from stream.contracts import Event, ModelCard
from stream.errors import PoisonEvent
from stream.formats.bounds import SchemaLimits
from stream.formats.registry import SchemaSource, WriterSchemas
from stream.scoring.events import EventShape
from stream.scoring.records import Serialize
from stream.settings import WireFormat

Decoder = Callable[[Sequence[bytes | None]], list[Event | PoisonEvent]]


class RegisteredDecoder(Protocol):
    """A registered format's decoder: values to events (or why not), by the writer schemas it holds."""

    schemas: WriterSchemas[Any]

    def __call__(self, values: Sequence[bytes | None]) -> list[Event | PoisonEvent]: ...


MakeDecoder = Callable[[SchemaSource, ModelCard, int, SchemaLimits | None, EventShape], RegisteredDecoder]
"""(registry, the card, the largest value in bytes, the schema limits, the event's shape) -> a decoder
whose ``schemas`` are the writer schemas it holds (each checked to carry the card's features)."""
Read = Callable[[bytes], object]
"""A whole wire value (header included) -> the record it holds (a dict)."""

MODULES: dict[str, str] = {
    "avro": "stream.formats.avro",
    "json-schema": "stream.formats.json_schema",
    "protobuf": "stream.formats.protobuf",
}
"""The module of each registered format."""
SCHEMA_TYPES: dict[str, str] = {"avro": "AVRO", "json-schema": "JSON", "protobuf": "PROTOBUF"}
"""Each registered format's schema type, as the registry names it."""
LABELS: dict[str, str] = {"AVRO": "Avro schema", "JSON": "JSON Schema", "PROTOBUF": "Protobuf schema"}
"""What a value of each schema type is called (``tail``): "Avro schema id 3", "JSON Schema id 4"."""


@dataclass(frozen=True, slots=True)
class Codec:
    """A registered format: its schemas (as the registry holds them: text), checks, decoder, writers."""

    schema_type: str
    event_schema: Callable[[ModelCard, EventShape], str]
    """The input schema streamscore makes for a card and an event shape."""
    refusal: Callable[[str, ModelCard, EventShape], str | None]
    """Why a registered input schema cannot carry a card's features in a shape, or None."""
    decoder: MakeDecoder
    output_schema: Callable[[type[BaseModel]], str]
    """The schema of an output contract (Prediction, Provenance)."""
    serializer: Callable[[int, str], Serialize]
    """(schema id, its text) -> the writer of an output record's dict."""
    event_serializer: Callable[[int, str, str], Callable[[bytes], bytes]]
    """(schema id, its text, the time's field) -> JSON event bytes to the wire value (``produce``)."""
    reader: Callable[[Schema], Read]
    """A writer's schema -> the reader of its values (``tail``, audit, the outcome worker)."""


def codec(kind: WireFormat | str) -> Codec:
    """The codec of a registered format, by setting name (``avro``) or schema type (``AVRO``)."""
    name = next((k for k, t in SCHEMA_TYPES.items() if t == kind), kind)
    if name not in MODULES:
        raise ValueError(f"no registered format {kind!r}")
    found: Codec = importlib.import_module(MODULES[name]).CODEC
    return found
