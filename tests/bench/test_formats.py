"""The ladder's registered-format rungs: the pool in the wire format, predictions decoded and checked."""

from __future__ import annotations

import itertools

import orjson
import pytest
from confluent_kafka.schema_registry import Schema
from conftest import MODELS

from bench.ladder import chosen
from bench.load import Pool, prediction, score_matches
from stream.contracts import Event, Prediction, Provenance
from stream.formats.avro import AvroDecoder, avro_schema, avro_serializer
from stream.formats.base import dumps
from stream.formats.events import event_serializer_for
from stream.formats.json_schema import json_schema, json_serializer
from stream.formats.reader import WireReader
from stream.formats.registry import StaticSchemas, header
from stream.formats.startup import event_schema
from stream.messages import inbound
from stream.scoring.model import load, load_card, resolve
from stream.scoring.pipeline import Pipeline
from stream.scoring.records import JSON_VALUES, Topics
from stream.tools.produce import events

CARD = load_card(resolve(MODELS, "loan-approval"))
GENERATED = list(itertools.islice(events(seed=4), 30))
POOL = Pool([{"key": k, "value": v} for k, v, *_ in GENERATED], {e: 0.5 for _, _, _, e, *_ in GENERATED})
TOPICS = Topics("predictions", "provenance", "dlq")


def test_the_pool_in_avro_decodes_to_the_same_events_with_the_same_keys_and_scores():
    schema = event_schema("avro", CARD)
    encoded = POOL.encoded(event_serializer_for("avro", 7, schema.schema_str))
    assert encoded.scores == POOL.scores
    assert [m["key"] for m in encoded.messages] == [m["key"] for m in POOL.messages]
    values = [m["value"] for m in encoded.messages]
    assert all(v.startswith(header(7)) and v[5:6] != b"{" for v in values), "Avro, not JSON behind a header"
    decoded = AvroDecoder(StaticSchemas({7: schema}), 65_536)(values)
    assert decoded == [Event.model_validate_json(m["value"]) for m in POOL.messages]
    assert POOL.messages[0]["value"].startswith(b"{"), "the JSON pool is left as it was"


def _predictions(serialize) -> list[bytes]:
    pipeline = Pipeline(
        load(MODELS, "loan-approval"), TOPICS, pii_key=b"k" * 16,
        scorer={"version": "0", "revision": None, "worker_id": "w"}, max_message_bytes=65_536,
        serialize=serialize,
    )  # fmt: skip
    batch = [inbound(v, k, "events", offset=i, timestamp_ms=5) for i, (k, v, *_) in enumerate(GENERATED)]
    return [r.value for r in pipeline.process(batch).records if r.topic == "predictions"]


MODELS_SCORES = {r["event_id"]: r["score"] for r in map(orjson.loads, _predictions(JSON_VALUES))}


@pytest.mark.parametrize("kind", ["json", "avro", "json-schema"])
def test_a_prediction_in_each_format_is_checked_against_the_models_score(kind):
    wire = None
    if kind == "avro":
        serialize = (avro_serializer(2, avro_schema(Prediction)), avro_serializer(3, avro_schema(Provenance)))
        wire = WireReader(StaticSchemas({2: Schema(dumps(avro_schema(Prediction)), "AVRO")}))
    elif kind == "json-schema":
        serialize = (json_serializer(5), json_serializer(6))
        wire = WireReader(StaticSchemas({5: Schema(dumps(json_schema(Prediction)), "JSON")}))
    else:
        serialize = JSON_VALUES
    values = _predictions(serialize)
    assert len(values) == len(GENERATED)
    assert [score_matches(prediction(v, wire), MODELS_SCORES) for v in values] == [True] * len(values)
    off = {event_id: score + 1e-3 for event_id, score in MODELS_SCORES.items()}
    assert {score_matches(prediction(v, wire), off) for v in values} == {False}
    assert {score_matches(prediction(v, wire), {}) for v in values} == {None}, "an unknown event: no check"


def test_a_value_that_is_not_a_registered_record_has_no_score_to_check():
    wire = WireReader(StaticSchemas({}))
    assert prediction(b"{}", wire) is None  # no wire header
    assert prediction(header(9) + b"{}", wire) is None  # an unknown schema id
    assert score_matches(prediction(b"[1]"), MODELS_SCORES) is None


def test_a_rungs_key_selects_it_alone_and_a_word_every_rung_it_names():
    assert [r.key for r in chosen(True, ["streamscore", "streamscore-avro"])] == [
        "streamscore",
        "streamscore-avro",
    ]
    assert [r.key for r in chosen(True, ["JSON Schema"])] == ["streamscore-json-schema"]
    quick = {r.key for r in chosen(True)}
    assert {"streamscore-avro", "streamscore-json-schema"} <= quick and "streamscore-drift-off" not in quick
    assert [r.registered for r in chosen(False, ["Avro", "streamscore"])] == [False, True]
