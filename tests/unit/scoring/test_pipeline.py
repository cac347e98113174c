"""The hot path without a broker: outcomes, contracts and dead letters (hostile input: test_fuzz.py)."""

from __future__ import annotations

import datetime as dt
import itertools
import json

import numpy as np
import orjson
import pytest
from conftest import MODELS

from stream.contracts import DeadLetter, Prediction, Provenance
from stream.messages import inbound
from stream.scoring.codec import keyed_hash
from stream.scoring.feeds import Scored
from stream.scoring.model import load
from stream.scoring.pipeline import Pipeline, Topics
from stream.tools.produce import MALFORMED, events

KEY = b"test-key"


def Msg(value, key=b"k", offset=0, partition=0, headers=None):
    return inbound(value, key, "events", partition, offset, 1_800_000_000_000, headers)


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
        assert r.key == msg.key() and r.partition == msg.partition(), "keyed and partitioned like the input"
    assert len(result.latencies) == 64


def test_provenance_points_at_exact_input_and_model(pipeline):
    batch = _batch(5)
    result = pipeline.process([m for m, *_ in batch])
    prov = [Provenance.model_validate_json(r.value) for r in result.records if r.topic == "provenance"]
    for p, (msg, _, eid, features) in zip(prov, batch, strict=True):
        assert (p.event_id, p.input.partition, p.input.offset) == (eid, msg.partition(), msg.offset())
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
    event = orjson.loads(msg.value())
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
        pipeline.model.__class__, "predict", lambda self, x, texts=None: Scored(np.array([0.2, np.nan, 1.5]))
    )
    result = pipeline.process([m for m, *_ in batch])
    assert result.scored == 1 and result.dead_letters == {"score": 2}
    reasons = [DeadLetter.from_headers(r.headers).reason for r in result.records if r.topic == "events.dlq"]
    assert all("not a probability" in r for r in reasons)


def test_an_empty_batch_gives_nothing(pipeline):
    result = pipeline.process([])
    assert (result.records, result.scored, result.dead_letters, result.features) == ([], 0, {}, None)


def test_timestamps_are_ordered(pipeline):
    ((msg, *_),) = _batch(1)
    result = pipeline.process([msg])
    prov = next(Provenance.model_validate_json(r.value) for r in result.records if r.topic == "provenance")
    assert prov.occurred_at <= prov.received_at <= prov.scored_at <= prov.emitted_at
    assert prov.emitted_at - prov.occurred_at < dt.timedelta(seconds=30)


# Golden: the exact bytes of every record of a mixed batch, for a fixed input and a fixed clock.
GOLDEN_FEATURES = {
    "salary": 103125.48, "commission": 0, "age": 21, "elevel": 2, "car": 8,
    "zipcode": 3, "hvalue": 319768.96, "hyears": 4, "loan": 338349.74,
}  # fmt: skip
GOLDEN_TS = 1_795_750_200_125
GOLDEN_CLOCK = 1_795_757_400.25
AT = b'"2026-11-27T05:30:00.250000+00:00"'  # the golden clock
SHA256 = b"2b0523f04ebffd16e80456348fedb5d72a74708c43874d8a8cda5c381855070d"
MODEL = b'"model":{"name":"loan-approval","version":"1","sha256":"' + SHA256 + b'"}'
SCORER = b'"scorer":{"version":"0.1.0","revision":"abc123","worker_id":"host:7"}'


def _golden_event(**fields):
    event = {
        "event_id": "e-1",
        "occurred_at": "2026-11-27T09:30:00.125+02:00",
        "entity_id": "applicant-18231",
        "features": GOLDEN_FEATURES,
    }
    return orjson.dumps({**event, **fields})


def _dead(offset, partition, exception, reason, stage, original=(), event_id=None):
    return [
        *original,
        ("__connect.errors.topic", b"events"),
        ("__connect.errors.partition", str(partition).encode()),
        ("__connect.errors.offset", str(offset).encode()),
        ("__connect.errors.timestamp", b"1795750200125"),
        ("__connect.errors.exception.class.name", b"stream.errors." + exception),
        ("__connect.errors.exception.message", reason),
        ("__connect.errors.stage", stage),
        *([("streamscore.event_id", event_id)] if event_id else []),
    ]


def _provenance(event_id, score, partition, offset, feature_hash, zipcode, occurred_at):
    return (
        b'{"event_id":"' + event_id + b'","score":' + score + b',"input":{"topic":"events","partition":'
        + partition + b',"offset":' + offset + b',"timestamp_ms":1795750200125},' + MODEL
        + b',"role":"champion","feature_hash":"' + feature_hash
        + b'","personal":{"zipcode":"' + zipcode + b'"},' + SCORER
        + b',"occurred_at":"' + occurred_at + b'","received_at":' + AT + b',"scored_at":' + AT
        + b',"emitted_at":' + AT + b"}"
    )  # fmt: skip


TRACE = [("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]


def _ce(kind, topic, event_id, trace=()):
    """The CloudEvents headers of a record, then the trace context carried from its input."""
    return [
        ("ce_specversion", b"1.0"),
        ("ce_type", b"streamscore." + kind + b".v1"),
        ("ce_source", b"/streamscore/" + topic),
        ("content-type", b"application/json"),
        ("ce_id", event_id),
        ("ce_time", AT.strip(b'"')),
        *trace,
    ]


def test_records_are_byte_identical_to_the_golden_ones():
    pipeline = Pipeline(
        load(MODELS, "loan-approval"),
        Topics("predictions", "provenance", "events.dlq"),
        pii_key=b"golden-key",
        scorer={"version": "0.1.0", "revision": "abc123", "worker_id": "host:7"},
        max_message_bytes=65_536,
        clock=lambda: GOLDEN_CLOCK,
    )
    feature_error = _golden_event(event_id="e-4", features={**GOLDEN_FEATURES, "age": 30.5})
    no_entity = {"event_id": "e-5", "occurred_at": "2026-11-27T07:30:00Z"}
    values = [
        _golden_event(),
        b"{not json",
        b'{"event_id":"e-3","features":{}}',
        feature_error,
        orjson.dumps({**no_entity, "features": {**GOLDEN_FEATURES, "salary": 20000.5, "zipcode": 7}}),
        None,
    ]
    msgs = [
        inbound(
            value,
            None if i == 4 else b"k%d" % i,
            "events",
            i % 3,
            40 + i,
            GOLDEN_TS,
            [("trace", b"t1")] if i == 1 else TRACE if i == 0 else None,
        )
        for i, value in enumerate(values)
    ]
    result = pipeline.process(msgs)
    records = [(r.topic, r.key, r.value, r.partition, r.source, r.headers) for r in result.records]
    not_json = b"not valid JSON: key must be a string at line 1 column 2"
    whole = b"feature 'age' is 30.5: a whole number is required"
    tombstone = b"empty value (tombstone): an event needs a JSON object"
    assert records == [
        ("events.dlq", b"k1", b"{not json", 1, 1,
         _dead(41, 1, b"DecodeError", not_json, b"decode", original=[("trace", b"t1")])),
        ("events.dlq", b"k2", values[2], 2, 2,
         _dead(42, 2, b"SchemaError", b"occurred_at: Field required", b"schema")),
        ("events.dlq", b"k3", feature_error, 0, 0,
         _dead(43, 0, b"FeatureError", whole, b"features", event_id=b"e-4")),
        ("events.dlq", b"k5", None, 2, 2, _dead(45, 2, b"DecodeError", tombstone, b"decode")),
        ("predictions", b"k0",
         b'{"event_id":"e-1","entity_id":"applicant-18231","score":0.015780270099639893,"label":"deny",'
         b'"threshold":0.5,"model_name":"loan-approval","model_version":"1","role":"champion",'
         b'"occurred_at":"2026-11-27T09:30:00.125000+02:00","scored_at":' + AT + b"}",
         0, 0, _ce(b"prediction", b"predictions", b"e-1", TRACE)),
        ("provenance", b"e-1",
         _provenance(b"e-1", b"0.015780270099639893", b"0", b"40", b"79484b9cd1efa9f99573ba4c8b6ee9ff",
                     b"166fd42615230503c1d69fcc7dc9082a", b"2026-11-27T09:30:00.125000+02:00"),
         None, 0, _ce(b"provenance", b"provenance", b"e-1", TRACE)),
        ("predictions", None,
         b'{"event_id":"e-5","entity_id":null,"score":0.02440941333770752,"label":"deny","threshold":0.5,'
         b'"model_name":"loan-approval","model_version":"1","role":"champion",'
         b'"occurred_at":"2026-11-27T07:30:00+00:00",'
         b'"scored_at":' + AT + b"}",
         1, 1, _ce(b"prediction", b"predictions", b"e-5")),
        ("provenance", b"e-5",
         _provenance(b"e-5", b"0.02440941333770752", b"1", b"44", b"98cf2dfc9ea8974aa14f222a9d6f389c",
                     b"64f4bc4178984d531cd255f0101fb293", b"2026-11-27T07:30:00+00:00"),
         None, 1, _ce(b"provenance", b"provenance", b"e-5")),
    ]  # fmt: skip
