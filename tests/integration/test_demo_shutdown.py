"""Ctrl-C on ``streamscore run`` (a terminal signals the whole process group): back at the prompt
within seconds, with no flood of client errors; the embedded broker outlives its clients."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from conftest import MODELS

CTRL_C_WITHIN_S = 5.0


def test_ctrl_c_on_the_demo_is_quick_and_quiet(tmp_path):
    env = {
        **os.environ,
        "STREAMSCORE_METRICS_PORT": "0",  # the outcome worker takes the next port: 0 too
        "STREAMSCORE_MODEL_DIR": str(MODELS),
        "STREAMSCORE_DATA_DIR": str(tmp_path / "data"),
    }
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)  # the demo starts its own embedded broker
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stream.cli.main", "run"],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a shell gives a foreground job
        )
    try:
        deadline = time.monotonic() + 180
        while "predictions:" not in log.read_text(errors="replace"):
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.5)
        before = len(log.read_text(errors="replace").splitlines())
        interrupted = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(60)
        took = time.monotonic() - interrupted
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    after = log.read_text(errors="replace").splitlines()[before:]
    print(f"Ctrl-C: back in {took:.1f} s, {len(after)} lines after it")
    assert code == 0, after
    assert took < CTRL_C_WITHIN_S, (took, after[-20:])
    errors = [line for line in after if "error" in line.lower() or "FAIL" in line]
    assert not errors, errors[:20]
    assert len(after) < 20, after


def test_workers_stop_within_their_bound_when_the_broker_is_gone(tmp_path, start_worker, worker_topics):
    """The broker SIGKILLed under both workers, then SIGTERM: each exits within its shutdown bound
    (exit code 0, or 70 when the bound cut it short), and repeated client errors are held back."""
    from stream.kafka.topics import ensure_topics
    from stream.tools.broker import EmbeddedKafka
    from stream.tools.produce import produce

    kafka = EmbeddedKafka(data_dir=tmp_path / "kafka").start()
    try:
        ensure_topics(kafka.bootstrap_servers, {worker_topics.input: 3})
        bound = {"bootstrap": kafka.bootstrap_servers, "shutdown_timeout_s": "5"}
        workers = [start_worker(**bound), start_worker("outcomes", **bound)]
        for worker, ready in zip(workers, ("assigned partitions", "join table holds"), strict=True):
            deadline = time.monotonic() + 90
            while ready not in worker.output():  # the outcome worker says so at its first provenance
                assert worker.proc.poll() is None, worker.output()[-2000:]
                assert time.monotonic() < deadline, worker.output()[-2000:]
                produce(kafka.bootstrap_servers, worker_topics.input, count=50, seed=9)
                time.sleep(1)
        kafka.kill()
        time.sleep(10)  # the clients try to reconnect meanwhile
        stopped = time.monotonic()
        for w in workers:
            w.proc.send_signal(signal.SIGTERM)
        codes = [w.proc.wait(30) for w in workers]
        took = time.monotonic() - stopped
    finally:
        kafka.stop()
    logs = [w.output().splitlines() for w in workers]
    ours = [[line for line in lines if not line.startswith("%")] for lines in logs]  # librdkafka's: "%3|..."
    print(
        f"broker gone: workers exited {codes} in {took:.1f} s, {[len(lines) for lines in ours]} log lines "
        f"and {[len(a) - len(b) for a, b in zip(logs, ours, strict=True)]} of librdkafka's"
    )
    assert took < 5 + 3, codes
    assert all(code in (0, 70) for code in codes), [lines[-20:] for lines in logs]
    assert all(len(lines) < 100 for lines in ours), [lines[-30:] for lines in ours]
