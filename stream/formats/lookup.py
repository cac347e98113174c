"""The worker's lookups of writer schemas by id: one bounded request each.

confluent-kafka's ``SchemaRegistryClient`` waits on a registry with no timeout unless given one,
retries each request (sleeping between), and keeps every schema it has fetched for good (misses it
does not keep). The scoring loop asks the registry itself, ``GET /schemas/ids/<id>``: the whole
request, answer included, takes at most ``STREAMSCORE_SCHEMA_REGISTRY_TIMEOUT_S`` however slowly
the answer comes, reads at most what a schema within ``STREAMSCORE_SCHEMA_MAX_BYTES`` needs, and
keeps nothing (:class:`~stream.formats.registry.WriterSchemas` holds the one, bounded, cache).

An id the registry does not know raises ``SchemaRegistryError`` (404) as confluent-kafka's client
does; a schema too large to read, :class:`DecodeError`. Anything else (no answer in time, a refused
connection, an HTML page, a 500) is :class:`RegistryError`, one line naming the registry: not the
message's fault, so the loop ends without committing and a restart asks again.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import time
from urllib.parse import urlsplit

from confluent_kafka.schema_registry import RegisteredSchema, Schema
from confluent_kafka.schema_registry.error import SchemaRegistryError

from stream.errors import DecodeError, StreamscoreError
from stream.settings import Settings

ACCEPT = "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json, application/json"
ENVELOPE_BYTES = 16_384  # an answer's bytes besides its schema's (escaped, the schema may double)
CHUNK = 16_384


class RegistryError(StreamscoreError):
    """The registry failed a lookup: no answer in time, unreachable, or not a registry's answer."""

    def __repr__(self) -> str:  # the loop logs the repr of what ended it: one readable line
        return f"RegistryError: {self}"


class RegistryLookups:
    """Writer schemas by id from the registry the settings name, each request bounded in time and size."""

    def __init__(self, settings: Settings) -> None:
        if not settings.schema_registry_url:
            raise ValueError("no schema registry URL")
        self.url = settings.schema_registry_url
        self._bases = [u.strip().rstrip("/") for u in self.url.split(",") if u.strip()]
        self._timeout = settings.schema_registry_timeout_s
        self._max_bytes = settings.schema_max_bytes
        self._headers = {"Accept": ACCEPT, "Accept-Encoding": "identity"}
        if settings.schema_registry_basic_auth_user_info is not None:
            secret = settings.schema_registry_basic_auth_user_info.get_secret_value().encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(secret).decode()
        self._tls = _tls(settings)

    def get_schema(self, schema_id: int) -> Schema:
        """The schema of ``schema_id``; see the module for what each failure raises."""
        status, body = self._get(f"/schemas/ids/{schema_id}", schema_id)
        document = _json(body)
        if status == 200 and isinstance(document, dict) and isinstance(document.get("schema"), str):
            try:
                return RegisteredSchema.from_dict(document).schema
            except (KeyError, TypeError, ValueError):
                pass
        code = document.get("error_code") if isinstance(document, dict) else None
        if status == 404 and isinstance(code, int):
            raise SchemaRegistryError(404, code, str(document.get("message")))
        quoted = f"HTTP {status} ({_snippet(body)})"
        if status in (200, 404):
            raise self._error(
                schema_id,
                f"{quoted} is not a schema registry's answer: check STREAMSCORE_SCHEMA_REGISTRY_URL",
            )
        raise self._error(schema_id, quoted)

    def versions(self, schema_id: int) -> list[tuple[str, int]]:
        """The (subject, version) pairs registered with ``schema_id``, for a dead letter's reason."""
        status, body = self._get(f"/schemas/ids/{schema_id}/versions", schema_id)
        document = _json(body)
        if status != 200 or not isinstance(document, list):
            return []
        return [
            (str(v["subject"]), int(v["version"]))
            for v in document
            if isinstance(v, dict) and isinstance(v.get("version"), int)
        ]

    def _get(self, path: str, schema_id: int) -> tuple[int, bytes]:
        """(status, body) from the first base URL that answers, within the timeout in all."""
        deadline = time.monotonic() + self._timeout
        failure: Exception | None = None
        for base in self._bases:
            try:
                return self._request(base + path, deadline, schema_id)
            except (OSError, http.client.HTTPException) as exc:  # refused, timed out, reset, not HTTP
                failure = exc
        if isinstance(failure, TimeoutError):
            raise self._error(
                schema_id, f"no answer within {self._timeout:g} s (STREAMSCORE_SCHEMA_REGISTRY_TIMEOUT_S)"
            )
        raise self._error(schema_id, f"cannot be reached ({failure})")

    def _request(self, url: str, deadline: float, schema_id: int) -> tuple[int, bytes]:
        parts = urlsplit(url)
        remaining = max(0.001, deadline - time.monotonic())
        if parts.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname or "", parts.port, timeout=remaining, context=self._tls
            )
        else:
            conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=remaining)
        try:
            conn.request(
                "GET", parts.path + (f"?{parts.query}" if parts.query else ""), headers=self._headers
            )
            response = conn.getresponse()
            limit = 2 * self._max_bytes + ENVELOPE_BYTES
            body = bytearray()
            while chunk := response.read1(CHUNK):
                body += chunk
                if len(body) > limit:
                    if response.status == 200:
                        raise DecodeError(
                            f"schema id {schema_id}: its schema exceeds the {self._max_bytes}-byte limit "
                            "(STREAMSCORE_SCHEMA_MAX_BYTES)"
                        )
                    break  # enough of an error page to quote
                if time.monotonic() > deadline:
                    raise TimeoutError
                if conn.sock is not None:
                    conn.sock.settimeout(max(0.001, deadline - time.monotonic()))
            return response.status, bytes(body)
        finally:
            conn.close()

    def _error(self, schema_id: int, what: str) -> RegistryError:
        return RegistryError(f"schema registry {self.url}: lookup of schema id {schema_id}: {what}")


def _tls(settings: Settings) -> ssl.SSLContext | None:
    if not any(u.strip().startswith("https:") for u in (settings.schema_registry_url or "").split(",")):
        return None
    ca = settings.schema_registry_ssl_ca_location
    context = ssl.create_default_context(cafile=str(ca) if ca else None)
    cert, key = settings.schema_registry_ssl_certificate_location, settings.schema_registry_ssl_key_location
    if cert is not None:
        context.load_cert_chain(str(cert), str(key) if key else None)
    return context


def _json(body: bytes) -> object:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def _snippet(body: bytes, length: int = 120) -> str:
    """The start of an answer, on one line."""
    text = " ".join(body[:length].decode(errors="replace").split())
    return text + ("..." if len(body) > length else "") if text else "empty"
