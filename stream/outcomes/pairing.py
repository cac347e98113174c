"""The outcome worker's side of a challenger: each event's two answers paired with its outcome.

With a challenger, every event has two provenance records: the live answer (role ``champion``, or
``canary`` for the canary's keys) and the shadow answer (role ``shadow``). The join of
:mod:`stream.outcomes.join` judges the live answer only, as before; shadow records come here. An
event's live score, shadow score and outcome wait in memory (at most ``capacity`` events, the oldest
dropped first) until all three are in; then the pair (outcome, champion's score, challenger's
score) goes to the :class:`~stream.lifecycle.comparison.Paired` of those two models. Every
``outcome_window`` pairs a ``comparison`` report goes to the drift topic and the
``streamscore_model_compared_*{model,role}`` and ``streamscore_model_comparison_*`` gauges are set.

Live answers and outcomes wait too before any shadow answer was read (at most a tenth as many),
so that the events of the first batches pair as well, whichever half is read first.
Pairing lives in memory only: a restarted worker compares the events it reads from then on (and an
event is paired once per process).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Literal

from prometheus_client import CollectorRegistry, Gauge
from pydantic import AwareDatetime, BaseModel, ConfigDict

from stream.contracts import ModelRef, Provenance
from stream.lifecycle.comparison import Comparison, Paired
from stream.outcomes.decode import Halves, ProvenanceScore

__all__ = ["ComparisonReport", "Pairing"]

log = logging.getLogger("streamscore.outcomes")
_VERDICT = {"challenger better": 1.0, "challenger worse": -1.0, "not yet known": 0.0}


class ComparisonReport(BaseModel):
    """A ``comparison`` report on the drift topic: champion and challenger on the same events."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["comparison"] = "comparison"
    champion: ModelRef
    challenger: ModelRef
    worker_id: str
    at: AwareDatetime
    pairs: int
    look: int
    level: float
    log_loss: dict[str, float]
    log_loss_difference: float
    log_loss_interval: tuple[float, float]
    roc_auc: dict[str, float | None]
    roc_auc_difference: float | None
    roc_auc_interval: tuple[float, float] | None
    accuracy: dict[str, float]
    calibration_error: dict[str, float]
    verdict: Literal["challenger better", "challenger worse", "not yet known"]


class _Gauges:
    """The comparison's series, in the outcome worker's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        by_role, by_pair = ["model", "role"], ["champion", "challenger"]

        def gauge(name: str, what: str, labels: list[str]) -> Gauge:
            return Gauge(name, what, labels, registry=registry)

        self.log_loss = gauge(
            "streamscore_model_compared_log_loss", "Log loss on the paired events.", by_role
        )
        self.roc_auc = gauge("streamscore_model_compared_roc_auc", "ROC AUC on the paired events.", by_role)
        self.accuracy = gauge(
            "streamscore_model_compared_accuracy", "Accuracy on the paired events.", by_role
        )
        self.calibration = gauge(
            "streamscore_model_compared_calibration_error", "Calibration error on the paired events.", by_role
        )
        self.pairs = gauge("streamscore_model_comparison_pairs", "Events paired with their outcome.", by_pair)
        self.difference = gauge(
            "streamscore_model_comparison_log_loss_difference",
            "Challenger's log loss minus the champion's on the same events (below 0: better).",
            by_pair,
        )
        self.verdict = gauge(
            "streamscore_model_comparison_verdict",
            "1 challenger better, -1 challenger worse, 0 not yet known.",
            by_pair,
        )

    def set(self, champion: str, challenger: str, c: Comparison) -> None:
        for role, model in (("champion", champion), ("challenger", challenger)):
            self.log_loss.labels(model, role).set(c.log_loss[role])
            self.accuracy.labels(model, role).set(c.accuracy[role])
            self.calibration.labels(model, role).set(c.calibration_error[role])
            if c.roc_auc[role] is not None:
                self.roc_auc.labels(model, role).set(c.roc_auc[role])  # type: ignore[arg-type]
        self.pairs.labels(champion, challenger).set(c.pairs)
        self.difference.labels(champion, challenger).set(c.log_loss_difference)
        self.verdict.labels(champion, challenger).set(_VERDICT[c.verdict])


class Pairing:
    """Pairs the live and shadow answers of each event with its outcome; reports comparisons."""

    def __init__(
        self,
        window: int,
        registry: CollectorRegistry,
        worker_id: str,
        send: Callable[[bytes], None],
        capacity: int = 100_000,
    ) -> None:
        self.window, self.worker_id, self.send, self.capacity = window, worker_id, send, capacity
        self.gauges = _Gauges(registry)
        self.active = False  # from the first shadow record on
        self.comparisons: dict[tuple[ModelRef, ModelRef], Paired] = {}
        self._waiting: OrderedDict[str, list] = OrderedDict()  # event_id -> [live, shadow, outcome]
        self._done: deque[str] = deque(maxlen=capacity)
        self._done_set: set[str] = set()
        self.dropped = 0

    def add(self, halves: Halves) -> None:
        """A batch the outcome worker read: its predictions (all roles) and outcomes."""
        halves.hand_to(self)

    def predicted(self, record: Provenance | ProvenanceScore) -> None:
        """A provenance record: the live answer, or (role ``shadow``) the other model's."""
        if record.role == "shadow" and not self.active:
            log.info("shadow answers read: comparing each event's two answers on outcomes from now on")
            self.active = True
        model = record.model
        ref = (model.name, model.version, model.sha256)
        self._put(record.event_id, 1 if record.role == "shadow" else 0, (ref, record.role, record.score))

    def observed(self, event_id: str, positive: bool) -> None:
        """An outcome (read twice, moved to the repartition topic, it counts once)."""
        self._put(event_id, 2, positive)

    def _put(self, event_id: str, slot: int, value: object) -> None:
        if event_id in self._done_set:
            return  # read again (at least once): paired already
        entry = self._waiting.get(event_id)
        if entry is None:
            entry = self._waiting[event_id] = [None, None, None]
            if len(self._waiting) > (self.capacity if self.active else self.capacity // 10):
                self._waiting.popitem(last=False)
                self.dropped += 1
        if entry[slot] is None:
            entry[slot] = value
        if None not in entry:
            del self._waiting[event_id]
            self._remember(event_id)
            self._pair(*entry)

    def _remember(self, event_id: str) -> None:
        if len(self._done) == self._done.maxlen:
            self._done_set.discard(self._done[0])
        self._done.append(event_id)
        self._done_set.add(event_id)

    def _pair(self, live: tuple, shadow: tuple, positive: bool) -> None:
        (live_ref, role, live_score), (shadow_ref, _, shadow_score) = live, shadow
        if role == "canary":  # the challenger answered live, the champion in shadow
            refs, a, b = (shadow_ref, live_ref), shadow_score, live_score
        else:
            refs, a, b = (live_ref, shadow_ref), live_score, shadow_score
        champion, challenger = (ModelRef(name=n, version=v, sha256=s) for n, v, s in refs)
        paired = self.comparisons.setdefault((champion, challenger), Paired())
        paired.add(positive, a, b)
        if paired.since_look >= self.window:
            self.report(champion, challenger, paired)

    def report(self, champion: ModelRef, challenger: ModelRef, paired: Paired) -> ComparisonReport:
        """Look at the pair, set the gauges, log, and send the report."""
        c = paired.look()
        names = f"{champion.name}/{champion.version}", f"{challenger.name}/{challenger.version}"
        self.gauges.set(*names, c)
        log.info(
            "%s against %s on %d paired outcomes: log loss %+.4f [%+.4f, %+.4f], %s",
            names[1], names[0], c.pairs, c.log_loss_difference, *c.log_loss_interval, c.verdict,
            extra={"comparison": c.verdict, "champion": names[0], "challenger": names[1]},
        )  # fmt: skip
        report = ComparisonReport(
            champion=champion,
            challenger=challenger,
            worker_id=self.worker_id,
            at=dt.datetime.now(dt.UTC),
            **vars(c),
        )
        self.send(report.model_dump_json().encode())
        return report


def latest_comparison(kafka: dict, topic: str, timeout: float) -> ComparisonReport | None:
    """The last ``comparison`` report on the drift topic (read to its end), or None."""
    import time
    import uuid

    from confluent_kafka import Consumer, TopicPartition

    from stream.kafka.config import connect

    metadata = connect(kafka)[1].topics.get(topic)
    if metadata is None:
        return None
    consumer = Consumer({**kafka, "group.id": f"compare-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False})
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
        for p in metadata.partitions
    }
    consumer.assign([TopicPartition(topic, p, 0) for p in metadata.partitions])
    latest: ComparisonReport | None = None
    deadline = time.monotonic() + timeout
    reached: dict[int, int] = {p: 0 for p in ends}
    try:
        while any(reached[p] < ends[p] for p in ends) and time.monotonic() < deadline:
            for m in consumer.consume(500, 0.5):
                if m.error() is not None:
                    continue
                reached[m.partition()] = m.offset() + 1
                if b'"kind":"comparison"' in (m.value() or b""):
                    report = ComparisonReport.model_validate_json(m.value())
                    if latest is None or report.at >= latest.at:
                        latest = report
    finally:
        consumer.close()
    return latest
