"""Avro and JSON Schema forms of the contracts, and whether a registered input schema carries the card."""

from __future__ import annotations

import copy
import io

import fastavro
import pytest
from conftest import MODELS

from stream.contracts import Prediction, Provenance
from stream.formats.avro import TIMESTAMP, avro_refusal, avro_schema, event_avro_schema
from stream.formats.json_schema import event_json_schema, json_refusal
from stream.scoring.events import EventShape
from stream.scoring.model import load_card, resolve

CARD = load_card(resolve(MODELS, "loan-approval"))


@pytest.mark.parametrize("model", [Prediction, Provenance])
def test_the_avro_form_has_every_field_of_the_contract_in_order(model):
    schema = avro_schema(model)
    fastavro.parse_schema(schema)
    assert [f["name"] for f in schema["fields"]] == list(model.model_fields)
    fields = {f["name"]: f for f in schema["fields"]}
    assert fields["role"]["default"] == "champion"
    assert fields["occurred_at"]["type"] == TIMESTAMP
    assert fields["event_id"]["type"] == "string"


def test_records_written_before_role_existed_read_as_champion():
    new = avro_schema(Prediction)
    old = copy.deepcopy(new)
    old["fields"] = [f for f in old["fields"] if f["name"] != "role"]
    record = {
        "event_id": "e", "entity_id": None, "score": 0.25, "label": "deny", "threshold": 0.5,
        "model_name": "m", "model_version": "1", "occurred_at": 0, "scored_at": 1,
    }  # fmt: skip
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(old), record)
    out.seek(0)
    read = fastavro.schemaless_reader(out, fastavro.parse_schema(old), fastavro.parse_schema(new))
    assert read["role"] == "champion"


def test_the_event_schemas_made_for_the_card_carry_its_features():
    assert avro_refusal(event_avro_schema(CARD), CARD) is None
    assert json_refusal(event_json_schema(CARD), CARD) is None
    features = event_avro_schema(CARD)["fields"][3]["type"]["fields"]
    assert [f["name"] for f in features] == [f.name for f in CARD.features]


def _avro_features(change):
    schema = event_avro_schema(CARD)
    schema["fields"][3]["type"]["fields"] = change(schema["fields"][3]["type"]["fields"])
    return schema


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        ({"type": "string"}, "not an Avro record"),
        ({"type": "record", "name": "E", "fields": [{"name": "event_id", "type": "string"}]}, "no field"),
        (_avro_features(lambda fs: [f for f in fs if f["name"] != "age"]), "'age' of the model card is not"),
        (_avro_features(lambda fs: [{**f, "type": "string"} for f in fs]), "is 'string' there"),
    ],
)
def test_an_avro_schema_that_cannot_carry_the_features_is_refused(schema, reason):
    assert reason in avro_refusal(schema, CARD)


def test_an_avro_map_of_numbers_carries_any_features():
    schema = event_avro_schema(CARD)
    schema["fields"][3]["type"] = {"type": "map", "values": "double"}
    assert avro_refusal(schema, CARD) is None
    schema["fields"][3]["type"] = {"type": "map", "values": "string"}
    assert "feature 'salary' is 'string' there, not a number" in avro_refusal(schema, CARD)


def test_a_json_schema_that_cannot_carry_the_features_is_refused():
    schema = event_json_schema(CARD)
    del schema["properties"]["features"]["properties"]["age"]
    assert "'age' of the model card is not" in json_refusal(schema, CARD)
    schema["properties"]["features"]["additionalProperties"] = {"type": "string"}
    assert "'age' is {'type': 'string'} there" in json_refusal(schema, CARD)
    assert json_refusal({"type": "object"}, CARD) is None  # any object may carry them


CHANNEL = {"name": "channel", "type": ["null", "string"], "default": None}
FLAT = EventShape("txn_id", "ts", "")
STRICT = EventShape(unknown_fields="dead-letter")
TEXT_CARD = CARD.model_copy(
    update={"features": [CARD.features[0].model_copy(update={"type": "string"}), *CARD.features[1:]]}
)


def _producers_avro() -> dict:
    """The schema made for the card, as a producer evolves it: an optional field more, fields reordered."""
    schema = event_avro_schema(CARD)
    fields = [*schema["fields"], CHANNEL][::-1]
    fields[1]["type"]["fields"] = fields[1]["type"]["fields"][::-1]  # the features record, reordered
    return {**schema, "fields": fields}


def test_a_producers_extra_optional_field_and_order_are_carried_unless_strict():
    avro = _producers_avro()
    assert avro_refusal(avro, CARD) is None
    assert "it declares 'channel'" in avro_refusal(avro, CARD, STRICT)
    document = event_json_schema(CARD)
    document["properties"] = {"channel": {"type": ["string", "null"]}, **document["properties"]}
    assert json_refusal(document, CARD) is None
    assert "it declares 'channel'" in json_refusal(document, CARD, STRICT)


def test_features_the_card_does_not_list_are_carried_unless_strict():
    avro = event_avro_schema(CARD)
    avro["fields"][3]["type"]["fields"].append({"name": "shoe_size", "type": "long"})
    assert avro_refusal(avro, CARD) is None
    assert "its features declare 'shoe_size'" in avro_refusal(avro, CARD, STRICT)


@pytest.mark.parametrize(
    "shape",
    [
        EventShape(),
        STRICT,
        FLAT,
        EventShape("id", "at", "payload.inputs"),
        EventShape(features_field="x.y.z"),
    ],
)
def test_the_schemas_made_for_each_shape_carry_the_card_in_that_shape(shape):
    avro, document = event_avro_schema(CARD, shape), event_json_schema(CARD, shape)
    fastavro.parse_schema(avro)
    assert avro_refusal(avro, CARD, shape) is None and json_refusal(document, CARD, shape) is None
    fixed = shape.id_field, shape.time_field, shape.features_field
    if fixed != ("event_id", "occurred_at", "features"):
        assert avro_refusal(avro, CARD) is not None and json_refusal(document, CARD) is not None


def test_a_flat_producer_schema_is_carried_in_the_flat_shape():
    fields = [
        {"name": "channel", "type": "string"},
        {"name": "ts", "type": "long"},  # epoch milliseconds
        *[{"name": f.name, "type": "long" if f.type == "integer" else "double"} for f in CARD.features],
        {"name": "txn_id", "type": "string"},
    ]
    flat = {"type": "record", "name": "Txn", "fields": fields}
    assert avro_refusal(flat, CARD, FLAT) is None
    assert avro_refusal(flat, CARD) == "it has no field 'features'"
    assert "it declares 'channel'" in avro_refusal(flat, CARD, EventShape("txn_id", "ts", "", "dead-letter"))


@pytest.mark.parametrize(
    ("field", "kind", "ok"),
    [
        ("event_id", "long", False),
        ("event_id", ["null", "string"], True),
        ("occurred_at", "long", True),
        ("occurred_at", "string", True),
        ("occurred_at", {"type": "long", "logicalType": "timestamp-millis"}, True),
        ("occurred_at", {"type": "long", "logicalType": "local-timestamp-millis"}, False),
        ("occurred_at", "boolean", False),
        ("entity_id", "long", False),
    ],
)
def test_the_id_time_and_entity_must_read_as_the_contract_reads_them(field, kind, ok):
    schema = event_avro_schema(CARD)
    schema["fields"] = [{**f, "type": kind} if f["name"] == field else f for f in schema["fields"]]
    reason = avro_refusal(schema, CARD)
    assert (reason is None) == ok, reason
    assert ok or f"its field {field!r} is" in reason


def test_without_an_id_or_a_time_a_schema_is_carried_unless_strict():
    schema = event_avro_schema(CARD)
    schema["fields"] = [f for f in schema["fields"] if f["name"] not in ("event_id", "occurred_at")]
    assert avro_refusal(schema, CARD) is None, "the record's key and timestamp stand in"
    assert avro_refusal(schema, CARD, STRICT) == "it has no field 'event_id'"


def test_a_string_feature_is_a_string_in_the_schemas_made_and_checked():
    avro, document = event_avro_schema(TEXT_CARD), event_json_schema(TEXT_CARD)
    assert avro["fields"][3]["type"]["fields"][0] == {"name": "salary", "type": "string"}
    assert document["properties"]["features"]["properties"]["salary"] == {"type": "string"}
    assert avro_refusal(avro, TEXT_CARD) is None and json_refusal(document, TEXT_CARD) is None
    assert "feature 'salary' is 'double' there, not a string" in avro_refusal(
        event_avro_schema(CARD), TEXT_CARD
    )
    assert "not a string" in json_refusal(event_json_schema(CARD), TEXT_CARD)
    assert "not a number" in avro_refusal(avro, CARD)
