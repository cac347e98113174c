"""Events/s of the pipeline per wire format, in process, in one run: JSON, JSON Schema, Avro, Protobuf.

``Pipeline.process`` on batches of 64 valid events, input and output both in the format (the
registered ones with their schemas held in memory: a registry is asked once per schema id, so its
round trips are not on this path). Per event p50 and best in µs, events/s from the p50;
``vs_json`` is the format's events/s over JSON's. A format this build does not have records why.
"""

from __future__ import annotations

import itertools
import json
import statistics
import time

from stream.formats.codecs import codec
from stream.formats.events import event_serializer_for
from stream.formats.registry import StaticSchemas
from stream.formats.startup import event_schema, output_schema
from stream.messages import inbound
from stream.scoring.events import DEFAULT_SHAPE
from stream.scoring.model import load
from stream.scoring.pipeline import Pipeline, Topics
from stream.scoring.records import JSON_VALUES
from stream.settings import Settings, WireFormat
from stream.tools.produce import events

TOPICS = Topics("p", "v", "d")
BATCH = 64
KINDS: tuple[WireFormat, ...] = ("json", "json-schema", "avro", "protobuf")


def missing(kind: str) -> str | None:
    """Why this build cannot read or write the registered format ``kind``; None if it can (or JSON)."""
    if kind == "json":
        return None
    try:
        codec(kind)
    except (ImportError, AttributeError) as exc:  # a format being added
        return f"no {kind} format in this build ({exc})"
    return None


def _pipeline(kind: WireFormat, settings: Settings) -> tuple[Pipeline, list[bytes]]:
    """A pipeline reading and writing ``kind``, and 256 events in it."""
    model = load(settings.model_dir, settings.model_name)
    values = [v for _, v, *_ in itertools.islice(events(seed=1), 256)]
    decoder, serialize = None, JSON_VALUES
    if kind != "json":
        schema = event_schema(kind, model.card)
        source = StaticSchemas({1: schema})
        serialize = event_serializer_for(kind, 1, schema.schema_str)
        values = [serialize(v) for v in values]
        format_ = codec(kind)
        decoder = format_.decoder(source, model.card, 65_536, None, DEFAULT_SHAPE)
        made = [output_schema(kind, name).schema_str for name in ("prediction", "provenance")]
        serialize = (format_.serializer(2, made[0]), format_.serializer(3, made[1]))
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


def run(quick: bool = False) -> dict[str, dict[str, float | str]]:
    """Per format: p50 and best per event, events/s from the p50, and the ratio to JSON's.

    The formats are timed in turn, batch after batch, so that a machine's changing load falls on
    all of them alike.
    """
    settings = Settings()
    repeat = 60 if quick else 300
    batches = {}
    for kind in (k for k in KINDS if missing(k) is None):
        pipeline, values = _pipeline(kind, settings)
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
    out: dict[str, dict[str, float | str]] = {}
    for kind, times in samples.items():
        p50 = statistics.median(times)
        out[kind] = {
            "pipeline_per_event_us": round(p50, 2),
            "best_per_event_us": round(min(times), 2),
            "events_per_s": round(1e6 / p50),
        }
    for kind in out:
        out[kind]["vs_json"] = round(float(out[kind]["events_per_s"]) / float(out["json"]["events_per_s"]), 3)
    return out | {kind: {"error": why} for kind in KINDS if (why := missing(kind)) is not None}


if __name__ == "__main__":
    print(json.dumps(run(quick=True), indent=1))
