"""Latency of a rung at an offered rate: to the broker's append, and to a downstream consumer's read.

Every rung is offered the same absolute rates (:data:`RATES`) where it can sustain them (at most
:data:`MOST` of the events/s it drained; the others are recorded as skipped), besides fractions of
its own maximum (:func:`offers`). The load generator (:mod:`bench.load`) runs as a process of its
own and stamps each event's ``occurred_at`` as it sends it, in the rung's input format. Meanwhile a
reader with the client defaults a user would have (``read_committed``, ``fetch.min.bytes`` 1)
consumes the predictions from the end of their topic, and notes the time each one is received; once
the load is over, each prediction's ``occurred_at`` is read from its JSON text (JSON, JSON Schema),
or from its record decoded by the writer schema its header names (Avro and any other registered
format). An event's latency to the append is its prediction's ``LogAppendTime`` less its
``occurred_at``; to the read, the time of receipt less its ``occurred_at``. The first second of a
load (a quarter of a shorter one) warms up and is left out. The CPU of the scorer's processes and
of the whole machine is sampled every 50 ms (:class:`Sampler`): a point gives ``machine_cores_busy``
(cores the whole machine kept busy) and ``scorer_cpu_share`` (cores the scorer's processes kept
busy, 1.0 is one core) over its measured window, so that it says when the machine, not the scorer,
set its figure; and ``generator_cpu_us_per_event``, the load generator's own CPU.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
from confluent_kafka import Consumer, TopicPartition

from bench import measure
from stream.kafka.config import Connection, client_config
from stream.tools.tail import Wire

#: The absolute rates (events/s) every rung with latency is offered, where it can sustain them.
RATES: tuple[float, ...] = (1_000, 3_000, 5_000, 20_000)
#: A rate above this share of a rung's drained events/s is not offered to it.
MOST = 0.8
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_OCCURRED_AT = re.compile(rb'"occurred_at":\s*"([^"]+)"')
Point = dict[str, object]
Offer = tuple[Point, float | None]
"""A point of a rung's latency and the rate it is offered (None: it is not, and says why)."""


@dataclass(frozen=True)
class Timed:
    """One prediction's times (epoch s): its event's ``occurred_at``, its append, its receipt."""

    occurred: float
    appended: float
    read: float


def offers(maximum: float, rates: Sequence[float], fractions: Sequence[float]) -> list[Offer]:
    """The points a rung that drained ``maximum`` events/s is offered: ``fractions`` of it, and each of
    ``rates`` it can sustain (at most :data:`MOST` of it); the other rates are skipped.

    >>> offers(2_000, (1_000, 3_000), (0.5,))[:2]
    [({'fraction_of_max': 0.5}, 1000.0), ({'rate': 1000}, 1000)]
    """
    found: list[Offer] = [({"fraction_of_max": f}, maximum * f) for f in fractions]
    for rate in rates:
        if rate <= MOST * maximum:
            found.append(({"rate": rate}, rate))
        else:
            why = f"above {MOST:.0%} of the rung's maximum ({maximum:,.0f} events/s)"
            found.append(({"rate": rate, "skipped": why}, None))
    return found


def pairs(timed: Sequence[Timed]) -> dict[str, float]:
    """p50, p95, p99 and max in ms of the time to the append (``append_*``) and to the read (``read_*``)."""
    append = measure.percentiles_ms([t.appended - t.occurred for t in timed])
    read = measure.percentiles_ms([t.read - t.occurred for t in timed])
    return {f"append_{k}": v for k, v in append.items()} | {f"read_{k}": v for k, v in read.items()}


def window(offered: Mapping[str, object], seconds: float) -> tuple[float, float]:
    """The part of a load that is measured (epoch s): after its warm-up, until its last send."""
    started = float(offered.get("started_at", 0.0))  # type: ignore[arg-type]
    return started + min(1.0, seconds / 4), started + seconds


def summarise(offered: Mapping[str, object], timed: Sequence[Timed], rate: float, seconds: float) -> Point:
    """What the generator achieved, how many predictions were read, and the percentiles after the warm-up."""
    start, _ = window(offered, seconds)
    kept = [t for t in timed if t.occurred >= start]
    figures: Point = {k: v for k, v in offered.items() if k != "started_at"}
    figures |= {"read": len(timed), "events": len(kept), **pairs(kept)}
    figures["generator_kept_up"] = float(offered.get("achieved", 0)) >= 0.95 * rate  # type: ignore[arg-type]
    return figures


def reader(kafka: Connection, topic: str, partitions: int) -> Consumer:
    """A downstream consumer of ``topic`` with a user's defaults, from the end of each partition."""
    consumer = Consumer(
        client_config(
            kafka,
            **{
                "group.id": f"latency-{uuid.uuid4().hex[:6]}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",  # exactly once: only committed predictions
            },
        )
    )
    ends = [TopicPartition(topic, p) for p in range(partitions)]
    for tp in ends:  # explicit offsets: no prediction of the load is missed while they are looked up
        tp.offset = consumer.get_watermark_offsets(tp, timeout=10, cached=False)[1]
    consumer.assign(ends)
    return consumer


def offer(
    consumer: Consumer,
    env: Mapping[str, str],
    cwd: Path,
    events: Path,
    rate: float,
    seconds: float,
    wire: Wire | None = None,
) -> tuple[dict[str, float], list[Timed]]:
    """Offer ``rate`` events/s for ``seconds`` from a generator process sending ``events`` (written by
    :func:`bench.load.write_slots`), reading the predictions meanwhile; then read those still due
    (30 s at most). ``wire`` decodes predictions in a registered output format."""
    generator = subprocess.Popen(
        [sys.executable, "-m", "bench.load", str(rate), str(seconds), str(events)],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
    )
    received: list[tuple[bytes, int, float]] = []
    while generator.poll() is None:
        _receive(consumer, received, 0.1)
    offered: dict[str, float] = orjson.loads(generator.communicate()[0] or b'{"sent": 0}')
    deadline = time.monotonic() + 30
    while len(received) < offered["sent"] and time.monotonic() < deadline:
        _receive(consumer, received, 0.5)
    return offered, timed(received, wire)


def _receive(consumer: Consumer, into: list[tuple[bytes, int, float]], timeout: float) -> None:
    """What has arrived, each message with its append time (ms) and the time it was received."""
    first = consumer.poll(timeout)
    if first is None:
        return
    now = time.time()
    if first.error() is None:
        into.append((first.value(), first.timestamp()[1], now))
    more = consumer.consume(5000, timeout=0)
    now = time.time()
    into.extend((m.value(), m.timestamp()[1], now) for m in more if m.error() is None)


def timed(received: Sequence[tuple[bytes, int, float]], wire: Wire | None = None) -> list[Timed]:
    """Each prediction ``(value, append ms, receipt)`` with its event's time (those without one left out)."""
    parsed: dict[bytes, float] = {}  # the generator stamps a burst of events with one time
    found = []
    for value, appended_ms, read in received:
        if (occurred := _occurred(value, parsed, wire)) is not None:
            found.append(Timed(occurred, appended_ms / 1000, read))
    return found


def _occurred(value: bytes, parsed: dict[bytes, float], wire: Wire | None) -> float | None:
    """A prediction's ``occurred_at`` (epoch s): from its JSON text, else from its decoded record."""
    if (text := _OCCURRED_AT.search(value)) is not None:
        stamp = text.group(1)
        if (occurred := parsed.get(stamp)) is None:
            occurred = parsed[stamp] = dt.datetime.fromisoformat(stamp.decode()).timestamp()
        return occurred
    decoded = wire(value) if wire is not None else None
    record = decoded[1] if decoded is not None else None
    return epoch(record.get("occurred_at")) if isinstance(record, dict) else None


def epoch(value: object) -> float | None:
    """A decoded time as epoch seconds: a datetime (Avro's) or RFC 3339 text; None for anything else."""
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, str):
        return dt.datetime.fromisoformat(value).timestamp()
    return None


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user and system) a process has spent."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_mib(pid: int) -> float:
    """The largest resident set a process has had, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent on anything but idling, summed over its cores."""
    ticks = [int(n) for n in Path("/proc/stat").read_text().split()[1:9]]  # the "cpu" line: all cores
    idle, iowait = ticks[3], ticks[4]
    return (sum(ticks) - idle - iowait) / CLOCK_TICKS


class Sampler:
    """Cumulative CPU seconds of the scorer's processes, and of the whole machine, every 50 ms."""

    def __init__(self, procs: Sequence[subprocess.Popen[bytes]]) -> None:
        self.pids = [p.pid for p in procs]
        self.samples: list[tuple[float, float]] = []
        self.machine: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._sample()

    def _sample(self) -> None:
        now = time.time()
        self.samples.append((now, sum(cpu_seconds(pid) for pid in self.pids)))
        self.machine.append((now, _machine_busy_seconds()))

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self._sample()

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def between(self, start: float, end: float) -> float:
        """CPU seconds the scorer's processes spent between ``start`` and ``end``."""
        return measure.cpu_between(self.samples, start, end)

    def cores_busy(self, start: float, end: float) -> float:
        """How many cores the whole machine (broker, scorers, everything else) kept busy, on average."""
        return measure.cpu_between(self.machine, start, end) / (end - start)
