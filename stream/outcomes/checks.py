"""One estimated drift window checked on its outcomes: the report's part read, its pairs, its figures.

:class:`Check` holds the pairs (a live prediction joined with its outcome) of one ``window`` drift
report that carries ``estimated``: those of its model whose input offset falls in the report's
``offsets``, each offset once. :func:`check_report` puts each estimate beside the figure realised on
them (:func:`realised`, at the report's threshold) in an :class:`~stream.contracts.EstimateCheckReport`.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import numpy as np
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from stream.drift.performance import roc_auc
from stream.reports import CheckedWindow, EstimateCheckReport, MetricCheck, OffsetRange

__all__ = ["METRICS", "Check", "Pair", "WindowEstimate", "check_report", "log_check", "realised"]

log = logging.getLogger("streamscore.outcomes")
METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")


class Estimated(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    value: float
    lower: float
    upper: float


class WindowEstimate(BaseModel):
    """The part of a ``window`` drift report the check reads (one without ``estimated`` is not one)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    kind: Literal["window"]
    model_name: str
    model_version: str
    worker_id: str
    events: int = Field(ge=0)
    window_start: AwareDatetime
    window_end: AwareDatetime
    offsets: dict[str, OffsetRange]
    estimated: dict[str, Estimated]
    estimate_threshold: float = Field(0.5, ge=0.0, le=1.0)  # the card's threshold, when the report says


class Pair(NamedTuple):
    """A live prediction joined with its outcome: model, input ``topic[partition]``, offset."""

    model: str  # name/version
    where: str
    offset: int
    score: float
    positive: bool


@dataclass
class Check:
    """One estimated window waiting for its outcomes."""

    window: WindowEstimate
    model: str
    due: float  # monotonic time at which it is published whatever it holds
    seen: set[tuple[str, int]] = field(default_factory=set)
    scores: list[float] = field(default_factory=list)
    positives: list[bool] = field(default_factory=list)

    def take(self, pair: Pair) -> bool:
        """Count ``pair`` when it is one of this window's events (each offset once)."""
        if pair.model != self.model:
            return False
        span = self.window.offsets.get(pair.where)
        if span is None or not span.first <= pair.offset <= span.last:
            return False
        key = (pair.where, pair.offset)
        if key in self.seen:
            return False
        self.seen.add(key)
        self.scores.append(pair.score)
        self.positives.append(pair.positive)
        return True

    @property
    def complete(self) -> bool:
        return len(self.seen) >= self.window.events


def realised(positives: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float | None]:
    """Accuracy, precision, recall, F1 and ROC AUC of ``scores`` at ``threshold`` (None where undefined)."""
    y, predicted = positives.astype(bool), scores >= threshold
    tp = int(np.count_nonzero(predicted & y))
    fp = int(np.count_nonzero(predicted & ~y))
    fn = int(np.count_nonzero(~predicted & y))
    n = len(y)

    def ratio(a: int, b: int) -> float | None:
        return a / b if b else None

    return {
        "accuracy": ratio(n - fp - fn, n),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "roc_auc": roc_auc(y, scores.astype(np.float64)),
    }


def check_report(check: Check, worker_id: str, complete: bool) -> EstimateCheckReport:
    """The check of ``check``'s window: each estimate, its interval, the realised figure, the error."""
    w = check.window
    figures = realised(np.array(check.positives, bool), np.array(check.scores), w.estimate_threshold)
    metrics = {}
    for metric in METRICS:
        estimate = w.estimated.get(metric)
        if estimate is None:
            continue
        value = figures[metric]
        metrics[metric] = MetricCheck(
            estimate=estimate.value,
            interval=(estimate.lower, estimate.upper),
            realised=value,
            error=None if value is None else estimate.value - value,
            inside=None if value is None else estimate.lower <= value <= estimate.upper,
        )
    return EstimateCheckReport(
        model_name=w.model_name,
        model_version=w.model_version,
        worker_id=worker_id,
        at=dt.datetime.now(dt.UTC),
        window=CheckedWindow(
            worker_id=w.worker_id, window_start=w.window_start, window_end=w.window_end, offsets=w.offsets
        ),
        events=w.events,
        outcomes=len(check.seen),
        complete=complete,
        threshold=w.estimate_threshold,
        metrics=metrics,
    )


def log_check(model: str, report: EstimateCheckReport) -> None:
    """One line: the window, its outcomes, and each estimate beside its realised figure."""

    def one(metric: str, m: MetricCheck) -> str:
        seen = "n/a" if m.realised is None else f"{m.realised:.3f}" + ("" if m.inside else " (outside)")
        return f"{metric} {m.estimate:.3f} [{m.interval[0]:.3f}, {m.interval[1]:.3f}] realised {seen}"

    log.info(
        "estimate check of %s, window to %s: %d of %d events with outcomes%s: %s",
        model, report.window.window_end.isoformat(timespec="seconds"), report.outcomes, report.events,
        "" if report.complete else " (not all in)",
        "; ".join(one(k, m) for k, m in report.metrics.items()),
        extra={"estimate_check": {k: m.error for k, m in report.metrics.items()}, "model": model},
    )  # fmt: skip
