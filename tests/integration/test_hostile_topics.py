"""Replay on the real broker with hostile ranges and output topics: refused, clamped, counted right."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, TopicPartition
from conftest import MODELS, ROOT, read_topic

from stream.contracts import Provenance
from stream.kafka.config import connect
from stream.kafka.topics import ensure_topics
from stream.tools.produce import produce

N_EVENTS = 60
PARTITIONS = 3


def _ends(kafka_bootstrap: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"ends-{uuid.uuid4().hex[:6]}"})
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)
    }
    consumer.close()
    return ends


@pytest.fixture(scope="module")
def events(kafka_bootstrap: str) -> Iterator[tuple[dict[str, str], dict[int, int]]]:
    """A topic of N_EVENTS events (the replays' input): the replay environment and each partition's end."""
    topic = f"hostile-{uuid.uuid4().hex[:8]}.events"
    ensure_topics(kafka_bootstrap, {topic: PARTITIONS})
    assert len(produce(kafka_bootstrap, topic, count=N_EVENTS, seed=30).valid) == N_EVENTS
    ends = _ends(kafka_bootstrap, topic)
    assert sum(ends.values()) == N_EVENTS and min(ends.values()) > 3, ends
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "STREAMSCORE_APP_ID": f"app-{uuid.uuid4().hex[:8]}",
        "STREAMSCORE_INPUT_TOPIC": topic,
        "STREAMSCORE_MODEL_DIR": str(MODELS),
    }
    yield env, ends


def _replay(env: dict[str, str], start: str, end: str, output: str) -> subprocess.CompletedProcess:
    args = ["--from", start, "--to", end, "--model", "loan-approval/1", "--output-topic", output]
    return subprocess.run(
        [sys.executable, "-m", "stream.cli.main", "replay", *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _refused(done: subprocess.CompletedProcess) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("streamscore: error: ")
    return lines[0]


def _progress(stderr: str) -> list[tuple[int, int, int | None]]:
    """(done, total, percent) of every progress line."""
    lines = re.findall(r"^replayed ([\d,]+) of ([\d,]+) events(?: \((\d+)%\))?", stderr, re.M)
    return [(int(d.replace(",", "")), int(t.replace(",", "")), p and int(p)) for d, t, p in lines]


def _scored_partitions(kafka_bootstrap: str, output: str, expected: int) -> list[int]:
    records = read_topic(kafka_bootstrap, f"{output}.provenance", expected, timeout=30, settle=1.0)
    return [Provenance.model_validate_json(m.value()).input.partition for m in records]


def test_a_start_past_the_end_is_clamped_to_the_end_and_counted_right(kafka_bootstrap, events):
    env, ends = events
    output = f"{env['STREAMSCORE_INPUT_TOPIC']}.past-end"
    slow = {"STREAMSCORE_COMMIT_INTERVAL_MS": "3000"}  # time to read partition 1 from its first offset,
    done = _replay(env | slow, "1:99999999", "end", output)  # were the offset past its end kept
    assert done.returncode == 0, done.stderr
    expected = ends[0] + ends[2]  # partition 1 from its end: nothing; the others whole
    progress = _progress(done.stderr)
    assert progress and all(total == expected and d <= total for d, total, _ in progress), progress
    assert progress[-1] == (expected, expected, 100)
    assert f"replayed {expected:,} events into {output}" in done.stderr, done.stderr
    assert f"--from 1:99999999 is past the end of {env['STREAMSCORE_INPUT_TOPIC']}[1]" in done.stderr
    assert f"clamped to 1:{ends[1]}" in done.stderr
    partitions = _scored_partitions(kafka_bootstrap, output, expected)
    assert len(partitions) == expected and 1 not in partitions


def test_an_end_past_the_end_is_clamped_to_the_end(kafka_bootstrap, events):
    env, ends = events
    output = f"{env['STREAMSCORE_INPUT_TOPIC']}.to-past-end"
    done = _replay(env, "0:2", "0:99999999", output)
    assert done.returncode == 0, done.stderr
    expected = ends[0] - 2  # partition 0 from 2 to its end; the partitions --to does not name: nothing
    assert f"--to 0:99999999 is past the end of {env['STREAMSCORE_INPUT_TOPIC']}[0]" in done.stderr
    assert f"replayed {expected:,} events into {output}" in done.stderr, done.stderr
    assert _progress(done.stderr)[-1] == (expected, expected, 100)
    assert _scored_partitions(kafka_bootstrap, output, expected) == [0] * expected


@pytest.mark.parametrize(
    ("start", "end"),
    [("end", "beginning"), ("0:3", "0:1"), ("2030-01-01T00:00:00Z", "2020-01-01T00:00:00Z")],
    ids=["ends", "offsets", "times"],
)
def test_an_inverted_range_is_refused_before_anything_is_created(kafka_bootstrap, events, start, end):
    env, _ = events
    output = f"{env['STREAMSCORE_INPUT_TOPIC']}.inverted-{uuid.uuid4().hex[:6]}"
    line = _refused(_replay(env, start, end, output))
    assert f"--from {start} is after --to {end}" in line, line
    assert output not in connect(kafka_bootstrap)[1].topics, "no output topic made for a refused replay"


@pytest.mark.parametrize(("start", "end"), [("end", "end"), ("0:3", "0:3")], ids=["ends", "offsets"])
def test_an_empty_range_is_refused(events, start, end):
    env, _ = events
    line = _refused(_replay(env, start, end, f"{env['STREAMSCORE_INPUT_TOPIC']}.empty"))
    assert f"--from {start} --to {end} holds no events of {env['STREAMSCORE_INPUT_TOPIC']}" in line, line


@pytest.mark.parametrize("live", ["STREAMSCORE_INPUT_TOPIC", "STREAMSCORE_PREDICTION_TOPIC"])
def test_an_output_topic_of_the_live_worker_is_refused(kafka_bootstrap, events, live):
    env, ends = events
    topic = env.get(live, "predictions")
    line = _refused(_replay(env, "beginning", "end", topic))
    assert f"--output-topic {topic}: " in line and live in line, line
    assert _ends(kafka_bootstrap, env["STREAMSCORE_INPUT_TOPIC"]) == ends, "nothing written to the input"
