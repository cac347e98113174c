"""``streamscore replay``: re-score a bounded range of the input topic with a pinned model, to its own topics.

The replay is the worker's own loop (:class:`~stream.worker.loop.ScoringLoop`) with other settings: its own
consumer group (never the live one), the pinned model, its own output topics, records in role
``replay``, drift off, and an :class:`EndBound` that drops messages past each partition's end and
stops the loop once everything in range is scored and committed. Delivery is the loop's: at least
once, or exactly once with one transaction per commit (transactional id ``<group>-replay``, so a
replay started again fences the one it replaces and aborts its open transaction).

Refused before anything is created: an output topic (or its ``.provenance`` or ``.dlq``) that the
live worker reads or writes, and a range that is inverted or holds no event. An offset outside what a
partition holds is clamped to its first offset or its end, and the command says so; only offsets in
the range are scored and counted.

The start of the range is written as the group's committed offsets when the group has none, so
that a replay stopped by Ctrl-C or a crash is resumed by running the same command again: it goes
on from what it committed.
"""

from __future__ import annotations

import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, Message, Producer, TopicPartition

from stream.audit.errors import AuditError
from stream.audit.lookup import Reader, parse_offsets, parse_time
from stream.kafka.clients import consumer_config, producer_config
from stream.kafka.config import client_config
from stream.kafka.topics import ensure_topics
from stream.scoring.model import versions
from stream.settings import Settings
from stream.settings.topics import worker_topics
from stream.worker.health import Health
from stream.worker.loop import ScoringLoop
from stream.worker.metrics import WorkerMetrics

__all__ = ["EndBound", "ReplayPlan", "plan", "positions", "run"]
_OFFSETS = re.compile(r"\d+:\d+(,\d+:\d+)*")


@dataclass
class EndBound:
    """Each partition's end offset (exclusive): later messages are not scored; done once all are committed.

    Messages before a partition's ``start`` (a consumer reset to the partition's first offset) neither.
    """

    topic: str
    end: dict[int, int]
    start: dict[int, int] = field(default_factory=dict)
    _last: dict[int, int] = field(default_factory=dict)  # last offset in range handed to the loop
    _beyond: set[int] = field(default_factory=set)  # partitions read past their end

    def clip(self, batch: list[Message]) -> list[Message]:
        end, start, kept = self.end, self.start, []
        for m in batch:
            p, offset = m.partition(), m.offset()
            if offset < start.get(p, 0):
                continue
            if offset < end.get(p, 0):
                kept.append(m)
                self._last[p] = offset
            else:
                self._beyond.add(p)
        return kept

    def done(self, consumer: Consumer) -> bool:
        """Every partition committed up to its end, or up to its last record in range when read past
        its end (the offsets between can be transaction markers, never handed to the loop)."""
        wanted = [TopicPartition(self.topic, p) for p in self.end]
        committed = {tp.partition: tp.offset for tp in consumer.committed(wanted, timeout=10)}
        return all(
            committed[p] >= end
            or (p in self._beyond and (p not in self._last or committed[p] > self._last[p]))
            for p, end in self.end.items()
        )


@dataclass(frozen=True)
class ReplayPlan:
    """What a replay reads, where it starts (committed or initial) and where each partition ends."""

    settings: Settings  # the loop's: group, topics, model, guarantee
    start: dict[int, int]
    end: dict[int, int]
    resumed: bool
    notes: tuple[str, ...] = ()  # offsets given outside a partition, and where they were moved

    @property
    def total(self) -> int:
        return sum(max(0, self.end[p] - self.start[p]) for p in self.end)


def positions(reader: Reader, topic: str, text: str) -> dict[int, int]:
    """``beginning``, ``end``, ``P:O,...`` or a time (ISO 8601 or an age) as an offset per partition.

    With offsets, a partition not named gets its first offset held: from there to there, nothing.
    """
    parts = reader.partitions(topic)
    marks = {p: reader.watermarks(topic, p) for p in parts}
    if text in ("beginning", "end"):
        return {p: marks[p][0 if text == "beginning" else 1] for p in parts}
    if _is_offsets(text):
        given = parse_offsets(text)
        unknown = sorted(set(given) - set(parts))
        if unknown:
            raise AuditError(f"{topic} has no partition {unknown[0]} (it has {len(parts)})")
        return {p: marks[p][0] for p in parts} | given
    ms = parse_time(text)
    return {p: reader.offset_at(topic, p, ms) for p in parts}


def plan(
    settings: Settings,
    start_text: str,
    end_text: str,
    model: str,
    output_topic: str,
    group: str | None = None,
    exactly_once: bool = False,
) -> ReplayPlan:
    """Resolve the range, create the output topics, and give a new replay group its start offsets.

    Refused before anything is created: an output topic of the live worker, an inverted or empty range.
    """
    outputs = _outputs(settings, output_topic)
    name, _, version = model.partition("/")
    if not name or not version:
        raise AuditError(f"--model {model!r}: give NAME/VERSION, e.g. loan-approval/1")
    known = versions(settings.model_dir, name)
    if version not in known:
        raise AuditError(f"--model {model}: registry {settings.model_dir} has versions {known} of {name!r}")
    loop_settings = settings.model_copy(
        update={
            "app_id": group or f"{settings.app_id}-replay-{output_topic}",
            "instance_id": "replay",
            "prediction_topic": output_topic,
            "provenance_topic": outputs[1],
            "dlq_topic": outputs[2],
            "model_name": name,
            "model_version": version,
            "model_reload_s": 0.0,
            "drift_window": 0,
            "processing_guarantee": "exactly_once" if exactly_once else "at_least_once",
        }
    )
    topic = settings.input_topic
    reader = Reader(client_config(settings))
    try:
        start, end, notes = _range(reader, topic, start_text, end_text)
        first = {p: reader.watermarks(topic, p)[0] for p in end}
    finally:
        reader.close()
    ensure_topics(
        client_config(settings),
        {t: len(end) for t in outputs},
        replication_factor=settings.replication_factor,
    )
    committed, resumed = _initial_offsets(loop_settings, start)
    committed = {p: min(max(o, first[p]), end[p]) for p, o in committed.items()}  # as the consumer reads
    return ReplayPlan(loop_settings, committed, end, resumed, tuple(notes))


def _outputs(settings: Settings, output_topic: str) -> tuple[str, str, str]:
    """The replay's predictions, provenance and dead-letter topics; none may be one the live worker uses."""
    outputs = (output_topic, f"{output_topic}.provenance", f"{output_topic}.dlq")
    live = worker_topics(settings)
    for topic in outputs:
        if topic in live:
            kind = {outputs[1]: "its provenance topic ", outputs[2]: "its dead-letter topic "}
            raise AuditError(
                f"--output-topic {output_topic}: {kind.get(topic, '')}{topic!r} is {live[topic]} of the "
                "live worker; give the replay an output topic of its own"
            )
    return outputs


def _range(
    reader: Reader, topic: str, start_text: str, end_text: str
) -> tuple[dict[int, int], dict[int, int], list[str]]:
    """Each partition's [start, end), within the offsets it holds, and a note for each offset moved there.

    Partitions ``--to P:O,...`` does not name are not replayed. An inverted or empty range is refused.
    """
    start, end = positions(reader, topic, start_text), positions(reader, topic, end_text)
    given = set(parse_offsets(end_text)) if _is_offsets(end_text) else set(end)
    times = [
        None if _is_offsets(t) or t in ("beginning", "end") else parse_time(t) for t in (start_text, end_text)
    ]
    marks = {p: reader.watermarks(topic, p) for p in end}
    notes = _clamp(topic, "--from", start, marks) + _clamp(topic, "--to", end, marks)
    inverted = [p for p in sorted(given) if start[p] > end[p]]
    if (None not in times and times[0] > times[1]) or inverted:
        where = f" in {topic}[{inverted[0]}]" if inverted else ""
        raise AuditError(f"--from {start_text} is after --to {end_text}{where}: give --from the earlier one")
    end = {p: o if p in given else start[p] for p, o in end.items()}
    if all(start[p] >= end[p] for p in end):
        raise AuditError(
            f"--from {start_text} --to {end_text} holds no events of {topic} (--to is exclusive): "
            "nothing to replay"
        )
    return start, end, notes


def _is_offsets(text: str) -> bool:
    return _OFFSETS.fullmatch(text.replace(" ", "")) is not None


def _clamp(topic: str, flag: str, offsets: dict[int, int], marks: dict[int, tuple[int, int]]) -> list[str]:
    """Move each offset into its partition's [first held, end], in place; a note for each one moved."""
    notes = []
    for p, offset in sorted(offsets.items()):
        low, high = marks[p]
        offsets[p] = min(max(offset, low), high)
        if offset > high:
            notes.append(f"{flag} {p}:{offset} is past the end of {topic}[{p}]: clamped to {p}:{high}")
        elif offset < low:
            notes.append(
                f"{flag} {p}:{offset} is before the first offset {topic}[{p}] holds: clamped to {p}:{low}"
            )
    return notes


def _initial_offsets(settings: Settings, start: dict[int, int]) -> tuple[dict[int, int], bool]:
    """The group's committed offsets; a new group gets ``start`` committed first. True when resumed.

    Exactly once, the replay's transactional id is taken first: that aborts a transaction a killed
    replay left open, whose offsets would otherwise hold the committed ones back until it expires.
    """
    if settings.processing_guarantee == "exactly_once":
        fence = Producer(producer_config(settings, lambda *_: None))
        fence.init_transactions(settings.transaction_timeout_s)
        fence.flush(0)
    consumer = Consumer(consumer_config(settings))
    try:
        tps = [TopicPartition(settings.input_topic, p) for p in start]
        committed = {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=10)}
        if all(o < 0 for o in committed.values()):
            offsets = [TopicPartition(settings.input_topic, p, o) for p, o in start.items()]
            consumer.commit(offsets=offsets, asynchronous=False)
            return dict(start), False
        return {p: (o if o >= 0 else start[p]) for p, o in committed.items()}, True
    finally:
        consumer.close()


def run(
    replay: ReplayPlan, pipeline_factory: Callable[[Settings], Any], report: Callable[[str], None]
) -> tuple[int, bool]:
    """Run the loop over the plan's range; (events handled, finished). Ctrl-C and SIGTERM stop it cleanly."""
    pipeline = pipeline_factory(replay.settings)
    loop = ScoringLoop(replay.settings, pipeline, WorkerMetrics(), Health())
    loop.bound = EndBound(replay.settings.input_topic, replay.end, replay.start)
    thread = threading.Thread(target=loop.run, name="replay-loop", daemon=True)
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: (stopped.set(), loop.stop()))
    started = time.monotonic()
    thread.start()
    total = replay.total
    while thread.is_alive():
        thread.join(0.5)
        done = loop.stats.total_scored + loop.stats.total_dead
        report(progress(done, total, time.monotonic() - started))
    done = loop.stats.total_scored + loop.stats.total_dead
    return done, not stopped.is_set()


def progress(done: int, total: int, elapsed: float) -> str:
    """``replayed 4,096 of 10,000 events (41%)  2,345 events/s  ETA 3 s``."""
    rate = done / elapsed if elapsed > 0 else 0.0
    share = f" ({100 * done / total:.0f}%)" if total else ""
    eta = f"  ETA {max(0, total - done) / rate:.0f} s" if rate > 0 and total > done else ""
    return f"replayed {done:,} of {total:,} events{share}  {rate:,.0f} events/s{eta}"


def stderr_line(text: str) -> None:
    """A progress line rewritten in place on a terminal, one line each otherwise."""
    end = "\r" if sys.stderr.isatty() else "\n"
    sys.stderr.write(text + end)
    sys.stderr.flush()
