"""Model performance on true outcomes: exact figures over a rolling window, and a detector on the loss.

Each joined (outcome, score) pair goes into a window of the last ``window`` pairs (two numpy ring
buffers) and its log loss into ADWIN, which watches a bounded, noisy stream for a change of its
mean without a guess of the change's size: what performance decay looks like. The figures are
computed from the window when they are read (a report, every ``window`` pairs at most): accuracy,
ROC AUC (Mann-Whitney, ties counted half, as River's ``RollingROCAUC``), log loss (scores clipped
to [1e-15, 1 - 1e-15], as River's ``LogLoss``), and the expected calibration error over ten
equal-width score bins. So a pair costs an append and an ADWIN update (about 1 µs), and a report
O(window log window); the figures equal River's rolling metrics over the same pairs (a test checks).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from stream.drift.detectors import ADWIN

_CLIP = 1e-15


@dataclass
class Performance:
    """The rolling figures of one model version."""

    outcomes: int
    accuracy: float
    roc_auc: float | None
    log_loss: float
    calibration_error: float
    loss_alarm: bool


@dataclass
class PerformanceTracker:
    """Rolling metrics of one model version on joined outcomes."""

    threshold: float = 0.5
    window: int = 1_000
    _positive: np.ndarray = field(init=False)
    _score: np.ndarray = field(init=False)
    _added: int = field(init=False, default=0)
    _loss_detector: ADWIN = field(init=False)
    _alarm: bool = field(init=False, default=False)
    since_report: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._positive = np.zeros(self.window, dtype=bool)
        self._score = np.zeros(self.window, dtype=np.float64)
        self._loss_detector = ADWIN(delta=0.002)

    def add(self, positive: bool, score: float) -> bool:
        """Add one outcome and the score it judges; True when the loss detector fires."""
        at = self._added % self.window
        self._positive[at], self._score[at] = positive, score
        self._added += 1
        self.since_report += 1
        p = min(max(score, _CLIP), 1 - _CLIP)
        detector = self._loss_detector
        detector.update(-math.log(p if positive else 1 - p))
        fired = detector.drift_detected and self._loss_mean_rose()
        self._alarm |= fired
        return fired

    def _pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """The window's outcomes and scores, oldest first."""
        if self._added <= self.window:
            return self._positive[: self._added], self._score[: self._added]
        at = self._added % self.window
        return np.roll(self._positive, -at), np.roll(self._score, -at)

    def _loss_mean_rose(self) -> bool:
        """ADWIN fires on any change; only a rise of the loss is decay."""
        y, s = self._pairs()
        recent = max(30, self.window // 10)
        return log_loss(y[-recent:], s[-recent:]) > log_loss(y, s)

    @property
    def alarm(self) -> bool:
        """The loss detector fired since the last report."""
        return self._alarm

    def report(self) -> Performance:
        """The figures over the window; resets the alarm and the count since the last report."""
        out = self.figures()
        self._alarm = False
        self.since_report = 0
        return out

    def figures(self) -> Performance:
        """The figures over the window, leaving the alarm and the report count as they are."""
        y, s = self._pairs()
        n = len(y)
        auc = roc_auc(y, s)
        return Performance(
            outcomes=n,
            accuracy=round(float(np.mean((s >= self.threshold) == y)), 4) if n else 0.0,
            roc_auc=None if auc is None else round(auc, 4),
            log_loss=round(log_loss(y, s), 4),
            calibration_error=round(calibration_error(y, s), 4),
            loss_alarm=self._alarm,
        )


def log_loss(y: np.ndarray, s: np.ndarray) -> float:
    """Mean log loss of scores ``s`` for outcomes ``y`` (0 for none)."""
    if not len(y):
        return 0.0
    p = np.clip(s, _CLIP, 1 - _CLIP)
    return float(-np.where(y, np.log(p), np.log1p(-p)).mean())


def roc_auc(y: np.ndarray, s: np.ndarray) -> float | None:
    """The area under the ROC curve (Mann-Whitney U over the ranks, ties half); None with one class."""
    positives = int(np.count_nonzero(y))
    negatives = len(y) - positives
    if not positives or not negatives:
        return None
    order = np.argsort(s, kind="stable")
    ranked = s[order]
    ranks = np.empty(len(s), dtype=np.float64)
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    ends = np.r_[starts[1:], len(s)]
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)  # average rank of each tie group
    u = ranks[y].sum() - positives * (positives + 1) / 2.0
    return float(u / (positives * negatives))


def calibration_error(
    y: np.ndarray | Sequence[bool], s: np.ndarray | Sequence[float], bins: int = 10
) -> float:
    """Expected calibration error: the count-weighted gap between mean score and positive rate per bin."""
    y, s = np.asarray(y, dtype=float), np.asarray(s, dtype=float)
    if not len(y):
        return 0.0
    which = np.minimum((s * bins).astype(int), bins - 1)
    counts = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, s, bins) - np.bincount(which, y, bins))
    return float(gap.sum() / counts.sum())
