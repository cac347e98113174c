"""``streamscore run``: the whole loop on one machine, producer -> workers -> predictions and reports.

Starts the embedded Kafka broker unless ``KAFKA_BOOTSTRAP_SERVERS`` is set, the scoring worker, the
outcome worker (metrics on the next port), and a producer publishing loan applications (1%
malformed) at a steady rate with their true outcomes five seconds later; then reads the
predictions and the drift topic back and prints, every few seconds, what arrived and how late,
and each drift or performance report.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime

import orjson
from confluent_kafka import Consumer, ConsumerGroupState, KafkaException

from stream.kafka.config import Connection, client_config, connect
from stream.kafka.topics import prepare_topics
from stream.settings import Settings
from stream.terminal import printable
from stream.tools.broker import EmbeddedKafka
from stream.tools.produce import produce


@contextlib.contextmanager
def kafka_at(bootstrap_servers: str | None) -> Iterator[str]:
    """Yield ``bootstrap_servers``, or those of an embedded broker started for the block."""
    if bootstrap_servers:
        yield bootstrap_servers
        return
    print("KAFKA_BOOTSTRAP_SERVERS not set: starting the embedded Kafka broker", flush=True)
    started = time.monotonic()
    with EmbeddedKafka() as kafka:
        print(
            f"Kafka {kafka.version} ready on {kafka.bootstrap_servers} in {time.monotonic() - started:.1f} s",
            flush=True,
        )
        yield kafka.bootstrap_servers


@contextlib.contextmanager
def worker_process(env: dict[str, str], command: str = "worker") -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-m", "stream.cli.main", command], env=env)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _demo_env(bootstrap: str) -> dict[str, str]:
    """The workers' environment: STREAMSCORE_SECRET included; their warnings only, beside the summaries."""
    return {"STREAMSCORE_LOG_LEVEL": "warn", **os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap}


def _reader(kafka: Connection, settings: Settings) -> Consumer:
    """A consumer of the predictions and drift reports from now on."""
    consumer = Consumer(
        client_config(
            kafka,
            **{
                "group.id": "streamscore-demo-reader",
                "auto.offset.reset": "latest",
                "fetch.wait.max.ms": 10,
                "log_level": 3,
            },
        )
    )
    consumer.subscribe([settings.prediction_topic, settings.drift_topic])
    return consumer


def _producer_thread(
    kafka: Connection,
    settings: Settings,
    rate: float,
    seconds: float,
    stop: threading.Event,
    serialize: Callable[[bytes], bytes] | None,
) -> threading.Thread:
    """A thread publishing applications (1% malformed), with their outcomes five seconds later."""
    return threading.Thread(
        target=lambda: produce(
            kafka,
            settings.input_topic,
            rate=rate,
            duration=seconds or None,
            malformed_fraction=0.01,
            seed=int(time.time()),
            stop=stop,
            outcome_topic=settings.outcome_topic or None,
            outcome_delay=5.0,
            serialize=serialize,
        ),
        daemon=True,
    )


def _print_latencies(received: int, lags: list[float], since: float) -> None:
    """One line: predictions received, their rate since ``since``, and their p50 and p99 lag."""
    lags.sort()
    per_second = len(lags) / (time.monotonic() - since)
    print(
        f"predictions: {received} received, {per_second:.0f}/s, "
        f"event time to visible p50 {lags[len(lags) // 2] * 1e3:.1f} ms, "
        f"p99 {lags[int(len(lags) * 0.99)] * 1e3:.1f} ms",
        flush=True,
    )


def _follow(
    consumer: Consumer,
    worker: subprocess.Popen[bytes],
    settings: Settings,
    occurred: Callable[[bytes], float],
    seconds: float,
) -> None:
    """Print drift reports as they come and prediction latencies every 5 s, while the worker runs."""
    started = last = time.monotonic()
    received, lags = 0, []
    while worker.poll() is None and (not seconds or time.monotonic() - started < seconds + 5):
        first = consumer.poll(0.2)  # then take what has arrived, without waiting more
        for msg in [first, *consumer.consume(1000, timeout=0)] if first is not None else []:
            if msg.error() is not None:
                continue
            if msg.topic() == settings.drift_topic:
                print(printable(_summary(orjson.loads(msg.value()))), flush=True)
            else:
                received += 1
                lags.append(time.time() - occurred(msg.value()))
        if time.monotonic() - last >= 5 and lags:
            _print_latencies(received, lags, last)
            last, lags = time.monotonic(), []


def run_demo(bootstrap_servers: str | None, seconds: float = 0.0, rate: float = 500.0) -> None:
    """Run the whole loop at ``rate`` events/s for ``seconds`` (0: until Ctrl-C), printing what arrives."""
    with kafka_at(bootstrap_servers) as bootstrap:
        env = _demo_env(bootstrap)
        settings = Settings(kafka_bootstrap_servers=bootstrap)
        kafka = client_config(settings)
        prepare_topics(settings)
        consumer = _reader(kafka, settings)
        serialize, occurred = wire_demo(settings)  # JSON: None, and the time read from JSON
        stop = threading.Event()
        producer = _producer_thread(kafka, settings, rate, seconds, stop, serialize)
        judge_port = settings.metrics_port + 1 if settings.metrics_port else 0
        judge_env = {**env, "STREAMSCORE_METRICS_PORT": str(judge_port)}
        with worker_process(env) as worker, worker_process(judge_env, "outcomes"):
            _wait_for_group(kafka, settings.app_id)
            print(f"producing {rate:.0f} events/s to {settings.input_topic!r}; Ctrl-C stops", flush=True)
            producer.start()
            try:
                _follow(consumer, worker, settings, occurred, seconds)
            except KeyboardInterrupt:
                pass
            finally:
                stop.set()
                producer.join(10)
                consumer.close()


def _wait_for_group(kafka: Connection, group: str, timeout: float = 60.0) -> None:
    """Wait until the worker's consumer group is stable with a member: the worker is scoring."""
    admin = connect(kafka)[0]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(KafkaException, TimeoutError):  # not there yet, or a slow answer
            described = admin.describe_consumer_groups([group])[group].result(timeout=5)
            if described.members and described.state == ConsumerGroupState.STABLE:
                return
        time.sleep(0.5)
    print(f"the worker has not joined group {group!r} after {timeout:.0f} s; producing anyway", flush=True)


def _summary(report: dict[str, object]) -> str:
    """One line for a drift or performance report."""
    if report["kind"] == "performance":
        return (
            f"performance of {report['model_name']}/{report['model_version']} on {report['outcomes']} "
            f"outcomes: accuracy {report['accuracy']}, ROC AUC {report['roc_auc']}, "
            f"log loss {report['log_loss']}: {report['verdict']}"
        )
    worst = max(report["psi"].items(), key=lambda kv: kv[1])  # type: ignore[attr-defined]
    alarms = f", detectors fired {report['alarms']}" if report["alarms"] else ""
    return (
        f"drift {report['kind']} over {report['events']} events: {report['verdict']} "
        f"(highest PSI {worst[0]} {worst[1]}{alarms})"
    )


def _occurred(value: bytes) -> float:
    return datetime.fromisoformat(orjson.loads(value)["occurred_at"]).timestamp()


def wire_demo(settings: Settings) -> tuple[Callable[[bytes], bytes] | None, Callable[[bytes], float]]:
    """How the demo writes events (None: JSON) and reads a prediction's event time, in their formats."""
    if settings.input_format == settings.output_format == "json":
        return None, _occurred
    from stream.formats.events import event_serializer
    from stream.formats.reader import WireReader
    from stream.formats.registry import registry_client

    serialize = None
    if settings.input_format != "json":
        serialize = event_serializer(settings, settings.input_format, settings.input_topic)
    if settings.output_format == "json":
        return serialize, _occurred
    read = WireReader(registry_client(settings))

    def occurred(value: bytes) -> float:
        at = read(value)[1]["occurred_at"]  # type: ignore[index]
        return (at if isinstance(at, datetime) else datetime.fromisoformat(at)).timestamp()

    return serialize, occurred
