"""``streamscore model train``: train, export to ONNX, check, and register a model with its card.

Gradient-boosted trees from scikit-learn on generated loan applications with a fixed seed,
exported with skl2onnx without the ZipMap label dictionary; the graph is named after the model, so
the same seed gives the same ONNX bytes. The ONNX model must reproduce scikit-learn's probabilities
on the holdout within ``TOLERANCE`` or nothing is registered. The card comes from the builder
``model import`` uses too (:mod:`stream.lifecycle.cards`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from stream.errors import ModelError
from stream.lifecycle import calibration, cards
from stream.lifecycle.attribution import attribute
from stream.model_card import FeatureSpec, ModelCard, ModelInput, ModelOutput, ReferenceStats
from stream.scoring.model import CARD_FILE, MODEL_FILE, load_folder, session_options
from stream.tools import datagen

TOLERANCE = 1e-5
INPUT_TENSOR = "features"
OUTPUT_TENSOR = "probabilities"


def _import_training_libraries() -> None:
    """Import the ``train`` extra's libraries first: without them, fail before any work."""
    import skl2onnx.common.data_types  # noqa: F401
    import sklearn.ensemble  # noqa: F401


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


def _export_onnx(clf: Any, name: str) -> bytes:
    """``clf`` as an ONNX model, without the ZipMap label dictionary, its graph named ``name``."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    onx = convert_sklearn(
        clf,
        initial_types=[(INPUT_TENSOR, FloatTensorType([None, len(datagen.FEATURES)]))],
        options={id(clf): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    onx.graph.name = name  # else a random uuid: the same training would give other bytes
    return onx.SerializeToString()  # type: ignore[no-any-return]


def _features(x_train: np.ndarray) -> list[tuple[FeatureSpec, ReferenceStats]]:
    """The card's features, with their reference distributions on the training rows."""
    return [
        cards.numeric_feature(
            f,
            x_train[:, i],
            integer=f in datagen.INTEGER,
            codes=datagen.CATEGORICAL.get(f),
            personal=f in datagen.PERSONAL,
        )
        for i, f in enumerate(datagen.FEATURES)
    ]


def _fingerprint(x: np.ndarray, y: np.ndarray) -> str:
    return hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest()


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
        "data_sha256": _fingerprint(x, y),
        "estimator": f"sklearn.ensemble.GradientBoostingClassifier(n_estimators={trees}, "
        f"max_depth={depth}, random_state={seed})",
        "libraries": cards.libraries("scikit-learn", "skl2onnx", "onnx", "river"),
    }


def _card(
    name: str,
    version: str,
    model: bytes,
    x_train: np.ndarray,
    y_test: np.ndarray,
    scores: np.ndarray,
    margin: float = calibration.DEFAULT_MARGIN,
) -> ModelCard:
    """The card of the trained model (its training yet to be told), from the builder ``model import``
    shares: features referenced on the training rows, the score and metrics on the holdout."""
    return cards.build(
        name=name,
        version=version,
        description="",
        sha256=cards.sha256_bytes(model),
        inputs=[ModelInput(name=INPUT_TENSOR, type="float", features=list(datagen.FEATURES))],
        features=_features(x_train),
        output=ModelOutput(
            tensor=OUTPUT_TENSOR, positive_label=datagen.POSITIVE, negative_label=datagen.NEGATIVE
        ),
        scores=scores,
        training={},
        metrics=cards.binary_metrics(y_test == 1, scores),
        calibration=calibration.fit(y_test == 1, scores, 0.5, margin),
    )


def _check_onnx(model: bytes, x_test: np.ndarray, sk_scores: np.ndarray) -> None:
    """Refuse the model unless onnxruntime gives scikit-learn's scores within ``TOLERANCE``."""
    session = ort.InferenceSession(model, session_options(), providers=["CPUExecutionProvider"])
    onnx_scores = session.run([OUTPUT_TENSOR], {INPUT_TENSOR: x_test})[0][:, 1]
    gap = float(np.max(np.abs(onnx_scores - sk_scores)))
    if gap > TOLERANCE:
        raise ModelError(f"ONNX differs from scikit-learn by {gap:.2e} > {TOLERANCE} on the holdout")


def _register(folder: Path, model: bytes, card: ModelCard) -> None:
    """Write the version's files and load it with every start-up check; nothing is left on failure."""
    folder.mkdir(parents=True)
    try:
        (folder / MODEL_FILE).write_bytes(model)
        cards.write(folder, card)
        load_folder(folder)
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
    margin: float = calibration.DEFAULT_MARGIN,
) -> Path:
    """Train and register ``name``; return the new version's folder.

    ``drifted`` trains on the generator's concept after its change (``produce --drift-kind concept``);
    ``margin``: how far an estimated figure may fall below the holdout's before it alerts.
    """
    _import_training_libraries()
    version = version or cards.next_version(registry, name)
    folder = registry / name / version
    if folder.exists():
        raise ModelError(f"{folder} exists: choose another --version")

    x, y = _dataset(samples, seed, drifted)
    split = int(samples * 0.75)
    x_train, y_train, x_test, y_test = x[:split], y[:split], x[split:], y[split:]
    clf = _fit(x_train, y_train, trees, depth, seed)
    model = _export_onnx(clf, name)
    sk_scores = clf.predict_proba(x_test)[:, 1]
    _check_onnx(model, x_test, sk_scores)
    built = _card(name, version, model, x_train, y_test, sk_scores, margin)
    card = built.model_copy(
        update={
            "attribution": attribute(model, built, x_train, None),
            "description": f"Loan approval: gradient-boosted trees ({trees} trees, depth {depth}).",
            "training": _training(x, y, samples, split, seed, trees, depth, drifted),
        }
    )
    _register(folder, model, card)
    return folder


def refresh(folder: Path, margin: float = calibration.DEFAULT_MARGIN) -> Path:
    """Give a version this command trained before what newer cards hold: the calibration of its
    holdout scores (performance estimates) and the node covers of its training rows (reasons).

    The data is generated again from the card's seed and must match its fingerprint; the model file
    is not touched, so the version keeps its SHA-256. Returns ``folder``.
    """
    card = load_folder(folder).card
    t = card.training
    if t.get("generator") != "river.datasets.synth.Agrawal" or "data_sha256" not in t:
        raise ModelError(f"{folder} was not made by `model train`: import it again with its reference data")
    x, y = _dataset(t["samples"], t["seed"], t["classification_function"] == datagen.DRIFTED_FUNCTION)
    if _fingerprint(x, y) != t["data_sha256"]:
        raise ModelError(f"the data generated from {folder}'s seed is not what it was trained on")
    split = t["train_rows"]
    model = (folder / MODEL_FILE).read_bytes()
    scores = load_folder(folder).predict_proba(x[split:])
    fitted = calibration.fit(y[split:] == 1, scores, card.output.threshold, margin)
    added = {"calibration": fitted, "attribution": attribute(model, card, x[:split], None)}
    document = json.loads((folder / CARD_FILE).read_text())  # the card as it was, plus what is added
    document |= {key: value.model_dump(mode="json") if value else None for key, value in added.items()}
    (folder / CARD_FILE).write_text(json.dumps(document, indent=2) + "\n")
    load_folder(folder)
    return folder
