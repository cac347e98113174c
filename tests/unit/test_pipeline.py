"""The hot path without a broker: outcomes, contracts and dead letters (hostile input: test_fuzz.py)."""

from __future__ import annotations

import datetime as dt
import itertools
import json

import numpy as np
import orjson
import pytest
from conftest import MODELS

from stream.codec import keyed_hash
from stream.contracts import DeadLetter, Prediction, Provenance
from stream.model import load
from stream.pipeline import InboundMessage, Pipeline, Topics
from stream.producer import MALFORMED, events

KEY = b"test-key"


def Msg(value, key=b"k", offset=0, partition=0, headers=None):
    return InboundMessage(value, key, "events", partition, offset, 1_800_000_000.0, headers)


@pytest.fixture(scope="module")
def pipeline():
    return Pipeline(
        load(MODELS, "loan-approval"),
        Topics("predictions", "provenance", "events.dlq"),
        pii_key=KEY,
        scorer={"version": "0.1.0", "revision": "abc", "worker_id": "host:1"},
        max_message_bytes=65_536,
    )


def _batch(n, seed=0, malformed_fraction=0.0):
    gen = events(seed=seed, malformed_fraction=malformed_fraction)
    out = []
    for offset, (key, value, kind, event_id, features, _) in enumerate(itertools.islice(gen, n)):
        out.append((Msg(value, key, offset=offset, partition=offset % 3), kind, event_id, features))
    return out


def _outcomes(result):
    """(topic, origin offset) of each record; provenance names its origin, dead letters in headers."""
    out = []
    for r in result.records:
        if r.topic == "provenance":
            out.append(("scored", orjson.loads(r.value)["input"]["offset"]))
        elif r.topic == "events.dlq":
            out.append(("dead", DeadLetter.from_headers(r.headers).offset))
    return out


def test_valid_batch_scores_like_an_offline_run(pipeline):
    batch = _batch(64)
    result = pipeline.process([m for m, *_ in batch])
    assert result.scored == 64 and not result.dead_letters
    preds = [Prediction.model_validate_json(r.value) for r in result.records if r.topic == "predictions"]
    x = np.array([[f[n] for n in pipeline.model.feature_names] for *_, f in batch], dtype=np.float32)
    assert [p.score for p in preds] == [float(s) for s in pipeline.model.predict_proba(x)]
    assert [p.event_id for p in preds] == [eid for _, _, eid, _ in batch]
    for r, (msg, *_) in zip([r for r in result.records if r.topic == "predictions"], batch, strict=True):
        assert r.key == msg.key and r.partition == msg.partition, "keyed and partitioned like the input"
    assert len(result.latencies) == 64


def test_provenance_points_at_exact_input_and_model(pipeline):
    batch = _batch(5)
    result = pipeline.process([m for m, *_ in batch])
    prov = [Provenance.model_validate_json(r.value) for r in result.records if r.topic == "provenance"]
    for p, (msg, _, eid, features) in zip(prov, batch, strict=True):
        assert (p.event_id, p.input.partition, p.input.offset) == (eid, msg.partition, msg.offset)
        assert p.input.timestamp_ms == 1_800_000_000_000
        assert p.model.sha256 == pipeline.model.card.sha256
        row = np.array([features[n] for n in pipeline.model.feature_names], dtype=np.float32)
        assert p.feature_hash == keyed_hash(KEY, row.tobytes())
        assert p.scorer.revision == "abc"


def test_personal_fields_never_in_clear(pipeline):
    batch = _batch(20)
    result = pipeline.process([m for m, *_ in batch])
    for r in result.records:
        if r.topic == "provenance":
            doc = orjson.loads(r.value)
            assert set(doc["personal"]) == {"zipcode"}
            assert "features" not in doc and "zipcode" not in doc
            assert len(doc["personal"]["zipcode"]) == 32
    hashes = {orjson.loads(r.value)["personal"]["zipcode"] for r in result.records if r.topic == "provenance"}
    zipcodes = {f["zipcode"] for *_, f in batch}
    assert len(hashes) == len(zipcodes), "one hash per distinct value: joinable, not readable"


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_each_malformed_kind_is_dead_lettered_with_its_stage(pipeline, kind):
    event = {
        "event_id": "e-1",
        "occurred_at": "2026-11-27T00:00:00+00:00",
        "entity_id": "a",
        "features": {
            "salary": 1.0, "commission": 0.0, "age": 30, "elevel": 1, "car": 2,
            "zipcode": 3, "hvalue": 4.0, "hyears": 5, "loan": 6.0,
        },
    }  # fmt: skip
    stage, broken = MALFORMED[kind]
    value = broken(event)
    result = pipeline.process([Msg(value, b"key-1", offset=7, headers=[("trace", b"t1")])])
    assert result.scored == 0 and result.dead_letters == {stage: 1}
    (record,) = result.records
    assert (record.topic, record.key, record.value, record.partition) == ("events.dlq", b"key-1", value, 0)
    assert record.headers[0] == ("trace", b"t1"), "original headers kept"
    dl = DeadLetter.from_headers(record.headers)
    assert (dl.topic, dl.offset, dl.stage, dl.timestamp_ms) == ("events", 7, stage, 1_800_000_000_000)
    assert dl.exception_class.startswith("stream.errors.")


@pytest.mark.parametrize(
    ("features_patch", "reason"),
    [
        ({"age": 30.5}, "whole number"),
        ({"age": True}, "a boolean"),
        ({"salary": None}, "null"),
        ({"salary": [1]}, "an array"),
        ({"salary": 1e39}, "finite float32"),
        ({"salary": 10**40}, "out of float32 range"),
        ({"salary": float("inf")}, "finite"),
    ],
)
def test_feature_reasons_are_readable(pipeline, features_patch, reason):
    ((msg, *_),) = _batch(1)
    event = orjson.loads(msg.value)
    event["features"].update(features_patch)
    result = pipeline.process([Msg(json.dumps(event).encode())])  # stdlib: writes Infinity, big ints
    (record,) = result.records
    assert reason in DeadLetter.from_headers(record.headers).reason


def test_mixed_batch_accounts_for_every_offset(pipeline):
    batch = _batch(500, seed=3, malformed_fraction=0.2)
    result = pipeline.process([m for m, *_ in batch])
    outcomes = _outcomes(result)
    assert sorted(o for _, o in outcomes) == list(range(500))
    assert result.scored + sum(result.dead_letters.values()) == 500
    assert sum(result.dead_letters.values()) == sum(1 for _, kind, *_ in batch if kind)


def test_non_probability_output_is_a_dead_letter_not_a_prediction(pipeline, monkeypatch):
    batch = _batch(3)
    monkeypatch.setattr(
        pipeline.model.__class__, "predict_proba", lambda self, x: np.array([0.2, np.nan, 1.5], np.float32)
    )
    result = pipeline.process([m for m, *_ in batch])
    assert result.scored == 1 and result.dead_letters == {"score": 2}
    reasons = [DeadLetter.from_headers(r.headers).reason for r in result.records if r.topic == "events.dlq"]
    assert all("not a probability" in r for r in reasons)


def test_timestamps_are_ordered(pipeline):
    ((msg, *_),) = _batch(1)
    result = pipeline.process([msg])
    prov = next(Provenance.model_validate_json(r.value) for r in result.records if r.topic == "provenance")
    assert prov.occurred_at <= prov.received_at <= prov.scored_at <= prov.emitted_at
    assert prov.emitted_at - prov.occurred_at < dt.timedelta(seconds=30)
