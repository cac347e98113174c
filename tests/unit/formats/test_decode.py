"""Registered input decodes to the events the JSON path gives; each bad value to its poison."""

from __future__ import annotations

import itertools
import json

import fastjsonschema
import orjson
import pytest
from confluent_kafka.schema_registry import Schema
from conftest import MODELS

from stream.errors import DecodeError, PoisonEvent, SchemaError
from stream.formats.avro import AvroDecoder
from stream.formats.events import event_serializer_for
from stream.formats.json_schema import JsonSchemaDecoder
from stream.formats.registry import StaticSchemas, header
from stream.formats.startup import event_schema
from stream.scoring.codec import BatchDecoder, FeatureReader
from stream.scoring.model import load_card, resolve
from stream.tools.produce import MALFORMED, events

CARD = load_card(resolve(MODELS, "loan-approval"))
JSON = [value for _, value, *_ in itertools.islice(events(seed=3), 32)]
AVRO, JSON_SCHEMA = event_schema("avro", CARD), event_schema("json-schema", CARD)
STRICT = {"type": "object", "properties": {"features": {"properties": {"salary": {"maximum": 10}}}}}


def _source():
    return StaticSchemas({1: AVRO, 2: JSON_SCHEMA, 3: Schema(json.dumps(STRICT), "JSON")})


@pytest.mark.parametrize("kind", ["avro", "json-schema"])
def test_registered_values_decode_to_the_events_of_their_json(kind):
    serialize = event_serializer_for(kind, 1 if kind == "avro" else 2, json.loads(
        (AVRO if kind == "avro" else JSON_SCHEMA).schema_str))  # fmt: skip
    decoder = AvroDecoder(_source(), 65_536) if kind == "avro" else JsonSchemaDecoder(_source(), CARD, 65_536)
    got = decoder([serialize(v) for v in JSON])
    assert got == BatchDecoder(65_536)(JSON)


def test_bad_avro_values_are_poison_with_their_reason():
    serialize = event_serializer_for("avro", 1, json.loads(AVRO.schema_str))
    good = serialize(JSON[0])
    values = [good, good[:-2], good + b"\x00", header(9) + good[5:], header(2) + JSON[0], JSON[0], good]
    got = AvroDecoder(_source(), 65_536)(values)
    assert got[0] == got[-1] and not isinstance(got[0], PoisonEvent)
    reasons = [str(g) for g in got[1:-1]]
    assert all(isinstance(g, DecodeError) for g in got[1:-1])
    assert "does not match Avro schema id 1" in reasons[0]
    assert "1 bytes left over" in reasons[1]
    assert "schema id 9 is not in the registry" in reasons[2]
    assert "schema id 2 is a JSON schema, not AVRO" in reasons[3]
    assert "magic byte 123" in reasons[4]


def test_an_avro_event_breaking_the_contract_is_a_schema_error():
    serialize = event_serializer_for("avro", 1, json.loads(AVRO.schema_str))
    event = orjson.loads(JSON[0])
    bad = serialize(orjson.dumps({**event, "event_id": ""}))
    got = AvroDecoder(_source(), 65_536)([serialize(JSON[1]), bad])
    assert isinstance(got[1], SchemaError) and "event_id" in str(got[1])


def test_a_json_payload_breaking_its_writers_schema_is_a_schema_error():
    decoder = JsonSchemaDecoder(_source(), CARD, 65_536)
    got = decoder([header(3) + JSON[0], header(2) + JSON[0]])
    assert isinstance(got[0], SchemaError)
    assert "does not match JSON schema id 3" in str(got[0]) and "10" in str(got[0])
    assert not isinstance(got[1], PoisonEvent)


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_what_breaks_streamscores_own_json_schema_the_contract_and_card_refuse(kind):
    """The own schema is not validated again: what it refuses, the contract or the card's check does."""
    validate = fastjsonschema.compile(json.loads(JSON_SCHEMA.schema_str))
    value = MALFORMED[kind][1](orjson.loads(JSON[0]))
    try:
        validate(orjson.loads(value))
    except (fastjsonschema.JsonSchemaException, orjson.JSONDecodeError):
        pass
    else:
        pytest.skip(
            f"{kind} is valid for the schema"
        )  # e.g. a time without an offset: format is not asserted
    decoded = JsonSchemaDecoder(_source(), CARD, 65_536)([header(2) + value])[0]
    if not isinstance(decoded, PoisonEvent):
        _, errors = FeatureReader(CARD.features).rows([decoded.features])
        assert errors[0] is not None, kind
