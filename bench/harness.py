"""One rung on the broker: its topics, its scorer processes, and what is measured of them.

Throughput is measured by draining a backlog. The scorer processes are started and answer a first
event (:meth:`Harness.warm_up`), then they are stopped (SIGSTOP) while the backlog is written, so
that they start on a full backlog and do not share the cores with the writer, and resumed
(SIGCONT). The output topics append with the broker's clock (``LogAppendTime``), the drain is read
back with ``isolation.level=read_committed`` once it is complete, and its rate and CPU are taken
over the middle of the drain (:mod:`bench.measure`). Latency is measured on the same processes
afterwards, with events offered at a fixed rate by the load generator (:mod:`bench.load`), from
``occurred_at`` to the prediction's append on the broker, read back once the load is over.

A rung in a registered format (``STREAMSCORE_INPUT_FORMAT`` and ``STREAMSCORE_OUTPUT_FORMAT``:
``avro`` or ``json-schema``) needs a schema registry: the event schema is registered as
``streamscore produce --format`` does (``<input topic>-value``), the pool's events are written in the
wire format (serialized once per rung), and the predictions are decoded with their writer's schema,
as ``streamscore tail`` does, before their scores are checked. Its latency is not measured: the load
generator stamps ``occurred_at`` in JSON text.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, ConsumerGroupState, Producer, TopicPartition

from bench import measure
from bench.load import WRITER, Pool, write
from stream.errors import StreamscoreError
from stream.formats.events import event_serializer
from stream.formats.reader import WireReader
from stream.formats.registry import registry_client
from stream.kafka.config import client_config, connect
from stream.kafka.topics import ensure_topics
from stream.settings import Settings, WireFormat
from stream.tools.tail import Wire

ROOT = Path(__file__).parents[1]
PARTITIONS = 6
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_OCCURRED_AT = re.compile(rb'"occurred_at":\s*"([^"]+)"')
#: Predictions whose scores are compared with the model's, per drain.
SCORE_CHECKS = 50


@dataclass(frozen=True)
class Rung:
    name: str
    key: str  # what the summary calls it
    command: list[str]
    processes: int = 1
    settings: tuple[tuple[str, str], ...] = ()
    quick: bool = True  # part of make bench-quick

    @property
    def exactly_once(self) -> bool:
        return ("STREAMSCORE_PROCESSING_GUARANTEE", "exactly_once") in self.settings

    @property
    def input_format(self) -> WireFormat:
        return dict(self.settings).get("STREAMSCORE_INPUT_FORMAT", "json")  # type: ignore[return-value]

    @property
    def output_format(self) -> WireFormat:
        return dict(self.settings).get("STREAMSCORE_OUTPUT_FORMAT", "json")  # type: ignore[return-value]

    @property
    def registered(self) -> bool:
        """Whether the rung reads or writes a registered format (it needs a schema registry)."""
        return self.input_format != "json" or self.output_format != "json"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Harness:
    """Topics, processes and measurement for one rung."""

    def __init__(
        self, bootstrap: str, rung: Rung, pool: Pool, pool_file: Path, registry: str | None = None
    ) -> None:
        """``registry``: the schema registry's URL, which a rung in a registered format needs."""
        if rung.registered and registry is None:
            raise RuntimeError(f"{rung.name} needs a schema registry, and none is running")
        self.rung, self.pool, self.pool_file = rung, pool, pool_file
        settings = Settings(kafka_bootstrap_servers=bootstrap, schema_registry_url=registry)
        self.kafka = client_config(settings)  # security from the env
        base = f"bench-{uuid.uuid4().hex[:6]}"
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "STREAMSCORE_APP_ID": base,
            "STREAMSCORE_INPUT_TOPIC": f"{base}.events",
            "STREAMSCORE_PREDICTION_TOPIC": f"{base}.predictions",
            "STREAMSCORE_PROVENANCE_TOPIC": f"{base}.provenance",
            "STREAMSCORE_DLQ_TOPIC": f"{base}.dlq",
            "STREAMSCORE_OUTCOME_TOPIC": f"{base}.outcomes",
            "STREAMSCORE_DRIFT_TOPIC": f"{base}.drift",
            "STREAMSCORE_CHALLENGER_TOPIC": f"{base}.predictions.challenger",
            "STREAMSCORE_MODEL_CHANGES_TOPIC": f"{base}.model-changes",
            "STREAMSCORE_PARTITIONS": str(PARTITIONS),
            "STREAMSCORE_METRICS_PORT": "0",
            "STREAMSCORE_DATA_DIR": tempfile.mkdtemp(prefix="bench-"),
            "STREAMSCORE_LOG_LEVEL": "warn",
            "STREAMSCORE_SECRET": secrets.token_hex(32),
            **({"STREAMSCORE_SCHEMA_REGISTRY_URL": registry} if registry else {}),
            **dict(rung.settings),
        }
        self.input, self.predictions = (
            self.env["STREAMSCORE_INPUT_TOPIC"],
            self.env["STREAMSCORE_PREDICTION_TOPIC"],
        )
        self.wire: Wire | None = None  # how predictions are read: None for JSON
        try:
            if rung.input_format != "json":  # registered as `streamscore produce --format` does
                self.pool = pool.encoded(event_serializer(settings, rung.input_format, self.input))
            if rung.output_format != "json":
                self.wire = WireReader(registry_client(settings))
        except StreamscoreError as exc:  # the registry refused or cannot be reached
            raise RuntimeError(f"{rung.name}: {exc}") from None
        ensure_topics(self.kafka, {self.input: PARTITIONS})
        outputs = ("PREDICTION", "PROVENANCE", "DLQ", "OUTCOME")
        ensure_topics(
            self.kafka,
            {self.env[f"STREAMSCORE_{t}_TOPIC"]: PARTITIONS for t in outputs},
            config={"message.timestamp.type": "LogAppendTime"},  # the broker's clock for every client
        )
        self.procs: list[subprocess.Popen[bytes]] = []
        self.admin = connect(self.kafka)[0]
        self.writer = Producer(client_config(self.kafka, **WRITER))
        self.reader = Consumer(
            client_config(
                self.kafka,
                **{
                    "group.id": f"{base}-reader",
                    "enable.auto.commit": False,
                    "fetch.wait.max.ms": 5,
                    "isolation.level": "read_committed",  # exactly once: only committed outputs count
                },
            )
        )
        self.partitions = [TopicPartition(self.predictions, p, 0) for p in range(PARTITIONS)]
        self.reader.assign(self.partitions)

    def __enter__(self) -> Harness:
        self._running = self.running()
        self._running.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._running.__exit__(None, None, None)
        finally:
            self.reader.close()
            topics = [v for k, v in self.env.items() if k.startswith("STREAMSCORE_") and k.endswith("_TOPIC")]
            for deleted in self.admin.delete_topics(topics).values():  # a backlog should not fill the disk
                with contextlib.suppress(Exception):  # those the scorer never created
                    deleted.result(15)

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        for _ in range(self.rung.processes):
            self.procs.append(
                subprocess.Popen(self.rung.command, env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL)
            )
        try:
            yield
        finally:
            for p in self.procs:
                p.send_signal(signal.SIGCONT)
                p.send_signal(signal.SIGTERM)
            for p in self.procs:
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()

    def _check_alive(self) -> None:
        for p in self.procs:
            if p.poll() is not None:
                raise RuntimeError(f"{self.rung.name} exited with {p.returncode}")

    def _read(self, timeout: float) -> list:
        """What has arrived: waits up to ``timeout`` for the first message only, so it adds no delay."""
        first = self.reader.poll(timeout)
        if first is None:
            return []
        return [m for m in [first, *self.reader.consume(5000, timeout=0)] if m.error() is None]

    def warm_up(self, timeout: float = 90.0) -> None:
        """Send single events until one comes back: the scorer has joined and is ready."""
        deadline = time.monotonic() + timeout
        probe = self.pool.messages[:1]
        while time.monotonic() < deadline:
            self._check_alive()
            write(self.writer, self.input, probe, 1)
            if self._read(1.0):
                self._wait_for_members(deadline)
                while self._read(0.5):
                    pass
                return
        raise RuntimeError(f"{self.rung.name} did not answer within {timeout:.0f} s")

    def _wait_for_members(self, deadline: float) -> None:
        """Until every process of the rung holds partitions in a stable group (then a moment more)."""
        group = self.env["STREAMSCORE_APP_ID"]
        while time.monotonic() < deadline:
            found = self.admin.describe_consumer_groups([group])[group].result(10)
            members = [m for m in found.members if m.assignment and m.assignment.topic_partitions]
            if found.state == ConsumerGroupState.STABLE and len(members) == self.rung.processes:
                time.sleep(0.5)
                return
            time.sleep(0.25)
        raise RuntimeError(f"{self.rung.name}: {self.rung.processes} processes did not share the partitions")

    def _end_offsets(self) -> int:
        return sum(
            self.reader.get_watermark_offsets(tp, timeout=10, cached=False)[1] for tp in self.partitions
        )

    def drain(self, count: int, timeout: float) -> dict[str, object]:
        """Write ``count`` events while the scorer is stopped, then let it drain them; measure the middle."""
        before = self._end_offsets()
        for p in self.procs:
            p.send_signal(signal.SIGSTOP)
        try:
            paused_ms = time.time() * 1000
            written = time.monotonic()
            write(self.writer, self.input, self.pool.messages, count)
            written = time.monotonic() - written
        finally:
            cpu = _Sampler(self.procs)
            for p in self.procs:
                p.send_signal(signal.SIGCONT)
        with cpu:
            deadline = time.monotonic() + timeout
            while self._end_offsets() - before < count and time.monotonic() < deadline:
                self._check_alive()
                time.sleep(0.2)
            appended, checked, matched = [], 0, 0
            while len(appended) < count and time.monotonic() < deadline:
                for m in self._read(0.5):
                    ms = m.timestamp()[1]
                    if ms < paused_ms - 1:
                        continue  # a late answer to the warm-up
                    appended.append(ms)
                    if checked < SCORE_CHECKS and (expected := self._expected(m.value())) is not None:
                        checked += 1
                        matched += expected
        if len(appended) < 2:
            raise RuntimeError(
                f"{self.rung.name} scored {len(appended)} of {count} events in {timeout:.0f} s"
            )
        middle = measure.steady(appended)
        result: dict[str, object] = {
            "events": count,
            "outputs": len(appended),
            "events_per_s": round(middle.rate),
            "cpu_s_per_1000": round(cpu.between(middle.start, middle.end) / middle.events * 1000, 4),
            "machine_cores_busy": round(cpu.cores_busy(middle.start, middle.end), 2),
            "measured_s": round(middle.seconds, 2),
            "drain_s": round((max(appended) - min(appended)) / 1000, 2),
            "write_s": round(written, 2),
        }
        if checked:
            result["scores_checked"], result["scores_match"] = checked, matched == checked
        return result

    def _expected(self, value: bytes) -> bool | None:
        """Whether a prediction's score is the model's for that event; None: no score to check."""
        return score_matches(prediction(value, self.wire), self.pool.scores)

    def latency(self, rate: float, seconds: float) -> dict[str, object]:
        """Offer ``rate`` events/s for ``seconds`` from another process; percentiles in ms.

        A latency is the time from an event's ``occurred_at`` (stamped by the generator as it sends)
        to its prediction's append on the broker (``LogAppendTime``). The predictions are read once
        the generator is done, so that reading them takes no CPU from the scorer meanwhile.
        """
        generator = subprocess.Popen(
            [sys.executable, "-m", "bench.load", str(rate), str(seconds), str(self.pool_file)],
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
        )
        offered: dict[str, float] = orjson.loads(generator.communicate()[0] or b'{"sent": 0}')
        pairs: list[tuple[float, float]] = []  # (occurred_at, latency)
        parsed: dict[bytes, float] = {}  # the generator stamps a burst of events with one time
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(pairs) < offered["sent"]:
            for m in self._read(0.5):
                if (found := _OCCURRED_AT.search(m.value())) is None:
                    continue
                stamp = found.group(1)
                if (occurred := parsed.get(stamp)) is None:
                    occurred = parsed[stamp] = dt.datetime.fromisoformat(stamp.decode()).timestamp()
                pairs.append((occurred, m.timestamp()[1] / 1000 - occurred))
        skip_until = offered.pop("started_at", 0.0) + min(1.0, seconds / 4)  # the first second warms up
        lat = [latency for occurred, latency in pairs if occurred >= skip_until]
        result: dict[str, object] = {
            **offered,
            "read": len(pairs),
            "events": len(lat),
            **measure.percentiles_ms(lat),
        }
        result["generator_kept_up"] = offered.get("achieved", 0) >= 0.95 * rate
        return result

    def peak_rss_mib(self) -> float:
        return round(max(_peak_rss_mib(p.pid) for p in self.procs), 1)


def prediction(value: bytes, wire: Wire | None = None) -> dict[str, Any] | None:
    """A prediction's record: its JSON, or with ``wire`` its wire-format value decoded with the
    writer's schema (Avro or JSON Schema); None if it is not a record."""
    if wire is None:
        record = orjson.loads(value)
    else:
        decoded = wire(value)
        record = decoded[1] if decoded is not None else None
    return record if isinstance(record, dict) else None


def score_matches(record: dict[str, Any] | None, scores: dict[str, float]) -> bool | None:
    """Whether a prediction's score is the model's for its event; None: no score to check."""
    if record is None or "score" not in record:
        return None
    want = scores.get(record.get("event_id"))  # type: ignore[arg-type]
    return None if want is None else abs(float(record["score"]) - want) <= 1e-6


def _machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent on anything but idling, summed over its cores."""
    ticks = [int(n) for n in Path("/proc/stat").read_text().split()[1:9]]  # the "cpu" line: all cores
    idle, iowait = ticks[3], ticks[4]
    return (sum(ticks) - idle - iowait) / CLOCK_TICKS


class _Sampler:
    """Cumulative CPU seconds of the scorer's processes, and of the whole machine, every 50 ms."""

    def __init__(self, procs: list[subprocess.Popen[bytes]]) -> None:
        self.pids = [p.pid for p in procs]
        self.samples: list[tuple[float, float]] = []
        self.machine: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._sample()

    def _sample(self) -> None:
        now = time.time()
        self.samples.append((now, sum(_cpu_seconds(pid) for pid in self.pids)))
        self.machine.append((now, _machine_busy_seconds()))

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self._sample()

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def between(self, start: float, end: float) -> float:
        return measure.cpu_between(self.samples, start, end)

    def cores_busy(self, start: float, end: float) -> float:
        """How many cores the whole machine (broker, scorers, everything else) kept busy, on average."""
        return measure.cpu_between(self.machine, start, end) / (end - start)
