"""A stand-in schema registry on loopback that can fail on purpose: hang, lie, or answer slowly.

It serves the two requests a worker with a registered input format makes, ``GET
/subjects/<subject>/versions/latest`` and ``GET /schemas/ids/<id>``, from :attr:`schemas` (id to
(schema text, type)) and :attr:`subjects` (subject to id), and records every request. Its
:attr:`mode` says how it answers:

- ``serve``: as a registry does (unknown ids: 404 with error code 40403);
- ``hang``: reads the request, then says nothing until the stand-in is closed;
- ``garbage``: 200 with an HTML page;
- ``error``: 500 with an HTML page;
- ``trickle``: 200 with a body sent one byte every 0.2 s.

    with StandInRegistry() as registry:
        registry.schemas[1] = ('"string"', "AVRO")
        print(registry.url)
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

HTML = b"<html><body><h1>502 Bad Gateway</h1></body></html>"


class StandInRegistry:
    """One stand-in registry on 127.0.0.1, on a thread of its own, until :meth:`close`."""

    def __init__(self) -> None:
        self.mode = "serve"
        self.schemas: dict[int, tuple[str, str]] = {}
        self.subjects: dict[str, int] = {}
        self.requests: list[tuple[float, str]] = []  # (monotonic time, path)
        self.hanging = threading.Event()  # set once a request is held by ``hang``
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def lookups(self) -> list[float]:
        """When each ``GET /schemas/ids/<id>`` came."""
        return [t for t, path in self.requests if path.startswith("/schemas/ids/")]

    def __enter__(self) -> StandInRegistry:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def answer(self, path: str) -> tuple[int, bytes]:
        """(status, body) of a ``serve`` answer."""
        if path.startswith("/schemas/ids/"):
            schema_id = int(path.rsplit("/", 1)[1])
            if schema_id in self.schemas:
                text, kind = self.schemas[schema_id]
                return 200, json.dumps({"schema": text, "schemaType": kind, "references": []}).encode()
            return 404, json.dumps(
                {"error_code": 40403, "message": f"No content with ID '{schema_id}'"}
            ).encode()
        if path.startswith("/subjects/") and path.endswith("/versions/latest"):
            name = path.split("/")[2]
            if name in self.subjects:
                schema_id = self.subjects[name]
                text, kind = self.schemas[schema_id]
                reply = {"subject": name, "version": 1, "id": schema_id, "schema": text, "schemaType": kind}
                return 200, json.dumps(reply).encode()
            return 404, json.dumps({"error_code": 40401, "message": f"No subject '{name}'"}).encode()
        return 404, json.dumps({"error_code": 404, "message": "not served by the stand-in"}).encode()


def _handler(registry: StandInRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            registry.requests.append((time.monotonic(), self.path))
            mode = registry.mode
            if mode == "hang":
                registry.hanging.set()
                registry._release.wait(120)
                return
            if mode in ("garbage", "error"):
                self._send(200 if mode == "garbage" else 500, HTML, "text/html")
                return
            status, body = registry.answer(self.path)
            if mode == "trickle":
                self._trickle(body)
                return
            self._send(status, body, "application/json")

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _trickle(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for i in range(len(body)):
                if registry._release.wait(0.2):
                    return
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()

    return Handler
