"""``streamscore tail``: pretty-print any topic's messages, JSON values indented, headers shown.

Given a ``wire`` reader (:class:`~stream.formats.reader.WireReader`), values in a registry's
wire format are decoded with their writer's schema, its id shown above them.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable

import orjson
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

from stream.kafka.config import Connection, client_config, connect
from stream.terminal import printable

Wire = Callable[[bytes | None], tuple[str, object] | None]


def tail(
    kafka: Connection,
    topic: str,
    from_beginning: bool = False,
    count: int | None = None,
    wire: Wire | None = None,
) -> None:
    metadata = connect(kafka)[1].topics.get(topic)
    if metadata is None or metadata.error is not None:
        sys.exit(f"streamscore: error: no topic {topic!r} on {client_config(kafka)['bootstrap.servers']}")
    group = f"streamscore-tail-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(
        client_config(kafka, **{"group.id": group, "enable.auto.commit": False, "log_level": 3})
    )
    start = OFFSET_BEGINNING if from_beginning else OFFSET_END
    consumer.assign([TopicPartition(topic, p, start) for p in metadata.partitions])
    seen = 0
    try:
        while count is None or seen < count:
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            seen += 1
            print(format_message(msg, wire), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


def format_message(msg: object, wire: Wire | None = None) -> str:
    """The message as lines: position and key, a header a line, the value (control characters escaped)."""
    return "\n".join(map(printable, _lines(msg, wire)))


def _lines(msg: object, wire: Wire | None) -> list[str]:
    key = msg.key()  # type: ignore[attr-defined]
    head = (
        f"{msg.topic()}[{msg.partition()}]@{msg.offset()} key={key.decode(errors='replace') if key else None}"  # type: ignore[attr-defined]
    )
    lines = [head]
    for name, value in msg.headers() or []:  # type: ignore[attr-defined]
        lines.append(f"  {name}: {value.decode(errors='replace') if value else ''}")
    value = msg.value()  # type: ignore[attr-defined]
    decoded = wire(value) if wire is not None else None
    if decoded is not None:
        lines.append(f"  ({decoded[0]})")
        body = orjson.dumps(decoded[1], option=orjson.OPT_INDENT_2, default=str).decode()
        return [*lines, *body.split("\n")]
    try:
        body = orjson.dumps(orjson.loads(value), option=orjson.OPT_INDENT_2).decode()
    except (orjson.JSONDecodeError, TypeError):
        body = repr(value[:500]) if value else "null"
    return [*lines, *body.split("\n")]  # JSON escapes line breaks in strings: these are its own
