"""Kafka messages as the pipeline sees them: what it reads of a consumed one, and what it returns to send.

The pipeline reads messages the way confluent-kafka's ``Message`` is read (methods, not attributes),
so a batch loop hands ``Consumer.consume()``'s list straight to it, once the messages carrying an
``error()`` are filtered out. :class:`InboundMessage` has the same shape for tests, benchmarks and
tools that have no broker. Nothing here imports a Kafka client.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

Headers = list[tuple[str, bytes]]

TIMESTAMP_NOT_AVAILABLE = 0
TIMESTAMP_CREATE_TIME = 1
TIMESTAMP_LOG_APPEND_TIME = 2
"""``timestamp()`` types, as confluent-kafka numbers them (a test checks they agree)."""


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


class InboundMessage:
    """A consumed message built without a broker (tests, benchmarks, tools); reads like confluent-kafka's."""

    __slots__ = ("_headers", "_key", "_offset", "_partition", "_timestamp", "_topic", "_value")

    def __init__(
        self,
        value: bytes | None,
        key: bytes | None = None,
        topic: str = "",
        partition: int = 0,
        offset: int = 0,
        timestamp_ms: int | None = None,
        headers: Headers | None = None,
    ) -> None:
        self._value, self._key, self._topic = value, key, topic
        self._partition, self._offset, self._headers = partition, offset, headers
        self._timestamp = (
            (TIMESTAMP_NOT_AVAILABLE, -1) if timestamp_ms is None else (TIMESTAMP_CREATE_TIME, timestamp_ms)
        )

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes | None:
        return self._key

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return self._timestamp

    def headers(self) -> Headers | None:
        return self._headers

    def error(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"InboundMessage({self._topic}[{self._partition}]@{self._offset})"


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
