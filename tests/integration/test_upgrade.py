"""Rolling over from a worker on Faust's own consumer to the confluent-kafka loop, in the same group.

Faust's consumer joins the group with its own assignor protocol; the loop joins with Kafka's
standard ones. Offsets committed by the old workers are plain group offsets: once every old
worker has left, the new one resumes exactly where they stopped. While an old one is still in the
group, the new one refuses to start with a line that says so.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import orjson
from confluent_kafka import Consumer, TopicPartition
from conftest import ROOT, read_topic

from stream.kafka.topics import ensure_topics
from stream.tools.produce import produce

PARTITIONS, FIRST, SECOND = 3, 3_000, 2_000


def _faust_worker(bootstrap: str, group: str, topics, log, data_dir) -> subprocess.Popen:
    """A Faust app on its own consumer in ``group`` (the benchmark's naive scorer)."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "STREAMSCORE_APP_ID": group,
        "STREAMSCORE_INPUT_TOPIC": topics.input,
        "STREAMSCORE_PREDICTION_TOPIC": topics.outcomes,  # its outputs stay apart from the new worker's
        "STREAMSCORE_PROVENANCE_TOPIC": topics.drift,
        "STREAMSCORE_PARTITIONS": str(PARTITIONS),
        "STREAMSCORE_DATA_DIR": str(data_dir),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "bench.rungs", "naive"], env=env, stdout=log, stderr=log, cwd=ROOT
    )


def _committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        offsets = consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
        return {tp.partition: tp.offset for tp in offsets}
    finally:
        consumer.close()


def test_roll_over_from_faust_consumer(kafka_bootstrap, worker_topics, start_worker, unique_name, tmp_path):
    group = unique_name("app")
    t = worker_topics
    ensure_topics(kafka_bootstrap, {n: PARTITIONS for n in (t.input, t.outcomes, t.drift)})
    produce(kafka_bootstrap, t.input, count=FIRST, seed=81)

    # 1. the old worker reads the backlog and commits, then stays in the group
    with open(tmp_path / "faust.log", "ab") as log:
        old = _faust_worker(kafka_bootstrap, group, t, log, tmp_path / "faust")
    try:
        read_topic(kafka_bootstrap, t.outcomes, FIRST, 120, 3.0)  # every event of the backlog scored
        deadline = time.monotonic() + 30
        while sum(max(o, 0) for o in _committed(kafka_bootstrap, group, t.input).values()) < FIRST:
            assert time.monotonic() < deadline, "the Faust worker did not commit its offsets"
            time.sleep(0.5)

        # 2. a new worker while the old one is in the group: a clear refusal, nothing scored
        early = start_worker(app_id=group)
        assert early.proc.wait(60) == 70
        assert "stop every worker of the previous version first" in early.output(), early.output()[-2000:]
    finally:
        old.send_signal(signal.SIGTERM)
        old.wait(30)
    committed = _committed(kafka_bootstrap, group, t.input)
    assert sum(committed.values()) == FIRST, committed

    # 3. the old worker gone: the new one resumes exactly at the committed offsets
    produce(kafka_bootstrap, t.input, count=SECOND, seed=82)
    worker = start_worker(app_id=group)
    provenance = read_topic(kafka_bootstrap, t.provenance, SECOND, 120, 3.0)
    assert worker.proc.poll() is None, worker.output()[-3000:]
    scored = sorted(
        (r["input"]["partition"], r["input"]["offset"]) for r in (orjson.loads(m.value()) for m in provenance)
    )
    ends = {p: committed[p] + n for p, n in _new_per_partition(kafka_bootstrap, t.input, committed).items()}
    expected = sorted((p, o) for p in range(PARTITIONS) for o in range(committed[p], ends[p]))
    assert scored == expected, "the new worker scored exactly the events the old one had not committed"


def _new_per_partition(bootstrap: str, topic: str, committed: dict[int, int]) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] - committed[p]
            for p in range(PARTITIONS)
        }
    finally:
        consumer.close()
