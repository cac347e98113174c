"""What a producer's schema change costs the worker's decoder, per registered format, in process.

A producer switching to version 2 of its schema (version 1 and an optional field) sends events
under a new schema id. The decoder fetches that id's schema once (here from memory), checks it
carries the card's features and builds its reader once; after that an event of either version costs
what it did. Timed per event, decoders of batches of 64: all of version 1, all of version 2 (a JSON
Schema other than streamscore's own is also checked against it), each event switching version
(``every_event_switching_us``, the worst case: a real switch happens once), and the first batch of
a new id, fetch and reader included (``first_batch_of_a_new_id_us``, per event of the batch).
``switching_vs_versions`` is the switching batches' cost over the mean of the two versions'.
"""

from __future__ import annotations

import itertools
import json
import statistics
import time
from collections.abc import Callable

import orjson
from confluent_kafka.schema_registry import Schema

from stream.contracts import ModelCard
from stream.formats.codecs import SCHEMA_TYPES, RegisteredDecoder, codec
from stream.formats.events import event_serializer_for
from stream.formats.registry import StaticSchemas
from stream.formats.startup import event_schema
from stream.scoring.events import DEFAULT_SHAPE
from stream.scoring.model import load_card, resolve
from stream.settings import Settings, WireFormat
from stream.tools.produce import events

BATCH = 64


def _with_note(kind: WireFormat, text: str) -> str | None:
    """Version 2 of an event schema: an optional ``note`` more (None: no edit for this format)."""
    if kind == "protobuf":
        event = "  Features features = 4;\n}"
        return (
            text.replace(event, "  Features features = 4;\n  optional string note = 5;\n}")
            if event in text
            else None
        )
    document = json.loads(text)
    if kind == "avro":
        document["fields"].append({"name": "note", "type": ["null", "string"], "default": None})
    elif kind == "json-schema":
        document["properties"]["note"] = {"type": "string"}
    else:
        return None
    return json.dumps(document)


def _values(kind: WireFormat, schema_id: int, text: str, note: bool) -> list[bytes]:
    serialize = event_serializer_for(kind, schema_id, text)
    found = []
    for _, value, *_ in itertools.islice(events(seed=5), BATCH):
        document = orjson.loads(value)
        if note:
            document["note"] = "v2"
        found.append(serialize(orjson.dumps(document)))
    return found


def _per_event_us(decode: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        decode()
        samples.append((time.perf_counter() - started) / BATCH * 1e6)
    return round(statistics.median(samples), 3)


def _measure(kind: WireFormat, card: ModelCard, repeat: int) -> dict[str, object]:
    first = event_schema(kind, card).schema_str
    second = _with_note(kind, first)
    if second is None:
        return {"error": "no version 2 made for this format"}
    schemas = {1: Schema(first, SCHEMA_TYPES[kind]), 2: Schema(second, SCHEMA_TYPES[kind])}
    one, two = _values(kind, 1, first, False), _values(kind, 2, second, True)
    switching = [v for pair in zip(one, two, strict=True) for v in pair][:BATCH]

    def fresh() -> RegisteredDecoder:
        return codec(kind).decoder(StaticSchemas(schemas), card, 65_536, None, DEFAULT_SHAPE)

    decoder = fresh()
    assert not any(isinstance(e, Exception) for e in decoder(switching)), "both versions decode"
    one_us = _per_event_us(lambda: decoder(one), repeat)
    two_us = _per_event_us(lambda: decoder(two), repeat)
    switching_us = _per_event_us(lambda: decoder(switching), repeat)
    return {
        "version_1_us": one_us,
        "version_2_us": two_us,
        "every_event_switching_us": switching_us,
        "switching_vs_versions": round(switching_us / ((one_us + two_us) / 2), 3),
        "first_batch_of_a_new_id_us": _per_event_us(lambda: fresh()(two), max(10, repeat // 20)),
    }


def run(
    kinds: tuple[WireFormat, ...] = ("avro", "json-schema", "protobuf"), quick: bool = False
) -> dict[str, object]:
    """Per format: the decoder's cost per event on one version, on versions switching, on a new id."""
    settings = Settings()
    card = load_card(resolve(settings.model_dir, settings.model_name, settings.model_version))
    repeat = 100 if quick else 600
    return {kind: _measure(kind, card, repeat) for kind in kinds}


if __name__ == "__main__":
    print(json.dumps(run(quick=True), indent=1))
