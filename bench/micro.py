"""Micro-benchmarks of the hot path's pieces, in process, per event (µs).

``pipeline_per_event_batch_64`` is ``Pipeline.process`` on a batch of 64 valid events; its split
(``pipeline_split_per_event_batch_64``) times the same stages with the same pieces one after the
other: decode and validate the batch, read the feature rows, score, build the records.
``headers_per_event_batch_64`` is the cost of the CloudEvents and trace headers: building the
records of inputs without headers and of inputs carrying a ``traceparent`` and ``tracestate``, and
handing records to a confluent-kafka producer (enqueue only, no broker) without headers, with the
six CloudEvents headers, and with those and the trace context.
``drift_update_per_event_batch_64`` is a drift update of the card without its calibration;
``estimate_update_per_event_batch_64`` the performance estimator's share of a drift update of a
calibrated card (a batch of 64 over six partitions: calibrate, bin and split the scores), and
``drift_update_calibrated_per_event_batch_64`` the whole drift update of that card.
``pipeline_3_reasons_per_event_batch_64`` is the pipeline writing three reason codes per
prediction; ``reasons_per_event_batch_64`` every feature's exact contribution to the margin of a batch of 64
(:mod:`stream.scoring.contributions`), as the worker computes reason codes.
"""

from __future__ import annotations

import datetime as dt
import itertools
import statistics
import time
from collections.abc import Callable

import numpy as np
from confluent_kafka import Message, Producer

from stream.drift.estimation import Estimator
from stream.drift.monitor import DriftMonitor
from stream.lifecycle import calibration
from stream.messages import inbound
from stream.scoring.codec import BatchDecoder, decode
from stream.scoring.features import FeatureReader
from stream.scoring.model import LoadedModel, load
from stream.scoring.pipeline import Pipeline, Topics
from stream.scoring.records import RecordBuilder
from stream.settings import Settings
from stream.tools import datagen
from stream.tools.produce import events

SCORER = {"version": "0", "revision": None, "worker_id": "w"}


def _per_call_us(fn: Callable[[], object], repeat: int, number: int) -> dict[str, float]:
    """p50 and p99 over ``repeat`` timings of ``number`` calls each, per call."""
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number * 1e6)
    samples.sort()
    return {
        "p50_us": round(statistics.median(samples), 2),
        "p99_us": round(samples[int(len(samples) * 0.99)], 2),
    }


def run(quick: bool = False) -> dict[str, object]:
    settings = Settings()
    model = load(settings.model_dir, settings.model_name)
    values = [v for _, v, *_ in itertools.islice(events(seed=1), 256)]
    reader = FeatureReader(model.card.features)
    decoded = [decode(v, 65_536) for v in values]
    x = np.array([reader.row(e.features)[0] for e in decoded], dtype=np.float32)
    pipeline = Pipeline(model, Topics("p", "v", "d"), pii_key=b"k", scorer=SCORER, max_message_bytes=65_536)
    batch64 = [inbound(v, b"k", "events", offset=i, timestamp_ms=0) for i, v in enumerate(values[:64])]
    cycle = itertools.cycle(values)
    rows = itertools.cycle(decoded)
    repeat = 50 if quick else 300
    out: dict[str, object] = {
        "decode_validate": _per_call_us(lambda: decode(next(cycle), 65_536), repeat, 200),
        "feature_row": _per_call_us(lambda: reader.row(next(rows).features), repeat, 200),
        "onnx_batch_1": _per_call_us(lambda: model.predict_proba(x[:1]), repeat, 50),
        "onnx_batch_64": _per_call_us(lambda: model.predict_proba(x[:64]), repeat, 10),
        "onnx_batch_256": _per_call_us(lambda: model.predict_proba(x[:256]), repeat // 2, 4),
    }
    plain = model.card.model_copy(update={"calibration": None})  # drift alone, no estimate
    monitor = DriftMonitor(plain, window=5_000, partitions=6)
    scores64 = model.predict_proba(x[:64])
    parts, offsets = np.arange(64) % 6, np.arange(64)  # a batch spread over six partitions
    clock = itertools.count()

    def drift_update() -> None:
        start = next(clock) * 64
        monitor.update(x[:64], scores64, parts, start + offsets / 1_000, start + offsets)

    drift64 = _per_call_us(drift_update, repeat, 10)
    out["drift_update_per_event_batch_64"] = {k: round(v / 64, 3) for k, v in drift64.items()}
    out.update(_estimate(model, x[:64], scores64, repeat))
    out["reasons_per_event_batch_64"] = _reasons(model, x[:64], repeat)
    per_batch = _per_call_us(lambda: pipeline.process(batch64), repeat, 2)
    out["pipeline_per_event_batch_64"] = {k: round(v / 64, 2) for k, v in per_batch.items()}
    if model.card.attribution is not None:  # the same pipeline writing three reason codes
        explained = Pipeline(
            model, Topics("p", "v", "d"), pii_key=b"k", scorer=SCORER, max_message_bytes=65_536, reasons=3
        )
        per_batch = _per_call_us(lambda: explained.process(batch64), repeat, 2)
        out["pipeline_3_reasons_per_event_batch_64"] = {k: round(v / 64, 2) for k, v in per_batch.items()}
    out["pipeline_split_per_event_batch_64"] = _split(pipeline, batch64, repeat)
    out["headers_per_event_batch_64"] = _headers(pipeline, values[:64], repeat)
    for n in (64, 256):
        out[f"onnx_batch_{n}"]["per_row_us"] = round(out[f"onnx_batch_{n}"]["p50_us"] / n, 3)
    return out


def _estimate(model: LoadedModel, x: np.ndarray, scores: np.ndarray, repeat: int) -> dict[str, object]:
    """Per event: the estimator's chunks of a batch over six partitions, and a calibrated drift update
    (the card's calibration, or one fitted here on generated applications)."""
    card = model.card
    if card.calibration is None:
        rows = list(itertools.islice(datagen.applications(3), 2_000))
        xs = np.array([[r[f] for f in model.feature_names] for r, _ in rows], dtype=np.float32)
        fitted = calibration.fit(np.array([y == 1 for _, y in rows]), model.predict_proba(xs), 0.5)
        card = card.model_copy(update={"calibration": fitted})
    estimator = Estimator.of(card)
    assert estimator is not None
    parts = np.arange(64) % 6
    order = np.argsort(parts, kind="stable")
    starts = np.searchsorted(parts[order], np.arange(6))
    ends = np.append(starts[1:], 64)
    sorted_scores = scores[order]
    chunks = _per_call_us(lambda: estimator.chunks(sorted_scores, starts, ends), repeat, 10)
    monitor = DriftMonitor(card, window=5_000, partitions=6)
    clock = itertools.count()
    offsets = np.arange(64)

    def update() -> None:
        start = next(clock) * 64
        monitor.update(x, scores, parts, start + offsets / 1_000, start + offsets)

    whole = _per_call_us(update, repeat, 10)
    return {
        "estimate_update_per_event_batch_64": {k: round(v / 64, 3) for k, v in chunks.items()},
        "drift_update_calibrated_per_event_batch_64": {k: round(v / 64, 3) for k, v in whole.items()},
    }


def _reasons(model: LoadedModel, x: np.ndarray, repeat: int) -> dict[str, float]:
    """p50 and p99 per event of every feature's exact contribution for a batch of 64; a card without
    an attribution gets one from its training rows, generated again from the card's seed."""
    from stream.lifecycle.attribution import attribute
    from stream.scoring.contributions import build
    from stream.scoring.contributions.core import graph_of
    from stream.tools.datagen import DRIFTED_FUNCTION
    from stream.tools.train import _dataset

    card = model.card
    if card.attribution is None:
        told = card.training
        drifted = told.get("classification_function") == DRIFTED_FUNCTION
        rows, _ = _dataset(int(told["samples"]), int(told["seed"]), drifted)
        found = attribute(model.path.read_bytes(), card, rows[: int(told["train_rows"])], None)
        card = card.model_copy(update={"attribution": found})
    contributions = build(graph_of(model), card, card.attribution)
    timed = _per_call_us(lambda: contributions(x, None), repeat, 10)
    return {k: round(v / 64, 3) for k, v in timed.items()}


def _split(pipeline: Pipeline, batch: list[Message], repeat: int) -> dict[str, float]:
    """p50 per event of each stage of ``Pipeline.process`` on ``batch``, timed one after the other."""
    model = pipeline.model
    decoder = BatchDecoder(65_536)
    reader = FeatureReader(model.card.features)
    records = RecordBuilder.for_card(pipeline.topics, model.card, pii_key=b"k", scorer=SCORER)
    values = [m.value() for m in batch]
    events = decoder(values)
    features = [e.features for e in events]  # type: ignore[union-attr]
    x = reader.rows(features).x
    scores = model.predict_proba(x).tolist()
    now = dt.datetime.now(dt.UTC)
    stages: dict[str, Callable[[], object]] = {
        "decode_validate": lambda: decoder(values),
        "features": lambda: reader.rows(features),
        "score": lambda: model.predict_proba(x).tolist(),
        "records": lambda: records.scored(batch, events, x, scores, now, now, now),  # type: ignore[arg-type]
    }
    split = _stages_per_event(stages, len(batch), repeat)
    split["sum"] = round(sum(split.values()), 2)
    return split


def _stages_per_event(stages: dict[str, Callable[[], object]], events: int, repeat: int) -> dict[str, float]:
    """p50 per event of each stage (a call handles ``events`` events), the stages timed in turn."""
    samples: dict[str, list[float]] = {name: [] for name in stages}
    for _ in range(repeat):
        for name, stage in stages.items():
            t0 = time.perf_counter()
            stage()
            samples[name].append((time.perf_counter() - t0) / events * 1e6)
    return {name: round(statistics.median(s), 2) for name, s in samples.items()}


TRACE = [
    ("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    ("tracestate", b"congo=t61rcWkgMzE"),
]


def _headers(pipeline: Pipeline, values: list[bytes], repeat: int) -> dict[str, float]:
    """p50 per event: records built for inputs without and with trace headers; produce() with and without."""
    model = pipeline.model
    records = RecordBuilder.for_card(pipeline.topics, model.card, pii_key=b"k", scorer=SCORER)
    plain = [inbound(v, b"k", "events", offset=i, timestamp_ms=0) for i, v in enumerate(values)]
    traced = [
        inbound(v, b"k", "events", offset=i, timestamp_ms=0, headers=TRACE) for i, v in enumerate(values)
    ]
    events = BatchDecoder(65_536)(values)
    x = FeatureReader(model.card.features).rows([e.features for e in events]).x  # type: ignore[union-attr]
    scores = model.predict_proba(x).tolist()
    now = dt.datetime.now(dt.UTC)
    built, _ = records.scored(traced, events, x, scores, now, now, now)  # type: ignore[arg-type]
    ce_only = [h[:6] for h in (r.headers for r in built)]
    producer = Producer(
        {"bootstrap.servers": "127.0.0.1:9", "log_level": 0, "queue.buffering.max.messages": 1_000_000}
    )
    produce = producer.produce

    def send(headers: list) -> None:
        for r, h in zip(built, headers, strict=True):
            produce("p", r.value, r.key, headers=h)
        producer.purge(in_queue=True, in_flight=False)

    stages: dict[str, Callable[[], object]] = {
        "records_inputs_without_headers": lambda: records.scored(plain, events, x, scores, now, now, now),  # type: ignore[arg-type]
        "records_inputs_with_trace": lambda: records.scored(traced, events, x, scores, now, now, now),  # type: ignore[arg-type]
        "produce_no_headers": lambda: send([None] * len(built)),
        "produce_cloudevents_headers": lambda: send(ce_only),
        "produce_cloudevents_and_trace": lambda: send([r.headers for r in built]),
    }
    return _stages_per_event(stages, len(values), repeat)
