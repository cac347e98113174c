"""Dead letters: the input unchanged, with Kafka Connect's headers saying where it was and why it
failed; cut to fit when the input is larger than a record may be.

A dead letter copies its input's key, value and headers, so an input that the input topic took may
be too large to produce again (the producer's limit, or the dead-letter topic's). Such a dead letter
loses what it must, largest part first, and says so in a ``streamscore.dead_letter.cut`` header; its
origin and reason are always kept, so the input can be read at its offset.
"""

from __future__ import annotations

from stream.errors import PoisonEvent
from stream.messages import Headers, Inbound, timestamp_ms


def fit_dead_letter(
    msg: Inbound, exc: PoisonEvent, event_id: str | None, max_bytes: int
) -> tuple[bytes | None, bytes | None, Headers]:
    """A dead letter's key, value and headers: the input's unchanged when they fit in ``max_bytes``.

    A larger input (one the producer could not send, or the topic could not take) loses what it
    must, largest part first: its headers are left out, or its value or key cut to a prefix, and a
    ``streamscore.dead_letter.cut`` header says what was cut from what size. The failure's own
    headers (origin, stage, reason) are always kept, so the input can be found at its offset.
    """
    key, value, originals = msg.key(), msg.value(), list(msg.headers() or ())
    own = failure_headers(msg, exc, event_id)
    excess = record_size(key, value, originals + own) - max_bytes
    if excess <= 0:
        return key, value, originals + own
    excess += CUT_NOTE_BYTES
    cuts: list[str] = []
    while excess > 0:
        sizes = {"headers": headers_size(originals), "value": len(value or b""), "key": len(key or b"")}
        part = max(sizes, key=sizes.__getitem__)
        if not sizes[part]:  # nothing of the input left to cut (never with a sane max_bytes)
            break
        if part == "headers":
            cuts.append(f"headers: {len(originals)} of {sizes[part]} bytes left out")
            originals, excess = [], excess - sizes[part]
            continue
        keep = max(0, sizes[part] - excess)
        cuts.append(f"{part}: {sizes[part]} bytes cut to {keep}")
        if part == "value":
            value = (value or b"")[:keep]
        else:
            key = (key or b"")[:keep]
        excess -= sizes[part] - keep
    return key, value, originals + own + [(CUT_HEADER, "; ".join(cuts).encode())]


CUT_HEADER = "streamscore.dead_letter.cut"
CUT_NOTE_BYTES = 256  # room for the cut header itself
_RECORD_FRAMING = 64  # a record's own fields: length, attributes, deltas, counts (varints)
_HEADER_FRAMING = 10  # a header's two length varints


def headers_size(headers: Headers) -> int:
    """Bytes the headers take in a record, at most."""
    return sum(len(name.encode()) + len(value or b"") + _HEADER_FRAMING for name, value in headers)


def record_size(key: bytes | None, value: bytes | None, headers: Headers) -> int:
    """Bytes a record takes on the wire, at most (what the producer and the topic limit)."""
    return len(key or b"") + len(value or b"") + headers_size(headers) + _RECORD_FRAMING


def failure_headers(msg: Inbound, exc: PoisonEvent, event_id: str | None) -> Headers:
    """Kafka Connect's dead-letter headers: where the input was, and why it failed."""
    headers: Headers = [
        ("__connect.errors.topic", (msg.topic() or "").encode()),
        ("__connect.errors.partition", str(msg.partition()).encode()),
        ("__connect.errors.offset", str(msg.offset()).encode()),
    ]
    ms = timestamp_ms(msg)
    if ms is not None:
        headers.append(("__connect.errors.timestamp", str(ms).encode()))
    headers += [
        ("__connect.errors.exception.class.name", f"stream.errors.{type(exc).__name__}".encode()),
        ("__connect.errors.exception.message", str(exc)[:1000].encode()),
        ("__connect.errors.stage", exc.stage.encode()),
    ]
    if event_id is not None:
        headers.append(("streamscore.event_id", event_id.encode()))
    return headers
