"""The HTTP endpoints under hostile clients: connections, threads and time are bounded; GET and HEAD
on the known paths only. A real server on 127.0.0.1, real sockets."""

from __future__ import annotations

import contextlib
import http.client
import selectors
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.registry import Collector

from stream.cli.common import settings
from stream.errors import ConfigError
from stream.settings import Settings
from stream.tools.broker import free_port
from stream.worker.health import Health, serve
from stream.worker.http_server import HttpLimits, HttpServer
from stream.worker.supervisor import Supervisor

pytestmark = pytest.mark.unit
LOOPBACK = "127.0.0.1"


def start(
    registry: CollectorRegistry | None = None, max_connections: int = 32, read_timeout_s: float = 5.0
) -> tuple[int, HttpServer]:
    """A probe and metrics server on a free loopback port, with a model and a partition (ready)."""
    if registry is None:
        registry = CollectorRegistry()
        Counter("limits_test", "a counter", registry=registry).inc()
    health = Health(stall_after=3600)
    health.model, health.partitions = "m/1", [0]
    port = free_port()
    limits = HttpLimits(host=LOOPBACK, max_connections=max_connections, read_timeout_s=read_timeout_s)
    return port, serve(port, registry, health, limits)


@contextlib.contextmanager
def server(max_connections: int = 32, read_timeout_s: float = 5.0) -> Iterator[int]:
    port, running = start(max_connections=max_connections, read_timeout_s=read_timeout_s)
    try:
        yield port
    finally:
        running.close()


def request(port: int, method: str, path: str, timeout: float = 5.0) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    connection.request(method, path)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` and read until the server closes the connection."""
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def half_requests(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that each send the start of a request and then nothing."""
    held = []
    try:
        for _ in range(count):
            sock = socket.create_connection((LOOPBACK, port), timeout=5)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            held.append(sock)
    except BaseException:
        for sock in held:
            sock.close()
        raise
    return held


def closed_by_server(socks: list[socket.socket], wanted: int, within: float) -> int:
    """How many of ``socks`` the server answered or closed, waiting up to ``within`` s."""
    closed: set[socket.socket] = set()
    deadline = time.monotonic() + within
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        while len(closed) < wanted and (left := deadline - time.monotonic()) > 0:
            for key, _ in selector.select(left):
                sock = key.fileobj
                with contextlib.suppress(OSError):
                    sock.recv(65536)  # type: ignore[union-attr]
                closed.add(sock)  # type: ignore[arg-type]
                selector.unregister(sock)
    return len(closed)


def test_a_thousand_idle_half_requests_neither_hold_threads_nor_silence_the_probes():
    with server() as port:
        before = threading.active_count()
        held = half_requests(port, 1000)
        try:
            time.sleep(0.5)  # a thread per connection would have started by now
            threads = threading.active_count() - before
            assert request(port, "GET", "/healthz", timeout=3).status == 200
            assert request(port, "GET", "/readyz", timeout=3).status == 200
            assert b"limits_test_total 1.0" in raw(port, b"GET /metrics HTTP/1.1\r\n\r\n", timeout=3)
            assert threads <= 8, f"{threads} threads for 1,000 idle connections"
        finally:
            for sock in held:
                sock.close()


def test_beyond_the_connection_limit_the_longest_waiting_connection_is_dropped():
    with server(max_connections=8) as port:
        held = half_requests(port, 100)
        try:
            assert closed_by_server(held[:92], 92, within=10) == 92
            assert request(port, "GET", "/healthz", timeout=3).status == 200
        finally:
            for sock in held:
                sock.close()


def test_a_trickling_request_is_dropped_after_the_read_timeout():
    with server(read_timeout_s=0.5) as port, socket.create_connection((LOOPBACK, port), timeout=5) as sock:
        deadline = time.monotonic() + 5
        dropped = False
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 60:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                dropped = True
                break
            if closed_by_server([sock], 1, within=0.1):
                dropped = True
                break
            if time.monotonic() > deadline:
                break
        assert dropped, "the server still waits for a request trickled over 5 s"


def test_a_stuck_collection_does_not_hold_the_probes_and_extra_scrapes_are_refused():
    release = threading.Event()

    class Stuck(Collector):
        def collect(self):  # type: ignore[no-untyped-def]
            release.wait(10)
            return []

    registry = CollectorRegistry()
    registry.register(Stuck())
    port, running = start(registry=registry, max_connections=8)
    scrapes = []
    try:
        for _ in range(6):
            sock = socket.create_connection((LOOPBACK, port), timeout=5)
            scrapes.append(sock)
            sock.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
        assert closed_by_server(scrapes, 2, within=3) >= 2  # the ones beyond the queue: 503
        assert request(port, "GET", "/healthz", timeout=3).status == 200
    finally:
        release.set()
        for sock in scrapes:
            sock.close()
        running.close()


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "TRACE", "PATCH", "OPTIONS"])
@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_only_get_and_head_are_answered(method, path):
    with server() as port:
        response = request(port, method, path)
        assert response.status == 405
        assert {m.strip() for m in response.getheader("Allow", "").split(",")} == {"GET", "HEAD"}


@pytest.mark.parametrize("path", ["/anything", "/", "/metrics/x", "/healthz/", "/favicon.ico", "/readyzz"])
def test_unknown_paths_are_not_found(path):
    with server() as port:
        assert request(port, "GET", path).status == 404


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_head_answers_like_get_without_a_body(path):
    with server() as port:
        get = raw(port, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = raw(port, f"HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        get_head, _, body = get.partition(b"\r\n\r\n")
        head_head, _, rest = head.partition(b"\r\n\r\n")
        assert head_head.split(b"\r\n")[0].split(b" ")[1] == b"200" and rest == b""
        length = [line for line in head_head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
        assert length and int(length[0].split(b":")[1]) == len(body)
        assert b"200" in get_head.split(b"\r\n")[0]


def test_an_oversized_or_malformed_request_is_refused():
    with server() as port:
        big = b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"
        assert raw(port, big).split(b"\r\n")[0].split(b" ")[1] == b"431"
        assert raw(port, b"NONSENSE\r\n\r\n").split(b"\r\n")[0].split(b" ")[1] == b"400"
        assert request(port, "GET", "/healthz").status == 200


def listening_address(port: int) -> str:
    """The local address of the TCP socket listening on ``port`` (from /proc/net/tcp)."""
    with open("/proc/net/tcp") as table:
        lines = table.read().splitlines()[1:]
    for line in lines:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            return socket.inet_ntoa(bytes.fromhex(address)[::-1])
    raise AssertionError(f"nothing listens on port {port}")


def test_the_bind_address_setting_is_honoured(monkeypatch):
    monkeypatch.setenv("STREAMSCORE_METRICS_HOST", LOOPBACK)
    limits = HttpLimits.of(Settings(_env_file=None))
    port = free_port()
    running = serve(port, CollectorRegistry(), Health(), limits)
    try:
        assert listening_address(port) == LOOPBACK
    finally:
        running.close()
    supervised = Supervisor([]).serve(port, limits)
    try:
        assert listening_address(port) == LOOPBACK
        assert request(port, "POST", "/healthz").status == 405
    finally:
        assert supervised is not None
        supervised.close()


def test_the_defaults_stay_reachable_from_probes_and_scrapers():
    assert HttpLimits.of(Settings(_env_file=None)) == HttpLimits()
    assert HttpLimits().host == "0.0.0.0"


@pytest.mark.parametrize(
    "name, value",
    [("METRICS_HOST", "not-an-address"), ("METRICS_MAX_CONNECTIONS", "0"), ("METRICS_READ_TIMEOUT_S", "0")],
)
def test_a_bad_setting_stops_start_up_with_one_line(monkeypatch, capsys, name, value):
    monkeypatch.setenv(f"STREAMSCORE_{name}", value)
    with pytest.raises(Exception) as raised:
        settings()
    assert getattr(raised.value, "exit_code", None) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and name.lower() in err


def test_an_address_not_of_this_host_is_a_config_error():
    with pytest.raises(ConfigError, match="STREAMSCORE_METRICS_HOST"):
        serve(free_port(), CollectorRegistry(), Health(), HttpLimits(host="192.0.2.1"))


def test_close_releases_the_port_and_the_threads():
    before = threading.active_count()
    port, running = start()
    assert request(port, "GET", "/healthz").status == 200
    running.close()
    assert threading.active_count() <= before
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((LOOPBACK, port), timeout=5).close()
