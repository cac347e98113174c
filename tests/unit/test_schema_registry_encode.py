"""Output records in the wire format: the generated Avro writer writes what fastavro writes."""

from __future__ import annotations

import io
import itertools

import fastavro
import orjson
import pytest
from conftest import MODELS

from stream.contracts import Prediction, Provenance
from stream.messages import inbound
from stream.model import load
from stream.pipeline import Pipeline
from stream.producer import events
from stream.records import Topics
from stream.schema_registry.avro_writer import compile_writer
from stream.schema_registry.client import header
from stream.schema_registry.encode import OutputEncoder, avro_encoder, json_encoder
from stream.schema_registry.schemas import avro_schema

TOPICS = Topics("predictions", "provenance", "dlq")


@pytest.fixture(scope="module")
def records():
    pipeline = Pipeline(
        load(MODELS, "loan-approval"), TOPICS, pii_key=b"k" * 16,
        scorer={"version": "0", "revision": None, "worker_id": "w"}, max_message_bytes=65_536,
    )  # fmt: skip
    values = [v for _, v, *_ in itertools.islice(events(seed=9, malformed_fraction=0.2), 40)]
    return pipeline.process(
        [inbound(v, b"k", "events", offset=i, timestamp_ms=5) for i, v in enumerate(values)]
    )


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


def test_the_encoder_writes_predictions_and_provenance_only(records):
    encode = OutputEncoder(
        {"predictions": avro_encoder(5, avro_schema(Prediction)), "provenance": json_encoder(6)}
    )
    out = encode(records.records)
    assert len(out) == len(records.records)
    assert {r.topic for r in records.records} == {"predictions", "provenance", "dlq"}
    parsed = fastavro.parse_schema(avro_schema(Prediction))
    for before, after in zip(records.records, out, strict=True):
        assert after[:2] == before[:2] and after[3:] == before[3:]
        if before.topic == "dlq":
            assert after is before
        elif before.topic == "provenance":
            assert after.value == header(6) + before.value
        else:
            assert after.value[:5] == header(5)
            read = fastavro.schemaless_reader(io.BytesIO(after.value[5:]), parsed, None)
            assert Prediction.model_validate(read) == Prediction.model_validate_json(before.value)


def test_unions_other_than_optional_are_not_written():
    with pytest.raises(ValueError, match="only"):
        compile_writer({"type": "record", "name": "R", "fields": [{"name": "a", "type": ["string", "long"]}]})
