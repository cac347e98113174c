"""The model registry: ``<root>/<name>/<version>/model.onnx`` beside its ``card.json``.

Loading reads the card, checks the file's SHA-256 against it, opens one onnxruntime session
(one intra-op and one inter-op thread, spinning off: scale with processes), checks the model's
inputs and outputs agree with the card, and scores a probe batch that must give probabilities.
Any failure is a :class:`ModelError` saying what to fix. Pickles are never loaded.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from pydantic import ValidationError

from stream.contracts import ModelCard
from stream.errors import ModelError
from stream.scoring.feeds import ORT_TYPES, Answers, Feeds, Scored

MODEL_FILE = "model.onnx"
CARD_FILE = "card.json"


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Sort versions numerically where they are numbers: 2 < 10, 1.2 < 1.10."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-]", version))


def versions(root: Path, name: str) -> list[str]:
    """The versions of ``name`` in the registry, oldest first."""
    folder = root / name
    if not folder.is_dir():
        return []
    found = [p.name for p in folder.iterdir() if (p / CARD_FILE).is_file()]
    return sorted(found, key=_version_key)


def resolve(root: Path, name: str, version: str = "latest") -> Path:
    """The folder of ``name`` at ``version`` (``latest``: the highest version)."""
    available = versions(root, name)
    if not available:
        known = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise ModelError(
            f"no model {name!r} in registry {root}: set STREAMSCORE_MODEL_NAME to one of {known} "
            "or train one with `streamscore model train`"
        )
    chosen = available[-1] if version == "latest" else version
    if chosen not in available:
        raise ModelError(
            f"model {name!r} has no version {version!r} in {root}: available {available}; "
            "set STREAMSCORE_MODEL_VERSION"
        )
    return root / name / chosen


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def session_options() -> ort.SessionOptions:
    """One thread each, no spinning: a scorer scales with processes, not threads."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A verified model ready to score: its card, its session, and how a batch feeds and answers it."""

    card: ModelCard
    path: Path
    session: ort.InferenceSession
    feeds: Feeds
    answers: Answers

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.card.features]

    @property
    def string_names(self) -> list[str]:
        """The string features, in card order: the columns of ``texts``."""
        return self.feeds.string_names

    def predict(self, x: np.ndarray, texts: np.ndarray | None = None) -> Scored:
        """The answers for rows ``x`` in card order (a string feature's column its category code) and
        the string features' values ``texts``."""
        return self.answers(self.session.run(self.answers.outputs, self.feeds(x, texts)))

    def predict_proba(self, x: np.ndarray, texts: np.ndarray | None = None) -> np.ndarray:
        """The score of each row: a binary classifier's positive-class probability, a multiclass
        classifier's top probability, a regressor's value."""
        return self.predict(x, texts).scores

    def predict_columns(self, columns: Mapping[str, Sequence[Any] | np.ndarray]) -> Scored:
        """The answers for columns by feature name (numbers, and strings for string features)."""
        return self.predict(*self.feeds.table(self.card, columns))


def load_card(folder: Path) -> ModelCard:
    card_path = folder / CARD_FILE
    try:
        return ModelCard.model_validate_json(card_path.read_bytes())
    except OSError as exc:
        raise ModelError(f"cannot read model card {card_path}: {exc.strerror}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ModelError(f"model card {card_path} is invalid at {where}: {first['msg']}") from exc


def load(root: Path, name: str, version: str = "latest") -> LoadedModel:
    """Resolve, verify and open a model; raise :class:`ModelError` saying what to fix."""
    return load_folder(resolve(root, name, version))


def load_folder(folder: Path) -> LoadedModel:
    """Verify and open the model in ``folder`` (``model.onnx`` beside ``card.json``)."""
    card = load_card(folder)
    model_path = folder / MODEL_FILE
    try:
        actual = sha256_file(model_path)
    except OSError as exc:
        raise ModelError(f"cannot read {model_path}: {exc.strerror}") from exc
    if actual != card.sha256:
        raise ModelError(
            f"{model_path} has sha256 {actual[:12]}…, its card says {card.sha256[:12]}…: the file was "
            "changed or corrupted; restore it or register the model again with `streamscore model train`"
        )
    try:
        session = ort.InferenceSession(
            model_path.read_bytes(), session_options(), providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own unrelated exception types
        raise ModelError(f"onnxruntime cannot open {model_path}: {exc}") from exc
    _check_signature(card, model_path, session)
    ranks = {i.name: len(i.shape) for i in session.get_inputs()}
    model = LoadedModel(card, model_path, session, Feeds(card, ranks), Answers(card))
    _check_probe(model)
    return model


def _check_signature(card: ModelCard, path: Path, session: ort.InferenceSession) -> None:
    """The graph takes exactly the card's inputs, of their types and widths, and has its output."""
    inputs = {i.name: i for i in session.get_inputs()}
    named = [i.name for i in card.inputs]
    if sorted(inputs) != sorted(named):
        raise ModelError(f"{path} takes inputs {list(inputs)}, its card says {named}")
    for spec in card.inputs:
        graph = inputs[spec.name]
        width = graph.shape[1] if len(graph.shape) == 2 else 1
        fits = ORT_TYPES.get(graph.type) == spec.type and width in (len(spec.features), None, "N")
        if not fits or (isinstance(width, str) and len(spec.features) != 1) or len(graph.shape) not in (1, 2):
            raise ModelError(
                f"{path} input {graph.name} is {graph.type}{graph.shape}; its card feeds it "
                f"{len(spec.features)} features as tensor({spec.type})[N, {len(spec.features)}]"
            )
    outputs = {o.name: o for o in session.get_outputs()}
    tensor = outputs.get(card.output.tensor)
    if tensor is None:
        raise ModelError(
            f"{path} has outputs {list(outputs)}, its card names {card.output.tensor!r}: name the "
            "probability tensor (or a regressor's value) in the card"
        )
    if card.output.zipmap != tensor.type.startswith("seq(map("):
        raise ModelError(
            f"{path} output {tensor.name} is {tensor.type}: the card says zipmap={card.output.zipmap}"
        )


def _probe_rows(model: LoadedModel, n: int = 4) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows made from the card's reference: each number's mean (whole where the feature is), each
    string's most frequent category."""
    columns: dict[str, list[Any]] = {}
    for f in model.card.features:
        ref = model.card.reference.get(f.name)
        if f.type == "string":
            columns[f.name] = [(f.categories or [""])[0]] * n
        else:
            mean = ref.mean if ref is not None else 0.0
            columns[f.name] = [round(mean) if f.type == "integer" else mean] * n
    return model.feeds.table(model.card, columns)


def _check_probe(model: LoadedModel) -> None:
    """Score a probe batch built from the card's reference; refuse answers of the wrong kind."""
    card = model.card
    try:
        answer = model.predict(*_probe_rows(model))
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelError(f"{model.path} fails on a probe batch: {exc}") from exc
    scores = answer.scores
    bounded = card.output.task != "regression"
    values = scores if answer.probabilities is None else answer.probabilities
    if (
        scores.shape != (4,)
        or not np.all(np.isfinite(values))
        or (bounded and (values.min() < 0 or values.max() > 1))
    ):
        what = "finite values" if not bounded else "probabilities in [0, 1]"
        raise ModelError(
            f"{model.path} returns {scores!r} for a probe batch: not {what}; "
            f"check output {card.output.tensor!r} and positive_index {card.output.positive_index}"
        )


def predict_safely(model: LoadedModel, x: np.ndarray, texts: np.ndarray | None) -> Scored:
    """One run for the batch; if it fails, row by row so that only failing rows are lost to NaN."""
    try:
        return model.predict(x, texts)
    except Exception:  # onnxruntime raises its own exception types
        answers = []
        for i in range(len(x)):
            try:
                answers.append(model.predict(x[i : i + 1], None if texts is None else texts[i : i + 1]))
            except Exception:
                answers.append(None)
        return _rows_answered(model, answers)


def _rows_answered(model: LoadedModel, answers: list[Scored | None]) -> Scored:
    """One answer of the rows answered one by one; NaN (and no label) for a row that failed."""
    scores = np.array([np.nan if a is None else a.scores[0] for a in answers], dtype=np.float64)
    classes = model.card.output.classes
    if model.card.output.task != "multiclass" or classes is None:
        return Scored(scores)
    nan = np.full(len(classes), np.nan)
    labels = ["" if a is None or a.labels is None else a.labels[0] for a in answers]
    probabilities = np.array(
        [nan if a is None or a.probabilities is None else a.probabilities[0] for a in answers]
    )
    return Scored(scores, labels, probabilities)


def by_label(model: LoadedModel, answer: Scored) -> list[dict[str, float]] | None:
    """A multiclass model's probabilities of each event, by label."""
    if answer.probabilities is None:
        return None
    classes = model.card.output.classes or []
    return [dict(zip(classes, row, strict=True)) for row in answer.probabilities.tolist()]
