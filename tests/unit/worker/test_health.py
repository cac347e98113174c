"""Liveness follows the worker loop's ticks; readiness also needs the model and partitions."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import orjson
from prometheus_client import CollectorRegistry, Counter

from stream.tools.broker import free_port
from stream.worker.health import Health, serve
from stream.worker.http_server import HttpLimits


def test_probes_over_http():
    health = Health(stall_after=0.2)
    registry = CollectorRegistry()
    Counter("probe_test", "a counter", registry=registry).inc()
    port = free_port()
    running = serve(port, registry, health, HttpLimits(host="127.0.0.1"))

    def get(path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    assert get("/healthz")[0] == 200
    status, body = get("/readyz")
    assert status == 503 and orjson.loads(body)["partitions"] == []
    health.model, health.partitions = "m/1", [0, 2]
    assert get("/readyz")[0] == 200
    assert b"probe_test_total 1.0" in get("/metrics")[1]

    time.sleep(0.3)  # no tick: the loop is stuck
    assert get("/healthz")[0] == 503 and get("/readyz")[0] == 503
    health.tick()
    assert get("/healthz")[0] == 200
    running.close()
