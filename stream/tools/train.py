"""``streamscore model train``: train, export to ONNX, check, and register a model with its card.

Gradient-boosted trees from scikit-learn on generated loan applications with a fixed seed,
exported with skl2onnx without the ZipMap label dictionary. The ONNX model must reproduce
scikit-learn's probabilities on the holdout within ``TOLERANCE`` or nothing is registered.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import platform
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np

from stream.contracts import FeatureSpec, ModelCard, ModelOutput, ReferenceStats
from stream.errors import ModelError
from stream.scoring.model import CARD_FILE, MODEL_FILE, load, sha256_file, versions
from stream.tools import datagen

TOLERANCE = 1e-5
INPUT_TENSOR = "features"
OUTPUT_TENSOR = "probabilities"
BINS = 10


def _reference(values: np.ndarray, categories: list[int] | None = None) -> ReferenceStats:
    values = values.astype(np.float64)
    edges = np.unique(np.quantile(values, np.linspace(0, 1, BINS + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    cats = None
    if categories is not None:
        cats = {str(c): float(np.mean(values == c)) for c in categories}
    return ReferenceStats(
        count=len(values),
        mean=float(values.mean()),
        std=float(values.std()),
        minimum=float(values.min()),
        maximum=float(values.max()),
        bin_edges=[float(e) for e in edges],
        bin_fractions=[float(c) / len(values) for c in counts],
        categories=cats,
    )


def _import_training_libraries() -> None:
    """Import the ``train`` extra's libraries first: without them, fail before any work."""
    import skl2onnx.common.data_types  # noqa: F401
    import sklearn.ensemble
    import sklearn.metrics  # noqa: F401


def _next_version(registry: Path, name: str) -> str:
    """One more than the highest numbered version of ``name`` (1 for the first)."""
    return str(max((int(v) for v in versions(registry, name) if v.isdigit()), default=0) + 1)


def _dataset(samples: int, seed: int, drifted: bool) -> tuple[np.ndarray, np.ndarray]:
    """``samples`` generated applications: their features and labels."""
    stream = datagen.applications(seed, drift_at=0) if drifted else datagen.applications(seed)
    pairs = list(itertools.islice(stream, samples))
    x = np.array([[row[f] for f in datagen.FEATURES] for row, _ in pairs], dtype=np.float32)
    y = np.array([label for _, label in pairs], dtype=np.int64)
    return x, y


def _fit(x_train: np.ndarray, y_train: np.ndarray, trees: int, depth: int, seed: int) -> Any:
    """Gradient-boosted trees fitted on the training rows."""
    from sklearn.ensemble import GradientBoostingClassifier

    clf = GradientBoostingClassifier(n_estimators=trees, max_depth=depth, random_state=seed)
    clf.fit(x_train, y_train)
    return clf


def _export_onnx(clf: Any) -> bytes:
    """``clf`` as an ONNX model, without the ZipMap label dictionary."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    onx = convert_sklearn(
        clf,
        initial_types=[(INPUT_TENSOR, FloatTensorType([None, len(datagen.FEATURES)]))],
        options={id(clf): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    return onx.SerializeToString()  # type: ignore[no-any-return]


def _feature_specs(x: np.ndarray) -> list[FeatureSpec]:
    """The card's features, with the range seen in ``x``."""
    return [
        FeatureSpec(
            name=f,
            type="integer" if f in datagen.INTEGER else "number",
            kind="categorical" if f in datagen.CATEGORICAL else "numeric",
            personal=f in datagen.PERSONAL,
            values=datagen.CATEGORICAL.get(f),
            minimum=float(x[:, i].min()),
            maximum=float(x[:, i].max()),
        )
        for i, f in enumerate(datagen.FEATURES)
    ]


def _training(
    x: np.ndarray, y: np.ndarray, samples: int, split: int, seed: int, trees: int, depth: int, drifted: bool
) -> dict[str, Any]:
    """How the model was trained: generator, data, estimator and library versions."""
    return {
        "generator": "river.datasets.synth.Agrawal",
        "classification_function": datagen.DRIFTED_FUNCTION if drifted else datagen.CLASSIFICATION_FUNCTION,
        "perturbation": datagen.PERTURBATION,
        "seed": seed,
        "samples": samples,
        "train_rows": split,
        "holdout_rows": samples - split,
        "data_sha256": hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest(),
        "estimator": f"sklearn.ensemble.GradientBoostingClassifier(n_estimators={trees}, "
        f"max_depth={depth}, random_state={seed})",
        "libraries": {
            p: package_version(p) for p in ("scikit-learn", "skl2onnx", "onnx", "onnxruntime", "river")
        }
        | {"python": platform.python_version()},
    }


def _holdout_metrics(y_test: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Accuracy, ROC AUC, log loss and positive rate of ``scores`` on the holdout."""
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    return {
        "accuracy": float(accuracy_score(y_test, scores >= 0.5)),
        "roc_auc": float(roc_auc_score(y_test, scores)),
        "log_loss": float(log_loss(y_test, scores)),
        "positive_rate": float(y_test.mean()),
    }


def _write_card(
    folder: Path,
    name: str,
    version: str,
    trees: int,
    depth: int,
    features: list[FeatureSpec],
    reference: dict[str, ReferenceStats],
    training: dict[str, Any],
    metrics: dict[str, float],
) -> None:
    """Write the card of the model in ``folder``."""
    card = ModelCard(
        name=name,
        version=version,
        created_at=dt.datetime.now(dt.UTC),
        description=f"Loan approval: gradient-boosted trees ({trees} trees, depth {depth}).",
        sha256=sha256_file(folder / MODEL_FILE),
        input_tensor=INPUT_TENSOR,
        features=features,
        output=ModelOutput(
            tensor=OUTPUT_TENSOR, positive_label=datagen.POSITIVE, negative_label=datagen.NEGATIVE
        ),
        training=training,
        metrics=metrics,
        reference=reference,
    )
    (folder / CARD_FILE).write_text(json.dumps(card.model_dump(mode="json"), indent=2) + "\n")


def _check_onnx(registry: Path, name: str, version: str, x_test: np.ndarray, sk_scores: np.ndarray) -> None:
    """Unregister the version unless its ONNX model gives scikit-learn's scores within ``TOLERANCE``."""
    folder = registry / name / version
    try:
        onnx_scores = load(registry, name, version).predict_proba(x_test)
        gap = float(np.max(np.abs(onnx_scores - sk_scores)))
        if gap > TOLERANCE:
            raise ModelError(f"ONNX differs from scikit-learn by {gap:.2e} > {TOLERANCE} on the holdout")
    except ModelError:
        for p in (folder / MODEL_FILE, folder / CARD_FILE):
            p.unlink(missing_ok=True)
        folder.rmdir()
        raise


def train(
    registry: Path,
    name: str = "loan-approval",
    version: str | None = None,
    samples: int = 20_000,
    seed: int = 7,
    trees: int = 100,
    depth: int = 3,
    drifted: bool = False,
) -> Path:
    """Train and register ``name``; return the new version's folder.

    ``drifted`` trains on the generator's concept after its change (``produce --drift-kind concept``).
    """
    _import_training_libraries()
    version = version or _next_version(registry, name)
    folder = registry / name / version
    if folder.exists():
        raise ModelError(f"{folder} exists: choose another --version")

    x, y = _dataset(samples, seed, drifted)
    split = int(samples * 0.75)
    x_train, y_train, x_test, y_test = x[:split], y[:split], x[split:], y[split:]
    clf = _fit(x_train, y_train, trees, depth, seed)
    model = _export_onnx(clf)
    folder.mkdir(parents=True)
    (folder / MODEL_FILE).write_bytes(model)

    sk_scores = clf.predict_proba(x_test)[:, 1]
    reference = {
        f: _reference(x_train[:, i], datagen.CATEGORICAL.get(f)) for i, f in enumerate(datagen.FEATURES)
    }
    reference["score"] = _reference(sk_scores)
    training = _training(x, y, samples, split, seed, trees, depth, drifted)
    metrics = _holdout_metrics(y_test, sk_scores)
    _write_card(folder, name, version, trees, depth, _feature_specs(x), reference, training, metrics)
    _check_onnx(registry, name, version, x_test, sk_scores)
    return folder
