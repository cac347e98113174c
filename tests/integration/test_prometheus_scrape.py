"""A real Prometheus server scrapes a running worker; what it stores matches what the test produced."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request

from conftest import read_topic, require_tool

from stream.kafka.topics import ensure_topics
from stream.tools.broker import free_port
from stream.tools.produce import MALFORMED, produce


def _query(port: int, promql: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())["data"]["result"]


def test_prometheus_scrapes_worker(kafka_bootstrap, worker_topics, start_worker, tmp_path):
    prometheus = require_tool("prometheus", "prometheus")
    ensure_topics(kafka_bootstrap, {worker_topics.input: 3})
    metrics_port, prom_port = free_port(), free_port()
    start_worker(metrics_port=metrics_port)
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: streamscore\n    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n"
    )
    server = subprocess.Popen(
        [
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        produced = produce(
            kafka_bootstrap, worker_topics.input, count=1_500, seed=51, malformed_fraction=0.05
        )
        read_topic(kafka_bootstrap, worker_topics.predictions, len(produced.valid), timeout=60, settle=0)
        expected_dead = {}
        for kind in produced.malformed.values():
            expected_dead[MALFORMED[kind][0]] = expected_dead.get(MALFORMED[kind][0], 0) + 1
        deadline = time.monotonic() + 60
        while True:
            try:
                scored = _query(prom_port, "streamscore_events_scored_total")
                up = _query(prom_port, 'up{job="streamscore"}')
                dead = _query(prom_port, "sum by (stage) (streamscore_events_dead_lettered_total)")
            except OSError:
                scored, up, dead = [], [], []
            if scored and float(scored[0]["value"][1]) == len(produced.valid):
                break
            assert time.monotonic() < deadline, f"Prometheus saw {scored}"
            time.sleep(0.5)
        assert float(up[0]["value"][1]) == 1
        assert {d["metric"]["stage"]: float(d["value"][1]) for d in dead} == expected_dead
        info = _query(prom_port, "streamscore_model_info")
        assert info[0]["metric"]["name"] == "loan-approval"
        lag = _query(prom_port, "streamscore_consumer_lag_up")
        assert float(lag[0]["value"][1]) == 1
    finally:
        server.terminate()
        server.wait(20)
