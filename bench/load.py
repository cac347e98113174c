"""The ladder's events and load generator.

:class:`Pool` holds events generated once per run (``stream.tools.produce.events``) as ready-made
messages, and the score the model gives each. The latency load generator, ``python -m bench.load
RATE SECONDS EVENTS``, runs as a process of its own and offers ``RATE`` events/s for ``SECONDS``:
every millisecond (:data:`BURST_S`) it sends the events due as one ``produce_batch`` with
``linger.ms`` 0, each stamped with the time of sending in the rung's input format. ``EVENTS`` is
written by :func:`write_slots`: each event already in the wire format, cut where its time goes
(:func:`slots`), and how the format writes a time (:data:`STAMPS`: RFC 3339 text for JSON and JSON
Schema, an Avro ``timestamp-micros``, a Protobuf ``Timestamp``), so that stamping costs one time's
encoding per burst and a bytes join per event, whatever the format. It prints what it achieved, and
its own CPU per event, as one JSON line. Backlogs are written with :data:`WRITER`, in large batches.
"""

from __future__ import annotations

import datetime as dt
import itertools
import struct
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
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: A time no event carries (µs since the epoch): its encoding marks where an event's time is.
MARK = 946_684_800_123_457
_FRAME = struct.Struct(">III")
Serialize = Callable[[bytes], bytes]
"""A JSON event's bytes -> its value in a wire format."""
Stamp = Callable[[int], bytes]
"""Microseconds since the epoch -> the bytes of an event's time in a wire format."""
Slot = tuple[bytes, bytes, bytes]
"""An event ready to send, ``(key, head, tail)``: its value is ``head + its time + tail``."""
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

    def encoded(self, serialize: Serialize) -> Pool:
        """The same events and scores, each value passed through ``serialize`` (a wire format)."""
        return Pool(
            messages=[{"key": m["key"], "value": serialize(m["value"])} for m in self.messages],
            scores=self.scores,
        )


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


def text_stamp(micros: int) -> bytes:
    """RFC 3339 with microseconds, as a JSON event carries its time (JSON, JSON Schema)."""
    return (EPOCH + dt.timedelta(microseconds=micros)).isoformat(timespec="microseconds").encode()


def avro_stamp(micros: int) -> bytes:
    """An Avro ``timestamp-micros`` (the event schema's): the zigzag varint of the microseconds."""
    return _varint((micros << 1) ^ (micros >> 63))


def protobuf_stamp(micros: int) -> bytes:
    """A ``google.protobuf.Timestamp`` field (the event schema's) after its tag: its length, then its
    seconds (field 1) and nanos (field 2) as protobuf writes them (a zero left out)."""
    seconds, rest = divmod(micros, 1_000_000)
    body = b"\x08" + _varint(seconds) if seconds else b""
    body += b"\x10" + _varint(rest * 1000) if rest else b""
    return _varint(len(body)) + body


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


#: How each input format writes an event's time.
STAMPS: dict[str, Stamp] = {
    "json": text_stamp,
    "json-schema": text_stamp,
    "avro": avro_stamp,
    "protobuf": protobuf_stamp,
}


def stamp_slot(key: bytes, value: bytes) -> Slot:
    """A JSON event as ``(key, head, tail)``: the event is ``head + occurred_at + tail``."""
    at = value.index(_STAMP) + len(_STAMP)
    return key, value[:at], value[value.index(b'"', at) :]


def slots(messages: Sequence[dict[str, bytes]], kind: str, serialize: Serialize | None = None) -> list[Slot]:
    """The JSON events of ``messages`` as slots in the input format ``kind``: each put through
    ``serialize`` (its wire format's, None for JSON) with its time set to :data:`MARK`, and cut where
    that time's encoding is; it must be there once."""
    mark, text = STAMPS[kind](MARK), text_stamp(MARK)
    found = []
    for m in messages:
        key, head, tail = stamp_slot(m["key"], m["value"])
        wire = head + text + tail
        wire = wire if serialize is None else serialize(wire)
        at = wire.find(mark)
        if at < 0 or wire.find(mark, at + 1) >= 0:
            raise ValueError(f"the event's time is not once in its {kind} value {wire[:60]!r}...")
        found.append((key, wire[:at], wire[at + len(mark) :]))
    return found


def write_slots(path: Path, kind: str, found: Sequence[Slot]) -> None:
    """The generator's events: the format's name on a line, then each slot's three lengths and bytes."""
    with path.open("wb") as out:
        out.write(kind.encode() + b"\n")
        for key, head, tail in found:
            out.write(_FRAME.pack(len(key), len(head), len(tail)) + key + head + tail)


def read_slots(path: Path) -> tuple[Stamp, list[Slot]]:
    """What :func:`write_slots` wrote: how to stamp the events, and the events."""
    data = path.read_bytes()
    start = data.index(b"\n") + 1
    stamp, found = STAMPS[data[: start - 1].decode()], []
    while start < len(data):
        sizes = _FRAME.unpack_from(data, start)
        start += _FRAME.size
        parts = []
        for size in sizes:
            parts.append(data[start : start + size])
            start += size
        found.append((parts[0], parts[1], parts[2]))
    return stamp, found


def offer(settings: Settings, rate: float, seconds: float, events: Path) -> dict[str, float]:
    """Send the events at ``rate``/s for ``seconds``, each burst stamped with the time it is sent."""
    stamp, messages = read_slots(events)
    producer = Producer(client_config(settings, **{**WRITER, "linger.ms": 0}))  # each burst sent at once
    topic = settings.input_topic
    cycle = itertools.cycle(messages)
    cpu, started, started_at = time.process_time(), time.monotonic(), time.time()
    sent = 0
    while (elapsed := time.monotonic() - started) < seconds:
        due = int(elapsed * rate) + 1 - sent
        if due > 0:
            burst = list(itertools.islice(cycle, due))
            at = stamp(time.time_ns() // 1000)
            _send(producer, topic, [{"key": k, "value": head + at + tail} for k, head, tail in burst])
            sent += due
        producer.poll(0)
        time.sleep(max(0.0, BURST_S - (time.monotonic() - started - elapsed)))
    took = time.monotonic() - started
    producer.flush(60)
    cpu_us = (time.process_time() - cpu) / max(sent, 1) * 1e6  # its threads' too: librdkafka's
    return {
        "offered": round(rate),
        "achieved": round(sent / took),
        "sent": sent,
        "started_at": started_at,
        "generator_cpu_us_per_event": round(cpu_us, 2),
    }


def main() -> None:
    rate, seconds, events = float(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3])
    print(orjson.dumps(offer(Settings(), rate, seconds, events)).decode(), flush=True)


if __name__ == "__main__":
    main()
