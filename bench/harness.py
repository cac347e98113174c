"""One rung on the broker: its topics, its scorer processes, and what is measured of them.

Throughput is measured by draining a backlog. The scorer processes are started and answer a first
event (:meth:`Harness.warm_up`), then they are stopped (SIGSTOP) while the backlog is written, so
that they start on a full backlog and do not share the cores with the writer, and resumed
(SIGCONT). The output topics append with the broker's clock (``LogAppendTime``), the drain is read
back with ``isolation.level=read_committed`` once it is complete, and its rate and CPU are taken
over the middle of the drain (:mod:`bench.measure`). Latency is measured on the same processes
afterwards, with events offered at a fixed rate by the load generator (:mod:`bench.load`), from
``occurred_at`` to the prediction's append on the broker and to its read by a downstream consumer,
which reads while the load is offered (:mod:`bench.latency`).

A rung in a registered format (``STREAMSCORE_INPUT_FORMAT``, ``STREAMSCORE_OUTPUT_FORMAT``: ``avro``,
``json-schema``, ``protobuf``) needs a schema registry: the event schema is registered as ``streamscore
produce --format`` does, the pool's events are serialized once per rung (for the backlogs and, cut
where each event's time goes, for the load generator: :func:`bench.load.slots`), and predictions are
decoded with their writer's schema, as ``streamscore tail`` does, before their scores and times are read.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, ConsumerGroupState, Producer, TopicPartition

from bench import latency, measure
from bench.formats import missing
from bench.latency import Sampler, Timed
from bench.load import WRITER, Pool, Serialize, prediction, score_matches, slots, write, write_slots
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
#: The topics of a rung (``STREAMSCORE_<name>_TOPIC``), each named ``<base>.<suffix>``.
_TOPICS = {
    "INPUT": "events", "PREDICTION": "predictions", "PROVENANCE": "provenance", "DLQ": "dlq",
    "OUTCOME": "outcomes", "DRIFT": "drift", "CHALLENGER": "predictions.challenger",
    "MODEL_CHANGES": "model-changes",
}  # fmt: skip
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


class Harness:
    """Topics, processes and measurement for one rung."""

    def __init__(self, bootstrap: str, rung: Rung, pool: Pool, registry: str | None = None) -> None:
        """``pool``: the rung's events in JSON; ``registry``: the schema registry's URL, which a rung in a
        registered format needs."""
        if rung.registered and registry is None:
            raise RuntimeError(f"{rung.name} needs a schema registry, and none is running")
        self.rung = rung
        settings = Settings(kafka_bootstrap_servers=bootstrap, schema_registry_url=registry)
        self.kafka = client_config(settings)  # security from the env
        base = f"bench-{uuid.uuid4().hex[:6]}"
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "STREAMSCORE_APP_ID": base,
            **{f"STREAMSCORE_{name}_TOPIC": f"{base}.{topic}" for name, topic in _TOPICS.items()},
            "STREAMSCORE_PARTITIONS": str(PARTITIONS),
            "STREAMSCORE_METRICS_PORT": "0",
            "STREAMSCORE_DATA_DIR": tempfile.mkdtemp(prefix="bench-"),
            "STREAMSCORE_LOG_LEVEL": "warn",
            "STREAMSCORE_SECRET": secrets.token_hex(32),
            **({"STREAMSCORE_SCHEMA_REGISTRY_URL": registry} if registry else {}),
            **dict(rung.settings),
        }
        self.input = self.env["STREAMSCORE_INPUT_TOPIC"]
        self.predictions = self.env["STREAMSCORE_PREDICTION_TOPIC"]
        serialize, self.wire = _formats(rung, settings, self.input)  # None: JSON
        self.pool = pool if serialize is None else pool.encoded(serialize)
        self.events = Path(self.env["STREAMSCORE_DATA_DIR"]) / "generator.slots"  # the load generator's
        write_slots(self.events, rung.input_format, slots(pool.messages, rung.input_format, serialize))
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
        reading: dict[str, object] = {"group.id": f"{base}-reader", "enable.auto.commit": False}
        reading |= {"fetch.wait.max.ms": 5, "isolation.level": "read_committed"}  # only committed outputs
        self.reader = Consumer(client_config(self.kafka, **reading))
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
            shutil.rmtree(self.env["STREAMSCORE_DATA_DIR"], ignore_errors=True)  # the generator's events too
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
            cpu = Sampler(self.procs)
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

    def latency(self, rate: float, seconds: float) -> tuple[dict[str, object], list[Timed]]:
        """Offer ``rate`` events/s for ``seconds``; the figures of :func:`bench.latency.summarise`,
        the CPU over the measured window, and each prediction's times."""
        reader = latency.reader(self.kafka, self.predictions, PARTITIONS)
        try:
            with Sampler(self.procs) as cpu:
                offered, timed = latency.offer(reader, self.env, ROOT, self.events, rate, seconds, self.wire)
        finally:
            reader.close()
        figures = latency.summarise(offered, timed, rate, seconds)
        if "started_at" in offered:  # the generator ran to its end
            start, end = latency.window(offered, seconds)
            figures["machine_cores_busy"] = round(cpu.cores_busy(start, end), 2)
            figures["scorer_cpu_share"] = round(cpu.between(start, end) / (end - start), 2)
        return figures, timed

    def peak_rss_mib(self) -> float:
        return round(max(latency.peak_rss_mib(p.pid) for p in self.procs), 1)


def _formats(rung: Rung, settings: Settings, topic: str) -> tuple[Serialize | None, Wire | None]:
    """The serializer of the rung's input format, its event schema registered as ``<topic>-value`` as
    ``streamscore produce --format`` does, and the reader of its predictions; None for JSON."""
    for kind in (rung.input_format, rung.output_format):
        if (why := missing(kind)) is not None:
            raise RuntimeError(f"{rung.name}: {why}")
    registered = rung.input_format != "json", rung.output_format != "json"
    try:
        serialize = event_serializer(settings, rung.input_format, topic) if registered[0] else None
        wire = WireReader(registry_client(settings)) if registered[1] else None
    except StreamscoreError as exc:  # the registry refused or cannot be reached
        raise RuntimeError(f"{rung.name}: {exc}") from None
    return serialize, wire
