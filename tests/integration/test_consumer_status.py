"""The lag status on a real broker: a group that keeps up (OK), one that commits but falls behind
(WARN), one whose consumer is frozen with SIGSTOP while still a member (STALL), one whose consumer
has left (STOP); as the table, the CLI and the Prometheus gauges show them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from faults import Load
from prometheus_client import CollectorRegistry, generate_latest
from typer.testing import CliRunner

from stream.cli.main import app
from stream.kafka.lag import LagCollector, sample
from stream.kafka.lag_status import Status, Window

# A consumer reading at most RATE events/s (flat out from 1,000: then each event is committed as it
# comes, so that the lag at the head is zero most of the time), committing after each batch; ends
# after SECONDS.
CONSUMER = textwrap.dedent(
    """
    import sys, time
    from confluent_kafka import Consumer
    bootstrap, topic, group, rate, seconds = sys.argv[1:6]
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "session.timeout.ms": 45000, "log_level": 0})
    c.subscribe([topic])
    flat = float(rate) >= 1000  # flat out: each event committed as it comes, no pause (at the head)
    end, pause = time.monotonic() + float(seconds), 0.0 if flat else 0.2
    size = 1 if flat else int(float(rate) / 5) or 1
    while time.monotonic() < end:
        batch = c.consume(size, timeout=0.05 if flat else 0.2)
        batch = [m for m in batch if m.error() is None]
        if batch:
            c.commit(asynchronous=False)
        time.sleep(pause)
    c.close()
    """
)


def test_each_status_on_a_real_broker(kafka_bootstrap, new_topic, unique_name):
    topic = new_topic(partitions=1)
    # 20 events/s: the consumer that keeps up has 50 ms between events to commit each (at 100/s it
    # read as falling behind on a loaded machine); the one that falls behind reads 5 a second
    load = Load(kafka_bootstrap, topic, rate=20, seed=3, malformed_fraction=0.0)
    groups = {status: unique_name(status.lower()) for status in ("OK", "WARN", "STALL", "STOP")}
    plan = {"OK": (100_000, 120), "WARN": (5, 120), "STALL": (5, 120), "STOP": (5, 6)}
    consumers = {
        status: subprocess.Popen(
            [sys.executable, "-c", CONSUMER, kafka_bootstrap, topic, groups[status], str(rate), str(seconds)]
        )
        for status, (rate, seconds) in plan.items()
    }
    try:
        time.sleep(8)  # everyone has joined and committed a few times; "STOP" has left
        assert consumers["STOP"].wait(20) == 0
        os.kill(consumers["STALL"].pid, signal.SIGSTOP)
        window, seen = Window(5.0), {}
        for _ in range(8):
            rows = sample(kafka_bootstrap, groups.values(), [topic], window, with_seconds=False)
            seen = {r.group: r.status for r in rows}
            time.sleep(1)
        assert seen == {groups[s]: Status[s] for s in groups}, seen

        registry = CollectorRegistry()
        registry.register(LagCollector(kafka_bootstrap, [groups["STALL"]], [topic], window_s=5.0))
        for _ in range(4):
            text = generate_latest(registry).decode()
            time.sleep(0.5)
        assert (
            f'streamscore_consumer_status{{group="{groups["STALL"]}",partition="0",topic="{topic}"}} 2.0'
            in text
        )
        assert f'streamscore_consumer_group_status{{group="{groups["STALL"]}"}} 2.0' in text

        env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "STREAMSCORE_APP_ID": groups["STOP"],
               "STREAMSCORE_INPUT_TOPIC": topic}  # fmt: skip
        done = CliRunner().invoke(app, ["lag", "--window", "3"], env=env)
        assert done.exit_code == 0, done.output
        lines = done.output.splitlines()
        assert lines[0].split()[-1] == "STATUS" and lines[1].split()[-1] == "STOP"
        assert lines[-1].split()[:3] == [groups["STOP"], topic, "TOTAL"] and lines[-1].split()[-1] == "STOP"
    finally:
        for proc in consumers.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
                proc.wait()
        load.stop()
