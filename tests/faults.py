"""Fault-injection kit: load in the background, accounting of outcomes, recovery times, worker RSS.

Each scenario of ``tests/integration/test_faults.py`` publishes a known set of events while it
injects a fault, then reads every output and asks :func:`account` whether each input ended as
a prediction (with its provenance) or a dead letter: none lost, and how many more than once.
``STREAMSCORE_CHAOS=1`` selects the long sizes; ``STREAMSCORE_FAULTS_JSON=<path>`` writes the
scenarios' rows there. ``python tests/faults.py <json>`` prints them as a Markdown table (the
docs' results page shows every run's).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import sys
import threading
import time
import traceback
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from stream.tools.produce import Produced, produce

CHAOS = os.environ.get("STREAMSCORE_CHAOS") == "1"
SESSION = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
"""When this test session began: the modules of one session add their rows to one results file."""


def size(short: int, chaos: int) -> int:
    """The short figure in a normal run, the long one under ``STREAMSCORE_CHAOS=1``."""
    return chaos if CHAOS else short


# -- poison ---------------------------------------------------------------------------------------

_EVENT = b'{"event_id":"%s","occurred_at":"2026-01-01T00:00:00Z","features":%s}'
_FEATURES = (
    b'{"salary":1.0,"commission":0,"age":30,"elevel":1,"car":1,"zipcode":1,"hvalue":1.0,"hyears":1,"loan":%s}'
)


def _poison(kind: str, rng: random.Random, n: int) -> bytes:
    eid = f"poison-{n}".encode()
    match kind:
        case "random_bytes":
            return rng.randbytes(rng.randrange(1, 2_000))
        case "huge":
            return _EVENT % (eid, _FEATURES % b"1.0") + b" " * 300_000
        case "deep_nesting":
            return _EVENT % (eid, b"[" * 20_000 + b"]" * 20_000)
        case "nan" | "infinity" | "overflow":
            value = {"nan": b"NaN", "infinity": b"-Infinity", "overflow": b"1e999"}[kind]
            return _EVENT % (eid, _FEATURES % value)
        case "lone_surrogate":
            return _EVENT % (b"\\ud800" + eid, _FEATURES % b"1.0")
        case "invalid_utf8":
            return _EVENT % (b"\xc0\xaf\xff" + eid, _FEATURES % b"1.0")
        case "bom":
            return b"\xef\xbb\xbf" + _EVENT % (eid, _FEATURES % b"1.0")
    raise ValueError(kind)


#: poison kinds published next to valid traffic; every one must be dead-lettered
POISON = ("random_bytes", "huge", "deep_nesting", "nan", "infinity", "overflow", "lone_surrogate",
          "invalid_utf8", "bom")  # fmt: skip


def produce_poison(
    bootstrap: str, topic: str, rate: float, stop: threading.Event, seed: int
) -> dict[str, str]:
    """Publish poison at ``rate``/s until ``stop`` (one ``huge`` in 50); return key -> kind."""
    rng = random.Random(seed)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all", "log_level": 3})
    light = [k for k in POISON if k != "huge"]
    sent: dict[str, str] = {}
    started = time.monotonic()
    for n in range(10_000_000):
        if stop.is_set():
            break
        time.sleep(max(0.0, started + n / rate - time.monotonic()))
        kind = "huge" if n % 50 == 49 else rng.choice(light)
        key = f"poison-{seed}-{n}"
        producer.produce(topic, key=key.encode(), value=_poison(kind, rng, n))
        producer.poll(0)
        sent[key] = kind
    assert producer.flush(60) == 0, "poison not delivered"
    return sent


# -- load -----------------------------------------------------------------------------------------


class Load:
    """``produce()`` in a thread at ``rate``/s until :meth:`stop` or ``count``; the result is kept."""

    def __init__(self, bootstrap: str, topic: str, rate: float, seed: int, count: int | None = None,
                 malformed_fraction: float = 0.02, idempotent: bool = False) -> None:  # fmt: skip
        self._stop = threading.Event()
        self.produced: Produced | None = None
        self._error: BaseException | None = None
        kwargs = {"count": count, "rate": rate, "seed": seed, "malformed_fraction": malformed_fraction}
        kwargs["idempotent"] = idempotent
        self._thread = threading.Thread(
            target=self._run, args=(bootstrap, topic), kwargs={**kwargs, "stop": self._stop}, daemon=True
        )
        self._thread.start()

    def _run(self, bootstrap: str, topic: str, **kwargs: object) -> None:
        try:
            self.produced = produce(bootstrap, topic, **kwargs)  # type: ignore[arg-type]
        except BaseException as exc:
            self._error = exc

    def stop(self, timeout: float = 120.0) -> Produced:
        self._stop.set()
        return self.wait(timeout)

    def wait(self, timeout: float = 120.0) -> Produced:
        self._thread.join(timeout)
        if self._error is not None:
            raise self._error
        if self.produced is None:  # still running: where it is, for the report
            frame = sys._current_frames().get(self._thread.ident or -1)
            where = "".join(traceback.format_stack(frame)) if frame is not None else "(ended)"
            raise AssertionError(f"the load did not finish in {timeout:.0f} s; its thread is at:\n{where}")
        return self.produced


def merge(*parts: Produced) -> Produced:
    merged = Produced()
    for p in parts:
        merged.valid.update(p.valid)
        merged.malformed.update(p.malformed)
    return merged


# -- outputs and accounting -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Output:
    """One output record: ``kind`` is prediction, provenance or dead_letter; ``ident`` the event id
    (the original key for a dead letter); ``ts`` its Kafka timestamp, ``occurred`` the event time."""

    kind: str
    ident: str
    ts: float
    nbytes: int
    occurred: float | None = None


def written(bootstrap: str, *topics: str) -> int:
    """Records in ``topics`` so far (sum of their partitions' end offsets); 0 before they exist."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks", "log_level": 0})
    try:
        total = 0
        for topic in topics:
            metadata = consumer.list_topics(topic, timeout=5).topics.get(topic)
            if metadata is None or metadata.error is not None:
                continue
            total += sum(
                consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1]
                for p in metadata.partitions
            )
        return total
    except KafkaException:  # a topic just made may not have its leaders yet
        return 0
    finally:
        consumer.close()


def wait_written(
    bootstrap: str, topics: tuple[str, ...], at_least: int, worker: object, timeout: float = 60.0
) -> None:
    """Wait until ``topics`` hold ``at_least`` records; fail early if ``worker`` (a WorkerProcess) died."""
    deadline = time.monotonic() + timeout
    while written(bootstrap, *topics) < at_least:
        assert worker.proc.poll() is None, worker.output()[-3000:]  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, f"fewer than {at_least} outputs after {timeout} s"
        time.sleep(0.1)


def collect(bootstrap: str, topics: object, inputs: Produced, read_committed: bool, timeout: float = 120.0,
            settle: float = 3.0) -> list[Output]:  # fmt: skip
    """Every output record of a scenario's topics, read until each input has an outcome (and each valid
    one its provenance, which can trail its prediction under a quota), then ``settle`` s more for late
    duplicates (read_committed in exactly-once mode)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"faults-{os.getpid()}-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed" if read_committed else "read_uncommitted",
            "log_level": 0,
        }
    )
    names = {topics.predictions: "prediction", topics.provenance: "provenance", topics.dlq: "dead_letter"}  # type: ignore[attr-defined]
    metadata = consumer.list_topics(timeout=10).topics
    consumer.assign([TopicPartition(t, p, 0) for t in names for p in metadata[t].partitions])
    outputs: list[Output] = []
    missing = set(inputs.valid) | set(inputs.malformed)
    unproven = set(inputs.valid)  # valid inputs whose provenance has not been read yet
    deadline, settle_until = time.monotonic() + timeout, None
    while time.monotonic() < deadline and (settle_until is None or time.monotonic() < settle_until):
        for m in consumer.consume(2000, timeout=0.2):
            if m.error() is not None:
                continue
            kind = names[m.topic()]
            ts = m.timestamp()[1] / 1000
            if kind == "dead_letter":
                out = Output(kind, m.key().decode(errors="replace"), ts, len(m))
            else:
                doc = orjson.loads(m.value())
                occurred = dt.datetime.fromisoformat(doc["occurred_at"]).timestamp()
                out = Output(kind, doc["event_id"], ts, len(m), occurred)
            outputs.append(out)
            (unproven if kind == "provenance" else missing).discard(out.ident)
        if not missing and not unproven and settle_until is None:
            settle_until = time.monotonic() + settle
    consumer.close()
    return outputs


@dataclass
class Ledger:
    """What became of each input: ``lost`` had no outcome, ``duplicated`` counts outcomes beyond one."""

    events: int
    lost: list[str]
    duplicated: int
    provenance_missing: int
    unexpected: int

    def __str__(self) -> str:
        lost = f"{len(self.lost)} lost" + (f" (e.g. {self.lost[:3]})" if self.lost else "")
        return (
            f"{self.events} events: {lost}, {self.duplicated} duplicated, "
            f"{self.provenance_missing} without provenance, {self.unexpected} unexpected"
        )

    @property
    def ok_once(self) -> bool:
        return not self.lost and not self.duplicated and not self.provenance_missing and not self.unexpected


def account(inputs: Produced, outputs: list[Output]) -> Ledger:
    """Match outputs to inputs: valid events by ``event_id``, malformed ones by their key."""
    outcomes = Counter(o.ident for o in outputs if o.kind != "provenance")
    provenance = Counter(o.ident for o in outputs if o.kind == "provenance")
    expected = set(inputs.valid) | set(inputs.malformed)
    return Ledger(
        events=len(expected),
        lost=sorted(i for i in expected if not outcomes[i]),
        duplicated=sum(n - 1 for i, n in outcomes.items() if i in expected and n > 1),
        provenance_missing=sum(1 for i in inputs.valid if not provenance[i]),
        unexpected=sum(n for i, n in outcomes.items() if i not in expected),
    )


def recovery(outputs: list[Output], fault_at: float, live_within: float = 1.0) -> dict[str, float | None]:
    """Seconds from a fault (wall clock) to the first output after it, and to the lag back under
    ``live_within`` s: the first prediction that new after the one that lagged most since the fault
    (0 if none lagged that much: the fault never held the stream back)."""
    after = sorted(o.ts for o in outputs if o.ts > fault_at)
    lags = sorted(
        (o.ts, o.ts - o.occurred)  # type: ignore[operator]
        for o in outputs
        if o.kind == "prediction" and o.ts > fault_at
    )
    peak = max(range(len(lags)), key=lambda i: lags[i][1], default=None)
    live: float | None = None
    if peak is not None and lags[peak][1] < live_within:
        live = 0.0
    elif peak is not None:
        live = next((ts - fault_at for ts, lag in lags[peak:] if lag < live_within), None)
    return {
        "first_output_s": round(after[0] - fault_at, 2) if after else None,
        "live_s": None if live is None else round(live, 2),
        "peak_lag_s": round(lags[peak][1], 2) if peak is not None else None,
    }


def byte_rate(outputs: list[Output], start: float, end: float) -> float:
    """Output bytes (keys and values) per second between two wall-clock times."""
    return sum(o.nbytes for o in outputs if start <= o.ts <= end) / max(end - start, 1e-3)


def latency_p99(outputs: list[Output], ids: set[str]) -> float:
    """p99 event time -> emit of the predictions of ``ids`` (first copy of each), in seconds."""
    seen: dict[str, float] = {}
    for o in outputs:
        if o.kind == "prediction" and o.ident in ids and o.ident not in seen:
            seen[o.ident] = o.ts - o.occurred  # type: ignore[operator]
    lat = sorted(seen.values())
    return lat[min(len(lat) - 1, int(len(lat) * 0.99))]


class RssSampler:
    """Peak VmRSS (MiB) of the processes :meth:`watch` was given, sampled every 0.2 s in a thread."""

    def __init__(self) -> None:
        self.pids: list[int] = []
        self.peak_mib = 0.0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def watch(self, pid: int) -> None:
        self.pids.append(pid)

    def _run(self) -> None:
        for _ in range(100_000):  # at most ~5.5 hours
            if self._stop.wait(0.2):
                return
            for pid in list(self.pids):
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                kib = next((int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS:")), 0)
                self.peak_mib = max(self.peak_mib, kib / 1024)
                self.samples += 1

    def stop(self) -> float:
        self._stop.set()
        self._thread.join(5)
        return round(self.peak_mib, 1)


# -- results --------------------------------------------------------------------------------------


@dataclass
class Result:
    """One row of the fault-injection table."""

    scenario: str
    guarantee: str
    events: int
    lost: int
    duplicated: int
    recovery_s: float | None
    seconds: float
    details: dict[str, object] = field(default_factory=dict)
    live_s: float | None = None  # from the fault to the lag back under a second, where measured


def save(results: list[Result], path: Path) -> None:
    """Write the rows with the machine and the date (``bench``'s machine description), after those
    other modules of this test session wrote there."""
    from bench.__main__ import machine

    earlier = json.loads(path.read_text()) if path.exists() else {}
    kept = earlier.get("results", []) if earlier.get("session") == SESSION else []
    doc = {
        "date": dt.date.today().isoformat(),
        "session": SESSION,
        "chaos": CHAOS,
        "machine": machine(),
        "results": kept + [asdict(r) for r in results],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")


def table(doc: dict) -> str:
    """The Markdown table of a results document."""
    lines = [
        "| scenario | guarantee | events | lost | duplicated | first output s | lag < 1 s after s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in doc["results"]:
        rec = "-" if r["recovery_s"] is None else f"{r['recovery_s']:.1f}"
        live = "-" if r.get("live_s") is None else f"{r['live_s']:.1f}"
        cells = (
            r["scenario"],
            r["guarantee"],
            f"{r['events']:,}",
            r["lost"],
            f"{r['duplicated']:,}",
            rec,
            live,
        )
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(json.loads(Path(sys.argv[1]).read_text())))
