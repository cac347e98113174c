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
    assert "does not hold numbers" in avro_refusal(schema, CARD)


def test_a_json_schema_that_cannot_carry_the_features_is_refused():
    schema = event_json_schema(CARD)
    del schema["properties"]["features"]["properties"]["age"]
    assert "'age' of the model card is not" in json_refusal(schema, CARD)
    schema["properties"]["features"]["additionalProperties"] = {"type": "string"}
    assert "'age' is {'type': 'string'} there" in json_refusal(schema, CARD)
    assert json_refusal({"type": "object"}, CARD) is None  # any object may carry them
