"""JSON events into a registered format, for ``produce --format`` and the demo.

:func:`event_serializer` registers the event schema streamscore makes for the served model's card
(in the event shape the settings give) as ``<topic>-value`` and turns the producer's JSON events
into the wire format. An event that does not fit the schema (the producer's malformed ones) is still
sent, its JSON behind the header, so that the worker dead-letters it.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Callable
from typing import Any

import fastavro
import orjson

from stream.formats.registry import header, registry_client, registry_errors, subject
from stream.formats.startup import event_schema, register
from stream.scoring.events import EventShape
from stream.scoring.model import load_card, resolve
from stream.settings import Settings, WireFormat

Serialize = Callable[[bytes], bytes]


def event_serializer(settings: Settings, kind: WireFormat, topic: str) -> Serialize:
    """JSON event bytes -> ``kind`` in the wire format, under the schema registered for ``topic``."""
    card = load_card(resolve(settings.model_dir, settings.model_name, settings.model_version))
    shape = EventShape.of(settings)
    schema = event_schema(kind, card, shape)
    with registry_errors(settings.schema_registry_url):
        schema_id = register(registry_client(settings), subject(topic), schema)
    return event_serializer_for(kind, schema_id, json.loads(schema.schema_str), shape.time_field)


def event_serializer_for(
    kind: WireFormat, schema_id: int, document: dict[str, Any], time_field: str = "occurred_at"
) -> Serialize:
    """JSON event bytes -> ``kind`` in the wire format, with the schema ``document`` of ``schema_id``
    (the event's time, under ``time_field``, an RFC 3339 string or epoch milliseconds)."""
    prefix = header(schema_id)
    if kind == "json-schema":
        return lambda value: prefix + value
    parsed = fastavro.parse_schema(document)

    def avro(value: bytes) -> bytes:
        out = io.BytesIO()
        out.write(prefix)
        try:
            event = orjson.loads(value)
            event[time_field] = _time(event[time_field])
            fastavro.schemaless_writer(out, parsed, event, strict=True)
        except Exception:  # a malformed event: its bytes behind the header, for the worker to refuse
            return prefix + value
        return out.getvalue()

    return avro


def _time(value: str | float) -> dt.datetime:
    """An RFC 3339 time or epoch milliseconds, as the datetime fastavro writes as a timestamp."""
    if isinstance(value, str):
        return dt.datetime.fromisoformat(value)
    return dt.datetime.fromtimestamp(value / 1000, dt.UTC)
