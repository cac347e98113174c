"""The ladder's load generator: events stamped with the time of sending in the rung's input format,
without a round trip through it, and read back from the predictions as the times they were sent."""

from __future__ import annotations

import datetime as dt
import itertools
import time

import pytest
from conftest import MODELS

from bench import latency
from bench.formats import missing
from bench.load import STAMPS, read_slots, slots, write_slots
from stream.contracts import Event
from stream.formats.codecs import codec
from stream.formats.events import event_serializer_for
from stream.formats.reader import WireReader
from stream.formats.registry import StaticSchemas
from stream.formats.startup import event_schema, output_schema
from stream.messages import inbound
from stream.scoring.events import DEFAULT_SHAPE
from stream.scoring.model import load
from stream.scoring.pipeline import Pipeline
from stream.scoring.records import JSON_VALUES, Topics
from stream.tools.produce import events

MODEL = load(MODELS, "loan-approval")
GENERATED = list(itertools.islice(events(seed=3), 40))
MESSAGES = [{"key": k, "value": v} for k, v, *_ in GENERATED]
TOPICS = Topics("predictions", "provenance", "dlq")


FORMATS = [
    "json",
    "json-schema",
    "avro",
    pytest.param("protobuf", marks=pytest.mark.skipif(missing("protobuf") is not None, reason="no Protobuf")),
]


def test_an_event_stamped_at_send_time_is_still_a_valid_event_with_that_time():
    now = dt.datetime(2030, 1, 2, 3, 4, 5, 678_901, tzinfo=dt.UTC)
    micros = (now - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
    for (k, head, tail), (key, value, *_) in zip(slots(MESSAGES, "json"), GENERATED, strict=True):
        event = Event.model_validate_json(head + STAMPS["json"](micros) + tail)
        original = Event.model_validate_json(value)
        assert k == key
        assert event.occurred_at == now
        assert event.model_copy(update={"occurred_at": original.occurred_at}) == original


def test_the_generators_file_gives_back_each_slot_and_the_formats_stamp(tmp_path):
    binary = [
        (b"k\t1", b"\x00\x00\x00\x00\x01\n\t", b"\x02\n"),
        (b"", b"", b"tail"),
    ]  # tabs, newlines, empties
    write_slots(tmp_path / "events.slots", "avro", binary)
    stamp, found = read_slots(tmp_path / "events.slots")
    assert found == binary and stamp is STAMPS["avro"]


def test_a_format_that_does_not_write_the_time_where_it_is_stamped_is_refused():
    with pytest.raises(ValueError, match="not once in its avro value"):
        slots(MESSAGES[:1], "avro", lambda value: value)  # JSON text, not Avro's timestamp-micros


def _formats(kind: str) -> tuple[Pipeline, object, object]:
    """A pipeline reading and writing ``kind``, the reader of its predictions, and the producer's
    serializer of JSON events into ``kind`` (None: JSON)."""
    if kind == "json":
        scorer = _scorer(None, JSON_VALUES)
        return scorer, None, None
    schema = event_schema(kind, MODEL.card)
    outputs = [output_schema(kind, name) for name in ("prediction", "provenance")]
    source = StaticSchemas({1: schema, 2: outputs[0], 3: outputs[1]})
    made = codec(kind)
    decoder = made.decoder(source, MODEL.card, 65_536, None, DEFAULT_SHAPE)
    serialize = (made.serializer(2, outputs[0].schema_str), made.serializer(3, outputs[1].schema_str))
    return _scorer(decoder, serialize), WireReader(source), event_serializer_for(kind, 1, schema.schema_str)


def _scorer(decoder: object, serialize: object) -> Pipeline:
    return Pipeline(
        MODEL, TOPICS, pii_key=b"k" * 16, scorer={"version": "0", "revision": None, "worker_id": "w"},
        max_message_bytes=65_536, decoder=decoder, serialize=serialize,
    )  # fmt: skip


@pytest.mark.parametrize("kind", FORMATS)
def test_the_generators_stamps_are_read_back_from_the_predictions_as_the_times_they_were_sent(kind, tmp_path):
    pipeline, wire, serialize = _formats(kind)
    write_slots(tmp_path / "events.slots", kind, slots(MESSAGES, kind, serialize))
    stamp, found = read_slots(tmp_path / "events.slots")
    whole = time.time_ns() // 1_000_000_000 * 1_000_000  # a whole second: Protobuf leaves its nanos out
    sent = [whole + i * 1_000_003 for i in range(len(found))]  # µs since the epoch, each digit moving
    values = [head + stamp(at) + tail for (_, head, tail), at in zip(found, sent, strict=True)]
    keys = [key for key, _, _ in found]
    batch = [
        inbound(v, k, "events", offset=i, timestamp_ms=5)
        for i, (k, v) in enumerate(zip(keys, values, strict=True))
    ]
    result = pipeline.process(batch)
    assert result.scored == len(values), result.dead_letters
    predictions = [r.value for r in result.records if r.topic == TOPICS.predictions]
    if kind != "json":
        assert all(p[:1] == b"\x00" for p in predictions), "predictions in the wire format"
    timed = latency.timed([(p, 1_000, 2.0) for p in predictions], wire)  # type: ignore[arg-type]
    assert sorted(t.occurred for t in timed) == pytest.approx([at / 1e6 for at in sent], abs=1e-6)
    assert len(timed) == len(sent)
