"""Output records: their bytes against the contracts and the schema documents, hashes, and dead letters."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import jsonschema
import numpy as np
import orjson
import pytest
from fuzz.outcomes import valid_events

from stream.contracts import DeadLetter, Event, Prediction, Provenance
from stream.errors import FeatureError
from stream.messages import inbound
from stream.scoring.codec import keyed_hash
from stream.scoring.dead_letters import fit_dead_letter
from stream.scoring.records import RecordBuilder, Topics

SCHEMAS = Path(__file__).parents[3] / "schemas"
KEY = b"records-key"
MODEL = {"name": "m", "version": "3", "sha256": "ab" * 32}
SCORER = {"version": "0.1.0", "revision": None, "worker_id": "host:9"}
T0 = dt.datetime(2026, 11, 29, 12, 0, 0, 123456, tzinfo=dt.UTC)


def _builder(threshold=0.5, personal=((("zipcode", 2)),)):
    return RecordBuilder(
        Topics("predictions", "provenance", "dlq"),
        model=MODEL,
        threshold=threshold,
        labels=("deny", "approve"),
        personal=personal,
        pii_key=KEY,
        scorer=SCORER,
    )


def _batch(n):
    docs = valid_events(n)
    msgs = [
        inbound(orjson.dumps(d), b"k%d" % i, "events", i % 2, 10 + i, 1_000 + i) for i, d in enumerate(docs)
    ]
    events = [Event.model_validate(d) for d in docs]
    rows = np.arange(n * 4, dtype=np.float32).reshape(n, 4) / 7
    return msgs, events, rows


def _build(builder, scores):
    msgs, events, rows = _batch(len(scores))
    records, scored = builder.scored(msgs, events, rows, scores, T0, T0, T0 + dt.timedelta(microseconds=5))
    return msgs, events, rows, records, scored


def test_records_validate_against_the_contracts_and_the_schema_documents():
    _, events, _, records, scored = _build(_builder(), [0.1, 0.9, 0.5])
    assert scored == 3 and [r.topic for r in records] == ["predictions", "provenance"] * 3
    schemas = {
        topic: json.loads((SCHEMAS / f"{name}.schema.json").read_text())
        for topic, name in (("predictions", "prediction"), ("provenance", "provenance"))
    }
    for record in records:
        jsonschema.validate(orjson.loads(record.value), schemas[record.topic])
    preds = [Prediction.model_validate_json(r.value) for r in records[::2]]
    provs = [Provenance.model_validate_json(r.value) for r in records[1::2]]
    assert [p.label for p in preds] == ["deny", "approve", "approve"], "positive when score >= threshold"
    assert [p.event_id for p in preds] == [p.event_id for p in provs] == [e.event_id for e in events]
    assert provs[0].model.model_dump() == MODEL and provs[0].scorer.model_dump() == SCORER
    assert (provs[0].received_at, provs[0].scored_at, provs[0].emitted_at - T0) == (
        T0,
        T0,
        dt.timedelta(0, 0, 5),
    )


def test_keys_and_partitions_follow_the_contract():
    msgs, events, _, records, _ = _build(_builder(), [0.1, 0.2])
    for msg, event, (pred, prov) in zip(
        msgs, events, zip(records[::2], records[1::2], strict=True), strict=True
    ):
        assert (pred.key, pred.partition, pred.source) == (msg.key(), msg.partition(), msg.partition())
        assert (prov.key, prov.partition, prov.source) == (event.event_id.encode(), None, msg.partition())
        for record, kind in ((pred, "prediction"), (prov, "provenance")):
            headers = dict(record.headers)
            assert len(headers) == len(record.headers) == 6, "CloudEvents only: the input had no trace"
            assert headers["ce_id"] == event.event_id.encode()
            assert headers["ce_type"] == f"streamscore.{kind}.v1".encode()
            assert headers["ce_source"] == f"/streamscore/{record.topic}".encode()
            assert headers["ce_time"] == T0.isoformat().encode()


def test_hashes_are_the_keyed_blake2b_of_the_float32_values():
    _, _, rows, records, _ = _build(_builder(personal=[("zipcode", 2), ("age", 0)]), [0.3, 0.4])
    for row, prov in zip(rows, records[1::2], strict=True):
        doc = orjson.loads(prov.value)
        assert doc["feature_hash"] == keyed_hash(KEY, row.tobytes())
        assert doc["personal"] == {
            "zipcode": keyed_hash(KEY, b"zipcode=" + row[2].tobytes()),
            "age": keyed_hash(KEY, b"age=" + row[0].tobytes()),
        }


@pytest.mark.parametrize("bad", [float("nan"), -0.1, 1.5, float("inf")])
def test_a_score_that_is_not_a_probability_is_a_dead_letter(bad):
    msgs, events, _, records, scored = _build(_builder(), [0.2, bad, 0.7])
    assert scored == 2 and [r.topic for r in records] == [
        "predictions",
        "provenance",
        "dlq",
        "predictions",
        "provenance",
    ]
    dead = records[2]
    assert (dead.key, dead.value, dead.partition) == (msgs[1].key(), msgs[1].value(), msgs[1].partition())
    headers = DeadLetter.from_headers(dead.headers)
    assert (headers.stage, headers.offset, headers.event_id) == ("score", 11, events[1].event_id)
    assert headers.reason == f"model output {bad!r} is not a probability"


def test_dead_letter_headers_keep_the_originals_first_and_say_why():
    msg = inbound(b"x", b"k", "events", 4, 99, 1_234, [("trace", b"t")])
    headers = fit_dead_letter(msg, FeatureError("feature 'age' is missing"), "e-9", 1 << 20)[2]
    assert headers[0] == ("trace", b"t")
    dl = DeadLetter.from_headers(headers)
    assert (dl.topic, dl.partition, dl.offset, dl.timestamp_ms, dl.stage, dl.event_id) == (
        "events",
        4,
        99,
        1_234,
        "features",
        "e-9",
    )
    assert dl.exception_class == "stream.errors.FeatureError" and dl.reason == "feature 'age' is missing"


def test_a_message_without_a_timestamp_gets_no_timestamp_header():
    headers = fit_dead_letter(inbound(b"x"), FeatureError("no"), None, 1 << 20)[2]
    names = [name for name, _ in headers]
    assert "__connect.errors.timestamp" not in names and "streamscore.event_id" not in names
    assert DeadLetter.from_headers(headers).timestamp_ms is None
