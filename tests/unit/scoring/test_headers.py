"""Trace context carried from an input to its records; CloudEvents headers read by the SDK."""

from __future__ import annotations

import datetime as dt

import numpy as np
import orjson
import pytest
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.formats.json import JSONFormat
from fuzz.outcomes import valid_events

from stream.contracts import Event
from stream.errors import FeatureError
from stream.messages import inbound
from stream.scoring.headers import trace_context
from stream.scoring.records import RecordBuilder, Topics

PARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
T0 = dt.datetime(2026, 11, 30, 4, 0, 0, 250000, tzinfo=dt.UTC)


def _records(headers):
    builder = RecordBuilder(
        Topics("predictions", "provenance", "dlq"),
        model={"name": "m", "version": "1", "sha256": "ab" * 32},
        threshold=0.5,
        labels=("deny", "approve"),
        personal=[],
        pii_key=b"k",
        scorer={"version": "0", "revision": None, "worker_id": "w"},
    )
    doc = valid_events(1)[0]
    msg = inbound(orjson.dumps(doc), b"key-1", "events", 2, 40, 1_000, headers=headers)
    records, _ = builder.scored(
        [msg], [Event.model_validate(doc)], np.zeros((1, 4), np.float32), [0.25], T0, T0, T0
    )
    return msg, doc, records, builder


@pytest.mark.parametrize(
    ("headers", "carried"),
    [
        ([("traceparent", PARENT)], [("traceparent", PARENT)]),
        (
            [("x", b"1"), ("traceparent", PARENT), ("tracestate", b"vendor=abc")],
            [("traceparent", PARENT), ("tracestate", b"vendor=abc")],
        ),
        ([("tracestate", b"vendor=abc")], []),  # no traceparent: the state alone is dropped
        ([("traceparent", PARENT.replace(b"-01", b"-0"))], []),  # malformed
        ([("traceparent", b"00-" + b"0" * 32 + PARENT[35:])], []),  # all-zero trace id
        ([("traceparent", b"ff" + PARENT[2:])], []),  # version ff is invalid
        ([("traceparent", PARENT + b"-more")], []),  # version 00 has exactly 55 bytes
        ([("traceparent", b"01" + PARENT[2:] + b"-more")], [("traceparent", b"01" + PARENT[2:] + b"-more")]),
        ([("other", b"v")], []),
        (  # a tracestate longer than the spec's 512 characters is dropped, the parent kept
            [("traceparent", PARENT), ("tracestate", b"v=" + b"a" * 511)],
            [("traceparent", PARENT)],
        ),
        (
            [("traceparent", PARENT), ("tracestate", b"v=" + b"a" * 510)],
            [("traceparent", PARENT), ("tracestate", b"v=" + b"a" * 510)],
        ),
        ([("traceparent", b"01" + PARENT[2:] + b"-" + b"m" * 1_000_000)], []),  # a later version, too long
    ],
)
def test_trace_context_is_carried_only_when_well_formed(headers, carried):
    assert trace_context(headers) == carried
    _, _, records, _ = _records(headers)
    for record in records:
        assert [h for h in record.headers if h[0] in ("traceparent", "tracestate")] == carried


def test_an_input_without_headers_gives_records_without_trace():
    _, _, records, _ = _records(None)
    for record in records:
        assert not [
            name for name, _ in record.headers if not name.startswith("ce_") and name != "content-type"
        ]


def test_dead_letters_keep_the_trace_headers_unchanged():
    msg, _, _, builder = _records([("traceparent", PARENT), ("tracestate", b"v=1")])
    dead = builder.dead_letter(msg, FeatureError("no"), None)
    assert dead.headers[:2] == [("traceparent", PARENT), ("tracestate", b"v=1")]


def test_the_cloudevents_sdk_reads_predictions_and_provenance():
    _, doc, records, _ = _records([("traceparent", PARENT)])
    for record, kind in zip(records, ("prediction", "provenance"), strict=True):
        event = from_binary(
            KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value), JSONFormat()
        )
        assert event.get_id() == doc["event_id"]
        assert event.get_type() == f"streamscore.{kind}.v1"
        assert event.get_source() == f"/streamscore/{kind.replace('prediction', 'predictions')}"
        assert event.get_specversion() == "1.0"
        assert event.get_time() == T0
        assert event.get_datacontenttype() == "application/json"
        assert event.get_data()["event_id"] == doc["event_id"]
