"""Training registers a model whose ONNX export matches scikit-learn and whose card is complete."""

from __future__ import annotations

import json

import pytest

from stream.contracts import ModelCard
from stream.errors import ModelError
from stream.scoring.model import load, sha256_file
from stream.tools.train import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    registry = tmp_path_factory.mktemp("registry")
    return registry, train(registry, samples=3_000, seed=3, trees=20)


def test_card_is_complete_and_verifiable(trained):
    registry, folder = trained
    card = ModelCard.model_validate_json((folder / "card.json").read_text())
    assert folder.name == "1" and card.version == "1"
    assert card.sha256 == sha256_file(folder / "model.onnx")
    assert [f.name for f in card.features][:3] == ["salary", "commission", "age"]
    assert {f.name for f in card.features if f.personal} == {"zipcode"}
    assert set(card.reference) == {f.name for f in card.features} | {"score"}
    for ref in card.reference.values():
        assert len(ref.bin_fractions) == len(ref.bin_edges) + 1
        assert sum(ref.bin_fractions) == pytest.approx(1.0)
    assert card.reference["zipcode"].categories is not None
    assert card.metrics["roc_auc"] > 0.9
    assert len(card.training["data_sha256"]) == 64 and card.training["seed"] == 3
    assert "scikit-learn" in card.training["libraries"]
    assert load(registry, card.name).card == card


def test_same_seed_same_data_fingerprint(trained, tmp_path):
    _, folder = trained
    again = train(tmp_path, samples=3_000, seed=3, trees=20)
    first = json.loads((folder / "card.json").read_text())
    second = json.loads((again / "card.json").read_text())
    assert first["training"]["data_sha256"] == second["training"]["data_sha256"]
    assert first["metrics"] == second["metrics"]


def test_next_version_and_no_overwrite(trained):
    registry, _ = trained
    assert train(registry, samples=1_000, seed=4, trees=5).name == "2"
    with pytest.raises(ModelError, match="exists"):
        train(registry, version="1", samples=1_000, trees=5)


def test_same_seed_same_onnx_bytes(trained, tmp_path):
    """Training again with the same seed into another registry writes the very same model file."""
    _, folder = trained
    again = train(tmp_path, samples=3_000, seed=3, trees=20)
    assert sha256_file(again / "model.onnx") == sha256_file(folder / "model.onnx")
    first = ModelCard.model_validate_json((folder / "card.json").read_text())
    assert first.sha256 == ModelCard.model_validate_json((again / "card.json").read_text()).sha256


def test_card_names_its_input_and_libraries(trained):
    _, folder = trained
    card = ModelCard.model_validate_json((folder / "card.json").read_text())
    assert [(i.name, i.type, len(i.features)) for i in card.inputs] == [("features", "float", 9)]
    assert card.output.task == "binary"
    assert {"python", "numpy", "onnxruntime", "scikit-learn", "skl2onnx"} <= set(card.training["libraries"])
