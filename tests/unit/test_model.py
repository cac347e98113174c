"""Loading verifies a model and refuses, with a message that says what to fix, one that cannot serve."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import MODELS
from onnx import TensorProto, helper

from stream.errors import ModelError
from stream.model import CARD_FILE, MODEL_FILE, load, resolve, sha256_file, versions


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


def _replace_model(folder, graph_model):
    path = folder / MODEL_FILE
    path.write_bytes(graph_model.SerializeToString())
    card = json.loads((folder / CARD_FILE).read_text())
    card["sha256"] = sha256_file(path)
    (folder / CARD_FILE).write_text(json.dumps(card))


def _linear_model(width, weight):
    w = helper.make_tensor("w", TensorProto.FLOAT, [width, 2], [weight] * (width * 2))
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["features", "w"], ["probabilities"])],
        "g",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
        [w],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_inputs_that_disagree_with_the_card_are_refused(registry):
    _replace_model(_folder(registry), _linear_model(4, 0.0))
    with pytest.raises(ModelError, match=r"expected tensor\(float\)\[N, 9\]"):
        load(registry, "loan-approval")


def test_model_returning_nan_is_refused(registry):
    _replace_model(_folder(registry), _linear_model(9, float("nan")))
    with pytest.raises(ModelError, match="not probabilities"):
        load(registry, "loan-approval")


def test_not_an_onnx_file_is_refused(registry):
    folder = _folder(registry)
    (folder / MODEL_FILE).write_bytes(b"\x80\x04pickle? never")
    card = json.loads((folder / CARD_FILE).read_text())
    card["sha256"] = sha256_file(folder / MODEL_FILE)
    (folder / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(ModelError, match="onnxruntime cannot open"):
        load(registry, "loan-approval")
