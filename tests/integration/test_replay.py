"""Replay on the real broker: a pinned old model after a newer one served; a replay killed and resumed."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
import uuid

import orjson
from confluent_kafka import Consumer, TopicPartition
from conftest import ROOT, read_topic
from model_versions import add_version, linear, registry

from stream.audit.lookup import Reader
from stream.audit.replay import positions
from stream.contracts import Prediction, Provenance
from stream.kafka.topics import ensure_topics
from stream.scoring.model import load
from stream.tools.produce import produce

N_EVENTS = 10_000
EVENTS_TO_STOP = 25_000
"""Events of the replay that is stopped, killed and resumed: a replay runs at 10,000 events/s or more
when the machine is quiet, so that each run outlives its first progress line (0.5 s) by far."""


def _ends(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"ends-{uuid.uuid4().hex[:6]}"})
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)
    }
    consumer.close()
    return ends


def _committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    offsets = {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=10)}
    consumer.close()
    return offsets


def _replay(env: dict[str, str], log, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "stream.cli.main", "replay", *args], env=env, cwd=ROOT, stdout=log, stderr=log
    )


def test_replay_with_the_pinned_old_model_gives_its_original_scores(
    kafka_bootstrap, worker_topics, start_worker, tmp_path
):
    root = registry(tmp_path / "models")
    ensure_topics(kafka_bootstrap, {worker_topics.input: 3})
    worker = start_worker(model_dir=str(root), batch_size=128)
    first = produce(kafka_bootstrap, worker_topics.input, count=N_EVENTS, seed=41)
    original = read_topic(kafka_bootstrap, worker_topics.predictions, N_EVENTS, timeout=180)
    assert worker.stop() == 0
    ends = _ends(kafka_bootstrap, worker_topics.input, 3)
    cut = dt.datetime.now(dt.UTC)
    time.sleep(0.01)
    add_version(root, "2", linear(weight=0.0))  # a newer version, served from now on
    newer = start_worker(model_dir=str(root))
    second = produce(kafka_bootstrap, worker_topics.input, count=300, seed=42)
    served = read_topic(kafka_bootstrap, worker_topics.predictions, N_EVENTS + 300, timeout=120)
    later = [Prediction.model_validate_json(m.value()) for m in served[N_EVENTS - 1000 :]]
    assert {p.model_version for p in later if p.event_id in second.valid} == {"2"}
    assert newer.stop() == 0
    reader = Reader(kafka_bootstrap)  # --from/--to as times and offsets, on the real topic
    try:
        assert positions(reader, worker_topics.input, cut.isoformat()) == ends
        assert positions(reader, worker_topics.input, "0:5,2:7") == {0: 5, 1: 0, 2: 7}
    finally:
        reader.close()
    live = _committed(kafka_bootstrap, worker.env["STREAMSCORE_APP_ID"], worker_topics.input, 3)

    out = f"{worker_topics.input}.replay"
    env = {**worker.env, "STREAMSCORE_MODEL_DIR": str(root)}
    to = ",".join(f"{p}:{o}" for p, o in ends.items())
    started = time.monotonic()
    with open(tmp_path / "replay.log", "wb") as log:
        proc = _replay(
            env, log, "--from", "beginning", "--to", to, "--model", "loan-approval/1", "--output-topic", out
        )
        assert proc.wait(300) == 0, (tmp_path / "replay.log").read_text()
    elapsed = time.monotonic() - started
    replayed = read_topic(kafka_bootstrap, out, N_EVENTS, timeout=60, settle=2.0)
    provenance = read_topic(kafka_bootstrap, f"{out}.provenance", N_EVENTS, timeout=60)

    then = {p.event_id: p for p in (Prediction.model_validate_json(m.value()) for m in original)}
    now = {p.event_id: p for p in (Prediction.model_validate_json(m.value()) for m in replayed)}
    assert len(replayed) == N_EVENTS and set(now) == set(first.valid) == set(then)
    assert all(now[i].score == then[i].score and now[i].label == then[i].label for i in then), "bit-exact"
    assert {(p.model_version, p.role) for p in now.values()} == {("1", "replay")}
    records = [Provenance.model_validate_json(m.value()) for m in provenance]
    assert {(r.model.sha256, r.role) for r in records} == {
        (load(root, "loan-approval", "1").card.sha256, "replay")
    }
    assert all(r.input.offset < ends[r.input.partition] for r in records), "nothing past --to"
    assert _committed(kafka_bootstrap, worker.env["STREAMSCORE_APP_ID"], worker_topics.input, 3) == live
    done = subprocess.run(  # the replay's own records verify as the live ones do
        [sys.executable, "-m", "stream.cli.main", "verify", "--sample", str(N_EVENTS)],
        env={**env, "STREAMSCORE_PROVENANCE_TOPIC": f"{out}.provenance"},
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and f"{N_EVENTS} bit-exact (100.0%)" in done.stdout, done.stdout + done.stderr
    log_text = (tmp_path / "replay.log").read_text()
    assert f"replayed {N_EVENTS:,} events into {out}" in log_text
    last = [line for line in log_text.splitlines() if " of " in line][-1]
    print(f"replay of {N_EVENTS} events: {elapsed:.1f} s from process start to exit; last progress: {last}")


def test_a_replay_stopped_then_killed_and_resumed_gives_each_event_once(
    kafka_bootstrap, worker_topics, tmp_path
):
    ensure_topics(kafka_bootstrap, {worker_topics.input: 3})
    produced = produce(kafka_bootstrap, worker_topics.input, count=EVENTS_TO_STOP, seed=43)
    out = f"{worker_topics.input}.replay"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "STREAMSCORE_APP_ID": f"app-{uuid.uuid4().hex[:8]}",
        "STREAMSCORE_INPUT_TOPIC": worker_topics.input,
        "STREAMSCORE_BATCH_SIZE": "2",  # slow enough to be stopped in the middle, under any load
        "STREAMSCORE_COMMIT_INTERVAL_MS": "200",
    }
    args = (
        "--from",
        "beginning",
        "--to",
        "end",
        "--model",
        "loan-approval/1",
        "--output-topic",
        out,
        "--exactly-once",
    )
    log_path = tmp_path / "replay.log"

    def stop_after(events: int, sig: signal.Signals) -> int:
        """Start the replay, send ``sig`` once this run has handled ``events``; its exit code."""
        seen = len(log_path.read_text().splitlines()) if log_path.exists() else 0
        with open(log_path, "ab") as log:
            proc = _replay(env, log, *args)
            deadline = time.monotonic() + 120
            while proc.poll() is None and time.monotonic() < deadline:
                lines = [x for x in log_path.read_text().splitlines()[seen:] if x.startswith("replayed ")]
                if lines and int(lines[-1].split()[1].replace(",", "")) >= events:
                    proc.send_signal(sig)
                    break
                time.sleep(0.05)
            return proc.wait(30)

    assert stop_after(1_500, signal.SIGINT) == 130, log_path.read_text()  # Ctrl-C: commits, then stops
    assert "run the same command again to resume" in log_path.read_text()
    stopped = read_topic(kafka_bootstrap, out, EVENTS_TO_STOP, timeout=5, read_committed=True)
    assert stop_after(1_500, signal.SIGKILL) == -signal.SIGKILL, log_path.read_text()
    partial = read_topic(kafka_bootstrap, out, EVENTS_TO_STOP, timeout=5, read_committed=True)
    assert 0 < len(stopped) < len(partial) < EVENTS_TO_STOP, "stopped, then killed, halfway"

    with open(log_path, "ab") as log:
        assert _replay(env, log, *args).wait(300) == 0, log_path.read_text()
    text = log_path.read_text()
    assert text.count("resuming replay group") == 2
    replayed = read_topic(kafka_bootstrap, out, EVENTS_TO_STOP, timeout=60, settle=3.0, read_committed=True)
    ids = [orjson.loads(m.value())["event_id"] for m in replayed]
    assert len(ids) == len(set(ids)) == EVENTS_TO_STOP, f"{len(ids) - len(set(ids))} events twice"
    assert set(ids) == set(produced.valid)
