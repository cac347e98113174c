"""Kafka messages as the pipeline sees them: what it reads of a consumed one, and what it returns to send.

The pipeline reads messages the way confluent-kafka's ``Message`` is read (methods, not attributes),
so a batch loop hands ``Consumer.consume()``'s list straight to it, once the messages carrying an
``error()`` are filtered out; :func:`inbound` builds one for tests, benchmarks and tools that have no
broker.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from confluent_kafka import Message

Headers = list[tuple[str, bytes]]

TIMESTAMP_NOT_AVAILABLE = 0
TIMESTAMP_CREATE_TIME = 1
TIMESTAMP_LOG_APPEND_TIME = 2
"""``timestamp()`` types, as confluent-kafka numbers them (a test checks they agree)."""
MAX_KEY_BYTES = 16_384
"""Longest input key, by default: a prediction carries its event's key."""
MAX_RECORD_BYTES = 960_000
"""Largest record produced, by default: room for framing under the producer's 1,000,000-byte limit."""


class Inbound(Protocol):
    """What the pipeline reads of a consumed message: confluent-kafka's ``Message`` satisfies it."""

    def value(self) -> bytes | None: ...
    def key(self) -> bytes | None: ...
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def timestamp(self) -> tuple[int, int]: ...  # (type, milliseconds since the epoch)
    def headers(self) -> Headers | None: ...
    def error(self) -> object | None: ...


def inbound(
    value: bytes | None,
    key: bytes | None = None,
    topic: str = "",
    partition: int = 0,
    offset: int = 0,
    timestamp_ms: int | None = None,
    headers: Headers | None = None,
) -> Message:
    """A consumed message built without a broker (tests, benchmarks, tools): confluent-kafka's own."""
    stamp = (TIMESTAMP_NOT_AVAILABLE, -1) if timestamp_ms is None else (TIMESTAMP_CREATE_TIME, timestamp_ms)
    return Message(
        topic=topic,
        partition=partition,
        offset=offset,
        key=key,
        value=value,
        headers=headers,
        timestamp=stamp,
    )


def timestamp_ms(msg: Inbound) -> int | None:
    """The message's Kafka timestamp in milliseconds, None when the broker gave none."""
    kind, ms = msg.timestamp()
    return None if kind == TIMESTAMP_NOT_AVAILABLE else ms


class Record(NamedTuple):
    """One message to produce; ``partition`` None lets the producer choose by key."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None
    source: int  # partition of the input event (its exactly-once transaction)
    headers: Headers | None = None
