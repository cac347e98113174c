"""Headers of output records: W3C trace context carried from the input, CloudEvents binary mode.

A prediction and its provenance carry the CloudEvents Kafka binding's headers (``ce_specversion``,
``ce_id`` = the event id, ``ce_source``, ``ce_type``, ``ce_time``, ``content-type``), so a CloudEvents
consumer reads them as events. The parts that never change are built once per record builder
(:class:`CloudEventHeaders`), the time once per batch; only ``ce_id`` is per event.

An input's ``traceparent`` (and its ``tracestate``) goes onto its prediction and provenance when it
is well formed (W3C Trace Context, version 00 layout; a ``tracestate`` without a valid
``traceparent`` is dropped, as the spec says, and so is one longer than the spec's 512 characters,
or a later version's ``traceparent`` longer than :data:`MAX_TRACE_HEADER`); an input without one gives
outputs without one.
Dead letters keep every input header unchanged, these included.
"""

from __future__ import annotations

import re

from stream.messages import Headers

__all__ = ["SPEC_VERSION", "CloudEventHeaders", "trace_context"]

SPEC_VERSION = "1.0"
CONTENT_TYPE = b"application/json"
TRACEPARENT, TRACESTATE = "traceparent", "tracestate"
MAX_TRACE_HEADER = 512
"""Longest ``tracestate`` carried (the spec's bound), and longest ``traceparent`` of a later version."""
_TRACEPARENT = re.compile(rb"(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")


def trace_context(headers: Headers) -> Headers:
    """The ``traceparent`` and ``tracestate`` of an input's ``headers`` worth carrying (none if invalid)."""
    parent = state = None
    for name, value in headers:
        if name == TRACEPARENT and parent is None:
            parent = value
        elif name == TRACESTATE and state is None:
            state = value
    if parent is None or not _valid(parent):
        return []
    if state is None or len(state) > MAX_TRACE_HEADER:
        return [(TRACEPARENT, parent)]
    return [(TRACEPARENT, parent), (TRACESTATE, state)]


def _valid(parent: bytes) -> bool:
    """A W3C ``traceparent``: 55 bytes in version 00, later versions may add ``-`` and more."""
    if len(parent) > MAX_TRACE_HEADER or not _TRACEPARENT.fullmatch(parent[:55]):
        return False
    return len(parent) == 55 or (parent[:2] != b"00" and parent[55:56] == b"-")


class CloudEventHeaders:
    """The constant CloudEvents headers of one kind of record (``type``) sent to one topic."""

    __slots__ = ("constant",)

    def __init__(self, topic: str, kind: str, json: bool = True) -> None:
        """``json``: the values are plain JSON (``content-type: application/json``); a registered
        format's values (Confluent's wire format) get no ``content-type``, which is optional."""
        self.constant: Headers = [
            ("ce_specversion", SPEC_VERSION.encode()),
            ("ce_type", f"streamscore.{kind}.v1".encode()),
            ("ce_source", f"/streamscore/{topic}".encode()),
        ]
        if json:
            self.constant.append(("content-type", CONTENT_TYPE))
