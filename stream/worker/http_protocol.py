"""HTTP for the metrics and probe endpoints: the limits, a request, an answer, a route.

Just enough HTTP/1.x for ``GET`` and ``HEAD`` of small documents; :mod:`stream.worker.http_server` serves it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from stream.settings import Settings

MAX_HEAD = 8192  # bytes of request line and headers
METHODS = ("GET", "HEAD")


class HttpLimits(BaseModel):
    """Where the endpoints listen, and how much of the process a client may hold."""

    model_config = ConfigDict(frozen=True)

    host: str = "0.0.0.0"
    max_connections: int = Field(32, ge=1)
    read_timeout_s: float = Field(5.0, gt=0)

    @classmethod
    def of(cls, settings: Settings) -> HttpLimits:
        """The limits set by ``STREAMSCORE_METRICS_HOST`` and its neighbours."""
        return cls(
            host=settings.metrics_host,
            max_connections=settings.metrics_max_connections,
            read_timeout_s=settings.metrics_read_timeout_s,
        )


class Request(NamedTuple):
    method: str
    path: str
    query: str
    headers: dict[str, str]  # names in lower case


class Response(NamedTuple):
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True)
class Route:
    """What answers a path; ``inline``: quick and in memory, answered without a pool thread."""

    handler: Callable[[Request], Response]
    inline: bool = False


def parse(head: bytes) -> Request | None:
    """The request in ``head`` (request line and headers), or None if it is not HTTP/1.x."""
    lines = head.decode("latin-1").replace("\r\n", "\n").rstrip("\n").split("\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[2].startswith("HTTP/1."):
        return None
    target = parts[1].split("#", 1)[0]
    if "://" in target:  # the absolute form, as sent to a proxy
        target = "/" + target.split("://", 1)[1].partition("/")[2]
    path, _, query = target.partition("?")
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            return None
        headers[name.strip().lower()] = value.strip()
    return Request(parts[0], path, query, headers)


def plain(status: int, *headers: tuple[str, str]) -> Response:
    """A short text answer: the status's phrase."""
    body = HTTPStatus(status).phrase.encode() + b"\n"
    return Response(status, [("Content-Type", "text/plain; charset=utf-8"), *headers], body)


def route(routes: dict[str, Route], request: Request) -> Route | Response:
    """The route that answers ``request``, or the refusal: 404 or 405."""
    if request.path not in routes:
        return plain(404)
    if request.method not in METHODS:
        return plain(405, ("Allow", ", ".join(METHODS)))
    return routes[request.path]


def encode(response: Response, head_only: bool) -> bytes:
    """The bytes of ``response`` on the wire (HTTP/1.1, closing the connection)."""
    lines = [f"HTTP/1.1 {response.status} {HTTPStatus(response.status).phrase}"]
    lines += [f"{name}: {value}" for name, value in response.headers]
    lines += [f"Content-Length: {len(response.body)}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1") + (b"" if head_only else response.body)
