"""Performance estimated without labels (confidence-based, as NannyML's CBPE), from scores alone.

A calibrated score is the probability its event is positive, so over a window the expected counts
of the confusion matrix are sums of those probabilities: TP = sum p over predicted positives (raw
score at or above the card's threshold), FP = sum (1 - p) there, FN and TN likewise below it.
Accuracy, precision, recall and F1 follow from them, and ROC AUC from the curve of the expected
rates, TPR = cumsum p / sum p and FPR = cumsum (1 - p) / sum (1 - p), scores from high to low.

Each scored batch becomes per event a bin of a fine histogram of raw scores (:data:`BINS` equal
bins of [0, 1], the threshold an edge) and the stats (1, p, p^2); a window's estimate adds them up
per bin (events of a bin are ties for ROC AUC: counted half). The estimates are exact sums, so they
equal CBPE's for accuracy, precision, recall and F1; ROC AUC differs by the binning only.

The interval of each estimate is where the **realised** figure of the window falls 95% of the time
if the calibration holds: each label Bernoulli(p), so the realised positives above and below the
threshold have variances sum p(1 - p) there; the ratios' variances by the delta method; ROC AUC's
by Hanley and McNeil (1982) with the expected class counts. It does not cover a calibration that
no longer holds (a change of concept, which scores alone cannot show).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stream.model_card import Calibration, ModelCard

BINS = 1_000
METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
Z95 = 1.959964
Chunk = tuple[np.ndarray, np.ndarray]
"""Events' bins (int) and their stats, rows (count, sum p, sum p^2): per event, or per bin when saved."""


def calibrated(calibration: Calibration, scores: np.ndarray) -> np.ndarray:
    """The calibrated probabilities of raw ``scores`` (float64)."""
    s = np.asarray(scores, dtype=np.float64)
    if calibration.method == "isotonic":
        return np.interp(s, calibration.scores, calibration.probabilities)
    clipped = np.clip(s, 1e-12, 1 - 1e-12)
    margin = (calibration.slope or 0.0) * np.log(clipped / (1 - clipped)) + (calibration.intercept or 0.0)
    return 1.0 / (1.0 + np.exp(-margin))


@dataclass(frozen=True)
class Interval:
    """An estimate and its 95% interval."""

    value: float
    lower: float
    upper: float


def _interval(value: float, variance: float) -> Interval:
    half = Z95 * math.sqrt(max(variance, 0.0))
    return Interval(value, max(0.0, value - half), min(1.0, value + half))


@dataclass(frozen=True)
class Estimate:
    """A window's estimated figures (a metric undefined on the window is left out)."""

    events: int
    metrics: dict[str, Interval]

    def below(self, reference: dict[str, float], margin: float) -> list[str]:
        """The metrics whose estimate falls below their reference figure by more than ``margin``."""
        return [m for m, i in self.metrics.items() if m in reference and i.value < reference[m] - margin]


class Estimator:
    """Per-event bins and stats of scored batches, and the estimate of a window of them."""

    def __init__(self, calibration: Calibration, threshold: float, bins: int = BINS) -> None:
        self.calibration, self.threshold = calibration, threshold
        self.edges = np.unique(np.append(np.linspace(0.0, 1.0, bins + 1), threshold))
        self.size = len(self.edges)  # the last bin holds scores of 1 and above
        self.positive_from = int(np.searchsorted(self.edges, threshold))  # first predicted-positive bin

    @classmethod
    def of(cls, card: ModelCard) -> Estimator | None:
        """The estimator of a card with a calibration, else None."""
        if card.calibration is None or card.output.task != "binary":
            return None
        return cls(card.calibration, card.output.threshold)

    def chunks(self, scores: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> list[Chunk]:
        """The chunk of each run ``starts[i]:ends[i]`` of a batch's raw ``scores``."""
        p = calibrated(self.calibration, scores)
        bins = np.searchsorted(self.edges, scores, side="right") - 1
        np.clip(bins, 0, self.size - 1, out=bins)
        stats = np.empty((len(p), 3))
        stats[:, 0], stats[:, 1] = 1.0, p
        np.multiply(p, p, out=stats[:, 2])
        return [(bins[a:b], stats[a:b]) for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]

    def totals(self, chunks: list[Chunk]) -> np.ndarray:
        """Per bin the (count, sum p, sum p^2) of ``chunks``: shape [size, 3]."""
        if not chunks:
            return np.zeros((self.size, 3))
        bins = np.concatenate([c[0] for c in chunks])
        stats = np.concatenate([c[1] for c in chunks])
        return np.column_stack([np.bincount(bins, stats[:, j], minlength=self.size) for j in range(3)])

    def sparse(self, chunks: list[Chunk]) -> Chunk:
        """``chunks`` added up per bin: the non-empty bins, ascending, and their stats."""
        totals = self.totals(chunks)
        nonzero = np.flatnonzero(totals[:, 0])
        return nonzero, totals[nonzero]

    def estimate(self, chunks: list[Chunk]) -> Estimate:
        """The estimated figures of the events of ``chunks``."""
        return estimate_of(self.totals(chunks), self.positive_from)


def estimate_of(totals: np.ndarray, positive_from: int) -> Estimate:
    """The estimate of per-bin stats ``totals`` ([bins, 3], ascending scores); bins from
    ``positive_from`` on are predicted positive."""
    n, p, pp = totals[:, 0], totals[:, 1], totals[:, 2]
    var = p - pp  # sum of p(1 - p): the variance of the realised positives of a bin
    n_pos, n_all = float(n[positive_from:].sum()), float(n.sum())
    tp, fn = float(p[positive_from:].sum()), float(p[:positive_from].sum())
    v_pos, v_neg = float(var[positive_from:].sum()), float(var[:positive_from].sum())
    tn = (n_all - n_pos) - fn  # FP = n_pos - tp
    out: dict[str, Interval] = {}
    if n_all > 0:
        out["accuracy"] = _interval((tp + tn) / n_all, (v_pos + v_neg) / n_all**2)
    if n_pos > 0:
        out["precision"] = _interval(tp / n_pos, v_pos / n_pos**2)
    if tp + fn > 0:
        positives = tp + fn
        out["recall"] = _interval(tp / positives, (fn**2 * v_pos + tp**2 * v_neg) / positives**4)
        d = n_pos + positives
        out["f1"] = _interval(2 * tp / d, 4 * ((n_pos + fn) ** 2 * v_pos + tp**2 * v_neg) / d**4)
    negatives = n_all - tp - fn
    if tp + fn > 0 and negatives > 0:
        out["roc_auc"] = _auc(n[::-1], p[::-1], tp + fn, negatives)
    return Estimate(round(n_all), {m: out[m] for m in METRICS if m in out})


def _auc(n: np.ndarray, p: np.ndarray, positives: float, negatives: float) -> Interval:
    """ROC AUC of bins from the highest scores down (a bin's events are ties), with Hanley-McNeil's
    standard error for the expected class counts."""
    tpr = np.concatenate([[0.0], np.cumsum(p) / positives])
    fpr = np.concatenate([[0.0], np.cumsum(n - p) / negatives])
    a = float(np.sum((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1])) / 2)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (positives - 1) * (q1 - a * a) + (negatives - 1) * (q2 - a * a)) / (
        positives * negatives
    )
    return _interval(a, var)
