"""Registered input decodes to the events the JSON path gives; each bad value to its poison."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import json

import fastavro
import fastjsonschema
import orjson
import pytest
from confluent_kafka.schema_registry import Schema
from conftest import MODELS

from stream.errors import DecodeError, PoisonEvent, SchemaError
from stream.formats.avro import AvroDecoder
from stream.formats.events import event_serializer_for
from stream.formats.json_schema import JsonSchemaDecoder, event_json_schema
from stream.formats.registry import StaticSchemas, header
from stream.formats.startup import event_schema
from stream.scoring.codec import BatchDecoder
from stream.scoring.events import DEFAULT_SHAPE, FIXED_SHAPE, EventShape
from stream.scoring.features import FeatureReader
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
    schema = AVRO if kind == "avro" else JSON_SCHEMA
    serialize = event_serializer_for(kind, 1 if kind == "avro" else 2, schema.schema_str)
    decoder = AvroDecoder(_source(), 65_536) if kind == "avro" else JsonSchemaDecoder(_source(), CARD, 65_536)
    got = decoder([serialize(v) for v in JSON])
    assert got == BatchDecoder(65_536)(JSON)


def test_bad_avro_values_are_poison_with_their_reason():
    serialize = event_serializer_for("avro", 1, AVRO.schema_str)
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
    serialize = event_serializer_for("avro", 1, AVRO.schema_str)
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
        errors = FeatureReader(CARD.features).rows([decoded.features]).errors
        assert errors[0] is not None, kind


MS = 1_795_771_800_125  # 2026-11-27T09:30:00.125Z


def _read(event):
    """What the hot path reads of an event."""
    return event.event_id, event.occurred_at, event.entity_id, event.features


def _producers_avro() -> dict:
    """The schema made for the card as a producer evolves it: an optional field more, fields reordered."""
    schema = json.loads(AVRO.schema_str)
    fields = [*schema["fields"], {"name": "channel", "type": ["null", "string"], "default": None}][::-1]
    fields[1]["type"]["fields"] = fields[1]["type"]["fields"][::-1]
    return {**schema, "fields": fields}


def _write_avro(schema: dict, schema_id: int, records: list[dict]) -> list[bytes]:
    parsed, values = fastavro.parse_schema(schema), []
    for record in records:
        out = io.BytesIO(header(schema_id))
        out.seek(0, io.SEEK_END)
        fastavro.schemaless_writer(out, parsed, record, strict=True)
        values.append(out.getvalue())
    return values


def _records(channel: str | None = "web") -> list[dict]:
    return [
        {**e, "occurred_at": dt.datetime.fromisoformat(e["occurred_at"]), "channel": channel}
        for e in map(orjson.loads, JSON)
    ]


@pytest.mark.parametrize("kind", ["avro", "json-schema"])
def test_a_producers_extra_field_is_ignored_in_the_default_shape_and_refused_in_the_strict_one(kind):
    if kind == "avro":
        source = StaticSchemas({4: Schema(json.dumps(_producers_avro()), "AVRO")})
        values = _write_avro(_producers_avro(), 4, _records())
        decoders = [AvroDecoder(source, 65_536, shape=s, card=CARD) for s in (DEFAULT_SHAPE, FIXED_SHAPE)]
    else:
        document = event_json_schema(CARD)
        document["properties"]["channel"] = {"type": ["string", "null"]}
        source = StaticSchemas({4: Schema(json.dumps(document), "JSON")})
        values = [header(4) + orjson.dumps({**orjson.loads(v), "channel": "web"}) for v in JSON]
        decoders = [JsonSchemaDecoder(source, CARD, 65_536, shape=s) for s in (DEFAULT_SHAPE, FIXED_SHAPE)]
    ignoring, strict = (decoder(values) for decoder in decoders)
    want = BatchDecoder(65_536)(JSON)
    assert list(map(_read, ignoring)) == list(map(_read, want))
    assert DEFAULT_SHAPE.ignored(ignoring) == {"channel": len(JSON)}
    refused = "writer schema id 4 cannot carry the features of model loan-approval: it declares 'channel'"
    assert all(isinstance(e, PoisonEvent) and str(e).startswith(refused) for e in strict), strict[0]
    if kind == "avro":  # without the card, each event is refused by the contract
        alone = AvroDecoder(source, 65_536, shape=FIXED_SHAPE)(values)
        assert all(isinstance(e, SchemaError) and str(e).startswith("channel: Extra inputs") for e in alone)


def test_a_flat_avro_event_with_its_own_names_and_epoch_milliseconds_decodes():
    shape = EventShape("txn_id", "ts", "")
    features = [{"name": f.name, "type": "long" if f.type == "integer" else "double"} for f in CARD.features]
    fields = [{"name": "ts", "type": "long"}, {"name": "txn_id", "type": "string"},
              {"name": "channel", "type": "string"}, *features]  # fmt: skip
    schema = {"type": "record", "name": "Txn", "fields": fields}
    events = list(map(orjson.loads, JSON))
    records = [{"ts": MS, "txn_id": e["event_id"], "channel": "app", **e["features"]} for e in events]
    got = AvroDecoder(StaticSchemas({5: Schema(json.dumps(schema), "AVRO")}), 65_536, shape=shape)(
        _write_avro(schema, 5, records)
    )
    assert [g.event_id for g in got] == [e["event_id"] for e in events]
    assert [g.features for g in got] == [{**e["features"], "channel": "app"} for e in events]
    assert {g.occurred_at for g in got} == {dt.datetime(2026, 11, 27, 9, 30, 0, 125_000, tzinfo=dt.UTC)}
