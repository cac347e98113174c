"""The worker's HTTP endpoints: ``/metrics`` (Prometheus), ``/healthz`` (alive), ``/readyz`` (ready).

Only GET and HEAD of these paths are answered, by the bounded server of :mod:`stream.worker.http_server`
(on ``STREAMSCORE_METRICS_HOST``, at most ``STREAMSCORE_METRICS_MAX_CONNECTIONS`` connections, each
dropped after ``STREAMSCORE_METRICS_READ_TIMEOUT_S`` without a request).

Alive: the worker's processing loop (the scoring loop's thread, which ticks after every consume
and while it waits on the broker; the outcome worker's event loop) has ticked within
``stall_after`` seconds. Ready: alive, the model
is loaded and the worker holds at least one input partition. Both answer 200 or 503 with a JSON
body that says why.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, make_wsgi_app

from stream.worker.http_protocol import HttpLimits, Request, Response, Route
from stream.worker.http_server import PORT_HINT, HttpServer


class Health:
    """What the probes report; the worker updates it."""

    def __init__(self, stall_after: float = 30.0) -> None:
        self.stall_after = stall_after
        self.model: str | None = None
        self.partitions: list[int] = []
        self.last_tick = time.monotonic()

    def tick(self) -> None:
        self.last_tick = time.monotonic()

    def alive(self) -> tuple[bool, dict[str, Any]]:
        since = time.monotonic() - self.last_tick
        return since < self.stall_after, {"loop_tick_s_ago": round(since, 1)}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        alive, doc = self.alive()
        doc |= {"model": self.model, "partitions": self.partitions}
        return alive and self.model is not None and bool(self.partitions), doc


def probe(check: Callable[[], tuple[bool, dict[str, Any]]]) -> Route:
    """A probe's route: 200 or 503 with a JSON body that says why, answered inline."""

    def handle(_: Request) -> Response:
        ok, doc = check()
        body = orjson.dumps({"ok": ok, **doc})
        return Response(200 if ok else 503, [("Content-Type", "application/json")], body)

    return Route(handle, inline=True)


def metrics_route(registry: CollectorRegistry) -> Route:
    """The Prometheus exposition of ``registry`` (text or OpenMetrics, gzip when asked, ``name[]``)."""
    app = make_wsgi_app(registry)

    def handle(request: Request) -> Response:
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": request.path,
            "QUERY_STRING": request.query,
            "HTTP_ACCEPT": request.headers.get("accept"),
            "HTTP_ACCEPT_ENCODING": request.headers.get("accept-encoding"),
        }
        started: list[tuple[str, list[tuple[str, str]]]] = []
        body = b"".join(app(environ, lambda status, headers, *_: started.append((status, headers))))
        status, headers = started[0]
        return Response(int(status.split(" ", 1)[0]), list(headers), body)

    return Route(handle)


def serve(
    port: int,
    registry: CollectorRegistry,
    health: Health | None = None,
    limits: HttpLimits | None = None,
    port_hint: str = PORT_HINT,
) -> HttpServer:
    """Serve ``/metrics`` (with ``health``, also ``/healthz`` and ``/readyz``) on ``port`` until closed.

    ``limits``: the address to listen on and the bounds of :mod:`stream.worker.http_server` (the defaults:
    every interface, 32 connections, 5 s). ConfigError ending in ``port_hint`` if the port is taken.
    """
    routes = {"/metrics": metrics_route(registry)}
    if health is not None:
        routes |= {"/healthz": probe(health.alive), "/readyz": probe(health.ready)}
    return HttpServer(port, routes, limits or HttpLimits(), port_hint)
