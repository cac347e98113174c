"""Loading verifies a model and refuses, with a message that says what to fix, one that cannot serve."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import MODELS
from model_versions import linear, nan_model, replace_model

from stream.errors import ModelError
from stream.scoring.model import CARD_FILE, MODEL_FILE, load, resolve, sha256_file, versions


@pytest.fixture
def registry(tmp_path):
    shutil.copytree(MODELS, tmp_path / "models")
    return tmp_path / "models"


def _folder(registry):
    return resolve(registry, "loan-approval")


def test_default_model_loads_and_scores(registry):
    model = load(registry, "loan-approval")
    assert model.card.sha256 == sha256_file(model.path)
    scores = model.predict_proba(np.zeros((3, len(model.feature_names)), dtype=np.float32))
    assert scores.shape == (3,) and np.all((scores >= 0) & (scores <= 1))


def test_latest_is_the_highest_version_numerically(registry):
    src = _folder(registry)
    for v in ("2", "10"):
        shutil.copytree(src, registry / "loan-approval" / v)
    assert versions(registry, "loan-approval")[-1] == "10"
    assert resolve(registry, "loan-approval").name == "10"


def test_tampered_file_is_refused(registry):
    path = _folder(registry) / MODEL_FILE
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"sha256 .* its card says .* changed or corrupted"):
        load(registry, "loan-approval")


def test_missing_model_and_version_name_the_fix(registry):
    with pytest.raises(ModelError, match="STREAMSCORE_MODEL_NAME"):
        load(registry, "no-such-model")
    with pytest.raises(ModelError, match=r"no version '99'.*STREAMSCORE_MODEL_VERSION"):
        load(registry, "loan-approval", "99")


def test_unreadable_card_is_refused(registry):
    (_folder(registry) / CARD_FILE).write_text('{"name": "x"}')
    with pytest.raises(ModelError, match=r"card .* is invalid"):
        load(registry, "loan-approval")


def test_inputs_that_disagree_with_the_card_are_refused(registry):
    replace_model(_folder(registry), linear(width=4))
    with pytest.raises(ModelError, match=r"as tensor\(float\)\[N, 9\]"):
        load(registry, "loan-approval")


def test_a_model_trained_on_another_width_is_refused(registry):
    """A real trained model, fitted on 8 columns, under a card listing 9 features."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    fitted = LogisticRegression().fit(x, x[:, 0] > 0)
    onnx_model = to_onnx(fitted, x[:1], options={"zipmap": False})
    inputs = [i.name for i in onnx_model.graph.input]
    outputs = [o.name for o in onnx_model.graph.output]
    card = json.loads((_folder(registry) / CARD_FILE).read_text())
    replace_model(
        _folder(registry), onnx_model, input_tensor=inputs[0], output={**card["output"], "tensor": outputs[1]}
    )
    with pytest.raises(ModelError, match=r"tensor\(float\)\[N, 9\]"):
        load(registry, "loan-approval")


def test_model_with_nan_weights_is_refused(registry):
    replace_model(_folder(registry), linear(weight=float("nan")))
    with pytest.raises(ModelError, match="not probabilities"):
        load(registry, "loan-approval")


@pytest.mark.parametrize("op", ["div", "log"])
def test_model_computing_nan_is_refused(registry, op):
    replace_model(_folder(registry), nan_model(op))
    with pytest.raises(ModelError, match=r"returns array\(\[nan, nan, nan, nan\].*not probabilities"):
        load(registry, "loan-approval")


def test_not_an_onnx_file_is_refused(registry):
    replace_model(_folder(registry), b"\x80\x04pickle? never")
    with pytest.raises(ModelError, match="onnxruntime cannot open"):
        load(registry, "loan-approval")
