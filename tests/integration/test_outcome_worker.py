"""The outcome worker on the real broker: disk state across SIGKILL, a rebalance, expiry, sampling,
and outcomes from a producer on librdkafka's default partitioner (kcat's)."""

from __future__ import annotations

import datetime as dt
import re
import signal
import socket
import subprocess
import time
import urllib.request
import uuid

from confluent_kafka import Producer
from conftest import require_tool
from prometheus_client.parser import text_string_to_metric_families

from stream.contracts import Outcome, Provenance
from stream.kafka.partitioning import sampled
from stream.kafka.topics import ensure_topics

PARTITIONS = 3
SHA = "ab" * 32
MODEL = "loan-approval/1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _metrics(port: int) -> dict[str, float]:
    """The worker's series, by name and labels, e.g. ``outcomes_total{joined}``."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return {}
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            name, label = s.name.removeprefix("streamscore_"), ",".join(s.labels.values())
            found[f"{name}{{{label}}}" if label else name] = s.value
    return found


def _wait(port: int, name: str, at_least: float, timeout: float = 90.0) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = _metrics(port)
        if seen.get(name, 0) >= at_least:
            return seen
        time.sleep(0.3)
    raise AssertionError(f"{name} did not reach {at_least}: {seen}")


def _provenance(event_id: str, score: float) -> bytes:
    now = dt.datetime.now(dt.UTC)
    return (
        Provenance(
            event_id=event_id,
            score=score,
            input={"topic": "events", "partition": 0, "offset": 0, "timestamp_ms": None},
            model={"name": "loan-approval", "version": "1", "sha256": SHA},
            feature_hash="0" * 32,
            personal={},
            scorer={"version": "0", "revision": None, "worker_id": "test:1"},
            occurred_at=now,
            received_at=now,
            scored_at=now,
            emitted_at=now,
        )
        .model_dump_json()
        .encode()
    )


def _outcome(event_id: str, positive: bool) -> bytes:
    return (
        Outcome(event_id=event_id, positive=positive, observed_at=dt.datetime.now(dt.UTC))
        .model_dump_json()
        .encode()
    )


def _produce(kafka_bootstrap: str, topic: str, records: list[tuple[str, bytes]]) -> None:
    """Keyed by event_id with Kafka's default partitioner (murmur2), as the scorer sends provenance."""
    producer = Producer(
        {"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random", "linger.ms": 5}
    )
    for key, value in records:
        producer.produce(topic, value, key.encode())
    assert producer.flush(30) == 0


def _topics(kafka_bootstrap, t) -> None:
    ensure_topics(kafka_bootstrap, {n: PARTITIONS for n in (t.input, t.provenance, t.outcomes)})


def _ids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


def test_outcomes_from_kcats_default_partitioner_all_join(kafka_bootstrap, worker_topics, start_worker):
    kcat = require_tool("kcat", "kcat")
    _topics(kafka_bootstrap, worker_topics)
    port = _free_port()
    judge = start_worker("outcomes", metrics_port=port, outcome_window=100)
    ids = _ids(600)
    _produce(kafka_bootstrap, worker_topics.provenance, [(i, _provenance(i, 0.9)) for i in ids])
    lines = b"".join(i.encode() + b"\t" + _outcome(i, True) + b"\n" for i in ids)
    subprocess.run(
        [kcat, "-P", "-b", kafka_bootstrap, "-t", worker_topics.outcomes, "-K", "\t"],
        input=lines, check=True, timeout=60,
    )  # fmt: skip
    seen = _wait(port, "outcomes_total{joined}", 600)
    time.sleep(1.0)
    seen = _metrics(port)
    assert seen["outcomes_total{joined}"] == 600, judge.output()[-3_000:]
    assert seen.get("outcomes_total{duplicate}", 0) == 0 and seen.get("outcomes_total{unmatched}", 0) == 0
    moved = seen["outcomes_repartitioned_total"]
    assert 600 * 0.4 < moved < 600 * 0.95, f"CRC32 and murmur2 agree on a third of the keys, not {moved}"


def test_state_on_disk_survives_sigkill(kafka_bootstrap, worker_topics, start_worker, tmp_path):
    _topics(kafka_bootstrap, worker_topics)
    port, data = _free_port(), str(tmp_path / "judge")
    judge = start_worker("outcomes", metrics_port=port, outcome_window=100, data_dir=data)
    ids = _ids(1_000)
    _produce(kafka_bootstrap, worker_topics.provenance, [(i, _provenance(i, 0.8)) for i in ids])
    first = [(i, _outcome(i, n % 4 != 0)) for n, i in enumerate(ids[:500])]  # accuracy 0.75
    _produce(kafka_bootstrap, worker_topics.outcomes, first)
    _wait(port, "outcomes_total{joined}", 500)
    time.sleep(1.5)  # committed
    before = _metrics(port)
    judge.proc.send_signal(signal.SIGKILL)
    judge.proc.wait(10)
    judge = start_worker("outcomes", metrics_port=port, outcome_window=100, data_dir=data)
    after = _wait(port, "outcomes_pending", 1_000)
    accuracy = "model_accuracy{" + MODEL + "}"
    # any 100 of the 500 (the rolling window; joins need not follow the production order): 0.75 +- 0.15
    assert after[accuracy] == before[accuracy] and 0.6 <= after[accuracy] <= 0.9, (
        "the rolling figures came back"
    )
    restored = re.search(r"restored in ([\d.]+) s \((\d+) changelog records applied\)", judge.output())
    assert restored and int(restored.group(2)) < 1_500, "resumed from the store, not the whole changelog"
    _produce(kafka_bootstrap, worker_topics.outcomes, first)  # read again: duplicates, nothing else
    _produce(kafka_bootstrap, worker_topics.outcomes, [(i, _outcome(i, True)) for i in ids[500:]])
    seen = _wait(port, "outcomes_total{joined}", 500)
    seen = _wait(port, "outcomes_total{duplicate}", 500)
    assert seen["outcomes_total{joined}"] == 500 and seen.get("outcomes_total{unmatched}", 0) == 0
    assert "join table holds 1000 entries" in judge.output(), judge.output()[-2_000:]


def test_a_rebalance_between_two_workers_keeps_every_entry_and_the_sample(
    kafka_bootstrap, worker_topics, start_worker
):
    _topics(kafka_bootstrap, worker_topics)
    ports = [_free_port(), _free_port()]
    first = start_worker("outcomes", metrics_port=ports[0], outcome_sample=0.5, outcome_window=50)
    ids = _ids(1_200)
    _produce(kafka_bootstrap, worker_topics.provenance, [(i, _provenance(i, 0.7)) for i in ids])
    expected = sum(sampled(i.encode(), 0.5) for i in ids)
    _wait(ports[0], "outcomes_pending", expected)
    second = start_worker("outcomes", metrics_port=ports[1], outcome_sample=0.5, outcome_window=50)
    _wait(ports[1], "outcomes_pending", 1)  # the second worker took partitions, with their entries
    _produce(kafka_bootstrap, worker_topics.outcomes, [(i, _outcome(i, True)) for i in ids])
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        joined = [_metrics(p).get("outcomes_total{joined}", 0) for p in ports]
        if sum(joined) >= expected:
            break
        time.sleep(0.3)
    time.sleep(1.0)
    seen = [_metrics(p) for p in ports]
    assert sum(s.get("outcomes_total{joined}", 0) for s in seen) == expected, (
        first.output()[-2_000:],
        second.output()[-2_000:],
    )
    assert all(s.get("outcomes_total{joined}", 0) > 0 for s in seen), "both workers joined"
    assert (
        sum(s.get("outcomes_total{unmatched}", 0) + s.get("outcomes_total{duplicate}", 0) for s in seen) == 0
    )
    assert "changelog records applied" in second.output()


def test_entries_expire_by_event_time_and_are_counted(kafka_bootstrap, worker_topics, start_worker):
    _topics(kafka_bootstrap, worker_topics)
    port = _free_port()
    start_worker("outcomes", metrics_port=port, outcome_retention_s=2)
    ids = _ids(400)
    _produce(kafka_bootstrap, worker_topics.provenance, [(i, _provenance(i, 0.3)) for i in ids[:300]])
    _produce(kafka_bootstrap, worker_topics.outcomes, [(i, _outcome(i, False)) for i in ids[300:]])
    seen = _wait(port, "predictions_expired_total", 300, timeout=60)
    seen = _wait(port, "outcomes_total{unmatched}", 100, timeout=30)
    assert seen["predictions_expired_total"] == 300 and seen.get("outcomes_total{joined}", 0) == 0
    _wait(port, "outcomes_pending", 0)
    assert _metrics(port)["outcomes_pending"] == 0


def test_internal_topics_of_another_partition_count_stop_the_worker_in_one_line(
    kafka_bootstrap, worker_topics, start_worker, unique_name
):
    _topics(kafka_bootstrap, worker_topics)
    app = unique_name("app")
    ensure_topics(kafka_bootstrap, {f"{app}-outcomes-repartition": 1})
    judge = start_worker("outcomes", app_id=app)
    assert judge.proc.wait(60) == 2, judge.output()[-2_000:]
    assert f"{app}-outcomes-repartition': 1}} do not have the {PARTITIONS} partitions" in judge.output()
