"""Events/s of the pipeline per wire format, in process, in one run: JSON, JSON Schema and Avro.

``Pipeline.process`` on batches of 64 valid events, input and output both in the format (the
registered ones with their schemas held in memory: a registry is asked once per schema id, so its
round trips are not on this path). Per event p50 and best in µs, events/s from the p50;
``vs_json`` is the format's events/s over JSON's.
"""

from __future__ import annotations

import itertools
import json
import statistics
import time

from stream.formats.avro import AvroDecoder, avro_serializer
from stream.formats.events import event_serializer_for
from stream.formats.json_schema import JsonSchemaDecoder, json_serializer
from stream.formats.registry import StaticSchemas
from stream.formats.startup import event_schema, output_schema
from stream.messages import inbound
from stream.scoring.model import load
from stream.scoring.pipeline import Pipeline, Topics
from stream.scoring.records import JSON_VALUES
from stream.settings import Settings, WireFormat
from stream.tools.produce import events

TOPICS = Topics("p", "v", "d")
BATCH = 64


def _pipeline(kind: WireFormat, settings: Settings) -> tuple[Pipeline, list[bytes]]:
    """A pipeline reading and writing ``kind``, and 256 events in it."""
    model = load(settings.model_dir, settings.model_name)
    values = [v for _, v, *_ in itertools.islice(events(seed=1), 256)]
    decoder, serialize = None, JSON_VALUES
    if kind != "json":
        schema = event_schema(kind, model.card)
        source = StaticSchemas({1: schema})
        serialize = event_serializer_for(kind, 1, json.loads(schema.schema_str))
        values = [serialize(v) for v in values]
        docs = [output_schema(kind, name) for name in ("prediction", "provenance")]
        if kind == "avro":
            decoder = AvroDecoder(source, 65_536)
            serialize = (avro_serializer(2, docs[0]), avro_serializer(3, docs[1]))
        else:
            decoder = JsonSchemaDecoder(source, model.card, 65_536)
            serialize = (json_serializer(2), json_serializer(3))
    pipeline = Pipeline(
        model,
        TOPICS,
        pii_key=b"k",
        scorer={"version": "0", "revision": None, "worker_id": "w"},
        max_message_bytes=65_536,
        decoder=decoder,
        serialize=serialize,
    )
    return pipeline, values


def run(quick: bool = False) -> dict[str, dict[str, float]]:
    """Per format: p50 and best per event, events/s from the p50, and the ratio to JSON's.

    The formats are timed in turn, batch after batch, so that a machine's changing load falls on
    all of them alike.
    """
    settings = Settings()
    repeat = 60 if quick else 300
    batches = {}
    for kind in ("json", "json-schema", "avro"):
        pipeline, values = _pipeline(kind, settings)  # type: ignore[arg-type]
        batch = [inbound(v, b"k", "events", offset=i, timestamp_ms=0) for i, v in enumerate(values[:BATCH])]
        result = pipeline.process(batch)
        assert result.scored == BATCH, result.dead_letters
        batches[kind] = (pipeline, batch)
    samples: dict[str, list[float]] = {kind: [] for kind in batches}
    for _ in range(repeat):
        for kind, (pipeline, batch) in batches.items():
            started = time.perf_counter()
            pipeline.process(batch)
            samples[kind].append((time.perf_counter() - started) / BATCH * 1e6)
    out: dict[str, dict[str, float]] = {}
    for kind, times in samples.items():
        p50 = statistics.median(times)
        out[kind] = {
            "pipeline_per_event_us": round(p50, 2),
            "best_per_event_us": round(min(times), 2),
            "events_per_s": round(1e6 / p50),
        }
    for kind in out:
        out[kind]["vs_json"] = round(out[kind]["events_per_s"] / out["json"]["events_per_s"], 3)
    return out


if __name__ == "__main__":
    print(json.dumps(run(quick=True), indent=1))
