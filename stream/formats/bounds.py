"""What a writer's schema may cost, and how often the registry may be asked about new ids.

A schema comes from the registry, as untrusted as the messages naming it: its bytes, fields and
nesting are bounded before it is parsed or compiled (a JSON Schema of 10,000 properties costs
seconds and hundreds of MB to compile). Fields are counted as the objects of its JSON: an Avro
field or type, a JSON Schema property or subschema, each is one. Lookups of ids the cache does not
hold go through a token bucket, so a stream of random ids cannot turn into as many requests.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stream.errors import DecodeError
from stream.settings import Settings

_DEFAULTS = Settings.model_construct()


@dataclass(frozen=True)
class SchemaLimits:
    """The bounds on writer schemas and on their cache (``STREAMSCORE_SCHEMA_*``)."""

    max_bytes: int = _DEFAULTS.schema_max_bytes
    max_fields: int = _DEFAULTS.schema_max_fields
    max_depth: int = _DEFAULTS.schema_max_depth
    cache_ids: int = _DEFAULTS.schema_cache_size
    cache_fields: int = _DEFAULTS.schema_cache_fields
    miss_ttl_s: float = _DEFAULTS.schema_registry_miss_ttl_s
    lookups_per_s: float = _DEFAULTS.schema_registry_lookups_per_s

    @classmethod
    def of(cls, settings: Settings) -> SchemaLimits:
        return cls(
            max_bytes=settings.schema_max_bytes,
            max_fields=settings.schema_max_fields,
            max_depth=settings.schema_max_depth,
            cache_ids=settings.schema_cache_size,
            cache_fields=settings.schema_cache_fields,
            miss_ttl_s=settings.schema_registry_miss_ttl_s,
            lookups_per_s=settings.schema_registry_lookups_per_s,
        )

    def weigh(self, schema_id: int, text: str) -> int:
        """The fields of a writer's schema (its JSON objects); :class:`DecodeError` naming the bound
        it breaks, found before it is parsed past that bound."""
        size = len(text.encode())
        if size > self.max_bytes:
            raise DecodeError(
                f"schema id {schema_id}: its schema of {size} bytes exceeds the {self.max_bytes}-byte "
                "limit (STREAMSCORE_SCHEMA_MAX_BYTES)"
            )
        too_deep = DecodeError(
            f"schema id {schema_id}: its schema nests deeper than {self.max_depth} levels "
            "(STREAMSCORE_SCHEMA_MAX_DEPTH)"
        )
        if _depth(text) > self.max_depth:
            raise too_deep
        try:
            document = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise DecodeError(f"schema id {schema_id} cannot be used: not JSON ({exc})") from None
        fields = _objects(document)
        if fields > self.max_fields:
            raise DecodeError(
                f"schema id {schema_id}: its schema has more than {self.max_fields} fields "
                "(STREAMSCORE_SCHEMA_MAX_FIELDS)"
            )
        return fields


def _depth(text: str) -> int:
    """How deep the objects and arrays of a JSON text nest (brackets inside strings not counted)."""
    deepest = depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _objects(document: Any) -> int:
    """The JSON objects in a parsed document (its depth is already bounded)."""
    count, stack = 0, [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            count += 1
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return count


class TokenBucket:
    """At most ``rate`` takes a second, ``rate`` at once (at least one)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self._clock = rate, clock
        self._capacity = max(1.0, rate)
        self._tokens, self._at = self._capacity, clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True
