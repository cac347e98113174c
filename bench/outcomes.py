"""The outcome worker's rung: joins/s per process against the scorer's events/s, memory, recovery.

``python -m bench.outcomes [--quick]`` (and the ladder, as its ``outcomes`` rung) measures, on one
broker in one run:

1. **throughput**: the scorer (``streamscore worker``, one process) drains a backlog as on the
   ladder (:class:`bench.harness.Harness`); then one outcome worker drains a backlog of ``n``
   provenance records and their ``n`` outcomes, written while it is stopped (SIGSTOP), as the
   scorer's are. Joins are read from its ``streamscore_outcomes_total{result="joined"}`` every
   100 ms; the rate is taken between the 10% and the 90% join, CPU over the same span. The same
   again with outcomes written by librdkafka's default partitioner (CRC32): the cost of moving
   the outcomes that land on another partition through the repartition topic.
2. **memory**: ``python -m bench.outcomes fill N DIR`` fills a store of its own with ``N`` pending
   predictions directly through :class:`stream.outcomes.store.PendingStore` (no broker), and reports
   its peak RSS and the bytes on disk per entry.
3. **recovery**: an outcome worker holding ``recovery_n`` pending predictions is killed (SIGKILL) and
   started again on its data folder; then a new worker on an empty folder (a new host): the time from
   start to holding every entry again, and the time its assignment took to restore.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from confluent_kafka import Producer

from bench.harness import ROOT, Harness, Rung
from bench.latency import cpu_seconds
from bench.load import WRITER, Pool
from stream.contracts import Outcome, Provenance
from stream.kafka.config import client_config
from stream.kafka.topics import ensure_topics
from stream.settings import Settings

PARTITIONS = 6
OUTCOMES = [sys.executable, "-m", "stream.cli.main", "outcomes"]
SCORER = Rung("5 streamscore, 1 process", "streamscore", [sys.executable, "-m", "stream.cli.main", "worker"])
_ID = b"00000000-0000-4000-8000-000000000000"
_SECRET = secrets.token_hex(32)


def _templates() -> tuple[bytes, bytes]:
    now = dt.datetime.now(dt.UTC)
    provenance = Provenance(
        event_id=_ID.decode(),
        score=0.75,
        input={"topic": "events", "partition": 0, "offset": 0, "timestamp_ms": None},
        model={"name": "loan-approval", "version": "1", "sha256": "ab" * 32},
        feature_hash="0" * 32,
        personal={"age": "1" * 32},
        scorer={"version": "0.2.0", "revision": "2" * 40, "worker_id": "bench:1"},
        occurred_at=now,
        received_at=now,
        scored_at=now,
        emitted_at=now,
    )
    outcome = Outcome(event_id=_ID.decode(), positive=True, observed_at=now)
    return provenance.model_dump_json().encode(), outcome.model_dump_json().encode()


class OutcomeWorker:
    """One ``streamscore outcomes`` process with topics of its own and a metrics port to read."""

    def __init__(self, bootstrap: str, data_dir: str | None = None, base: str | None = None) -> None:
        self.kafka = client_config(Settings(kafka_bootstrap_servers=bootstrap))
        self.base = base or f"bench-outcomes-{uuid.uuid4().hex[:6]}"
        self.port = _free_port()
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "STREAMSCORE_APP_ID": self.base,
            **{
                f"STREAMSCORE_{t.upper()}_TOPIC": f"{self.base}.{t}"
                for t in ("input", "provenance", "outcome")
            },
            "STREAMSCORE_DRIFT_TOPIC": f"{self.base}.drift",
            "STREAMSCORE_DATA_DIR": data_dir or tempfile.mkdtemp(prefix="bench-outcomes-"),
            "STREAMSCORE_METRICS_PORT": str(self.port),
            "STREAMSCORE_LOG_LEVEL": "warn",
            "STREAMSCORE_SECRET": os.environ.get("STREAMSCORE_SECRET") or _SECRET,  # one for the whole run
        }
        self.provenance = self.env["STREAMSCORE_PROVENANCE_TOPIC"]
        self.outcomes = self.env["STREAMSCORE_OUTCOME_TOPIC"]
        names = (self.env["STREAMSCORE_INPUT_TOPIC"], self.provenance, self.outcomes)
        ensure_topics(self.kafka, dict.fromkeys(names, PARTITIONS))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        self.proc = subprocess.Popen(OUTCOMES, env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL)
        return time.monotonic()

    def metric(self, name: str) -> float | None:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2).read().decode()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return None

    def wait(self, name: str, at_least: float, timeout: float) -> float:
        """Seconds until ``name`` reaches ``at_least``."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the outcome worker exited with {self.proc.returncode}")
            value = self.metric(name)
            if value is not None and value >= at_least:
                return time.monotonic() - started
            time.sleep(0.05)
        raise RuntimeError(f"{name} did not reach {at_least} in {timeout:.0f} s")

    def write(self, n: int, outcomes: bool, partitioner: str = "murmur2_random") -> None:
        """``n`` provenance records with unique event ids (murmur2, as the scorer sends them) and, with
        ``outcomes``, their outcomes, sent with ``partitioner``."""
        provenance, outcome = _templates()
        scorer = Producer(client_config(self.kafka, **WRITER))
        other = Producer(client_config(self.kafka, **{**WRITER, "partitioner": partitioner}))
        for _ in range(n):
            event_id = str(uuid.uuid4()).encode()
            _send(scorer, self.provenance, provenance.replace(_ID, event_id), event_id)
            if outcomes:
                _send(other, self.outcomes, outcome.replace(_ID, event_id), event_id)
        scorer.flush(120)
        other.flush(120)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(sig)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _send(producer: Producer, topic: str, value: bytes, key: bytes) -> None:
    while True:
        try:
            return producer.produce(topic, value, key)
        except BufferError:
            producer.poll(0.05)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def join_drain(bootstrap: str, n: int, partitioner: str = "murmur2_random") -> dict[str, object]:
    """One outcome worker drains ``n`` provenance records and their ``n`` outcomes."""
    worker = OutcomeWorker(bootstrap)
    worker.start()
    try:
        worker.write(1, outcomes=True)
        worker.wait('streamscore_outcomes_total{result="joined"}', 1, 120)  # started, assigned, joined
        assert worker.proc is not None
        worker.proc.send_signal(signal.SIGSTOP)
        written = time.monotonic()
        worker.write(n, outcomes=True, partitioner=partitioner)
        written = time.monotonic() - written
        worker.proc.send_signal(signal.SIGCONT)
        samples: list[tuple[float, float, float]] = []  # (time, joined, cpu s)
        deadline = time.monotonic() + max(120.0, n / 1_000)
        while time.monotonic() < deadline:
            joined = worker.metric('streamscore_outcomes_total{result="joined"}') or 0.0
            samples.append((time.monotonic(), joined - 1, cpu_seconds(worker.proc.pid)))
            if joined - 1 >= n:
                break
            time.sleep(0.1)
        moved = worker.metric("streamscore_outcomes_repartitioned_total") or 0.0
        rss = _peak_rss_mib(worker.proc.pid)
    finally:
        worker.stop()
    if samples[-1][1] < n:
        raise RuntimeError(f"the outcome worker joined {samples[-1][1]:.0f} of {n} in time")
    (t0, j0, c0), (t1, j1, c1) = _at(samples, 0.1 * n), _at(samples, 0.9 * n)
    return {
        "joins": n,
        "partitioner": partitioner,
        "joins_per_s": round((j1 - j0) / (t1 - t0)),
        "cpu_s_per_1000": round((c1 - c0) / (j1 - j0) * 1000, 4),
        "measured_s": round(t1 - t0, 2),
        "write_s": round(written, 2),
        "repartitioned": int(moved),
        "peak_rss_mib": rss,
    }


def _at(samples: list[tuple[float, float, float]], joined: float) -> tuple[float, float, float]:
    """The first sample at or past ``joined`` joins."""
    return next(s for s in samples if s[1] >= joined)


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def scorer_drain(bootstrap: str, n: int) -> dict[str, object]:
    """The scorer's events/s on this machine and broker now: one drain of ``n`` events, as the ladder's."""
    pool = Pool.generate(20_000)
    with Harness(bootstrap, SCORER, pool) as harness:
        harness.warm_up()
        harness.drain(min(n, 20_000), 120.0)  # warm
        return harness.drain(n, max(120.0, n / 2_000))


def fill(n: int, folder: Path) -> dict[str, object]:
    """Fill a store with ``n`` pending predictions, through the store module; its RSS and disk bytes."""
    from stream.keys import Keys
    from stream.outcomes.store import Entry, PendingStore

    store = PendingStore(folder, Keys.from_secret(secrets.token_hex(32)).state, "bench-changelog", print)
    started, batch, now_ms = time.monotonic(), 10_000, int(time.time() * 1000)
    probe: list[str] = []
    for first in range(0, n, batch):
        ids = [str(uuid.uuid4()) for _ in range(min(batch, n - first))]  # random, as event ids are
        probe += ids[: max(1, 1_000 * batch // n)]
        entry = Entry(now_ms + first // 100, "loan-approval/1", "ab" * 32, 0.5)
        store.write(first // batch % PARTITIONS, [(i, None, entry) for i in ids])
    filled = time.monotonic() - started
    store.db.flush()
    time.sleep(5.0)  # compactions settle
    looked = time.monotonic()
    found = sum(e is not None for p in range(PARTITIONS) for e in store.get_many(p, probe))
    looked = time.monotonic() - looked
    disk = store.disk_bytes()
    held = sum(store.count(p) for p in range(PARTITIONS))
    store.close()
    return {
        "entries": held,
        "fill_s": round(filled, 1),
        "entries_per_s": round(n / filled),
        "lookup_us": round(looked / (PARTITIONS * len(probe)) * 1e6, 1),  # 1 hit in 6 lookups
        "found": found,
        # VmHWM, not getrusage's ru_maxrss: Linux carries the forking parent's RSS into a child's
        # ru_maxrss across exec, so a large benchmark process would be counted as the store's
        "peak_rss_mib": _peak_rss_mib(os.getpid()),
        "disk_bytes_per_entry": round(disk / max(1, held), 1),
        "disk_mib": round(disk / 2**20, 1),
    }


def memory(n: int) -> dict[str, object]:
    """:func:`fill` in a process of its own, so that its RSS is the store's and Python's alone."""
    with tempfile.TemporaryDirectory(prefix="bench-store-") as folder:
        done = subprocess.run(
            [sys.executable, "-m", "bench.outcomes", "fill", str(n), folder],
            cwd=ROOT, capture_output=True, check=True,
        )  # fmt: skip
    return {"method": "the store filled directly through stream.outcomes.store", **json.loads(done.stdout)}


def recovery(bootstrap: str, n: int) -> dict[str, object]:
    """Seconds to hold ``n`` pending entries again: after SIGKILL on the same data, and on a new host."""
    data = tempfile.mkdtemp(prefix="bench-outcomes-")
    worker = OutcomeWorker(bootstrap, data_dir=data)
    worker.start()
    try:
        worker.wait("streamscore_outcomes_pending", 0, 120)
        worker.write(n, outcomes=False)
        filled = worker.wait("streamscore_outcomes_pending", n, max(300.0, n / 1_000))
        time.sleep(1.0)  # a commit or more
        worker.stop(signal.SIGKILL)
        worker.start()
        same_host = worker.wait("streamscore_outcomes_pending", n, 600)
        restored_same = worker.metric("streamscore_outcomes_restore_seconds")
        worker.stop()
        fresh = OutcomeWorker(bootstrap, base=worker.base)  # an empty data folder: a new host
        fresh.start()
        new_host = fresh.wait("streamscore_outcomes_pending", n, 600)
        restored_new = fresh.metric("streamscore_outcomes_restore_seconds")
        fresh.stop()
    finally:
        worker.stop()
    return {
        "pending": n,
        "fill_s": round(filled, 1),
        "after_sigkill_s": round(same_host, 2),
        "after_sigkill_restore_s": restored_same,
        "new_host_s": round(new_host, 2),
        "new_host_restore_s": restored_new,
        "measured": "process start to every entry held again (streamscore_outcomes_pending), restore: "
        "the assignment's changelog catch-up (streamscore_outcomes_restore_seconds)",
    }


def throughput(bootstrap: str, n: int) -> dict[str, object]:
    """The scorer's events/s and the outcome worker's joins/s, one process each, in this run."""
    print("-- outcomes: the scorer's drain", flush=True)
    scorer = scorer_drain(bootstrap, n)
    print(f"   {scorer}\n-- outcomes: the outcome worker's drain", flush=True)
    joins = join_drain(bootstrap, n)
    print(f"   {joins}\n-- outcomes: outcomes on CRC32 partitions (repartitioned)", flush=True)
    crc32 = join_drain(bootstrap, n, partitioner="consistent_random")
    print(f"   {crc32}", flush=True)
    per_s = float(joins["joins_per_s"])  # type: ignore[arg-type]
    return {
        "scorer": scorer,
        "join": joins,
        "join_crc32_outcomes": crc32,
        "joins_per_scored_event": round(per_s / float(scorer["events_per_s"]), 3),  # type: ignore[arg-type]
        "repartition_cost": round(per_s / float(crc32["joins_per_s"]), 3),  # type: ignore[arg-type]
    }


def run(bootstrap: str, quick: bool = False) -> dict[str, object]:
    """The outcome rung: throughput against the scorer, repartition cost, memory at 10M, recovery at 1M."""
    report = throughput(bootstrap, 100_000 if quick else 300_000)
    pending = 1_000_000 if quick else 10_000_000
    print(f"-- outcomes: memory at {pending:,} pending", flush=True)
    report["memory"] = memory(pending)
    print(f"   {report['memory']}\n-- outcomes: recovery", flush=True)
    report["recovery"] = recovery(bootstrap, 100_000 if quick else 1_000_000)
    print(f"   {report['recovery']}", flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "what", nargs="?", default="run", choices=["run", "fill", "join", "throughput", "recovery", "memory"]
    )
    parser.add_argument("n", nargs="?", type=int)
    parser.add_argument("folder", nargs="?", type=Path)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.what == "fill":
        print(json.dumps(fill(args.n, args.folder)))
        return
    if args.what == "memory":
        print(json.dumps(memory(args.n or 10_000_000)))
        return
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    with contextlib.ExitStack() as stack:
        if not bootstrap:  # the embedded broker, as make bench runs it
            from stream.tools.broker import EmbeddedKafka

            bootstrap = stack.enter_context(EmbeddedKafka()).bootstrap_servers
        if args.what == "join":
            result = join_drain(bootstrap, args.n or 100_000)
        elif args.what == "throughput":
            result = throughput(bootstrap, args.n or 300_000)
        elif args.what == "recovery":
            result = recovery(bootstrap, args.n or 1_000_000)
        else:
            result = {
                "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                **run(bootstrap, args.quick),
            }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
