"""The card builder that ``model train`` and ``model import`` share: features, references, metrics.

- :func:`numeric_feature` and :func:`string_feature`: a feature's spec and its reference
  distribution (quantile bins and moments; a string feature's categories, most frequent first);
- :func:`binary_metrics`, :func:`multiclass_metrics`, :func:`regression_metrics`: holdout metrics
  computed with numpy alone;
- :func:`build` and :func:`write`: the card of a model file, written beside it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np

from stream.model_card import (
    Calibration,
    FeatureSpec,
    ModelCard,
    ModelInput,
    ModelOutput,
    ReferenceStats,
)

__all__ = [
    "BINS",
    "MAX_CATEGORIES",
    "binary_metrics",
    "build",
    "libraries",
    "multiclass_metrics",
    "next_version",
    "numeric_feature",
    "reference_stats",
    "regression_metrics",
    "sha256_bytes",
    "string_feature",
    "write",
]

BINS = 10
MAX_CATEGORIES = 1_000
"""A string feature's categories kept in its card; rarer ones are counted as unseen."""
CARD_FILE = "card.json"
_EPS = float(np.finfo(np.float64).eps)


def reference_stats(values: np.ndarray, categories: dict[str, float] | None = None) -> ReferenceStats:
    """Moments and quantile bins of ``values`` (and the fraction of each category, when given)."""
    values = np.asarray(values, dtype=np.float64)
    edges = np.unique(np.quantile(values, np.linspace(0, 1, BINS + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    return ReferenceStats(
        count=len(values),
        mean=float(values.mean()),
        std=float(values.std()),
        minimum=float(values.min()),
        maximum=float(values.max()),
        bin_edges=[float(e) for e in edges],
        bin_fractions=[float(c) / len(values) for c in counts],
        categories=categories,
    )


def numeric_feature(
    name: str,
    values: np.ndarray,
    integer: bool,
    codes: Sequence[int] | None = None,
    personal: bool = False,
) -> tuple[FeatureSpec, ReferenceStats]:
    """A number's spec and reference; ``codes``: the allowed codes of a categorical one."""
    values = np.asarray(values, dtype=np.float64)
    fractions = None
    if codes is not None:
        codes = [int(c) for c in codes]
        fractions = {str(c): float(np.mean(values == c)) for c in codes}
    spec = FeatureSpec(
        name=name,
        type="integer" if integer else "number",
        kind="categorical" if codes is not None else "numeric",
        personal=personal,
        values=codes,
        minimum=float(values.min()),
        maximum=float(values.max()),
    )
    return spec, reference_stats(values, fractions)


def string_feature(
    name: str, texts: np.ndarray, personal: bool = False
) -> tuple[FeatureSpec, ReferenceStats]:
    """A string's spec and reference: categories most frequent first (at most ``MAX_CATEGORIES``).

    A category's code is its index; the reference's statistics and bins are over the codes, the
    categories beyond the kept ones counting as unseen (code -1).
    """
    found, counts = np.unique(np.asarray(texts, dtype=np.str_), return_counts=True)
    order = np.lexsort((found, -counts))[:MAX_CATEGORIES]
    kept = [str(found[i]) for i in order]
    at = {c: i for i, c in enumerate(kept)}
    codes = np.array([at.get(str(t), -1) for t in texts], dtype=np.float64)
    total = len(texts)
    fractions = {str(found[i]): float(counts[i]) / total for i in order}
    spec = FeatureSpec(name=name, type="string", kind="categorical", personal=personal, categories=kept)
    return spec, reference_stats(codes, fractions)


def libraries(*names: str) -> dict[str, str]:
    """Versions of python, numpy, onnxruntime, streamscore and the other ``names`` installed."""
    found = {"python": platform.python_version()}
    for name in ("numpy", "onnxruntime", "streamscore", *names):
        try:
            found[name] = package_version(name)
        except PackageNotFoundError:
            continue
    return found


def roc_auc(positive: np.ndarray, scores: np.ndarray) -> float | None:
    """The area under the ROC curve (ties counted half); None when one class is missing."""
    positive = np.asarray(positive, dtype=bool)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ordered = np.asarray(scores)[order]
    first = np.r_[True, ordered[1:] != ordered[:-1]]
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], len(ordered)]
    ranks = np.empty(len(ordered), dtype=np.float64)
    ranks[order] = ((starts + ends + 1) / 2.0)[np.cumsum(first) - 1]  # each group of ties: its mean rank
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def binary_metrics(positive: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, ROC AUC, log loss and positive rate of positive-class probabilities ``scores``."""
    positive = np.asarray(positive, dtype=bool)
    p = np.clip(np.asarray(scores, dtype=np.float64), _EPS, 1 - _EPS)
    metrics = {"accuracy": float(np.mean((scores >= threshold) == positive))}
    auc = roc_auc(positive, scores)
    if auc is not None:
        metrics["roc_auc"] = auc
    metrics["log_loss"] = float(-np.mean(np.where(positive, np.log(p), np.log(1 - p))))
    metrics["positive_rate"] = float(positive.mean())
    return metrics


def multiclass_metrics(truth: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Accuracy and log loss; ``truth`` holds each row's class index (-1: not one of the classes)."""
    truth = np.asarray(truth, dtype=np.intp)
    rows = np.arange(len(truth))
    picked = np.where(truth >= 0, probabilities[rows, np.maximum(truth, 0)], 0.0)
    total = probabilities.sum(axis=1)
    p = np.clip(picked / np.where(total > 0, total, 1.0), _EPS, 1.0)
    return {
        "accuracy": float(np.mean(probabilities.argmax(axis=1) == truth)),
        "log_loss": float(-np.mean(np.log(p))),
    }


def regression_metrics(truth: np.ndarray, values: np.ndarray) -> dict[str, float]:
    """Mean absolute error, root mean squared error and R² (0 when the truth does not vary)."""
    truth, values = np.asarray(truth, dtype=np.float64), np.asarray(values, dtype=np.float64)
    error = values - truth
    spread = float(np.sum((truth - truth.mean()) ** 2))
    return {
        "mae": float(np.mean(np.abs(error))),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "r2": 1.0 - float(np.sum(error**2)) / spread if spread > 0 else 0.0,
    }


def build(
    *,
    name: str,
    version: str,
    description: str,
    sha256: str,
    inputs: list[ModelInput],
    features: list[tuple[FeatureSpec, ReferenceStats]],
    output: ModelOutput,
    scores: np.ndarray,
    training: dict[str, Any],
    metrics: dict[str, float],
    calibration: Calibration | None = None,
) -> ModelCard:
    """The card of a model: its features with their references, and the reference of its ``scores``."""
    specs = [spec for spec, _ in features]
    names = [s.name for s in specs]
    one_tensor = len(inputs) == 1 and inputs[0].type == "float" and inputs[0].features == names
    reference = {spec.name: stats for spec, stats in features} | {"score": reference_stats(scores)}
    return ModelCard(
        name=name,
        version=version,
        created_at=dt.datetime.now(dt.UTC),
        description=description,
        sha256=sha256,
        input_tensor=inputs[0].name if one_tensor else None,
        inputs=inputs,
        features=specs,
        output=output,
        training=training,
        metrics=metrics,
        reference=reference,
        calibration=calibration,
    )


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def next_version(registry: Path, name: str) -> str:
    """One more than the highest numbered version of ``name`` in the folder ``registry`` (1 for the first)."""
    folder = registry / name
    numbers = [int(p.name) for p in folder.iterdir() if p.name.isdigit()] if folder.is_dir() else []
    return str(max(numbers, default=0) + 1)


def write(folder: Path, card: ModelCard) -> Path:
    """Write ``card`` as ``folder/card.json``."""
    path = folder / CARD_FILE
    path.write_text(json.dumps(card.model_dump(mode="json", exclude_none=False), indent=2) + "\n")
    return path
