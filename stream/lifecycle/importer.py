"""``streamscore model import``: any ONNX classifier or regressor, with its reference data, into the registry.

The graph's inputs are mapped onto the reference's columns (:mod:`.signature`), the graph is run
on every reference row (the first few hundred as a probe), its outputs say the task and the
classes, and the card (:mod:`.cards`) gets each feature's type and reference distribution, the
score's, and holdout metrics when a label column is named. The new version is written beside the
registry and renamed into it, then loaded with every start-up check before it is kept.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import onnxruntime as ort
from pydantic import ValidationError

from stream.errors import ModelError
from stream.lifecycle import attribution, calibration, cards
from stream.lifecycle.probe import feed_type, feeds, run
from stream.lifecycle.reference import Column, Reference, read
from stream.lifecycle.signature import (
    Reading,
    graph_inputs,
    known_classes,
    larger,
    map_inputs,
    read_outputs,
    truth_of,
)
from stream.model_card import Calibration, FeatureSpec, ModelCard, ModelOutput, ReferenceStats
from stream.scoring import model as registry_model

__all__ = ["Options", "import_model", "publish"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
SERVED_ROWS = 1_000
"""Reference rows scored again through the loaded model, which must agree with the import."""


class Options(NamedTuple):
    """What the command line says about the reference and the model's answers."""

    label: str | None = None
    positive: str | None = None
    features: list[str] | None = None
    categorical: Sequence[str] = ()
    personal: Sequence[str] = ()
    threshold: float = 0.5
    margin: float = calibration.DEFAULT_MARGIN


def _session(path: Path) -> tuple[Any, bytes]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model {path}: {exc.strerror}") from exc
    try:
        session = ort.InferenceSession(
            data, registry_model.session_options(), providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own exception types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"onnxruntime cannot open {path}: {first}") from exc
    return session, data


def _check_options(ref: Reference, options: Options) -> None:
    """Every name given on the command line names a column; the threshold is a probability."""
    if options.label is not None and options.label not in ref.columns:
        raise ModelError(f"--label {options.label!r} names no column of the reference: {list(ref.columns)}")
    for flag, names in (("--categorical", options.categorical), ("--personal", options.personal)):
        for n in names:
            if n not in ref.columns or n == options.label:
                raise ModelError(f"{flag} names {n!r}, not a feature column of the reference")
    if not 0.0 <= options.threshold <= 1.0:
        raise ModelError(f"--threshold {options.threshold} is not between 0 and 1")
    if not 0.0 <= options.margin <= 1.0:
        raise ModelError(f"--estimate-margin {options.margin} is not between 0 and 1")


def _answers(
    reading: Reading, values: np.ndarray, ref: Reference, options: Options
) -> tuple[ModelOutput, np.ndarray, dict[str, float]]:
    """The card's output, each reference row's score and the holdout metrics."""
    label = ref.columns[options.label] if options.label else None
    if reading.task != "binary" and options.positive is not None:
        raise ModelError(f"--positive applies to a binary classifier; this model is {reading.task}")
    if reading.task == "regression":
        if label is not None and label.numbers is None:
            raise ModelError(f"--label {label.name!r} holds text: a regressor's label column holds numbers")
        output = ModelOutput(task="regression", tensor=reading.tensor)
        metrics = cards.regression_metrics(label.numbers, values) if label is not None else {}
        return output, values, metrics
    classes = reading.classes or []
    truth = truth_of(label, classes) if label is not None else None
    if reading.task == "multiclass":
        output = ModelOutput(task="multiclass", tensor=reading.tensor, zipmap=reading.zipmap, classes=classes)
        metrics = cards.multiclass_metrics(truth, values) if truth is not None else {}
        return output, values.max(axis=1), metrics
    positive = options.positive if options.positive is not None else larger(classes)
    if positive not in classes:
        raise ModelError(f"--positive {positive!r} names no class of the model: its classes are {classes}")
    at = classes.index(positive)
    output = ModelOutput(
        task="binary",
        tensor=reading.tensor,
        zipmap=reading.zipmap,
        positive_index=at,
        positive_label=positive,
        negative_label=classes[1 - at],
        threshold=options.threshold,
    )
    scores = values[:, at]
    metrics = cards.binary_metrics(truth == at, scores, options.threshold) if truth is not None else {}
    return output, scores, metrics


def _calibration(
    reading: Reading, output: ModelOutput, label: Column | None, scores: np.ndarray, options: Options
) -> Calibration | None:
    """A binary classifier's calibration on a labelled reference, else None."""
    if output.task != "binary" or label is None:
        return None
    truth = truth_of(label, reading.classes or []) == output.positive_index
    return calibration.fit(truth, scores, output.threshold, options.margin)


def _feature(column: Column, kind: str, options: Options) -> tuple[FeatureSpec, ReferenceStats]:
    personal = column.name in options.personal
    if kind == "string":
        return cards.string_feature(column.name, column.texts, personal)
    assert column.numbers is not None
    codes = None
    if column.name in options.categorical:
        codes = np.unique(column.numbers)
        if kind != "integer" or len(codes) > cards.MAX_CATEGORIES:
            raise ModelError(
                f"--categorical {column.name!r}: a categorical number takes at most "
                f"{cards.MAX_CATEGORIES} whole values, the reference has {len(codes)} distinct values"
            )
    return cards.numeric_feature(column.name, column.numbers, kind == "integer", codes, personal)


def _card(
    model: Path, name: str, version: str, ref: Reference, options: Options
) -> tuple[ModelCard, bytes, np.ndarray]:
    """The card of ``model``, its bytes and the reference's scores; every refusal on the way."""
    session, data = _session(model)
    _check_options(ref, options)
    ranks = {g.name: g.rank for g in graph_inputs(session)}
    inputs = map_inputs(graph_inputs(session), list(ref.columns), options.label, options.features)
    kinds = {f: feed_type(ref.columns[f], given) for given in inputs for f in given.features}
    if "score" in kinds:
        raise ModelError("a feature is named 'score', the name of the score's reference: rename the column")
    for n in (*options.categorical, *options.personal):
        if n not in kinds:
            raise ModelError(f"{n!r} is named by --categorical or --personal but feeds no input of the model")
    produced = run(session, feeds(inputs, ref, ranks), ref.rows)
    label = ref.columns[options.label] if options.label else None
    reading, values = read_outputs(session, produced, known_classes(label))
    output, scores, metrics = _answers(reading, values, ref, options)
    features = [_feature(ref.columns[f], kinds[f], options) for f in kinds]
    card = cards.build(
        name=name,
        version=version,
        description=f"Imported from {model.name}: a {output.task} model on {len(features)} features.",
        sha256=cards.sha256_bytes(data),
        inputs=inputs,
        features=features,
        output=output,
        scores=scores,
        training={
            "source": "import",
            "model_file": model.name,
            "reference": ref.fingerprint(),
            "label": options.label,
            "libraries": cards.libraries(),
        },
        metrics=metrics,
        calibration=_calibration(reading, output, label, scores, options),
    )
    return _attributed(card, data, ref), data, scores


def _attributed(card: ModelCard, data: bytes, ref: Reference) -> ModelCard:
    """``card`` with what exact contributions need, from every reference row (none for other graphs)."""
    columns = {
        f.name: ref.columns[f.name].texts if f.type == "string" else ref.columns[f.name].numbers
        for f in card.features
    }
    x, texts = attribution.reference_rows(data, card, columns)
    return card.model_copy(update={"attribution": attribution.attribute(data, card, x, texts)})


def import_model(
    model: Path,
    reference: Path,
    registry: Path,
    name: str,
    version: str | None = None,
    options: Options | None = None,
) -> Path:
    """Import ``model`` as ``name`` (version: the next number) into the folder ``registry``; its folder."""
    for what, value in (("--name", name), ("--version", version)):
        if value is not None and not _NAME.match(value):
            raise ModelError(
                f"{what} {value!r}: use letters, digits, '.', '_' and '-', beginning with a letter or digit"
            )
    version = version or cards.next_version(registry, name)
    folder = registry / name / version
    if folder.exists():
        raise ModelError(f"{folder} exists: choose another --version")
    ref = read(reference)
    try:
        card, data, scores = _card(model, name, version, ref, options or Options())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ModelError(f"the card of {model} cannot be made: {where}: {first['msg']}") from exc
    _write(folder, data, card)
    try:
        _check_served(folder, ref, card, scores)
    except ModelError:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def _write(folder: Path, data: bytes, card: ModelCard) -> None:
    """Write the version beside the registry, then rename it into place: never seen half written."""
    registry = folder.parent.parent
    staging = registry / f".import-{folder.parent.name}-{folder.name}-{os.getpid()}"
    staging.mkdir(parents=True)
    try:
        (staging / registry_model.MODEL_FILE).write_bytes(data)
        cards.write(staging, card)
        folder.parent.mkdir(exist_ok=True)
        os.rename(staging, folder)
    except OSError as exc:
        raise ModelError(f"cannot write {folder} ({exc.strerror}): choose another --version") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish(folder: Path, tracking_uri: str | None, alias: str | None) -> list[str]:
    """Register the imported ``folder`` in MLflow when ``tracking_uri`` is set (moving ``alias``), else
    point the folder registry's ``alias`` at it; what was done, one line each."""
    version, name, registry = folder.name, folder.parent.name, folder.parent.parent
    if tracking_uri:
        from stream.lifecycle.mlflow_registry import register

        registered, number = register(tracking_uri, folder, alias)
        return [f"registered models:/{registered}/{number}" + (f" as @{alias}" if alias else "")]
    if alias:
        from stream.lifecycle.folder import set_alias

        before = set_alias(registry, name, alias, version)
        return [f"{name}@{alias}: {before or 'none'} -> {version}"]
    return []


def _check_served(folder: Path, ref: Reference, card: ModelCard, scores: np.ndarray) -> None:
    """Load the new version with every start-up check; its scores must be the import's."""
    loaded = registry_model.load_folder(folder)
    rows = min(ref.rows, SERVED_ROWS)
    columns = {
        f.name: ref.columns[f.name].texts[:rows] if f.type == "string" else ref.columns[f.name].numbers[:rows]
        for f in card.features
    }
    served = np.asarray(loaded.predict_columns(columns).scores, dtype=np.float64)
    if not np.allclose(served, scores[:rows], rtol=1e-5, atol=1e-6):
        gap = float(np.max(np.abs(served - scores[:rows])))
        raise ModelError(f"{folder}: the loaded model scores reference rows {gap:.2e} away from the import")
