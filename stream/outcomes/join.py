"""The join of predictions and outcomes, a batch at a time, over a :class:`PendingStore` (no Kafka).

A batch of predictions and outcomes is joined with one lookup pass: the entries of every event
id in the batch are read at once (per partition), updated in memory in the batch's order, and
written back in one atomic write per partition, which also gives the changelog records that say
the same.
Whichever half comes first waits as an entry; the second half joins it, and the entry stays as a
joined marker until it expires, so that a half read again (at least once, after a crash) finds
it and changes nothing: a second outcome counts as ``duplicate``, a second prediction is
ignored. Every outcome is counted (joined, duplicate, invalid, unmatched) and every prediction
that expires unjoined too (``expired_predictions``).

Retention runs on event time: an entry is stored at its record's timestamp, and expires once that
is ``outcome_retention_s`` old, or when its partition holds more than its share of
``outcome_max_pending`` entries (oldest first).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from typing import NamedTuple

from stream.drift.performance import PerformanceTracker
from stream.kafka.partitioning import partition_of
from stream.outcomes.report import OutcomeMetrics
from stream.outcomes.store import Change, Changed, Entry, PendingStore
from stream.settings import Settings

__all__ = ["COUNTS", "Join", "Observed", "Predicted"]

COUNTS = ("joined", "duplicate", "invalid", "unmatched", "expired_predictions")


class Predicted(NamedTuple):
    """A prediction read from provenance."""

    event_id: str
    model: str  # name/version
    sha256: str
    score: float
    at_ms: int  # the record's timestamp


class Observed(NamedTuple):
    """A true outcome."""

    event_id: str
    positive: bool
    at_ms: int
    placed: bool = False  # known to be on its event_id's partition (read from the repartition topic)


class Join:
    """Joins batches of one partition at a time, and keeps the rolling figures of each model."""

    def __init__(
        self,
        store: PendingStore,
        settings: Settings,
        metrics: OutcomeMetrics,
        report: Callable[[str, PerformanceTracker], None] | None = None,
        partitions: int | None = None,
    ) -> None:
        """``report`` is called with a model's tracker when a report is due: every ``outcome_window``
        joins of that model, and at once when its loss detector fires. With ``partitions``, an
        outcome that finds nothing waiting is checked to be on its event_id's murmur2 partition."""
        self.store, self.settings, self.metrics, self.report = store, settings, metrics, report
        self.partitions = partitions
        self.trackers: dict[str, PerformanceTracker] = {}
        self.counts = dict.fromkeys(COUNTS, 0)
        self.owned: set[int] = set()
        self._last_joined = 0  # joined_ms of the last join: kept strictly increasing, in join order
        self._counters = {w: metrics.outcomes.labels(w) for w in COUNTS if w != "expired_predictions"}
        self._counters["expired_predictions"] = metrics.expired

    def tracker(self, model: str) -> PerformanceTracker:
        if model not in self.trackers:
            self.trackers[model] = PerformanceTracker(window=self.settings.outcome_window)
        return self.trackers[model]

    def batch(
        self, items: Sequence[tuple[int, Predicted | Observed]]
    ) -> tuple[dict[int, list[Changed]], list[str], list[tuple[int, Observed]]]:
        """Join ``(partition, item)`` pairs in their order.

        Returns the keys changed per partition (for the changelog), the models joined, and the
        outcomes on another partition than their event_id's (not joined: to be moved there). An
        outcome whose prediction waits here is where it belongs: only the others are hashed."""
        now: dict[int, dict[str, Entry | None]] = {}  # partition -> event id -> entry
        for partition, item in items:
            held = now.get(partition)
            if held is None:
                held = now[partition] = {}
            held[item.event_id] = None
        get_many = self.store.get_many
        before = {p: dict(zip(held, get_many(p, list(held)), strict=True)) for p, held in now.items()}
        now = {p: held.copy() for p, held in before.items()}
        joined: list[str] = []
        moved: list[tuple[int, Observed]] = []
        counts = self.counts
        for partition, item in items:
            held = now[partition]
            event_id = item.event_id
            entry = held[event_id]
            if isinstance(item, Predicted):
                if entry is None:
                    held[event_id] = Entry(item.at_ms, item.model, item.sha256, item.score)
                elif entry.model is None:  # its outcome was waiting
                    stored, positive = entry.stored_ms, entry.positive
                    held[event_id] = Entry(
                        stored, item.model, item.sha256, item.score, positive, self._stamp(item)
                    )
                    counts["joined"] += 1
                    joined.append(self._joined(item.model, bool(positive), item.score))
                # else: the same prediction read again (at least once): nothing new
            elif entry is None:
                if self._misplaced(partition, item):
                    moved.append((partition, item))
                    continue
                held[event_id] = Entry(item.at_ms, positive=item.positive)
            elif entry.positive is not None:
                self.count("duplicate")
            else:  # its prediction was waiting
                model, score, positive = entry.model, entry.score, item.positive
                held[event_id] = Entry(
                    entry.stored_ms, model, entry.sha256, score, positive, self._stamp(item)
                )
                counts["joined"] += 1
                joined.append(self._joined(str(model), positive, score))
        if joined:
            self._counters["joined"].inc(len(joined))
        changes: dict[int, list[Change]] = {}
        for partition, held in now.items():
            was = before[partition]
            changed = [(i, was[i], e) for i, e in held.items() if e is not was[i]]  # replaced: changed
            if changed:
                changes[partition] = changed
        return (self.store.write_many(changes) if changes else {}), joined, moved

    def _misplaced(self, partition: int, item: Observed) -> bool:
        if self.partitions is None or item.placed:
            return False
        return partition_of(item.event_id.encode(), self.partitions) != partition

    def _stamp(self, item: Predicted | Observed) -> int:
        """The join's time (ms): its record's, or just after the last join's, so that the order of
        joins can be read back exactly (:meth:`rebuild`)."""
        self._last_joined = max(item.at_ms, self._last_joined + 1)
        return self._last_joined

    def _joined(self, model: str, positive: bool, score: float) -> str:
        """Add a join to its model's figures (the caller counts it); report when one is due."""
        tracker = self.trackers.get(model) or self.tracker(model)
        if tracker.add(positive, score):
            self.metrics.loss_alarms.labels(model).inc()
        if self.report is not None and (
            tracker.since_report >= self.settings.outcome_window or tracker.alarm
        ):
            self.report(model, tracker)
        return model

    def expire(self, partition: int, now_ms: int) -> list[Changed]:
        """Take out a batch of this partition's entries past retention or over the size bound.

        Counts what never joined; returns the changelog's tombstones for what was taken out.
        """
        keep = self.settings.outcome_max_pending // max(1, len(self.owned))
        horizon = now_ms - int(self.settings.outcome_retention_s * 1000)
        gone = self.store.expire(partition, horizon, keep)
        for _, entry in gone:
            if not entry.joined:
                self.count("expired_predictions" if entry.model is not None else "unmatched")
        return self.store.write(partition, [(i, e, None) for i, e in gone]) if gone else []

    def count(self, what: str, n: int = 1) -> None:
        """Count outcomes (or expired predictions) in the totals and the metrics."""
        self.counts[what] += n
        self._counters[what].inc(n)

    def waiting(self) -> int:
        """Entries held for the partitions owned now."""
        return sum(self.store.count(p) for p in self.owned)

    def rebuild(self, partitions: set[int]) -> int:
        """Own ``partitions``: rolling figures from their entries joined last; return their entries."""
        self.owned = set(partitions)
        window = self.settings.outcome_window
        recent = [self.store.recent_joined(p, window) for p in sorted(partitions)]
        merged = list(heapq.merge(*recent, key=lambda kv: kv[1].joined_ms))
        self._last_joined = max([self._last_joined, *(e.joined_ms for _, e in merged[-1:])])
        self.trackers = {}
        for _, entry in merged[-window:]:
            self.tracker(str(entry.model)).add(bool(entry.positive), entry.score)
        for tracker in self.trackers.values():
            tracker.report()  # replayed pairs are not new: no alarm, no report due
        return self.waiting()
