"""The registry client, the wire header and a cache of writer schemas by id.

The Confluent wire format is a magic byte 0, the schema id as a 4-byte big-endian integer, then
the payload (JSON for JSON Schema, Avro's binary encoding for Avro). Subjects follow the
topic-name strategy: ``<topic>-value``.
"""

from __future__ import annotations

import contextlib
import json
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, Generic, Protocol, TypeVar

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from stream.errors import ConfigError, DecodeError
from stream.formats.bounds import SchemaLimits, TokenBucket
from stream.settings import Settings

MAGIC = 0
HEADER = struct.Struct(">bI")
ANY_TYPE = "*"
"""The schema type of a :class:`WriterSchemas` taking schemas of every type."""
UNKNOWN_ID = 40403
"""The registry's error code for a schema id it does not know."""
T = TypeVar("T")


def subject(topic: str) -> str:
    """The topic-name strategy's subject of a topic's values."""
    return f"{topic}-value"


def client_conf(settings: Settings) -> dict[str, Any]:
    """confluent-kafka's ``SchemaRegistryClient`` configuration from ``STREAMSCORE_SCHEMA_REGISTRY_*``:
    each request bounded by the timeout (its default is none), and not retried (a retry would sleep
    and ask again, past the timeout)."""
    if not settings.schema_registry_url:
        raise ConfigError("no schema registry: set STREAMSCORE_SCHEMA_REGISTRY_URL")
    conf: dict[str, Any] = {"url": settings.schema_registry_url}
    if settings.schema_registry_basic_auth_user_info is not None:
        conf["basic.auth.user.info"] = settings.schema_registry_basic_auth_user_info.get_secret_value()
    for key, path in (
        ("ssl.ca.location", settings.schema_registry_ssl_ca_location),
        ("ssl.certificate.location", settings.schema_registry_ssl_certificate_location),
        ("ssl.key.location", settings.schema_registry_ssl_key_location),
    ):
        if path is not None:
            conf[key] = str(path)
    conf["timeout"] = settings.schema_registry_timeout_s
    conf["max.retries"] = 0
    return conf


def registry_client(settings: Settings) -> SchemaRegistryClient:
    return SchemaRegistryClient(client_conf(settings))


@contextlib.contextmanager
def registry_errors(url: str | None, timeout_s: float | None = None) -> Iterator[None]:
    """Turn the registry's refusals, silences and connection errors into a one-line :class:`ConfigError`."""
    try:
        yield
    except ConfigError:
        raise
    except SchemaRegistryError as exc:  # refused credentials, say
        raise ConfigError(
            f"schema registry {url}: {one_line(exc.error_message)} (HTTP {exc.http_status_code}): "
            "check STREAMSCORE_SCHEMA_REGISTRY_*"
        ) from None
    except json.JSONDecodeError:  # an HTML page, a proxy's answer
        raise ConfigError(
            f"schema registry {url} answered with something that is not JSON, so is not a schema "
            "registry's answer: check STREAMSCORE_SCHEMA_REGISTRY_URL (Apicurio's ends in /apis/ccompat/v7)"
        ) from None
    except Exception as exc:  # httpx's errors: unreachable, TLS refused, no answer in time
        if isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__:
            within = f"within {timeout_s:g} s" if timeout_s else "in time"
            raise ConfigError(
                f"schema registry {url} did not answer {within}: check STREAMSCORE_SCHEMA_REGISTRY_URL, "
                "or raise STREAMSCORE_SCHEMA_REGISTRY_TIMEOUT_S"
            ) from None
        raise ConfigError(
            f"schema registry {url} cannot be reached ({one_line(str(exc))}): "
            "check STREAMSCORE_SCHEMA_REGISTRY_URL and its TLS settings"
        ) from None


def one_line(text: object, length: int = 200) -> str:
    """``text`` on one line, cut at ``length`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= length else flat[:length] + "..."


def header(schema_id: int) -> bytes:
    return HEADER.pack(MAGIC, schema_id)


def schema_id(value: bytes | None, max_bytes: int) -> int:
    """The schema id of a wire-format value, or :class:`DecodeError` saying why it has none."""
    if value is None:
        raise DecodeError("empty value (tombstone): an event needs a value")
    if len(value) > max_bytes:
        raise DecodeError(f"message of {len(value)} bytes exceeds the {max_bytes}-byte limit")
    if len(value) < HEADER.size:
        raise DecodeError(f"{len(value)} bytes: too short for the wire format's 5-byte header")
    if value[0] != MAGIC:
        raise DecodeError(f"magic byte {value[0]}, not {MAGIC}: not in the Confluent wire format")
    return HEADER.unpack_from(value)[1]


class SchemaSource(Protocol):
    """Where writer schemas come from: confluent-kafka's ``SchemaRegistryClient``, or
    :class:`StaticSchemas`."""

    def get_schema(self, schema_id: int) -> Schema: ...


Refuse = Callable[[Schema], str | None]
"""Why events of a writer's schema cannot be scored (it cannot carry the model card's features), or None."""


def versions(client: SchemaSource, schema_id: int) -> str:
    """`` (<subject> version <n>)`` of a schema id if the source says (the registry's lookups), or ``""``."""
    ask = getattr(client, "versions", None)
    if ask is None:
        return ""
    try:
        found: list[tuple[str, int]] = ask(schema_id)
    except Exception:  # only a better reason is at stake
        return ""
    return f" ({', '.join(f'{name} version {n}' for name, n in found[:3])})" if found else ""


class StaticSchemas:
    """Schemas by id held in memory, answering as a registry does (benchmarks and unit tests)."""

    def __init__(self, schemas: dict[int, Schema]) -> None:
        self.schemas = schemas
        self.requests = 0

    def get_schema(self, schema_id: int) -> Schema:
        self.requests += 1
        if schema_id not in self.schemas:
            raise SchemaRegistryError(404, UNKNOWN_ID, f"No content with ID '{schema_id}' was found.")
        return self.schemas[schema_id]


class _Entry(Generic[T]):
    """A cached answer: a prepared schema, or the reason its events are refused (until ``expires``)."""

    __slots__ = ("expires", "reason", "value", "weight")

    def __init__(self, value: T | None, reason: str | None, weight: int, expires: float | None) -> None:
        self.value, self.reason, self.weight, self.expires = value, reason, weight, expires


class WriterSchemas(Generic[T]):
    """Writer schemas fetched by id, each kept as what ``prepare`` makes of it, in a bounded cache.

    An id the registry does not know, a schema of another type than ``schema_type``, or one over
    the :class:`SchemaLimits` (checked before ``prepare`` parses it) raises :class:`DecodeError`:
    the message is poison. That answer is cached too, so a stream of such messages costs one
    request; an unknown id only for ``miss_ttl_s`` (it may be registered later). The cache holds at
    most ``cache_ids`` ids and ``cache_fields`` fields, least recently used out first; ids it does
    not hold are looked up at most ``lookups_per_s`` a second, beyond which their messages are
    refused unasked. A registry that cannot answer raises what the source raises (transient, not
    the message's fault), and nothing is cached.
    """

    def __init__(
        self,
        client: SchemaSource,
        schema_type: str,
        prepare: Callable[[Schema], T],
        *,
        limits: SchemaLimits | None = None,
        refuse: Refuse | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client, self._type, self._prepare, self._refuse = client, schema_type, prepare, refuse
        self.limits = limits = limits or SchemaLimits()
        self._clock = clock
        self._bucket = TokenBucket(limits.lookups_per_s, clock)
        self._cache: OrderedDict[int, _Entry[T]] = OrderedDict()
        self._pinned: dict[int, _Entry[T]] = {}
        self._fields = 0

    def __len__(self) -> int:
        return len(self._cache)

    def __getitem__(self, schema_id: int) -> T:
        entry = self._pinned.get(schema_id)
        if entry is None:
            entry = self._cache.get(schema_id)
            if entry is None or (entry.expires is not None and entry.expires <= self._clock()):
                entry = self._look_up(schema_id)
            else:
                self._cache.move_to_end(schema_id)
        if entry.reason is not None:
            raise DecodeError(entry.reason)  # a new one each time: a raised one keeps its frames
        return entry.value  # type: ignore[return-value]

    def pin(self, schema_id: int, schema: Schema) -> str | None:
        """Hold ``schema`` as ``schema_id``'s for good, unasked and outside the bounds of the cache (the
        input subject's schema, read at start-up: no burst of unknown ids can crowd it out); the
        reason its events would be refused, if any (the start-up checks that it carries the card's
        features itself, to say how to mend it)."""
        self._forget(schema_id)
        entry = self._pinned[schema_id] = self._check(schema_id, schema, refuse=False)
        return entry.reason

    def _look_up(self, schema_id: int) -> _Entry[T]:
        self._forget(schema_id)
        if not self._bucket.take():
            rate = self.limits.lookups_per_s
            return _Entry(
                None,
                f"schema id {schema_id}: lookups of unknown ids rate-limited (more than {rate:g} a second: "
                "STREAMSCORE_SCHEMA_REGISTRY_LOOKUPS_PER_S)",
                0,
                None,
            )  # not cached: asked again once the rate allows
        entry = self._fetch(schema_id)
        self._cache[schema_id] = entry
        self._fields += entry.weight
        while len(self._cache) > 1 and (
            len(self._cache) > self.limits.cache_ids or self._fields > self.limits.cache_fields
        ):
            self._fields -= self._cache.popitem(last=False)[1].weight
        return entry

    def _forget(self, schema_id: int) -> None:
        entry = self._cache.pop(schema_id, None)
        if entry is not None:
            self._fields -= entry.weight

    def _fetch(self, schema_id: int) -> _Entry[T]:
        try:
            schema = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.error_code != UNKNOWN_ID and exc.http_status_code != 404:
                raise
            expires = self._clock() + self.limits.miss_ttl_s
            return _Entry(None, f"schema id {schema_id} is not in the registry", 1, expires)
        except DecodeError as exc:  # too large to read
            return _Entry(None, str(exc), 1, None)
        return self._check(schema_id, schema)

    def _check(self, schema_id: int, schema: Schema, refuse: bool = True) -> _Entry[T]:
        """``schema`` prepared, or the reason it is refused: its type, a bound, the parser's refusal."""
        kind = schema.schema_type or "AVRO"  # Apicurio's lookup replies omit it
        if self._type != ANY_TYPE and kind != self._type:
            return _Entry(None, f"schema id {schema_id} is a {kind} schema, not {self._type}", 1, None)
        try:
            weight = self.limits.weigh(schema_id, schema.schema_str or "")
        except DecodeError as exc:
            return _Entry(None, str(exc), 1, None)
        try:
            prepared = self._prepare(schema)
        except Exception as exc:  # a schema the parser refuses
            return _Entry(None, f"schema id {schema_id} cannot be used: {exc}", weight, None)
        refused = self._refuse(schema) if refuse and self._refuse is not None else None
        if refused is not None:
            where = versions(self._client, schema_id)
            return _Entry(None, f"writer schema id {schema_id}{where} {refused}", weight, None)
        return _Entry(prepared, None, weight, None)
