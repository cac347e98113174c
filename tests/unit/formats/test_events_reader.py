"""``produce --format`` writes the wire format; ``tail`` reads every format back."""

from __future__ import annotations

import orjson
from conftest import MODELS

from stream.formats.events import event_serializer_for
from stream.formats.reader import WireReader
from stream.formats.registry import StaticSchemas, header
from stream.formats.startup import event_schema
from stream.messages import inbound
from stream.scoring.model import load_card, resolve
from stream.tools.produce import MALFORMED, events
from stream.tools.tail import format_message

CARD = load_card(resolve(MODELS, "loan-approval"))
AVRO, JSON_SCHEMA = event_schema("avro", CARD), event_schema("json-schema", CARD)
VALUE = next(events(seed=1))[1]


def test_tail_shows_each_format_decoded():
    reader = WireReader(StaticSchemas({1: AVRO, 4: JSON_SCHEMA}))
    avro = event_serializer_for("avro", 1, AVRO.schema_str)(VALUE)
    event = orjson.loads(VALUE)
    for value, what in ((avro, "(Avro schema id 1)"), (header(4) + VALUE, "(JSON Schema id 4)")):
        text = format_message(inbound(value, b"k", "t"), reader)
        assert what in text and f'"event_id": "{event["event_id"]}"' in text
        assert f'"salary": {event["features"]["salary"]}' in text
    assert format_message(inbound(VALUE, b"k", "t"), reader) == format_message(inbound(VALUE, b"k", "t"))
    assert "not in the registry" in format_message(inbound(header(99) + VALUE, b"k", "t"), reader)


def test_a_malformed_event_goes_out_behind_the_header_as_it_is():
    serialize = event_serializer_for("avro", 1, AVRO.schema_str)
    broken = MALFORMED["null_feature"][1](orjson.loads(VALUE))
    assert serialize(broken) == header(1) + broken
