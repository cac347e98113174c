"""``streamscore worker --processes 2``: two workers of one group score a backlog; a SIGKILLed one is
started again under its name by the supervisor, and every event is accounted for."""

from __future__ import annotations

import os
import re
import signal
import time
import urllib.request
from pathlib import Path

from faults import Load, account, collect, merge, wait_written

from stream.kafka.config import connect
from stream.kafka.topics import ensure_topics
from stream.tools.broker import free_port
from stream.tools.produce import produce


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _members(bootstrap: str, group: str) -> list[str]:
    admin = connect(bootstrap)[0]
    return sorted(m.client_id for m in admin.describe_consumer_groups([group])[group].result(10).members)


def _restarts(port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(float(v) for v in re.findall(r"^streamscore_worker_restarts_total\{[^}]*\} (\S+)", text, re.M))


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_two_processes_score_a_backlog_and_a_killed_one_comes_back(
    kafka_bootstrap, worker_topics, start_worker
):
    t = worker_topics
    ensure_topics(kafka_bootstrap, dict.fromkeys([t.input, t.predictions, t.provenance, t.dlq], 6))
    backlog = produce(kafka_bootstrap, t.input, count=3_000, seed=5, malformed_fraction=0.02)
    port = free_port()
    supervisor = start_worker(
        "worker --processes 2", instance_id="node", supervisor_port=str(port), session_timeout_s="6"
    )
    group = supervisor.env["STREAMSCORE_APP_ID"]
    wait_written(kafka_bootstrap, (t.predictions, t.dlq), 3_000, supervisor, 90)
    _wait(
        lambda: _members(kafka_bootstrap, group) == [f"{group}-node-0", f"{group}-node-1"], 60, "two members"
    )
    first, second = _children(supervisor.proc.pid)

    load = Load(kafka_bootstrap, t.input, rate=500, seed=6)
    time.sleep(2)
    os.kill(first, signal.SIGKILL)
    _wait(lambda: _restarts(port) == 1, 30, "the supervisor restarts the killed worker")
    time.sleep(3)
    inputs = merge(backlog, load.stop())
    outputs = collect(kafka_bootstrap, t, inputs, read_committed=False)
    ledger = account(inputs, outputs)
    print(f"2 processes, one SIGKILLed: {ledger}")
    assert not ledger.lost and not ledger.unexpected and not ledger.provenance_missing, ledger

    children = _children(supervisor.proc.pid)
    assert second in children and first not in children and len(children) == 2
    _wait(lambda: _members(kafka_bootstrap, group) == [f"{group}-node-0", f"{group}-node-1"], 60, "rejoined")
    log = supervisor.output()
    assert re.search(r"worker node-0 exited with code -9: restarting it", log), log[-3000:]
    assert supervisor.stop() == 0, log[-3000:]
    assert not any(Path(f"/proc/{pid}").exists() for pid in children), "children stopped with it"
