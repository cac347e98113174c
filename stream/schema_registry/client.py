"""The registry client, the wire header and a cache of writer schemas by id.

The Confluent wire format is a magic byte 0, the schema id as a 4-byte big-endian integer, then
the payload (JSON for JSON Schema, Avro's binary encoding for Avro). Subjects follow the
topic-name strategy: ``<topic>-value``.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable, Iterator
from typing import Any, Generic, Protocol, TypeVar

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from stream.errors import ConfigError, DecodeError
from stream.settings import Settings

MAGIC = 0
HEADER = struct.Struct(">bI")
UNKNOWN_ID = 40403
"""The registry's error code for a schema id it does not know."""
T = TypeVar("T")
_MISSING: Any = object()


def subject(topic: str) -> str:
    """The topic-name strategy's subject of a topic's values."""
    return f"{topic}-value"


def client_conf(settings: Settings) -> dict[str, Any]:
    """confluent-kafka's ``SchemaRegistryClient`` configuration from ``STREAMSCORE_SCHEMA_REGISTRY_*``."""
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
    return conf


def registry_client(settings: Settings) -> SchemaRegistryClient:
    return SchemaRegistryClient(client_conf(settings))


@contextlib.contextmanager
def registry_errors(url: str | None) -> Iterator[None]:
    """Turn the registry's refusals and connection errors into a one-line :class:`ConfigError`."""
    try:
        yield
    except ConfigError:
        raise
    except SchemaRegistryError as exc:  # refused credentials, say
        raise ConfigError(
            f"schema registry {url}: {exc.error_message} (HTTP {exc.http_status_code}): "
            "check STREAMSCORE_SCHEMA_REGISTRY_*"
        ) from None
    except Exception as exc:  # httpx's errors: unreachable, TLS refused
        raise ConfigError(
            f"schema registry {url} cannot be reached ({exc}): "
            "check STREAMSCORE_SCHEMA_REGISTRY_URL and its TLS settings"
        ) from None


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


class WriterSchemas(Generic[T]):
    """Writer schemas fetched by id once, each kept as what ``prepare`` makes of it.

    An id the registry does not know, or a schema of another type than ``schema_type``, raises
    :class:`DecodeError` (the message is poison); that answer is cached too, so a stream of such
    messages costs one request. A registry that cannot be reached raises ``SchemaRegistryError`` or
    an HTTP error: transient, not the message's fault.
    """

    def __init__(self, client: SchemaSource, schema_type: str, prepare: Callable[[Schema], T]) -> None:
        self._client, self._type, self._prepare = client, schema_type, prepare
        self._known: dict[int, T | DecodeError] = {}

    def __getitem__(self, schema_id: int) -> T:
        got = self._known.get(schema_id, _MISSING)
        if got is _MISSING:
            got = self._known[schema_id] = self._fetch(schema_id)
        if isinstance(got, DecodeError):
            raise got
        return got

    def _fetch(self, schema_id: int) -> T | DecodeError:
        try:
            schema = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.error_code != UNKNOWN_ID and exc.http_status_code != 404:
                raise
            return DecodeError(f"schema id {schema_id} is not in the registry")
        kind = schema.schema_type or "AVRO"  # Apicurio's lookup replies omit it
        if kind != self._type:
            return DecodeError(f"schema id {schema_id} is a {kind} schema, not {self._type}")
        try:
            return self._prepare(schema)
        except Exception as exc:  # a schema the parser refuses
            return DecodeError(f"schema id {schema_id} cannot be used: {exc}")
