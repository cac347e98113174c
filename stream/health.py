"""The worker's HTTP endpoints: ``/metrics`` (Prometheus), ``/healthz`` (alive), ``/readyz`` (ready).

Alive: the worker's processing loop (the scoring loop's thread, which ticks after every consume
and while it waits on the broker; the outcome worker's event loop) has ticked within
``stall_after`` seconds. Ready: alive, the model
is loaded and the worker holds at least one input partition. Both answer 200 or 503 with a JSON
body that says why.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson
from prometheus_client import CollectorRegistry, make_wsgi_app

from stream.errors import ConfigError


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


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(port: int, registry: CollectorRegistry, health: Health) -> None:
    """Serve the endpoints on ``port`` (all interfaces) from a daemon thread."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in ("/healthz", "/readyz"):
            ok, doc = health.alive() if path == "/healthz" else health.ready()
            start_response(
                "200 OK" if ok else "503 Service Unavailable", [("Content-Type", "application/json")]
            )
            return [orjson.dumps({"ok": ok, **doc})]
        return metrics(environ, start_response)

    try:
        server = make_server("0.0.0.0", port, app, _Server, handler_class=_QuietHandler)
    except OSError as exc:
        raise ConfigError(
            f"metrics port {port} is unavailable ({exc.strerror}): set STREAMSCORE_METRICS_PORT to a "
            "free port, or 0 to turn the endpoints off"
        ) from None
    threading.Thread(target=server.serve_forever, name="streamscore-http", daemon=True).start()
