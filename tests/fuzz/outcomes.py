"""The pipeline's invariant under hostile input, shared by the hypothesis tests and the atheris harness.

Every input message yields exactly one outcome: a prediction and its provenance (both valid against
their contracts), or a dead letter with a stage and a reason, carrying the original bytes. Never
an exception.

The Avro pipeline reads registered input by schema id: 1 the card's event schema, 2 the same with
arrays and maps (read by the generated reader), 3 with arrays and a recursive record (read by
fastavro); its messages are built from block counts and lengths (:func:`avro_message`).
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import itertools
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import fastavro
import orjson
from confluent_kafka.schema_registry import Schema

from stream.contracts import DeadLetter, Prediction, Provenance
from stream.formats.avro import AvroDecoder, event_avro_schema
from stream.formats.registry import StaticSchemas, header
from stream.messages import inbound
from stream.scoring.model import load, load_card, resolve
from stream.scoring.pipeline import Pipeline, Topics
from stream.tools.produce import events

MODELS = Path(__file__).resolve().parents[2] / "models"
TOPICS = Topics("predictions", "provenance", "events.dlq")


def make_pipeline(
    root: Path = MODELS,
    max_message_bytes: int = 65_536,
    clock: Callable[[], float] = time.time,
    **options: Any,
) -> Pipeline:
    """A pipeline serving the latest loan-approval of registry ``root``; ``options`` of
    :class:`~stream.scoring.pipeline.Pipeline` (limits, a decoder)."""
    return Pipeline(
        load(root, "loan-approval"),
        TOPICS,
        pii_key=b"test-key",
        scorer={"version": "0", "revision": None, "worker_id": "host:1"},
        max_message_bytes=max_message_bytes,
        clock=clock,
        **options,
    )


def valid_events(n: int, seed: int = 0) -> list[dict]:
    return [orjson.loads(value) for _, value, *_ in itertools.islice(events(seed), n)]


def check(pipeline: Pipeline, values: Sequence[bytes | None]) -> list[str]:
    """Process ``values`` as one batch; fail unless each has exactly one well-formed outcome.

    Returns each input's outcome: ``scored`` or the dead letter's stage.
    """
    batch = [inbound(v, b"k", "events", 0, offset) for offset, v in enumerate(values)]
    result = pipeline.process(batch)
    outcomes: dict[int, str] = {}
    predictions: dict[str, Prediction] = {}
    for record in result.records:
        if record.topic == TOPICS.predictions:
            p = Prediction.model_validate_json(record.value)
            predictions[p.event_id] = p
            continue
        if record.topic == TOPICS.provenance:
            prov = Provenance.model_validate_json(record.value)
            offset, kind = prov.input.offset, "scored"
            assert predictions.pop(prov.event_id).model_version == prov.model.version
        else:
            assert record.topic == TOPICS.dead_letters, record.topic
            dead = DeadLetter.from_headers(record.headers)
            offset, kind = dead.offset, dead.stage
            assert dead.reason and record.value == values[offset], "a dead letter keeps the original bytes"
        assert offset not in outcomes, f"offset {offset}: {outcomes[offset]} and {kind}"
        outcomes[offset] = kind
    assert not predictions, "a prediction without its provenance"
    assert sorted(outcomes) == list(range(len(values))), "an input without an outcome"
    assert result.scored + sum(result.dead_letters.values()) == len(values)
    return [outcomes[offset] for offset in range(len(values))]


def outcome(pipeline: Pipeline, value: bytes | None) -> tuple[str, str]:
    """(``scored`` or the dead letter's stage, its reason) of one message."""
    (record, *_) = pipeline.process([inbound(value)]).records
    if record.topic != TOPICS.dead_letters:
        return "scored", ""
    dead = DeadLetter.from_headers(record.headers)
    return dead.stage, dead.reason


def seeds() -> list[bytes]:
    """Starting inputs for a fuzzer: a valid event, and the edge cases it should grow from."""
    event = orjson.dumps(valid_events(1)[0])
    return [
        event,
        event.replace(b'"loan":', b'"loan":NaN,"x":', 1),
        event.replace(b'"salary":', b'"salary":1e999,"y":', 1),
        b"\xef\xbb\xbf" + event,
        event.replace(b'"event_id":"', b'"event_id":"\\ud800', 1),
        event.replace(b'"entity_id":"', b'"entity_id":"\xc0\xaf\x00', 1),
        b'{"event_id":"x","features":' + b"[" * 300,
    ]


def zigzag(n: int) -> bytes:
    """Avro's varint of a long (a block count, a length, an index)."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n >= 128:
        out.append(n & 127 | 128)
        n >>= 7
    out.append(n)
    return bytes(out)


def avro_schemas() -> dict[int, dict]:
    """The writer schemas of the Avro pipeline by id (see the module's docstring)."""
    event = event_avro_schema(load_card(resolve(MODELS, "loan-approval")))
    nulls = {"type": "array", "items": "null"}
    node = {
        "type": "record", "name": "Node",
        "fields": [{"name": "next", "type": ["null", "Node"]}, {"name": "tags", "type": nulls}],
    }  # fmt: skip
    arrays = [
        {"name": "tags", "type": nulls},
        {"name": "counts", "type": {"type": "map", "values": ["null", "long"]}},
        {"name": "grid", "type": {"type": "array", "items": nulls}},
    ]
    chain = [{"name": "tags", "type": nulls}, {"name": "chain", "type": node}]
    return {
        1: event,
        2: {**event, "name": "Arrays", "fields": [*event["fields"], *arrays]},
        3: {**event, "name": "Chain", "fields": [*event["fields"], *chain]},
    }


def make_avro_pipeline(max_message_bytes: int = 65_536) -> Pipeline:
    """A pipeline reading registered Avro events of :func:`avro_schemas`."""
    source = StaticSchemas({i: Schema(json.dumps(s), "AVRO") for i, s in avro_schemas().items()})
    decoder = AvroDecoder(source, max_message_bytes)
    return make_pipeline(max_message_bytes=max_message_bytes, decoder=decoder)


def avro_message(schema_id: int, tail: bytes) -> bytes:
    """A valid event's fields in Avro, then ``tail`` (the rest of schema ``schema_id``'s fields, or
    anything), in the wire format."""
    return header(schema_id) + _avro_event() + tail


@functools.cache
def _avro_event() -> bytes:
    event = valid_events(1)[0]
    event["occurred_at"] = dt.datetime.fromisoformat(event["occurred_at"])
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(avro_schemas()[1]), event)
    return out.getvalue()


def avro_seeds() -> list[bytes]:
    """Avro inputs to grow from: valid events of each schema, and bombs of block counts and nesting."""
    grid = zigzag(2) + zigzag(1) + b"\x00" + zigzag(-1) + zigzag(0) + b"\x00" + b"\x00"
    return [
        avro_message(1, b""),
        avro_message(
            2, zigzag(3) + b"\x00" + zigzag(1) + zigzag(1) + b"a" + zigzag(1) + zigzag(2) + b"\x00" + grid
        ),
        avro_message(3, zigzag(2) + b"\x00" + zigzag(1) + b"\x00" + b"\x00" + b"\x00"),
        avro_message(2, zigzag(19_990) * 6_663 + b"\x00"),
        avro_message(2, b"\x00\x00" + zigzag(4_000) + (zigzag(19_990) + b"\x00") * 4_000 + b"\x00"),
        avro_message(3, zigzag(-(2**26)) + zigzag(0) + b"\x00"),
        avro_message(3, b"\x00" + zigzag(1) * 5_000 + b"\x00" * 5_001),
    ]
