"""``streamscore verify``: re-score a random sample of provenance records and compare them bit by bit.

The sample is drawn uniformly (reservoir sampling) from the provenance topic's records since a
time, as the topic was when the command began. Each record's input is read at the offset it
names and scored again by the model of its sha256 (:mod:`stream.audit.rescore`); a record is a
match when every field computed from input and model is equal (score, feature hash, personal
hashes, input, model), else a mismatch naming the first differing field. Records whose input has
left the topic, or whose model is no longer in the registry, cannot be checked and are counted
apart; a record that breaks the Provenance contract is a mismatch. With ``STREAMSCORE_REASONS``
above 0, the prediction of each record is read too and its reason codes, when it has them, are
computed again and compared bit by bit (:mod:`stream.audit.reasons`): a difference is a mismatch.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable

from confluent_kafka import Message
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import BaseModel, Field

from stream.audit.formats import Formats
from stream.audit.lookup import Reader
from stream.audit.reasons import Key, difference, key_of, recorded_predictions
from stream.audit.rescore import Rescored, Rescorer
from stream.contracts import Prediction, Provenance
from stream.kafka.config import client_config
from stream.messages import Inbound
from stream.settings import Settings
from stream.terminal import printable

__all__ = ["Finding", "VerifyMetrics", "VerifyReport", "serve", "verify"]
SHOWN = 20  # findings of each kind printed as text


class Finding(BaseModel):
    event_id: str | None
    record: str = Field(description="The provenance record: topic[partition]@offset.")
    detail: str


class VerifyReport(BaseModel):
    """What ``verify`` found (``--json`` prints it)."""

    records: int = Field(description="Provenance records in the range sampled from.")
    sampled: int
    exact: int
    mismatched: list[Finding]
    unverifiable: list[Finding]
    reasons: int = Field(0, description="Predictions whose reason codes were computed again, bit-exact.")

    @property
    def ok(self) -> bool:
        return not self.mismatched


def sample(
    reader: Reader, topic: str, n: int, since_ms: int | None, rng: random.Random
) -> tuple[list[Message], int]:
    """``n`` records drawn uniformly from ``topic`` since ``since_ms`` (reservoir sampling), and the count."""
    kept: list[Message] = []
    seen = 0
    for m in reader.scan(topic, reader.range_since(topic, since_ms)):
        if seen < n:
            kept.append(m)
        else:
            j = rng.randrange(seen + 1)
            if j < n:
                kept[j] = m
        seen += 1
    return kept, seen


def _where(m: Message) -> str:
    return f"{m.topic()}[{m.partition()}]@{m.offset()}"


def verify(
    settings: Settings, pii_key: bytes, n: int, since_ms: int | None, seed: int | None = None
) -> VerifyReport:
    """Check ``n`` sampled provenance records against their inputs and models."""
    rescorer = Rescorer(settings.model_dir, pii_key, Formats(settings))
    reader = Reader(client_config(settings), timeout=600.0)
    try:
        drawn, total = sample(reader, settings.provenance_topic, n, since_ms, random.Random(seed))
        mismatched: list[Finding] = []
        unverifiable: list[Finding] = []
        records: list[tuple[Message, Provenance]] = []
        for m in drawn:
            parsed = rescorer.formats.provenance(m.value())
            if isinstance(parsed, str):
                key = (m.key() or b"").decode(errors="replace") or None
                mismatched.append(
                    Finding(event_id=key, record=_where(m), detail=f"breaks the contract: {parsed}")
                )
            else:
                records.append((m, parsed))
        inputs = _inputs(reader, records, unverifiable)
        predictions: dict[Key, list[Prediction]] = {}
        if settings.reasons:
            found = recorded_predictions(
                reader, settings.prediction_topic, (p for _, p in records), rescorer.formats
            )
            predictions = {key: given for key, ps in found.items() if (given := [p for p in ps if p.reasons])}
    finally:
        reader.close()
    pairs: list[tuple[Provenance, Inbound]] = []
    where: list[str] = []
    for m, p in records:
        key = (p.input.topic, p.input.partition, p.input.offset)
        if key in inputs:
            pairs.append((p, inputs[key]))
            where.append(_where(m))
    exact = reasons = 0
    for checked, record in zip(rescorer.rescore(pairs, explain=bool(predictions)), where, strict=True):
        finding = Finding(event_id=checked.recorded.event_id, record=record, detail=checked.detail)
        given = predictions.get(key_of(checked.recorded))
        if checked.missing:
            unverifiable.append(finding.model_copy(update={"detail": checked.missing}))
        elif not checked.exact:
            mismatched.append(finding)
        elif given is not None and (wrong := _reasons_wrong(checked, given, settings.reasons)):
            mismatched.append(finding.model_copy(update={"detail": wrong}))
        else:
            exact += 1
            reasons += given is not None
    return VerifyReport(
        records=total, sampled=len(drawn), exact=exact, mismatched=mismatched, unverifiable=unverifiable,
        reasons=reasons,
    )  # fmt: skip


def _reasons_wrong(checked: Rescored, given: list[Prediction], k: int) -> str | None:
    """Why a prediction's recorded reasons are not the ones computed again; None when none differs."""
    if checked.contributions is None:
        return f"reasons: the prediction has some, but {checked.unexplained or 'none were computed'}"
    found = (difference(p.reasons or {}, checked.contributions, k) for p in given)
    return next((wrong for wrong in found if wrong is not None), None)


def _inputs(
    reader: Reader, records: list[tuple[Message, Provenance]], unverifiable: list[Finding]
) -> dict[tuple[str, int, int], Message]:
    """The input record of each provenance record, by position; those gone are noted as unverifiable."""
    wanted: dict[tuple[str, int], set[int]] = defaultdict(set)
    for _, p in records:
        wanted[(p.input.topic, p.input.partition)].add(p.input.offset)
    found: dict[tuple[str, int, int], Message] = {}
    for (topic, partition), offsets in wanted.items():
        low, _ = reader.watermarks(topic, partition)
        held = [o for o in offsets if o >= low]
        for offset, m in reader.read_at(topic, partition, held).items():
            found[(topic, partition, offset)] = m
    for m, p in records:
        if (p.input.topic, p.input.partition, p.input.offset) not in found:
            gone = f"input {p.input.topic}[{p.input.partition}]@{p.input.offset} is no longer in the topic"
            unverifiable.append(Finding(event_id=p.event_id, record=_where(m), detail=gone))
    return found


def render(report: VerifyReport) -> str:
    """The findings, a line each (ids and details escaped: they come from records), then the summary."""
    lines: list[str] = []
    for kind, found in (("MISMATCH", report.mismatched), ("UNVERIFIABLE", report.unverifiable)):
        lines += [f"{kind} {f.event_id} {f.record}: {f.detail}" for f in found[:SHOWN]]
        if len(found) > SHOWN:
            lines.append(f"... and {len(found) - SHOWN} more {kind.lower()} records (--json lists them all)")
    share = 100.0 * report.exact / report.sampled if report.sampled else 100.0
    lines.append(
        f"verified {report.sampled} of {report.records} provenance records: {report.exact} bit-exact "
        f"({share:.1f}%), {len(report.mismatched)} mismatched, {len(report.unverifiable)} unverifiable"
        + (f"; reason codes bit-exact on {report.reasons} predictions" if report.reasons else "")
    )
    return "\n".join(map(printable, lines))


class VerifyMetrics:
    """What continuous verification (``verify --serve``) exports, on a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.records = Counter(
            "streamscore_verify_records",
            "Sampled provenance records re-scored, by result: exact, mismatched, unverifiable.",
            ["result"],
            registry=self.registry,
        )
        self.last_mismatched = Gauge(
            "streamscore_verify_last_mismatched",
            "Mismatched records in the last draw.",
            registry=self.registry,
        )
        self.last_run = Gauge(
            "streamscore_verify_last_run_timestamp_seconds",
            "When the last draw was checked.",
            registry=self.registry,
        )
        for result in ("exact", "mismatched", "unverifiable"):
            self.records.labels(result)

    def observe(self, report: VerifyReport) -> None:
        self.records.labels("exact").inc(report.exact)
        self.records.labels("mismatched").inc(len(report.mismatched))
        self.records.labels("unverifiable").inc(len(report.unverifiable))
        self.last_mismatched.set(len(report.mismatched))
        self.last_run.set(time.time())


def serve(
    check: Callable[[], VerifyReport], metrics: VerifyMetrics, every: float, stop: threading.Event
) -> None:
    """Draw and check a sample every ``every`` seconds until ``stop``, printing each mismatch."""
    while not stop.is_set():
        report = check()
        metrics.observe(report)
        print(render(report), flush=True)
        stop.wait(every)
