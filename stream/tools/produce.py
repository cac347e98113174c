"""``streamscore produce``: publish loan-application events, valid and (on request) malformed.

Events follow the :class:`~stream.contracts.Event` contract, keyed by ``entity_id``. A
``malformed_fraction`` of them is broken in one of the ways :data:`MALFORMED` lists, each of which
the worker must dead-letter with the matching stage.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import orjson
from confluent_kafka import Producer

from stream.kafka.config import Connection, client_config, connect
from stream.tools import datagen

Features = dict[str, float | int]


def _not_json(e: dict) -> bytes:
    return orjson.dumps(e)[:-7] + b"{{oops"


def _oversized(e: dict) -> bytes:
    return orjson.dumps({**e, "padding": "x" * 70_000})


def _with_features(change: Callable[[Features], Features]) -> Callable[[dict], bytes]:
    return lambda e: orjson.dumps({**e, "features": change(dict(e["features"]))})


#: kind -> (stage the worker must give it, how to break an event)
MALFORMED: dict[str, tuple[str, Callable[[dict], bytes]]] = {
    "not_json": ("decode", _not_json),
    "oversized": ("decode", _oversized),
    "blank_event_id": ("schema", lambda e: orjson.dumps({**e, "event_id": ""})),
    "naive_time": ("schema", lambda e: orjson.dumps({**e, "occurred_at": e["occurred_at"][:19]})),
    "missing_feature": ("features", _with_features(lambda f: {k: v for k, v in f.items() if k != "age"})),
    "null_feature": ("features", _with_features(lambda f: {**f, "age": None})),
    "string_feature": ("features", _with_features(lambda f: {**f, "salary": "lots"})),
    "non_finite": ("features", lambda e: orjson.dumps(e).replace(b'"loan":', b'"loan":NaN,"x":', 1)),
}


@dataclass
class Produced:
    """What was published: ids of valid events and, per malformed kind, the keys used."""

    valid: dict[str, Features] = field(default_factory=dict)  # event_id -> features
    malformed: dict[str, str] = field(default_factory=dict)  # key -> kind
    labels: dict[str, int] = field(default_factory=dict)  # event_id -> true label, when sent

    @property
    def count(self) -> int:
        return len(self.valid) + len(self.malformed)


def events(
    seed: int = 0,
    malformed_fraction: float = 0.0,
    drift_at: int | None = None,
    drift_kind: datagen.DriftKind = "concept",
) -> Iterator[tuple[bytes, bytes, str | None, str, Features, int]]:
    """Endless ``(key, value, malformed kind or None, event_id, features, true label)``."""
    rng = random.Random(seed)
    kinds = sorted(MALFORMED)
    for n, (features, label) in enumerate(datagen.applications(seed, drift_at, drift_kind)):
        event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        entity = f"applicant-{rng.randrange(1_000_000)}"
        event = {
            "event_id": event_id,
            "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
            "entity_id": entity,
            "features": features,
        }
        key = f"{entity}-{n}".encode() if malformed_fraction else entity.encode()
        if malformed_fraction and rng.random() < malformed_fraction:
            kind = kinds[n % len(kinds)]
            yield key, MALFORMED[kind][1](event), kind, event_id, features, label
        else:
            yield key, orjson.dumps(event), None, event_id, features, label


def outcome_record(event_id: str, label: int) -> bytes:
    """The outcome of an event, as on the outcomes topic."""
    return orjson.dumps(
        {"event_id": event_id, "positive": bool(label), "observed_at": dt.datetime.now(dt.UTC).isoformat()}
    )


class _Publisher:
    """A producer of events and, once they are due, of their outcomes; it counts failed deliveries."""

    def __init__(
        self, kafka: Connection, outcome_topic: str | None, linger_ms: float = 5, idempotent: bool = False
    ) -> None:
        config: dict[str, object] = {"linger.ms": linger_ms, "acks": "all", "partitioner": "murmur2_random"}
        if idempotent:  # a retry after a leader change never appends twice; with at most 5 requests
            # in flight a fast run fills 1 MB batches, whose partitions a backlog reads one by one
            config |= {"enable.idempotence": True, "batch.size": 64 * 1024}
        self.producer = Producer(client_config(kafka, **config, log_level=3))
        self.outcome_topic = outcome_topic
        self.outcomes: deque[tuple[float, str, int]] = deque()  # (due, event_id, label)
        self.failures: list[str] = []

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        """Hand a record to the producer, waiting while its queue is full."""
        while True:
            try:
                self.producer.produce(topic, value=value, key=key, on_delivery=self._on_delivery)
                return
            except BufferError:
                self.producer.poll(0.05)

    def _on_delivery(self, err: object, _msg: object) -> None:
        if err is not None:
            self.failures.append(str(err))

    def send_outcomes(self, until: float) -> None:
        """Send the outcomes due by ``until``."""
        while self.outcomes and self.outcomes[0][0] <= until:
            _, event_id, label = self.outcomes.popleft()
            self.send(self.outcome_topic or "", event_id.encode(), outcome_record(event_id, label))

    def send_last_outcomes(self, stop: threading.Event | None) -> None:
        """The outcomes still waiting, when they are due, or at once when stopped."""
        if self.outcomes:
            due = max(0.0, self.outcomes[-1][0] - time.monotonic())
            stop.wait(due) if stop is not None else time.sleep(due)
            self.send_outcomes(self.outcomes[-1][0])

    def flush(self) -> None:
        """Wait for every delivery; raise RuntimeError when some failed."""
        self.producer.flush(60)
        if self.failures:
            raise RuntimeError(f"{len(self.failures)} events were not delivered, e.g. {self.failures[0]}")


def _finished(
    n: int, started: float, count: int | None, duration: float | None, stop: threading.Event | None
) -> bool:
    """Whether ``n`` events are enough: the count reached, the duration over, or a stop asked."""
    return (
        (count is not None and n >= count)
        or (duration is not None and time.monotonic() - started >= duration)
        or (stop is not None and stop.is_set())
    )


def _pace(started: float, n: int, rate: float | None) -> None:
    """Sleep until the ``n``-th event is due at ``rate`` events/s (None: at once)."""
    if rate:
        ahead = started + n / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)


def produce(
    kafka: Connection,
    topic: str,
    count: int | None = None,
    rate: float | None = None,
    duration: float | None = None,
    seed: int = 0,
    malformed_fraction: float = 0.0,
    drift_at: int | None = None,
    drift_kind: datagen.DriftKind = "concept",
    progress: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
    outcome_topic: str | None = None,
    outcome_delay: float = 0.0,
    serialize: Callable[[bytes], bytes] | None = None,
    idempotent: bool = False,
) -> Produced:
    """Publish until ``count`` events, ``duration`` seconds or ``stop``, at ``rate``/s (None: flat out).

    With ``outcome_topic``, each valid event's true label follows ``outcome_delay`` seconds later,
    keyed by event_id. Keys are partitioned like Kafka's Java clients (murmur2), as the worker's are.
    A broker that cannot be reached, or refuses the credentials, raises ConfigError before any event.
    ``serialize`` turns each event's JSON into another format (the wire format of a registry).
    ``idempotent``: no event appended twice when a broker fails under the writes (a cluster's leader
    change); a single broker restarted under an idempotent producer held its queue for minutes.
    """
    connect(kafka)
    # paced, each event goes out when it is due (its occurred_at is when it was sent); flat out, in batches
    publisher = _Publisher(kafka, outcome_topic, linger_ms=0 if rate else 5, idempotent=idempotent)
    produced = Produced()
    started = time.monotonic()
    try:  # Ctrl-C stops publishing; what was published is still flushed and reported
        for n, (key, value, kind, event_id, features, label) in enumerate(
            events(seed, malformed_fraction, drift_at, drift_kind)
        ):
            if _finished(n, started, count, duration, stop):
                break
            _pace(started, n, rate)
            publisher.send(topic, key, value if serialize is None else serialize(value))
            publisher.producer.poll(0)
            if kind is None:
                produced.valid[event_id] = features
                if outcome_topic:
                    publisher.outcomes.append((time.monotonic() + outcome_delay, event_id, label))
                    produced.labels[event_id] = label
            else:
                produced.malformed[key.decode()] = kind
            publisher.send_outcomes(time.monotonic())
            if progress is not None:
                progress(1)
        publisher.send_last_outcomes(stop)
    except KeyboardInterrupt:
        pass
    publisher.flush()
    return produced
