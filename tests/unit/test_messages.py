"""Messages in and out of the pipeline: confluent-kafka's ``Message`` is read as is."""

from __future__ import annotations

import confluent_kafka
import orjson
from fuzz.outcomes import make_pipeline, valid_events

from stream import messages
from stream.messages import Record, inbound, timestamp_ms

VALUES = [*map(orjson.dumps, valid_events(3)), b"{broken", None]


def _records(batch):
    return list(make_pipeline(clock=lambda: 1_800_000_000.0).process(batch).records)


def test_timestamp_types_are_numbered_as_confluent_kafka_numbers_them():
    for name in ("TIMESTAMP_NOT_AVAILABLE", "TIMESTAMP_CREATE_TIME", "TIMESTAMP_LOG_APPEND_TIME"):
        assert getattr(messages, name) == getattr(confluent_kafka, name)


def test_inbound_builds_a_confluent_kafka_message_with_a_create_time_or_none():
    built = inbound(b"v", b"k", "events", 2, 7, 1_700_000_000_123, [("h", b"1")])
    assert isinstance(built, confluent_kafka.Message)
    read = [getattr(built, m)() for m in ("value", "key", "topic", "partition", "offset", "headers", "error")]
    assert read == [b"v", b"k", "events", 2, 7, [("h", b"1")], None]
    assert built.timestamp() == (confluent_kafka.TIMESTAMP_CREATE_TIME, 1_700_000_000_123)
    assert timestamp_ms(built) == 1_700_000_000_123
    assert timestamp_ms(inbound(b"v")) is None, "no timestamp: none is written"


def test_the_pipeline_takes_confluent_kafka_messages_as_they_come():
    ts = (confluent_kafka.TIMESTAMP_LOG_APPEND_TIME, 1_700_000_000_123)
    consumed = [
        confluent_kafka.Message(topic="events", partition=1, offset=i, key=b"k", value=v, timestamp=ts)
        for i, v in enumerate(VALUES)
    ]
    built = [inbound(v, b"k", "events", 1, i, 1_700_000_000_123) for i, v in enumerate(VALUES)]
    assert _records(consumed) == _records(built)


def test_a_record_reads_by_name_and_unpacks_as_the_producer_takes_it():
    record = Record("predictions", b"k", b"{}", None, 3)
    assert (record.topic, record.partition, record.source, record.headers) == ("predictions", None, 3, None)
    topic, key, value, partition, *_ = record
    assert (topic, key, value, partition) == ("predictions", b"k", b"{}", None)
