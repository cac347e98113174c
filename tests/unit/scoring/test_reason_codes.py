"""Reason codes: the top-K selection, the records of each output format, the setting, the off path."""

from __future__ import annotations

import datetime as dt
import io
import itertools

import fastavro
import numpy as np
import orjson
import pytest
from confluent_kafka.schema_registry import Schema
from conftest import MODELS
from pydantic import ValidationError

from stream.contracts import Event, Prediction
from stream.formats.avro import avro_schema
from stream.formats.avro_writer import compile_writer
from stream.formats.protobuf import CODEC
from stream.formats.protobuf_writer import proto_schema, protobuf_serializer
from stream.messages import inbound
from stream.scoring.contributions import top_reasons as top_k
from stream.scoring.model import load
from stream.scoring.pipeline import Pipeline
from stream.scoring.records import RecordBuilder, Topics
from stream.settings import Settings
from stream.tools.produce import events

NAMES = [f"f{i}" for i in range(9)]
WHEN = dt.datetime(2026, 12, 6, 12, tzinfo=dt.UTC)
SCORER = {"version": "0", "revision": None, "worker_id": "w"}


def _by_sorting(row: np.ndarray, k: int) -> dict[str, float]:
    """The plain way: every feature sorted by magnitude, the first k."""
    order = sorted(range(len(row)), key=lambda i: -abs(row[i]))[:k]
    return {NAMES[i]: float(row[i]) for i in order}


@pytest.mark.parametrize("k", [1, 3, 8, 9, 20])
def test_top_k_keeps_the_largest_magnitudes_largest_first(k):
    contributions = np.random.default_rng(k).normal(size=(64, 9)) * np.logspace(-3, 3, 9)
    found = top_k(contributions, NAMES, k)
    assert len(found) == 64
    for row, reasons in zip(contributions, found, strict=True):
        assert list(reasons.items()) == list(_by_sorting(row, k).items())  # order too
        assert all(type(v) is float for v in reasons.values())


def test_top_k_carries_contributions_not_inputs_and_handles_an_empty_batch():
    contributions = np.array([[0.0, -2.5, 1.0], [3.0, 0.5, -0.25]])
    assert top_k(contributions, ["a", "b", "c"], 2) == [{"b": -2.5, "c": 1.0}, {"a": 3.0, "b": 0.5}]
    assert top_k(np.zeros((0, 3)), ["a", "b", "c"], 2) == []


def _builder(**kw) -> RecordBuilder:
    return RecordBuilder(
        Topics("p", "v", "d"), model={"name": "m", "version": "1", "sha256": "ab" * 32}, threshold=0.5,
        labels=("no", "yes"), personal=[("f2", 2)], pii_key=b"k" * 16, scorer=SCORER, **kw,
    )  # fmt: skip


def _scored(builder: RecordBuilder, reasons, n: int = 3) -> list[dict]:
    docs = [{"event_id": f"e{i}", "occurred_at": "2026-12-06T11:00:00Z", "features": {}} for i in range(n)]
    msgs = [inbound(orjson.dumps(d), b"k", "events", 0, i, 1) for i, d in enumerate(docs)]
    evs = [Event.model_validate(d) for d in docs]
    rows = np.full((n, 9), 77.125, dtype=np.float32)  # a personal value that must never be written
    records, scored = builder.scored(
        msgs, evs, rows, [0.25, 0.75, 0.5][:n], WHEN, WHEN, WHEN, reasons=reasons
    )  # fmt: skip
    assert scored == n
    return [r.value for r in records[0::2]]


REASONS = [{"f2": -0.125, "f0": 0.0625}, {"f8": 1.5e-9, "f2": -1.0e-12}, {"f1": -3.0}]


def test_json_predictions_carry_the_reasons_in_order_and_no_value():
    values = _scored(_builder(), REASONS)
    for value, reasons in zip(values, REASONS, strict=True):
        doc = orjson.loads(value)
        assert list(doc["reasons"].items()) == list(reasons.items())
        assert Prediction.model_validate_json(value).reasons == reasons
        assert b"77.125" not in value
    assert all(b"reasons" not in v for v in _scored(_builder(), None)), "off: no reasons field"


def test_an_event_whose_reasons_could_not_be_computed_has_none():
    values = _scored(_builder(), [REASONS[0], None, REASONS[2]])
    assert [b"reasons" in v for v in values] == [True, False, True]


def test_a_multiclass_prediction_carries_probabilities_then_reasons():
    shares = [{"a": 0.25, "b": 0.75}] * 3
    docs = [orjson.loads(value) for value in _scored_both(shares)]
    assert [list(doc)[-2:] for doc in docs] == [["probabilities", "reasons"]] * 3
    assert [doc["reasons"] for doc in docs] == REASONS and docs[0]["probabilities"] == shares[0]


def _scored_both(shares) -> list[bytes]:
    builder = _builder()
    docs = [{"event_id": f"e{i}", "occurred_at": "2026-12-06T11:00:00Z", "features": {}} for i in range(3)]
    msgs = [inbound(orjson.dumps(d), b"k", "events", 0, i, 1) for i, d in enumerate(docs)]
    evs = [Event.model_validate(d) for d in docs]
    records, _ = builder.scored(
        msgs, evs, np.zeros((3, 9), np.float32), [0.75] * 3, WHEN, WHEN, WHEN,
        decided=["b"] * 3, probabilities=shares, reasons=REASONS,
    )  # fmt: skip
    return [r.value for r in records[0::2]]


def _doc(reasons: dict[str, float] | None) -> dict:
    doc = {
        "event_id": "e1", "entity_id": None, "score": 0.7, "label": "yes", "threshold": 0.5,
        "model_name": "m", "model_version": "1", "role": "champion", "occurred_at": WHEN, "scored_at": WHEN,
    }  # fmt: skip
    return doc if reasons is None else {**doc, "reasons": reasons}


@pytest.mark.parametrize("reasons", REASONS)
def test_avro_predictions_carry_the_reasons_bit_for_bit(reasons):
    schema = avro_schema(Prediction)
    assert {"name": "reasons", "type": ["null", {"type": "map", "values": "double"}]} in [
        {k: f[k] for k in ("name", "type")} for f in schema["fields"]
    ]
    parsed = fastavro.parse_schema(schema)
    read = fastavro.schemaless_reader(io.BytesIO(compile_writer(schema)(_doc(reasons))), parsed)
    assert read["reasons"] == reasons and list(read["reasons"]) == list(reasons)
    absent = fastavro.schemaless_reader(io.BytesIO(compile_writer(schema)(_doc(None))), parsed)
    assert absent["reasons"] is None


@pytest.mark.parametrize("reasons", REASONS)
def test_protobuf_predictions_carry_the_reasons_bit_for_bit(reasons):
    text = proto_schema(Prediction)
    assert "map<string, double> reasons = 12;" in text
    read, write = CODEC.reader(Schema(text, "PROTOBUF")), protobuf_serializer(3, text)
    assert read(write(_doc(reasons)))["reasons"] == reasons
    assert not read(write(_doc(None))).get("reasons"), "an absent map reads as an empty one"


def test_the_setting_is_read_from_the_environment_and_bounded(monkeypatch):
    assert Settings().reasons == 0
    monkeypatch.setenv("STREAMSCORE_REASONS", "3")
    assert Settings().reasons == 3
    for bad in ("-1", "three", "257"):
        monkeypatch.setenv("STREAMSCORE_REASONS", bad)
        with pytest.raises(ValidationError, match="reasons"):
            Settings()
    assert Settings.model_fields["reasons"].description


def test_off_nothing_is_computed_and_no_prediction_has_reasons(monkeypatch):
    import stream.scoring.reasons as module

    def refuse(*_):
        raise AssertionError("reasons computed while off")

    monkeypatch.setattr(module, "Reasons", refuse)
    pipeline = Pipeline(
        load(MODELS, "loan-approval"), Topics("p", "v", "d"), pii_key=b"k" * 16, scorer=SCORER,
        max_message_bytes=65_536,
    )  # fmt: skip
    values = [v for _, v, *_ in itertools.islice(events(seed=4), 32)]
    result = pipeline.process([inbound(v, b"k", "events", 0, i, 1) for i, v in enumerate(values)])
    assert result.scored == 32
    assert not any(b"reasons" in r.value for r in result.records if r.topic == "p")
