"""The benchmark ladder: every scorer on the same broker, machine and events, in one run.

For each rung: sustained throughput at saturation (a backlog drained from a cold start of the
consumer loop), CPU seconds per 1,000 events and peak RSS of the scorer's processes, then
end-to-end latency (event ``occurred_at`` -> prediction read by a consumer) at fixed fractions of
that rung's own maximum rate, offered by a separate producer process.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from stream.kafka_config import client_config
from stream.keys import with_secret
from stream.producer import events
from stream.settings import Settings
from stream.topics import ensure_topics

ROOT = Path(__file__).parents[1]
PARTITIONS = 6
#: The most one Python load-generating process offers here (JSON with a fresh timestamp per event)
#: while sharing two cores with the broker and the scorer; higher offered rates measure the generator.
MAX_OFFERED = 10_000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Rung:
    name: str
    command: list[str]
    processes: int = 1
    settings: tuple[tuple[str, str], ...] = ()


RUNGS = [
    Rung("1 passthrough (limit)", [sys.executable, "-m", "bench.rungs", "passthrough"]),
    Rung("2 bare loop + real work", [sys.executable, "-m", "bench.rungs", "bare"]),
    Rung("3 naive Faust scorer", [sys.executable, "-m", "bench.rungs", "naive"]),
    Rung("4 streamscore, 1 process", [sys.executable, "-m", "stream.cli", "worker"]),
    Rung(
        "4 streamscore, 1 process, drift off",
        [sys.executable, "-m", "stream.cli", "worker"],
        settings=(("STREAMSCORE_DRIFT_WINDOW", "0"),),
    ),
    Rung("4 streamscore, 2 processes", [sys.executable, "-m", "stream.cli", "worker"], processes=2),
]


@dataclass
class Plan:
    backlog: int
    window: float
    latency_seconds: float
    fractions: tuple[float, ...] = (0.25, 0.5, 0.7)


FULL = Plan(backlog=60_000, window=20.0, latency_seconds=10.0)
QUICK = Plan(backlog=15_000, window=5.0, latency_seconds=3.0, fractions=(0.5,))


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

    def __init__(self, bootstrap: str, rung: Rung, events_file: Path) -> None:
        self.rung, self.events_file = rung, events_file
        self.kafka = client_config(Settings(kafka_bootstrap_servers=bootstrap))  # security from the env
        base = f"bench-{uuid.uuid4().hex[:6]}"
        self.env = {
            **with_secret(os.environ),  # a random secret per run unless one is set
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "STREAMSCORE_APP_ID": base,
            "STREAMSCORE_INPUT_TOPIC": f"{base}.events",
            "STREAMSCORE_PREDICTION_TOPIC": f"{base}.predictions",
            "STREAMSCORE_PROVENANCE_TOPIC": f"{base}.provenance",
            "STREAMSCORE_DLQ_TOPIC": f"{base}.dlq",
            "STREAMSCORE_OUTCOME_TOPIC": f"{base}.outcomes",
            "STREAMSCORE_DRIFT_TOPIC": f"{base}.drift",
            "STREAMSCORE_PARTITIONS": str(PARTITIONS),
            "STREAMSCORE_METRICS_PORT": "0",
            "STREAMSCORE_DATA_DIR": tempfile.mkdtemp(prefix="bench-"),
            "STREAMSCORE_LOG_LEVEL": "warn",
            **dict(rung.settings),
        }
        ensure_topics(
            self.kafka,
            {
                self.env[f"STREAMSCORE_{t}_TOPIC"]: PARTITIONS
                for t in ("INPUT", "PREDICTION", "PROVENANCE", "DLQ")
            },
        )
        self.procs: list[subprocess.Popen[bytes]] = []
        self.reader = Consumer(
            client_config(
                self.kafka,
                **{"group.id": f"{base}-reader", "enable.auto.commit": False, "fetch.wait.max.ms": 5},
            )
        )
        self.reader.assign(
            [TopicPartition(self.env["STREAMSCORE_PREDICTION_TOPIC"], p, 0) for p in range(PARTITIONS)]
        )

    def __enter__(self) -> Harness:
        self._running = self.running()
        self._running.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._running.__exit__(None, None, None)
        finally:
            self.reader.close()

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
                p.send_signal(signal.SIGTERM)
            for p in self.procs:
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()

    def _produce_now(self, values: list[bytes]) -> None:
        producer = Producer(client_config(self.kafka, **{"linger.ms": 5}))
        topic = self.env["STREAMSCORE_INPUT_TOPIC"]
        for i, v in enumerate(values):
            while True:
                try:
                    producer.produce(topic, v, str(i).encode())
                    break
                except BufferError:
                    producer.poll(0.01)
        producer.flush(60)

    def _read(self, timeout: float) -> list:
        """What has arrived: waits up to ``timeout`` for the first message only, so it adds no delay."""
        first = self.reader.poll(timeout)
        if first is None:
            return []
        return [m for m in [first, *self.reader.consume(5000, timeout=0)] if m.error() is None]

    def warm_up(self, probe: bytes, timeout: float = 90.0) -> None:
        """Send single events until one comes back: the scorer has joined and is ready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{self.rung.name} exited with {p.returncode}")
            self._produce_now([probe])
            if self._read(1.0):
                time.sleep(8.0 if self.rung.processes > 1 else 0.5)  # let a second process take its share
                self._read(0.5)
                return
        raise RuntimeError(f"{self.rung.name} did not answer within {timeout:.0f} s")

    def saturate(self, values: list[bytes], window: float) -> dict[str, float]:
        """Drain a backlog: events per second, CPU per 1,000 events."""
        self._produce_now(values)
        cpu0 = sum(_cpu_seconds(p.pid) for p in self.procs)
        started = time.monotonic()
        done = 0
        while done < len(values) and time.monotonic() - started < window:
            done += len(self._read(0.2))
        elapsed = time.monotonic() - started
        cpu = sum(_cpu_seconds(p.pid) for p in self.procs) - cpu0
        for _ in range(50):  # drain the rest, so latency runs start on an empty topic
            if done >= len(values) or not (batch := self._read(0.5)):
                break
            done += len(batch)
        return {
            "events_per_s": round(
                min(done, len(values)) / elapsed if done < len(values) else len(values) / elapsed
            ),
            "cpu_s_per_1000": round(cpu / max(1, min(done, len(values))) * 1000, 3),
        }

    def latency(self, rate: float, seconds: float) -> dict[str, float]:
        """Offer ``rate`` events/s for ``seconds`` from another process; percentiles in ms."""
        producer = subprocess.Popen(
            [sys.executable, "-m", "bench.rungs", "produce", str(rate), str(seconds), str(self.events_file)],
            env=self.env,
            cwd=ROOT,
        )
        lat: list[float] = []
        deadline = time.monotonic() + seconds + 15
        skip_until = time.time() + min(1.0, seconds / 4)
        while time.monotonic() < deadline:
            msgs = self._read(0.01)
            now = time.time()
            for m in msgs:
                occurred = dt.datetime.fromisoformat(orjson.loads(m.value())["occurred_at"]).timestamp()
                if occurred >= skip_until:
                    lat.append(now - occurred)
            if producer.poll() is not None and not msgs and time.monotonic() > deadline - 13:
                break
        lat.sort()
        n = len(lat)
        if not n:
            return {"rate": rate, "events": 0}
        return {
            "rate": round(rate),
            "events": n,
            "p50_ms": round(lat[n // 2] * 1e3, 2),
            "p95_ms": round(lat[int(n * 0.95)] * 1e3, 2),
            "p99_ms": round(lat[int(n * 0.99)] * 1e3, 2),
            "max_ms": round(lat[-1] * 1e3, 2),
        }

    def peak_rss_mib(self) -> float:
        return round(max(_peak_rss_mib(p.pid) for p in self.procs), 1)


def run(bootstrap: str, quick: bool = False, only: list[str] | None = None) -> dict[str, object]:
    plan = QUICK if quick else FULL
    generated = list(itertools.islice(events(seed=5), min(plan.backlog, 20_000)))
    backlog = [v for _, v, *_ in itertools.islice(itertools.cycle(generated), plan.backlog)]
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as f:
        for _, v, *_ in generated:
            f.write(v + b"\n")
        events_file = Path(f.name)
    results: list[dict[str, object]] = []
    for rung in RUNGS:
        if only and not any(o in rung.name for o in only):
            continue
        print(f"-- {rung.name}", flush=True)
        try:
            with Harness(bootstrap, rung, events_file) as harness:  # saturation: drain a backlog
                harness.warm_up(generated[0][1])
                sat = harness.saturate(backlog, plan.window)
                rss = harness.peak_rss_mib()
            print(f"   saturation {sat}", flush=True)
            latencies = []
            with Harness(bootstrap, rung, events_file) as harness:  # latency: fresh topics, no backlog
                harness.warm_up(generated[0][1])
                for fraction in plan.fractions:
                    rate = min(sat["events_per_s"] * fraction, MAX_OFFERED)
                    lat = harness.latency(rate, plan.latency_seconds)
                    lat |= {"fraction_of_max": fraction, "capped": rate == MAX_OFFERED}
                    latencies.append(lat)
                    print(f"   latency {lat}", flush=True)
                rss = max(rss, harness.peak_rss_mib())
            results.append({"rung": rung.name, **sat, "peak_rss_mib": rss, "latency": latencies})
        except RuntimeError as exc:
            results.append({"rung": rung.name, "error": str(exc)})
            print(f"   {exc}", flush=True)
    limit = next((r for r in results if r["rung"].startswith("1 ") and "events_per_s" in r), None)
    for r in results:
        if limit and "events_per_s" in r:
            r["ratio_to_limit"] = round(r["events_per_s"] / limit["events_per_s"], 3)
    events_file.unlink()
    return {"plan": plan.__dict__, "rungs": results}
