"""Predictions and provenance in the wire format: the header of their registered schema, then the payload.

:class:`~stream.records.RecordBuilder` takes a serializer for each (:data:`~stream.records.Serialize`):
for JSON Schema the payload is the JSON the builder writes anyway; for Avro, a writer generated for
the schema (:mod:`.avro_writer`) writes the builder's dicts, the timestamps as ``timestamp-micros``.
Dead letters keep the input's bytes; other topics stay JSON.
"""

from __future__ import annotations

from typing import Any

import orjson

from stream.records import Serialize
from stream.schema_registry.avro_writer import compile_writer
from stream.schema_registry.client import header


def json_serializer(schema_id: int) -> Serialize:
    prefix, dumps = header(schema_id), orjson.dumps
    return lambda record: prefix + dumps(record)


def avro_serializer(schema_id: int, schema: dict[str, Any]) -> Serialize:
    return compile_writer(schema, header(schema_id))
