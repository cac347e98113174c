"""Registered input values to the same validated :class:`~stream.contracts.Event` objects as JSON's.

Each decoder is a callable over a batch of values, like :class:`~stream.codec.BatchDecoder`, and
gives an event or the poison that refuses each value: no wire header, a wrong magic byte or a
schema id the registry does not know (``decode``); an Avro payload that cannot be read with its
writer's schema (``decode``; read by code generated for that schema, see
:mod:`~stream.schema_registry.avro_reader`); a JSON payload that breaks its writer's JSON Schema
(``schema``); then the Event contract as for JSON. The card's features are checked after, by the
pipeline.

JSON Schema payloads are validated as a batch by the JSON path's decoder; a writer's schema is
checked as well (fastjsonschema, compiled once per id), except the schema streamscore itself makes
for the card (:func:`~stream.schema_registry.schemas.event_json_schema`), whose every rule the
contract and the card's check already enforce.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import fastjsonschema
import orjson
from confluent_kafka.schema_registry import Schema
from pydantic import TypeAdapter, ValidationError

from stream.codec import BatchDecoder, schema_error
from stream.contracts import Event, ModelCard
from stream.errors import DecodeError, PoisonEvent, SchemaError
from stream.schema_registry.avro_reader import Reader, avro_reader
from stream.schema_registry.bounds import SchemaLimits
from stream.schema_registry.client import HEADER, SchemaSource, WriterSchemas, schema_id
from stream.schema_registry.schemas import event_json_schema

Decoded = list[Event | PoisonEvent]
_events = TypeAdapter(list[Event])


class AvroDecoder:
    """Avro values (each read with its writer's schema) to events, validated in one pydantic call."""

    def __init__(self, client: SchemaSource, max_bytes: int, limits: SchemaLimits | None = None) -> None:
        self.schemas: WriterSchemas[Reader] = WriterSchemas(client, "AVRO", avro_reader, limits=limits)
        self._max_bytes = max_bytes

    def __call__(self, values: Sequence[bytes | None]) -> Decoded:
        schemas, max_bytes = self.schemas, self._max_bytes
        records: list[Any] = []
        last, read = -1, None  # the id of the value before, and its reader: a batch mostly has one
        for value in values:
            try:
                sid = schema_id(value, max_bytes)
                if sid != last:
                    read, last = schemas[sid], sid
                try:
                    record, end = read(value)  # type: ignore[arg-type,misc]
                except Exception as exc:  # a payload cut short, not UTF-8, an index out of range, ...
                    raise DecodeError(f"payload does not match Avro schema id {sid}: {exc!r}") from None
                if end != len(value):  # type: ignore[arg-type]
                    raise DecodeError(
                        f"payload does not match Avro schema id {sid}: {len(value) - end} bytes left over"  # type: ignore[arg-type]
                    )
                records.append(record)
            except PoisonEvent as exc:
                records.append(exc)
        return _validate(records)


def _validate(records: list[Any]) -> Decoded:
    """Events from decoded records in one pydantic call; record by record if any is refused."""
    if not any(isinstance(r, PoisonEvent) for r in records):
        try:
            return _events.validate_python(records)  # type: ignore[return-value]
        except ValidationError:
            pass
    return [r if isinstance(r, PoisonEvent) else _one(r) for r in records]


def _one(record: Any) -> Event | PoisonEvent:
    try:
        return Event.model_validate(record)
    except ValidationError as exc:
        return schema_error(exc)


Validator = Callable[[Any], object] | None


class JsonSchemaDecoder:
    """JSON Schema values: the header read, the payloads validated as a batch as on the JSON path."""

    def __init__(
        self, client: SchemaSource, card: ModelCard, max_bytes: int, limits: SchemaLimits | None = None
    ) -> None:
        own = event_json_schema(card)
        self.schemas: WriterSchemas[Validator] = WriterSchemas(
            client, "JSON", lambda s: _validator(s, own), limits=limits
        )
        self._max_bytes = max_bytes
        self._payloads = BatchDecoder(max_bytes)

    def __call__(self, values: Sequence[bytes | None]) -> Decoded:
        schemas, max_bytes = self.schemas, self._max_bytes
        refused: list[PoisonEvent | None] = []
        payloads: list[bytes] = []
        last, check = -1, None  # the id of the value before, and its validator
        for value in values:
            try:
                sid = schema_id(value, max_bytes)
                if sid != last:
                    check, last = schemas[sid], sid
                payload = value[HEADER.size :]  # type: ignore[index]
                if check is not None:
                    _check(check, payload, sid)
            except PoisonEvent as exc:
                refused.append(exc)
                continue
            refused.append(None)
            payloads.append(payload)
        events = iter(self._payloads(payloads))
        return [next(events) if poison is None else poison for poison in refused]


def _validator(schema: Schema, own: dict[str, Any]) -> Validator:
    document = json.loads(schema.schema_str)
    return None if document == own else fastjsonschema.compile(document)


def _check(check: Callable[[Any], object], payload: bytes, sid: int) -> None:
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return  # the contract's decoder says why
    try:
        check(document)
    except fastjsonschema.JsonSchemaException as exc:
        raise SchemaError(f"payload does not match JSON schema id {sid}: {exc.message}") from None
