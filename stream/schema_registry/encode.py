"""Predictions and provenance in the wire format: the header of their registered schema, then the payload.

The records are built as JSON by :class:`~stream.records.RecordBuilder` (the bytes tests pin);
for JSON Schema the payload is those bytes, for Avro they are written again by a writer generated
for the schema (:mod:`.avro_writer`), the timestamps as ``timestamp-micros``. Dead letters keep the
input's bytes; other topics stay JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from stream.messages import Record
from stream.schema_registry.avro_writer import compile_writer
from stream.schema_registry.client import header

Encode = Callable[[bytes], bytes]


def json_encoder(schema_id: int) -> Encode:
    prefix = header(schema_id)
    return lambda value: prefix + value


def avro_encoder(schema_id: int, schema: dict[str, Any]) -> Encode:
    """Writes a JSON record again in Avro; its ``date-time`` strings as timestamps."""
    prefix, write, loads = header(schema_id), compile_writer(schema), orjson.loads
    return lambda value: prefix + write(loads(value))


class OutputEncoder:
    """Encodes the records of some topics (predictions, provenance) as their registered schemas say."""

    def __init__(self, by_topic: Mapping[str, Encode]) -> None:
        self._by_topic = dict(by_topic)

    def __call__(self, records: list[Record]) -> list[Record]:
        get, new = self._by_topic.get, tuple.__new__
        out: list[Record] = []
        append = out.append
        for record in records:
            encode = get(record[0])
            if encode is None:
                append(record)
            else:  # Record(topic, key, encode(value), ...) without NamedTuple's Python-level __new__
                topic, key, value, partition, source, headers = record
                append(new(Record, (topic, key, encode(value), partition, source, headers)))  # type: ignore[arg-type]
        return out
