"""The ladder's events and load generator.

:class:`Pool` holds events generated once per run (``stream.tools.produce.events``) as ready-made
messages, and the score the model gives each. The latency load generator, ``python -m bench.load
RATE SECONDS POOL``, runs as a process of its own and offers ``RATE`` events/s for ``SECONDS``:
every millisecond (:data:`BURST_S`) it sends the events due as one ``produce_batch`` with
``linger.ms`` 0, each event's ``occurred_at`` overwritten in its pre-serialised bytes with the time
of sending (so generating costs a bytes join per event, not a JSON round trip). It prints what it
achieved as one JSON line. Backlogs are written with :data:`WRITER`, in large batches.
"""

from __future__ import annotations

import datetime as dt
import itertools
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from confluent_kafka import Producer

from stream.kafka.config import client_config
from stream.settings import Settings

if TYPE_CHECKING:
    from stream.scoring.model import LoadedModel
    from stream.tools.tail import Wire

#: Time between two bursts of the load generator: at most the latency it adds to an event.
BURST_S = 0.001
_STAMP = b'"occurred_at":"'
Generated = tuple[bytes, bytes, str, dict[str, Any]]
"""An event: ``(key, value, event_id, features)``."""
#: Writer settings for large batches: a backlog goes out at a few hundred thousand events/s.
WRITER = {
    "linger.ms": 20,
    "batch.size": 1_000_000,
    "queue.buffering.max.messages": 2_000_000,
    "queue.buffering.max.kbytes": 2_000_000,
    "acks": "all",
    "partitioner": "murmur2_random",
}


def demo_events(size: int, seed: int) -> list[Generated]:
    """``size`` of the demo's events (``streamscore produce``), all valid."""
    from stream.tools.produce import events

    return [(k, v, e, f) for k, v, _, e, f, _ in itertools.islice(events(seed=seed), size)]


@dataclass
class Pool:
    """Pre-generated events: ``messages`` for ``produce_batch`` and each event's expected score."""

    messages: list[dict[str, bytes]]
    scores: dict[str, float]

    @classmethod
    def generate(cls, size: int, seed: int = 5) -> Pool:
        """``size`` of the demo's events (``streamscore produce``), scored by the configured model."""
        from stream.scoring.model import load

        settings = Settings()
        model = load(settings.model_dir, settings.model_name, settings.model_version)
        return cls.scored(model, demo_events(size, seed))

    @classmethod
    def scored(cls, model: LoadedModel, generated: Sequence[Generated]) -> Pool:
        """The events ``(key, value, event_id, features)`` with the score ``model`` gives each."""
        columns = {name: [features[name] for *_, features in generated] for name in model.feature_names}
        scores = model.predict_columns(columns).scores.tolist()
        return cls(
            messages=[{"key": key, "value": value} for key, value, *_ in generated],
            scores={event_id: s for (_, _, event_id, _), s in zip(generated, scores, strict=True)},
        )

    def encoded(self, serialize: Callable[[bytes], bytes]) -> Pool:
        """The same events and scores, each value passed through ``serialize`` (a wire format)."""
        return Pool(
            messages=[{"key": m["key"], "value": serialize(m["value"])} for m in self.messages],
            scores=self.scores,
        )

    def write(self, path: Path) -> None:
        """One ``key TAB value`` line per event, for the load generator."""
        path.write_bytes(b"".join(m["key"] + b"\t" + m["value"] + b"\n" for m in self.messages))


def prediction(value: bytes, wire: Wire | None = None) -> dict[str, Any] | None:
    """A prediction's record: its JSON, or with ``wire`` its wire-format value decoded with the
    writer's schema (Avro or JSON Schema); None if it is not a record."""
    if wire is None:
        record = orjson.loads(value)
    else:
        decoded = wire(value)
        record = decoded[1] if decoded is not None else None
    return record if isinstance(record, dict) else None


def score_matches(record: dict[str, Any] | None, scores: dict[str, float]) -> bool | None:
    """Whether a prediction's score is the model's for its event; None: no score to check."""
    if record is None or "score" not in record:
        return None
    want = scores.get(record.get("event_id"))  # type: ignore[arg-type]
    return None if want is None else abs(float(record["score"]) - want) <= 1e-6


def write(producer: Producer, topic: str, messages: list[dict[str, bytes]], count: int) -> None:
    """Send ``count`` of ``messages`` (cycled) with ``produce_batch``; wait until all are acknowledged."""
    sent = 0
    while sent < count:
        chunk = messages[: min(len(messages), count - sent)]
        _send(producer, topic, chunk)
        sent += len(chunk)
    if producer.flush(120) > 0:
        raise RuntimeError("the backlog was not acknowledged within 120 s")


def _send(producer: Producer, topic: str, batch: list[dict[str, bytes]]) -> None:
    """``produce_batch``, again for the messages it could not queue (it marks them with ``_error``)."""
    while batch:
        producer.produce_batch(topic, batch)
        batch = [m for m in batch if m.pop("_error", None) is not None]
        producer.poll(0.05 if batch else 0)


def stamp_slot(line: bytes) -> tuple[bytes, bytes, bytes]:
    """A pool line as ``(key, head, tail)``: the event is ``head + occurred_at + tail``."""
    key, value = line.split(b"\t", 1)
    at = value.index(_STAMP) + len(_STAMP)
    return key, value[:at], value[value.index(b'"', at) :]


def offer(settings: Settings, rate: float, seconds: float, pool: Path) -> dict[str, float]:
    """Send the pool's events at ``rate``/s for ``seconds``, stamped with the time of sending."""
    messages = [stamp_slot(line) for line in pool.read_bytes().splitlines()]
    producer = Producer(client_config(settings, **{**WRITER, "linger.ms": 0}))  # each burst sent at once
    topic = settings.input_topic
    cycle = itertools.cycle(messages)
    started, started_at = time.monotonic(), time.time()
    sent = 0
    while (elapsed := time.monotonic() - started) < seconds:
        due = int(elapsed * rate) + 1 - sent
        if due > 0:
            stamp = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").encode()
            batch = [
                {"key": k, "value": head + stamp + tail} for k, head, tail in itertools.islice(cycle, due)
            ]
            _send(producer, topic, batch)
            sent += due
        producer.poll(0)
        time.sleep(max(0.0, BURST_S - (time.monotonic() - started - elapsed)))
    took = time.monotonic() - started
    producer.flush(60)
    return {"offered": round(rate), "achieved": round(sent / took), "sent": sent, "started_at": started_at}


def main() -> None:
    rate, seconds, pool = float(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3])
    print(orjson.dumps(offer(Settings(), rate, seconds, pool)).decode(), flush=True)


if __name__ == "__main__":
    main()
