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
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    version = version or str(max((int(v) for v in versions(registry, name) if v.isdigit()), default=0) + 1)
    folder = registry / name / version
    if folder.exists():
        raise ModelError(f"{folder} exists: choose another --version")

    stream = datagen.applications(seed, drift_at=0) if drifted else datagen.applications(seed)
    pairs = list(itertools.islice(stream, samples))
    x = np.array([[row[f] for f in datagen.FEATURES] for row, _ in pairs], dtype=np.float32)
    y = np.array([label for _, label in pairs], dtype=np.int64)
    split = int(samples * 0.75)
    x_train, y_train, x_test, y_test = x[:split], y[:split], x[split:], y[split:]

    clf = GradientBoostingClassifier(n_estimators=trees, max_depth=depth, random_state=seed)
    clf.fit(x_train, y_train)
    onx = convert_sklearn(
        clf,
        initial_types=[(INPUT_TENSOR, FloatTensorType([None, len(datagen.FEATURES)]))],
        options={id(clf): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    folder.mkdir(parents=True)
    model_path = folder / MODEL_FILE
    model_path.write_bytes(onx.SerializeToString())

    sk_scores = clf.predict_proba(x_test)[:, 1]
    features = [
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
    reference = {
        f: _reference(x_train[:, i], datagen.CATEGORICAL.get(f)) for i, f in enumerate(datagen.FEATURES)
    }
    reference["score"] = _reference(sk_scores)
    card = ModelCard(
        name=name,
        version=version,
        created_at=dt.datetime.now(dt.UTC),
        description=f"Loan approval: gradient-boosted trees ({trees} trees, depth {depth}).",
        sha256=sha256_file(model_path),
        input_tensor=INPUT_TENSOR,
        features=features,
        output=ModelOutput(
            tensor=OUTPUT_TENSOR, positive_label=datagen.POSITIVE, negative_label=datagen.NEGATIVE
        ),
        training={
            "generator": "river.datasets.synth.Agrawal",
            "classification_function": datagen.DRIFTED_FUNCTION
            if drifted
            else datagen.CLASSIFICATION_FUNCTION,
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
        },
        metrics={
            "accuracy": float(accuracy_score(y_test, sk_scores >= 0.5)),
            "roc_auc": float(roc_auc_score(y_test, sk_scores)),
            "log_loss": float(log_loss(y_test, sk_scores)),
            "positive_rate": float(y_test.mean()),
        },
        reference=reference,
    )
    (folder / CARD_FILE).write_text(json.dumps(card.model_dump(mode="json"), indent=2) + "\n")

    try:
        onnx_scores = load(registry, name, version).predict_proba(x_test)
        gap = float(np.max(np.abs(onnx_scores - sk_scores)))
        if gap > TOLERANCE:
            raise ModelError(f"ONNX differs from scikit-learn by {gap:.2e} > {TOLERANCE} on the holdout")
    except ModelError:
        for p in (model_path, folder / CARD_FILE):
            p.unlink(missing_ok=True)
        folder.rmdir()
        raise
    return folder
