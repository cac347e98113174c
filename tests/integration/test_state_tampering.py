"""Records planted in the drift-state topic: never executed, refused with a reason, counted; the
partition starts fresh while a genuine record next to them is restored exactly."""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition
from conftest import MODELS, ROOT, read_topic

from stream.drift.monitor import DriftMonitor
from stream.kafka.topics import ensure_topics
from stream.keys import Keys
from stream.scoring.model import load
from stream.tools.broker import free_port
from stream.tools.produce import produce

PARTITIONS = 5
DOCUMENTED_OLD_DEFAULT = b"streamscore-development-key"


class _Planted:
    """Unpickling it runs ``touch <marker>``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def _last_records(bootstrap: str, topic: str) -> dict[int, bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "t", "enable.auto.commit": False})
    found = {}
    for p in range(PARTITIONS):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        if high > low:
            consumer.assign([TopicPartition(topic, p, high - 1)])
            msg = consumer.poll(10)
            assert msg is not None and msg.error() is None
            found[p] = msg.value()
    consumer.close()
    return found


def _write(bootstrap: str, topic: str, records: dict[int, bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for p, value in records.items():
        producer.produce(topic, value, str(p).encode(), p)
    assert producer.flush(10) == 0


def _scrape(port: int, deadline: float) -> str:
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_planted_state_never_runs_and_is_refused_and_counted(
    kafka_bootstrap, worker_topics, start_worker, tmp_path
):
    ensure_topics(kafka_bootstrap, {worker_topics.input: PARTITIONS})
    first = start_worker(drift_window=100)
    produce(kafka_bootstrap, worker_topics.input, count=1_000, seed=71)
    assert len(read_topic(kafka_bootstrap, worker_topics.predictions, 1_000, timeout=90)) == 1_000
    assert first.stop() == 0, first.output()[-2_000:]
    app_id = first.env["STREAMSCORE_APP_ID"]
    state_topic = f"{app_id}-drift-state"
    genuine = _last_records(kafka_bootstrap, state_topic)
    assert sorted(genuine) == list(range(PARTITIONS)), "the first worker saved every partition at shutdown"

    # the genuine records are plain JSON under a signature, and restore exactly
    signer = Keys.from_secret(os.environ["STREAMSCORE_SECRET"]).state
    monitor = DriftMonitor(load(MODELS, "loan-approval").card, window=100, partitions=PARTITIONS)
    bodies = {p: signer.verify(f"{state_topic}[{p}]", blob) for p, blob in genuine.items()}
    for p, body in bodies.items():
        monitor.restore(p, body)
        assert monitor.snapshot(p) == body, "read back and saved again: the same bytes"
    assert b"pickle" not in b"".join(bodies.values()) and all(b.startswith(b"{") for b in bodies.values())
    seen_in_4 = orjson.loads(bodies[4])["seen"]

    # planted: what an attacker who may write to the state topic would try
    marker = tmp_path / "planted-code-ran"
    payload = pickle.dumps(("fingerprint", _Planted(marker)))
    body = bodies[0]
    unknown_version = orjson.dumps({**orjson.loads(body), "version": 99})
    _write(
        kafka_bootstrap,
        state_topic,
        {
            # the old format, signed with the key the documentation used to give
            0: hmac.new(DOCUMENTED_OLD_DEFAULT, payload, hashlib.sha256).digest() + payload,
            # a genuine record with one byte of its body changed
            1: genuine[1][:-2] + (b"0" if genuine[1][-2:-1] != b"0" else b"1") + genuine[1][-1:],
            # correctly signed (the secret leaked), but a pickle: still never unpickled
            2: signer.sign(f"{state_topic}[2]", payload),
            # correctly signed, of a version this worker does not know
            3: signer.sign(f"{state_topic}[3]", unknown_version),
        },
    )

    # 1. without a secret the worker does not start at all
    no_secret = {k: v for k, v in first.env.items() if k != "STREAMSCORE_SECRET"}
    refused = subprocess.run(
        [sys.executable, "-m", "stream.cli.main", "worker"],
        env=no_secret,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert refused.returncode == 2 and "STREAMSCORE_SECRET is not set" in refused.stderr
    assert not marker.exists()

    # 2. with its secret it reads every record, runs none, restores the genuine one, counts the rest
    port = free_port()
    second = start_worker(drift_window=100, metrics_port=port)
    deadline = time.monotonic() + 90
    while "drift state restored" not in second.output() and time.monotonic() < deadline:
        assert second.proc.poll() is None, second.output()[-3_000:]
        time.sleep(0.5)
    metrics = _scrape(port, deadline)
    produce(kafka_bootstrap, worker_topics.input, count=200, seed=72)
    assert len(read_topic(kafka_bootstrap, worker_topics.predictions, 1_200, timeout=60)) >= 1_200
    assert second.proc.poll() is None, "the worker goes on scoring"
    log = second.output()
    assert not marker.exists(), "code planted in the state topic ran in the worker"
    for p, reason in {0: "signature", 1: "signature", 2: "format", 3: "version"}.items():
        assert re.search(rf"drift state of partition {p} refused \({reason}\)", log), log[-3_000:]
    assert f"drift state restored for partitions [4] ({seen_in_4} events seen)" in log
    counted = dict(
        re.findall(r'streamscore_state_rejected_total\{reason="(\w+)",state="drift"\} (\S+)', metrics)
    )
    assert counted == {"signature": "2.0", "format": "1.0", "version": "1.0"}, metrics
