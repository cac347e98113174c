"""Lag is exact: after the worker stops and N more events arrive, it reads N, as Kafka's own tool
(kafka-consumer-groups) and an independent client (kcat) see it."""

from __future__ import annotations

import re
import subprocess
import time

from conftest import read_topic, require_tool
from typer.testing import CliRunner

from stream.cli.main import app
from stream.kafka.lag import consumer_lag
from stream.kafka.topics import ensure_topics
from stream.tools.broker import kafka_classpath
from stream.tools.produce import produce

N_MORE = 777


def _kafka_consumer_groups(bootstrap: str, group: str) -> dict[tuple[str, int], tuple[int, int, int]]:
    """(topic, partition) -> (current offset, log-end offset, lag) from Kafka's own command."""
    done = subprocess.run(
        [
            "java",
            "-cp",
            f"{kafka_classpath()}/*",
            "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
            "--bootstrap-server",
            bootstrap,
            "--describe",
            "--group",
            group,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = {}
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[0] == group and parts[2].isdigit():
            rows[(parts[1], int(parts[2]))] = (int(parts[3]), int(parts[4]), int(parts[5]))
    return rows


def _kcat_end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    args = ["kcat", "-b", bootstrap, "-Q"]
    for p in range(partitions):
        args += ["-t", f"{topic}:{p}:-1"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=30, check=True).stdout
    return {int(p): int(o) for p, o in re.findall(r"\[(\d+)\] offset (\d+)", out)}


def test_lag_reads_exactly_the_events_produced_while_stopped(kafka_bootstrap, worker_topics, start_worker):
    ensure_topics(kafka_bootstrap, {worker_topics.input: 3})
    worker = start_worker()
    first = produce(kafka_bootstrap, worker_topics.input, count=500, seed=41)
    read_topic(kafka_bootstrap, worker_topics.predictions, len(first.valid), timeout=60, settle=0)
    group = worker.env["STREAMSCORE_APP_ID"]
    deadline = time.monotonic() + 30
    while sum(r.lag for r in consumer_lag(kafka_bootstrap, group, [worker_topics.input])) > 0:
        assert time.monotonic() < deadline, "the worker committed everything it scored"
        time.sleep(0.5)
    assert worker.stop() == 0, worker.output()

    produce(kafka_bootstrap, worker_topics.input, count=N_MORE, seed=42)
    rows = consumer_lag(kafka_bootstrap, group, [worker_topics.input])
    assert sum(r.lag for r in rows) == N_MORE
    assert all(r.lag == 0 or r.lag_seconds is not None for r in rows)
    assert max(r.lag_seconds or 0 for r in rows) < 120

    kafka_view = _kafka_consumer_groups(kafka_bootstrap, group)
    for r in rows:
        assert kafka_view[(r.topic, r.partition)] == (r.committed, r.end, r.lag)
    require_tool("kcat", "kcat")
    ends = _kcat_end_offsets(kafka_bootstrap, worker_topics.input, 3)
    assert ends == {r.partition: r.end for r in rows}

    shown = CliRunner().invoke(
        app, ["lag", "--group", group, "--window", "0"], env={"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    )
    assert shown.exit_code == 0, shown.output
    lines = [line.split() for line in shown.output.splitlines()[1:] if line]
    assert sum(int(cells[5]) for cells in lines if cells[2].isdigit()) == N_MORE
    assert [int(cells[4]) for cells in lines if cells[2] == "TOTAL"] == [N_MORE]
