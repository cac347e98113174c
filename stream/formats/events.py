"""JSON events into a registered format, for ``produce --format`` and the demo.

:func:`event_serializer` registers the event schema streamscore makes for the served model's card
(in the event shape the settings give) as ``<topic>-value`` and turns the producer's JSON events
into the wire format. An event that does not fit the schema (the producer's malformed ones) is still
sent, its JSON behind the header, so that the worker dead-letters it.
"""

from __future__ import annotations

from collections.abc import Callable

from stream.formats.codecs import codec
from stream.formats.registry import registry_client, registry_errors, subject
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
    return event_serializer_for(kind, schema_id, schema.schema_str, shape.time_field)


def event_serializer_for(
    kind: WireFormat, schema_id: int, schema_str: str, time_field: str = "occurred_at"
) -> Serialize:
    """JSON event bytes -> ``kind`` in the wire format, with the schema ``schema_str`` of ``schema_id``
    (the event's time, under ``time_field``, an RFC 3339 string or epoch milliseconds)."""
    return codec(kind).event_serializer(schema_id, schema_str, time_field)
