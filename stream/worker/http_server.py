"""The HTTP server of the metrics and probe endpoints, bounded against hostile clients.

One selector thread accepts connections, reads requests and writes answers: no thread per connection.

- At most ``max_connections`` are open at once. A new one beyond that takes the place of the
  connection that has waited longest without completing its request (so idle or trickling clients
  cannot lock the door out); when every one is busy being answered, the new one is closed at once.
- A client has ``read_timeout_s`` from connecting to send its request head (at most 8 KiB), and as
  long again to take the answer; then it is dropped (with a 408 if it had sent part of a request).
- Only GET and HEAD on the routes given: other methods 405 (with ``Allow``), other paths 404, a
  malformed request 400, an oversized head 431. Every answer closes its connection.
- Inline routes (the probes: in memory) are answered on the selector thread; the others (metrics,
  whose collection may ask the broker) by two pool threads, at most ``max_connections // 2``
  waiting (beyond: 503), so a slow collection holds neither the probes nor more threads.
"""

# Just over 300 lines: the selector loop and its connection states (read, wait, write, drain) are
# one state machine, read in one place.

from __future__ import annotations

import contextlib
import ipaddress
import logging
import math
import queue
import selectors
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from stream.errors import ConfigError
from stream.worker.http_protocol import (
    MAX_HEAD,
    HttpLimits,
    Request,
    Response,
    Route,
    encode,
    parse,
    plain,
    route,
)

__all__ = ["HttpLimits", "HttpServer"]

log = logging.getLogger("streamscore.http")

POOL_THREADS = 2
LINGER_S = 1.0  # after an answer, how long unread request bytes are drained before closing
BACKLOG = 512
PORT_HINT = "set STREAMSCORE_METRICS_PORT to a free port, or 0 to turn the endpoints off"
READ, WAIT, WRITE, DRAIN = "read", "wait", "write", "drain"
Job = tuple["_Conn", Route, Request]


@dataclass(eq=False)
class _Conn:
    sock: socket.socket
    deadline: float
    state: str = READ
    head_only: bool = False
    buf: bytearray = field(default_factory=bytearray)
    out: memoryview = field(default_factory=lambda: memoryview(b""))
    closed: bool = False


def listen(host: str, port: int, port_hint: str = PORT_HINT) -> socket.socket:
    """A non-blocking socket listening on ``host:port``; ConfigError saying what to set if it cannot."""
    where = "set STREAMSCORE_METRICS_HOST to an address of this host (0.0.0.0: every one)"
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        raise ConfigError(f"cannot listen on {host!r}, not an IP address: {where}") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        taken = exc.errno in (98, 13)  # EADDRINUSE, EACCES
        fix = port_hint if taken else where
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}): {fix}") from None
    sock.setblocking(False)
    return sock


def head_end(buf: bytearray) -> int:
    """Where the request head in ``buf`` ends (after its blank line), or -1."""
    ends = [i + len(sep) for sep in (b"\r\n\r\n", b"\n\n") if (i := buf.find(sep)) >= 0]
    return min(ends, default=-1)


class HttpServer:
    """Serves ``routes`` on ``port`` from daemon threads until :meth:`close`."""

    def __init__(
        self,
        port: int,
        routes: Mapping[str, Route],
        limits: HttpLimits,
        port_hint: str = PORT_HINT,
    ) -> None:
        self.routes, self.limits = dict(routes), limits
        self._listener = listen(limits.host, port, port_hint)
        self.port: int = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        for sock in (self._wake_r, self._wake_w):
            sock.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._conns: dict[_Conn, None] = {}  # the oldest first
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[tuple[_Conn, Response]] = queue.SimpleQueue()
        self._pending = 0  # pool jobs queued or running (the selector thread's count)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, name="streamscore-http", daemon=True)]
        self._threads += [
            threading.Thread(target=self._work, name=f"streamscore-http-{i}", daemon=True)
            for i in range(POOL_THREADS)
        ]
        for thread in self._threads:
            thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop serving, close every connection and the port; wait up to ``timeout`` for the threads."""
        self._stop.set()
        self._wake()
        for _ in range(POOL_THREADS):
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(timeout)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                for key, mask in self._selector.select(self._timeout()):
                    try:
                        self._event(key, mask)
                    except Exception:  # one connection's trouble must not stop the endpoints
                        log.exception("HTTP connection failed")
                        if isinstance(key.data, _Conn):
                            self._close(key.data)
                self._expire(time.monotonic())
        finally:
            for conn in list(self._conns):
                self._close(conn)
            self._selector.close()
            for sock in (self._listener, self._wake_r, self._wake_w):
                sock.close()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            conn, found, request = job
            self._done.put((conn, self._call(found, request)))
            self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full (a wake is pending anyway) or closed
            self._wake_w.send(b"\0")

    def _timeout(self) -> float:
        now = time.monotonic()
        soonest = min((conn.deadline for conn in self._conns), default=math.inf)
        return max(0.0, min(1.0, soonest - now))

    def _event(self, key: selectors.SelectorKey, mask: int) -> None:
        if key.fileobj is self._listener:
            self._accept()
        elif key.fileobj is self._wake_r:
            self._finish()
        elif not (conn := key.data).closed:
            if mask & selectors.EVENT_WRITE:
                self._send(conn)
            else:
                self._read(conn)

    def _accept(self) -> None:
        for _ in range(64):
            try:
                sock, _ = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:  # out of file descriptors, say: try again in a moment
                log.warning("cannot accept a connection on port %d: %s", self.port, exc)
                time.sleep(0.05)
                return
            if len(self._conns) >= self.limits.max_connections and not self._evict():
                sock.close()
                continue
            sock.setblocking(False)
            conn = _Conn(sock, time.monotonic() + self.limits.read_timeout_s)
            self._conns[conn] = None
            self._selector.register(sock, selectors.EVENT_READ, conn)

    def _evict(self) -> bool:
        """Close the connection that has waited longest without a request; False if none has."""
        for conn in self._conns:
            if conn.state in (READ, DRAIN):
                self._close(conn)
                return True
        return False

    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(65536 if conn.state == DRAIN else 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)
        elif conn.state == READ:
            conn.buf += data
            end = head_end(conn.buf)
            if end < 0 and len(conn.buf) <= MAX_HEAD:
                return
            if end < 0 or end > MAX_HEAD:
                self._answer(conn, plain(431))
                return
            self._dispatch(conn, parse(bytes(conn.buf[:end])))

    def _dispatch(self, conn: _Conn, request: Request | None) -> None:
        if request is None:
            self._answer(conn, plain(400))
            return
        conn.head_only = request.method == "HEAD"
        found = route(self.routes, request)
        if isinstance(found, Response):
            self._answer(conn, found)
        elif found.inline:
            self._answer(conn, self._call(found, request))
        elif self._pending >= max(1, self.limits.max_connections // 2):
            self._answer(conn, plain(503, ("Retry-After", "1")))
        else:
            self._pending += 1
            self._selector.unregister(conn.sock)
            conn.state, conn.deadline = WAIT, math.inf
            self._jobs.put((conn, found, request))

    def _call(self, found: Route, request: Request) -> Response:
        try:
            return found.handler(request)
        except Exception:
            log.exception("the HTTP endpoint %s failed", request.path)
            return plain(500)

    def _finish(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                conn, response = self._done.get_nowait()
            except queue.Empty:
                return
            self._pending -= 1
            if not conn.closed:
                self._answer(conn, response)

    def _answer(self, conn: _Conn, response: Response) -> None:
        registered = conn.state != WAIT
        conn.out = memoryview(encode(response, conn.head_only))
        conn.state, conn.deadline = WRITE, time.monotonic() + self.limits.read_timeout_s
        if registered:
            self._selector.modify(conn.sock, selectors.EVENT_WRITE, conn)
        else:
            self._selector.register(conn.sock, selectors.EVENT_WRITE, conn)
        self._send(conn)

    def _send(self, conn: _Conn) -> None:
        try:
            conn.out = conn.out[conn.sock.send(conn.out) :]
            if not conn.out:
                conn.sock.shutdown(socket.SHUT_WR)
        except BlockingIOError:
            return
        except OSError:
            self._close(conn)
            return
        if not conn.out:  # answered: read what the client still sends until it closes, briefly
            conn.state = DRAIN
            conn.deadline = time.monotonic() + min(LINGER_S, self.limits.read_timeout_s)
            self._selector.modify(conn.sock, selectors.EVENT_READ, conn)

    def _expire(self, now: float) -> None:
        for conn in [conn for conn in self._conns if conn.deadline <= now]:
            if conn.state == READ and conn.buf:
                self._answer(conn, plain(408))
            else:
                self._close(conn)

    def _close(self, conn: _Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        self._conns.pop(conn, None)
        if conn.state != WAIT:
            self._selector.unregister(conn.sock)
        conn.sock.close()
