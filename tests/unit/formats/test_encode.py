"""Output records in the wire format: the generated Avro writer writes what fastavro writes, and a
registered pipeline writes the JSON pipeline's records."""

from __future__ import annotations

import datetime as dt
import io
import itertools

import fastavro
import orjson
import pytest
from conftest import MODELS

from stream.contracts import Prediction, Provenance
from stream.formats.avro import avro_schema, avro_serializer
from stream.formats.avro_writer import compile_writer
from stream.formats.json_schema import json_serializer
from stream.formats.registry import header
from stream.messages import inbound
from stream.scoring.model import load
from stream.scoring.pipeline import Pipeline
from stream.scoring.records import JSON_VALUES, Topics
from stream.tools.produce import events

TOPICS = Topics("predictions", "provenance", "dlq")


VALUES = [v for _, v, *_ in itertools.islice(events(seed=9, malformed_fraction=0.2), 40)]
BATCH = [inbound(v, b"k", "events", offset=i, timestamp_ms=5) for i, v in enumerate(VALUES)]


def _pipeline(serialize=JSON_VALUES):
    return Pipeline(
        load(MODELS, "loan-approval"), TOPICS, pii_key=b"k" * 16, clock=lambda: 1_795_000_000.5,
        scorer={"version": "0", "revision": None, "worker_id": "w"}, max_message_bytes=65_536,
        serialize=serialize,
    )  # fmt: skip


@pytest.fixture(scope="module")
def records():
    return _pipeline().process(BATCH)


@pytest.mark.parametrize(("topic", "model"), [("predictions", Prediction), ("provenance", Provenance)])
def test_the_generated_writer_writes_fastavros_bytes(records, topic, model):
    schema = avro_schema(model)
    parsed, write = fastavro.parse_schema(schema), compile_writer(schema)
    values = [r.value for r in records.records if r.topic == topic]
    assert values
    for value in values:
        record = model.model_validate_json(value)
        out = io.BytesIO()
        fastavro.schemaless_writer(out, parsed, record.model_dump())
        assert write(orjson.loads(value)) == out.getvalue()


@pytest.mark.parametrize("kind", ["avro", "json-schema"])
def test_a_registered_pipeline_writes_the_json_pipelines_records(records, kind):
    """Prediction and provenance from the builder's dicts (fragments included) decode to the JSON."""
    docs = [avro_schema(Prediction), avro_schema(Provenance)]
    if kind == "avro":
        serialize = (avro_serializer(5, docs[0]), avro_serializer(6, docs[1]))
    else:
        serialize = (json_serializer(5), json_serializer(6))
    out = _pipeline(serialize).process(BATCH)
    assert [r.topic for r in out.records] == [r.topic for r in records.records]
    parsed = {5: fastavro.parse_schema(docs[0]), 6: fastavro.parse_schema(docs[1])}
    contracts = {"predictions": (5, Prediction), "provenance": (6, Provenance)}
    for before, after in zip(records.records, out.records, strict=True):
        assert after[:2] == before[:2] and after[3:5] == before[3:5]
        plain_json = [h for h in before.headers or () if h[0] != "content-type"]
        assert after.headers == plain_json, "the same headers, but no content-type: the value is not JSON"
        if before.topic == "dlq":
            assert after.value == before.value
            continue
        schema_id, model = contracts[before.topic]
        assert after.value[:5] == header(schema_id)
        if kind == "avro":
            value = fastavro.schemaless_reader(io.BytesIO(after.value[5:]), parsed[schema_id], None)
            assert model.model_validate(value) == model.model_validate_json(before.value)
        else:
            assert after.value[5:] == before.value


def test_unions_other_than_optional_are_not_written():
    with pytest.raises(ValueError, match="only"):
        compile_writer({"type": "record", "name": "R", "fields": [{"name": "a", "type": ["string", "long"]}]})


@pytest.mark.parametrize("kind", ["long", {"type": "long", "logicalType": "timestamp-micros"}])
def test_longs_and_timestamps_are_fastavros_bytes(kind):
    """Every varint length, both signs, and timestamps as datetimes, RFC 3339 strings or fragments."""
    schema = {"type": "record", "name": "R", "fields": [{"name": "a", "type": kind}]}
    parsed, write = fastavro.parse_schema(schema), compile_writer(schema)
    if kind == "long":
        values = sorted({s * (2**b + d) for b in range(64) for d in (-1, 0, 1) for s in (1, -1)})
        values = [v for v in values if -(2**63) <= v < 2**63]
        given = values
    else:
        values = [dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=m)
                  for m in (-(10**15), -1, 0, 1, 63, 64, 10**6, 1_795_000_000_123_456, 10**17)]  # fmt: skip
        values += [dt.datetime(2026, 11, 30, 6, 1, 2, 345678, tzinfo=dt.timezone(dt.timedelta(hours=2)))]
        fragments = [orjson.Fragment(orjson.dumps(v)) for v in values]
        given = [*values, *(v.isoformat() for v in values), *fragments]
        values = values * 3
    for value, shown in zip(values, given, strict=True):
        out = io.BytesIO()
        fastavro.schemaless_writer(out, parsed, {"a": value})
        assert write({"a": shown}) == out.getvalue(), value


def test_a_multiclass_prediction_carries_its_probabilities_in_avro():
    schema = avro_schema(Prediction)
    when = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)
    doc = {
        "event_id": "e1", "entity_id": None, "score": 0.7, "label": "high", "threshold": 0.5,
        "model_name": "tiers", "model_version": "1", "role": "champion", "occurred_at": when,
        "scored_at": when, "probabilities": {"low": 0.1, "mid": 0.2, "high": 0.7},
    }  # fmt: skip
    written = compile_writer(schema)(doc)
    read = fastavro.schemaless_reader(io.BytesIO(written), fastavro.parse_schema(schema))
    assert read["probabilities"] == doc["probabilities"] and read["label"] == "high"
    binary = compile_writer(schema)({k: v for k, v in doc.items() if k != "probabilities"})
    assert (
        fastavro.schemaless_reader(io.BytesIO(binary), fastavro.parse_schema(schema))["probabilities"] is None
    )
