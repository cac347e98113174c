"""The calibration of a binary classifier's score, fitted on its labelled reference (numpy alone).

The expected calibration error (ECE: ten equal-width score bins, the count-weighted gap between
mean score and positive rate) of the raw scores is compared with that of two calibrations, each
judged cross-fitted (two halves, each calibrated by a fit on the other, so that a flexible fit gets
no credit for memorising the reference): isotonic regression (pool-adjacent-violators, monotone)
and Platt scaling (a logistic regression on the score's logit). Isotonic is kept when it lowers the
error, else Platt when it does, else the identity (Platt with slope 1 and intercept 0). The chosen
method is then fitted on every row. The card also keeps the reliability diagram of the raw scores
and the realised figures at the threshold: what an estimate on unlabelled windows is compared with.
"""

from __future__ import annotations

import numpy as np

from stream.drift.estimation import calibrated
from stream.drift.performance import calibration_error, roc_auc
from stream.model_card import Calibration, ReliabilityBin

RELIABILITY_BINS = 10
DEFAULT_MARGIN = 0.05
_SEED = 0


def reliability(positive: np.ndarray, scores: np.ndarray) -> list[ReliabilityBin]:
    """The reliability diagram of ``scores``: per non-empty equal-width bin, mean score and positive rate."""
    which = np.minimum((scores * RELIABILITY_BINS).astype(int), RELIABILITY_BINS - 1)
    counts = np.bincount(which, minlength=RELIABILITY_BINS)
    sums = np.bincount(which, scores, RELIABILITY_BINS)
    hits = np.bincount(which, positive.astype(float), RELIABILITY_BINS)
    return [
        ReliabilityBin(
            lower=b / RELIABILITY_BINS,
            upper=(b + 1) / RELIABILITY_BINS,
            score=float(sums[b] / counts[b]),
            positive_rate=float(hits[b] / counts[b]),
            count=int(counts[b]),
        )
        for b in np.flatnonzero(counts).tolist()
    ]


def isotonic(scores: np.ndarray, positive: np.ndarray) -> tuple[list[float], list[float]]:
    """The non-decreasing fit of ``positive`` on ``scores`` (pool adjacent violators): knots for np.interp."""
    xs, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    hits = np.bincount(inverse, positive.astype(float), len(xs))
    values: list[float] = []
    weights: list[float] = []
    first: list[int] = []  # index into xs of each block's first value
    for i, (h, c) in enumerate(zip(hits.tolist(), counts.tolist(), strict=True)):
        values.append(h / c)
        weights.append(c)
        first.append(i)
        while len(values) > 1 and values[-2] >= values[-1]:
            v, w = values.pop(), weights.pop()
            first.pop()
            values[-1] = (values[-1] * weights[-1] + v * w) / (weights[-1] + w)
            weights[-1] += w
    lasts = [*first[1:], len(xs)]
    knots_x: list[float] = []
    knots_y: list[float] = []
    for start, end, value in zip(first, lasts, values, strict=True):
        for x in dict.fromkeys((float(xs[start]), float(xs[end - 1]))):
            knots_x.append(x)
            knots_y.append(value)
    return knots_x, knots_y


def platt(scores: np.ndarray, positive: np.ndarray, steps: int = 50) -> tuple[float, float]:
    """Slope and intercept of the logistic regression of ``positive`` on the logit of ``scores`` (Newton)."""
    s = np.clip(scores, 1e-12, 1 - 1e-12)
    design = np.column_stack([np.log(s / (1 - s)), np.ones(len(s))])
    y = positive.astype(float)
    w = np.array([1.0, 0.0])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(design @ w)))
        gradient = design.T @ (p - y)
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if float(np.abs(step).max()) < 1e-10:
            break
    return float(w[0]), float(w[1])


def _fitted(method: str, scores: np.ndarray, positive: np.ndarray) -> Calibration:
    """A bare calibration of ``method`` fitted on the rows (figures left empty)."""
    empty = {"error_before": 0.0, "error_after": 0.0, "bins": [], "reference": {}, "rows": len(scores)}
    if method == "isotonic":
        knots, probabilities = isotonic(scores, positive)
        return Calibration(method="isotonic", scores=knots, probabilities=probabilities, **empty)
    slope, intercept = platt(scores, positive) if method == "platt" else (1.0, 0.0)
    return Calibration(method="platt", slope=slope, intercept=intercept, **empty)


def _cross_fitted_error(method: str, scores: np.ndarray, positive: np.ndarray) -> float:
    """ECE of ``method``'s calibrated scores, each half calibrated by a fit on the other half."""
    half = np.random.default_rng(_SEED).permutation(len(scores)) % 2 == 0
    out = np.empty(len(scores))
    for fold in (half, ~half):
        fit = _fitted(method, scores[~fold], positive[~fold])
        out[fold] = calibrated(fit, scores[fold])
    return calibration_error(positive, out)


def realised(positive: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Accuracy, precision, recall, F1 and ROC AUC of ``scores`` at ``threshold`` (those defined)."""
    predicted = scores >= threshold
    tp = int(np.count_nonzero(predicted & positive))
    out = {"accuracy": float(np.mean(predicted == positive))}
    if predicted.any():
        out["precision"] = tp / int(np.count_nonzero(predicted))
    if positive.any():
        out["recall"] = tp / int(np.count_nonzero(positive))
        out["f1"] = 2 * tp / (int(np.count_nonzero(predicted)) + int(np.count_nonzero(positive)))
    auc = roc_auc(positive, scores)
    if auc is not None:
        out["roc_auc"] = auc
    return out


def fit(
    positive: np.ndarray, scores: np.ndarray, threshold: float, margin: float = DEFAULT_MARGIN
) -> Calibration | None:
    """The calibration of ``scores`` on the labelled reference; None without both classes."""
    positive = np.asarray(positive, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) < 2 or positive.all() or not positive.any():
        return None
    before = calibration_error(positive, scores)
    method, after = "identity", before
    for candidate in ("isotonic", "platt"):
        error = _cross_fitted_error(candidate, scores, positive)
        if error < before:
            method, after = candidate, error
            break
    return _fitted(method, scores, positive).model_copy(
        update={
            "error_before": before,
            "error_after": after,
            "bins": reliability(positive, scores),
            "reference": realised(positive, scores, threshold),
            "margin": margin,
        }
    )
