"""Promotion mid-traffic with two workers: every prediction's model matches the recorded offsets.

Two workers share six partitions and follow the folder registry's ``champion`` alias. While events
flow, ``streamscore model promote`` moves the alias from version 1 to 2; each worker switches between
two batches and records, per partition it owns, the first offset scored by version 2 on the
``model-changes`` topic. Afterwards every provenance record's model is the one the change records
name for its input partition and offset: below the switch version 1, from it version 2.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import orjson
import pytest
from conftest import ROOT, read_topic
from model_versions import NAME, add_version, registry

from stream.kafka.topics import ensure_topics
from stream.lifecycle.changes import ModelChange, Timeline
from stream.lifecycle.folder import set_alias
from stream.tools.produce import Produced, produce

PARTITIONS = 6


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_promotion_offsets_are_exact(guarantee, kafka_bootstrap, worker_topics, start_worker, tmp_path):
    root = registry(tmp_path / "registry")
    v2 = orjson.loads((add_version(root, "2") / "card.json").read_bytes())
    set_alias(root, NAME, "champion", "1")
    ensure_topics(kafka_bootstrap, {worker_topics.input: PARTITIONS})
    settings = {
        "model_uri": f"{root}/{NAME}@champion",
        "model_reload_s": 0.5,
        "batch_size": 16,
        "processing_guarantee": guarantee,
    }
    workers = [start_worker(**settings), start_worker(**settings)]
    produced: list[Produced] = []
    stop = threading.Event()
    producer = threading.Thread(
        target=lambda: produced.append(
            produce(kafka_bootstrap, worker_topics.input, rate=300, seed=91, stop=stop)
        )
    )
    producer.start()
    committed = guarantee == "exactly_once"
    try:
        read_topic(
            kafka_bootstrap, worker_topics.predictions, 300, timeout=90, settle=0, read_committed=committed
        )
        for worker in workers:
            worker.wait_for("assigned partitions")
        time.sleep(2)  # both workers hold partitions and score
        promoted = subprocess.run(
            [sys.executable, "-m", "stream.cli.main", "model", "promote", NAME, "2", "--registry", str(root)],
            env={k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert promoted.stdout.strip() == f"{NAME}@champion: 1 -> 2", promoted.stderr
        for worker in workers:
            worker.wait_for(f"serving model {NAME}/2")
        time.sleep(3)
    finally:
        stop.set()
        producer.join(60)
    (sent,) = produced
    provenance = read_topic(
        kafka_bootstrap, worker_topics.provenance, len(sent.valid), timeout=90, read_committed=committed
    )
    records = read_topic(
        kafka_bootstrap, worker_topics.model_changes, 2, timeout=30, read_committed=committed
    )
    for worker in workers:
        assert worker.proc.poll() is None, worker.output()[-3000:]

    changes = [ModelChange.model_validate_json(m.value()) for m in sorted(records, key=lambda m: m.offset())]
    switches = [c for c in changes if c.kind == "switch"]
    assert {c.instance_id for c in switches} == {"worker0", "worker1"}, changes
    assert all(
        c.old.version == "1" and c.new.version == "2" and c.new.sha256 == v2["sha256"] for c in switches
    )
    assert {c.kind for c in changes} <= {"start", "assign", "switch"}, "no rewind without an abort"

    timeline = Timeline(changes)
    docs = [orjson.loads(m.value()) for m in provenance]
    assert sorted(d["event_id"] for d in docs) == sorted(sent.valid), "every event scored exactly once"
    wrong = [
        (d["input"]["partition"], d["input"]["offset"], d["model"]["version"])
        for d in docs
        if timeline.model(d["input"]["partition"], d["input"]["offset"]).sha256 != d["model"]["sha256"]
    ]
    assert not wrong, f"predictions whose model is not the recorded one: {wrong[:10]}"
    for p in range(PARTITIONS):  # every partition switched once, with traffic on both sides
        versions = [m.version for _, m in timeline.switches(p)]
        assert versions[-1] == "2" and "1" in versions, (p, timeline.switches(p))
        mine = sorted(
            (d["input"]["offset"], d["model"]["version"]) for d in docs if d["input"]["partition"] == p
        )
        assert mine[0][1] == "1" and mine[-1][1] == "2", p
