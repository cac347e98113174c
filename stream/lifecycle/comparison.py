"""Two models compared on the same events (paired), with a verdict that repeated looks cannot fool.

For each event both models scored and whose outcome is known, the champion's and the challenger's
scores are a pair. Over the pairs (the last ``limit``):

- **log loss**: the difference (challenger minus champion) of the mean per-event log loss, with a
  confidence interval from the paired differences (their mean and standard error: the per-event
  differences share the event's noise, so pairing removes most of it);
- **ROC AUC**: the difference with DeLong's paired variance (DeLong, DeLong & Clarke-Pearson 1988,
  in Sun & Xu's fast form), which accounts for both AUCs being measured on the same events;
- accuracy at each model's threshold and the expected calibration error (10 bins) of each.

The **verdict** is read from the log loss, a proper scoring rule: ``challenger better`` when the
whole interval lies below zero, ``challenger worse`` above it, else ``not yet known``. A report is
made every window, so the same question is asked again and again; the k-th look uses the level
``alpha * 6 / (pi^2 k^2)`` (the levels sum to ``alpha``), so the chance of any false verdict over
every look of a comparison stays below ``alpha`` (1%). Identical scores give a zero-width interval
at zero: ``not yet known``, whatever the number of outcomes.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Literal

import numpy as np

from stream.drift.performance import calibration_error

__all__ = ["Comparison", "Paired", "delong", "verdict_level"]

Verdict = Literal["challenger better", "challenger worse", "not yet known"]
_CLIP = 1e-15


def verdict_level(look: int, alpha: float = 0.01) -> float:
    """The level of the ``look``-th test (1-based): the levels of all looks sum to ``alpha``."""
    return alpha * 6.0 / (math.pi**2 * look**2)


def _z(level: float) -> float:
    return NormalDist().inv_cdf(1.0 - level / 2.0)


def _midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse]


def delong(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """ROC AUC of scores ``a`` and ``b`` on labels ``y``, and the variance of ``auc(b) - auc(a)``."""
    pos, neg = y.astype(bool), ~y.astype(bool)
    m, n = int(pos.sum()), int(neg.sum())
    aucs, v10, v01 = [], [], []
    for s in (a, b):
        tx, ty, tz = _midranks(s[pos]), _midranks(s[neg]), _midranks(np.concatenate([s[pos], s[neg]]))
        aucs.append(float((tz[:m].sum() - m * (m + 1) / 2) / (m * n)))
        v10.append((tz[:m] - tx) / n)  # per positive: share of negatives below it
        v01.append(1.0 - (tz[m:] - ty) / m)  # per negative: share of positives above it
    s10, s01 = np.cov(np.vstack(v10)), np.cov(np.vstack(v01))
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / n
    return aucs[0], aucs[1], float(max(var, 0.0))


@dataclass
class Comparison:
    """The figures of one look at a champion and a challenger."""

    pairs: int
    look: int
    level: float  # of this look's intervals
    log_loss: dict[str, float]  # role -> mean log loss
    log_loss_difference: float  # challenger - champion: below 0 is better
    log_loss_interval: tuple[float, float]
    roc_auc: dict[str, float | None]
    roc_auc_difference: float | None  # challenger - champion: above 0 is better
    roc_auc_interval: tuple[float, float] | None
    accuracy: dict[str, float]
    calibration_error: dict[str, float]
    verdict: Verdict


@dataclass
class Paired:
    """Pairs (outcome, champion score, challenger score) of one champion and one challenger."""

    champion_threshold: float = 0.5
    challenger_threshold: float = 0.5
    limit: int = 100_000
    alpha: float = 0.01
    _pairs: deque[tuple[bool, float, float]] = field(init=False)
    looks: int = field(init=False, default=0)
    since_look: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._pairs = deque(maxlen=self.limit)

    def add(self, positive: bool, champion: float, challenger: float) -> None:
        self._pairs.append((positive, champion, challenger))
        self.since_look += 1

    def __len__(self) -> int:
        return len(self._pairs)

    def look(self) -> Comparison:
        """Compare the two models over the pairs held (a new look: a stricter level than the last)."""
        self.looks += 1
        self.since_look = 0
        level = verdict_level(self.looks, self.alpha)
        data = np.array(self._pairs, dtype=float).reshape(-1, 3)
        y, a, b = data[:, 0] > 0.5, data[:, 1], data[:, 2]
        loss_a, loss_b = _log_loss(y, a), _log_loss(y, b)
        d = loss_b - loss_a
        mean = float(d.mean()) if len(d) else 0.0
        se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.inf
        z = _z(level)
        interval = (mean - z * se, mean + z * se) if math.isfinite(se) else (-math.inf, math.inf)
        verdict: Verdict = "not yet known"
        if len(d) > 1 and se > 0:
            verdict = (
                "challenger better" if interval[1] < 0 else "challenger worse" if interval[0] > 0 else verdict
            )
        auc: dict[str, float | None] = {"champion": None, "challenger": None}
        auc_diff, auc_interval = None, None
        if 0 < y.sum() < len(y):
            auc_a, auc_b, var = delong(y, a, b)
            auc = {"champion": round(auc_a, 4), "challenger": round(auc_b, 4)}
            auc_diff = round(auc_b - auc_a, 4)
            half = z * math.sqrt(var)
            auc_interval = (round(auc_b - auc_a - half, 4), round(auc_b - auc_a + half, 4))
        return Comparison(
            pairs=len(d),
            look=self.looks,
            level=level,
            log_loss={
                "champion": round(float(loss_a.mean()), 4),
                "challenger": round(float(loss_b.mean()), 4),
            }
            if len(d)
            else {"champion": 0.0, "challenger": 0.0},
            log_loss_difference=round(mean, 5),
            log_loss_interval=(round(interval[0], 5), round(interval[1], 5)),
            roc_auc=auc,
            roc_auc_difference=auc_diff,
            roc_auc_interval=auc_interval,
            accuracy={
                "champion": round(float(((a >= self.champion_threshold) == y).mean()), 4) if len(y) else 0.0,
                "challenger": round(float(((b >= self.challenger_threshold) == y).mean()), 4)
                if len(y)
                else 0.0,
            },
            calibration_error={
                "champion": round(calibration_error(y, a), 4),
                "challenger": round(calibration_error(y, b), 4),
            },
            verdict=verdict,
        )


def _log_loss(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    p = np.clip(s, _CLIP, 1 - _CLIP)
    return -np.where(y, np.log(p), np.log(1 - p))
