"""The model registry: ``<root>/<name>/<version>/model.onnx`` beside its ``card.json``.

Loading reads the card, checks the file's SHA-256 against it, opens one onnxruntime session
(one intra-op and one inter-op thread, spinning off: scale with processes), checks the model's
inputs and outputs agree with the card, and scores a probe batch that must give probabilities.
Any failure is a :class:`ModelError` saying what to fix. Pickles are never loaded.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from pydantic import ValidationError

from stream.contracts import ModelCard
from stream.errors import ModelError

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
    """A verified model ready to score: its card, its session and the names it is run with."""

    card: ModelCard
    path: Path
    session: ort.InferenceSession

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.card.features]

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        """Positive-class probability of each row of a float32 ``[n, features]`` array."""
        out = self.session.run([self.card.output.tensor], {self.card.input_tensor: rows})[0]
        return out[:, self.card.output.positive_index]


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
    model = LoadedModel(card=card, path=model_path, session=session)
    _check_signature(model)
    _check_probe(model)
    return model


def _check_signature(model: LoadedModel) -> None:
    card, session = model.card, model.session
    inputs = {i.name: i for i in session.get_inputs()}
    if list(inputs) != [card.input_tensor]:
        raise ModelError(f"{model.path} takes inputs {list(inputs)}, its card says [{card.input_tensor!r}]")
    tensor = inputs[card.input_tensor]
    width = tensor.shape[1] if len(tensor.shape) == 2 else None
    if tensor.type != "tensor(float)" or width != len(card.features):
        raise ModelError(
            f"{model.path} input {tensor.name} is {tensor.type}{tensor.shape}; its card lists "
            f"{len(card.features)} features: expected tensor(float)[N, {len(card.features)}]"
        )
    outputs = {o.name: o for o in session.get_outputs()}
    if card.output.tensor not in outputs:
        raise ModelError(
            f"{model.path} has outputs {list(outputs)}, its card names {card.output.tensor!r}: "
            "export without ZipMap and name the probability tensor in the card"
        )


def _check_probe(model: LoadedModel) -> None:
    """Score a probe batch built from the card's reference ranges; refuse non-probabilities."""
    card = model.card
    probe = np.array(
        [[card.reference[f.name].mean if f.name in card.reference else 0.0 for f in card.features]] * 4,
        dtype=np.float32,
    )
    try:
        scores = model.predict_proba(probe)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelError(f"{model.path} fails on a probe batch: {exc}") from exc
    if scores.shape != (4,) or not np.all(np.isfinite(scores)) or scores.min() < 0 or scores.max() > 1:
        raise ModelError(
            f"{model.path} returns {scores!r} for a probe batch: not probabilities in [0, 1]; "
            f"check output {card.output.tensor!r} and positive_index {card.output.positive_index}"
        )
