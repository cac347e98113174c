"""The leaf games, the three exact ways agreeing, batch independence, the score's sign, and top reasons.

``leaf_shapley`` is checked against Shapley values enumerated over every coalition; per-tree
tables, per-leaf tables and the per-batch polynomial give the same contributions; a row's
contributions are the same bits whatever batch it comes in (reasons are audited bit-exactly); a
binary model whose positive class is the graph's first column has its margin's sign turned.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import zoo
import zoo_sources

from stream.errors import ModelError
from stream.scoring.contributions import build, contributions_for, top_reasons
from stream.scoring.contributions import trees as tree_module
from stream.scoring.contributions.core import graph_of
from stream.scoring.contributions.paths import leaf_shapley
from stream.scoring.model import load_folder

REGISTRY = Path(__file__).resolve().parents[3] / "models" / "loan-approval" / "1"


def _enumerated(value: float, r: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Shapley values of ``f(S) = v prod_{S} s prod_{not S} r`` over every coalition."""
    k = len(r)
    game = {
        frozenset(c): value * np.prod([s[j] if j in c else r[j] for j in range(k)])
        for n in range(k + 1)
        for c in itertools.combinations(range(k), n)
    }
    phi = np.zeros(k)
    for i in range(k):
        for coalition, worth in game.items():
            if i not in coalition:
                weight = (
                    math.factorial(len(coalition))
                    * math.factorial(k - len(coalition) - 1)
                    / math.factorial(k)
                )
                phi[i] += weight * (game[coalition | {i}] - worth)
    return phi


@pytest.mark.parametrize("width", [1, 2, 3, 5])
def test_leaf_shapley_is_the_enumerated_shapley_value_padding_changing_nothing(width):
    rng = np.random.default_rng(width)
    for _ in range(20):
        r, s, value = rng.uniform(0.05, 1, width), rng.integers(0, 2, width).astype(float), rng.normal()
        padded_r, padded_s = np.r_[r, 1.0, 1.0], np.r_[s, 1.0, 1.0]
        found = leaf_shapley(np.array([[value]]), padded_r[None, :, None], padded_s[None, :, None])[0, :, 0]
        assert np.allclose(found[:width], _enumerated(value, r, s), atol=1e-12)
        assert np.allclose(found[width:], 0.0, atol=1e-12)


def _served(kind: str, tmp_path_factory):
    made = zoo.MAKERS[kind](tmp_path_factory.mktemp(kind))
    model = zoo_sources.imported(made, tmp_path_factory.mktemp("registry"), kind)
    x, texts = model.feeds.table(model.card, {f: zoo.table(rows=130, seed=2)[f] for f in model.feature_names})
    if kind == "lightgbm":
        x[::5, 1] = np.nan
    return model, x, texts


@pytest.fixture(scope="module", params=["gradient-boosting", "lightgbm", "pipeline"])
def served(request, tmp_path_factory):
    return _served(request.param, tmp_path_factory)


@pytest.fixture(scope="module", params=["gradient-boosting", "lightgbm"])
def ensemble(request, tmp_path_factory):
    return _served(request.param, tmp_path_factory)


def test_a_rows_contributions_do_not_depend_on_its_batch(served):
    model, x, texts = served
    contributions = contributions_for(model)
    whole = contributions(x, texts)
    for size in (1, 2, 7, 64):
        for start in range(0, 3 * size, size):
            part = contributions(
                x[start : start + size], None if texts is None else texts[start : start + size]
            )
            assert np.array_equal(part, whole[start : start + size])


def _one_feature(folder: Path) -> zoo.Zoo:
    """Gradient-boosted trees on income alone: the sum over trees is all a row's contribution."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import GradientBoostingRegressor

    data = zoo.table()
    trees = GradientBoostingRegressor(n_estimators=50, max_depth=3, random_state=0)
    trees.fit(data["income"][:, None].astype(np.float32), data["target"])
    onx = convert_sklearn(
        trees, initial_types=[("input", FloatTensorType([None, 1]))], target_opset={"": 17, "ai.onnx.ml": 3}
    )
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(onx.SerializeToString())
    reference = zoo.write_csv(folder / "reference.csv", data, ["income", "target"])
    return zoo.Zoo(folder / "model.onnx", reference, "target", "regression", ["income"], ["input"])


@pytest.mark.parametrize(
    ("tree_bits", "leaf_bits"), [(tree_module.TREE_BITS, tree_module.LEAF_BITS), (0, 8), (0, 0)]
)
def test_a_one_feature_rows_contributions_do_not_depend_on_its_batch(tree_bits, leaf_bits, tmp_path):
    model = zoo_sources.imported(_one_feature(tmp_path / "made"), tmp_path / "registry", "one")
    x, _ = model.feeds.table(model.card, {"income": zoo.table(rows=100, seed=3)["income"]})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tree_module, "TREE_BITS", tree_bits)
        patch.setattr(tree_module, "LEAF_BITS", leaf_bits)
        contributions = build(graph_of(model), model.card, model.card.attribution)
    whole = contributions(x, None)
    assert all(np.array_equal(contributions(x[i : i + 1], None), whole[i : i + 1]) for i in range(len(x)))


@pytest.mark.parametrize(("tree_bits", "leaf_bits"), [(0, tree_module.LEAF_BITS), (0, 0)])
def test_leaf_tables_and_the_polynomial_give_the_tree_tables_contributions(ensemble, tree_bits, leaf_bits):
    model, x, texts = ensemble
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tree_module, "TREE_BITS", tree_bits)
        patch.setattr(tree_module, "LEAF_BITS", leaf_bits)
        other = build(graph_of(model), model.card, model.card.attribution)
    assert np.allclose(other(x, texts), contributions_for(model)(x, texts), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["xgboost", "random-forest"])
def test_a_first_column_positive_class_turns_the_margins_sign(kind, tmp_path):
    made = zoo.MAKERS[kind](tmp_path / "made")
    model = zoo_sources.imported(made, tmp_path / "registry", kind, positive="0")
    assert model.card.output.positive_index == 0
    x, _ = model.feeds.table(model.card, {f: zoo.table(rows=200, seed=3)[f] for f in model.feature_names})
    contributions = contributions_for(model)
    margin = contributions.margin(x, None)
    assert np.max(np.abs(contributions(x, None).sum(axis=1) + contributions.expected_value - margin)) < 1e-5
    scores = model.predict_proba(x)
    as_score = 1 / (1 + np.exp(-margin)) if kind == "xgboost" else margin  # a forest averages probabilities
    assert np.allclose(as_score, scores, atol=1e-5)


def _one_row_linear(folder: Path, transform: str):
    """A LinearClassifier of one row of coefficients: onnxruntime answers ``[complement, s]``."""
    from onnx import TensorProto, helper

    node = helper.make_node(
        "LinearClassifier",
        ["input"],
        ["label", "probabilities"],
        domain="ai.onnx.ml",
        coefficients=[1e-7, 4e-3, -1e-6],
        intercepts=[0.4],
        classlabels_ints=[0, 1],
        post_transform=transform,
    )
    graph = helper.make_graph(
        [node],
        "one-row",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2]),
        ],
    )
    onx = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    )
    return zoo._one_tensor(folder, onx, zoo.table(), zoo.LABEL, "binary")


@pytest.mark.parametrize("positive", ["0", "1"])
def test_a_linear_model_of_one_row_reads_its_margin_for_either_class(positive, tmp_path):
    made = _one_row_linear(tmp_path / "made", "LOGISTIC")
    model = zoo_sources.imported(made, tmp_path / "registry", "one-row", positive=positive)
    x, _ = model.feeds.table(model.card, {f: zoo.table(rows=200, seed=4)[f] for f in model.feature_names})
    contributions = contributions_for(model)
    margin = contributions.margin(x, None)
    assert np.max(np.abs(contributions(x, None).sum(axis=1) + contributions.expected_value - margin)) < 1e-5
    assert np.allclose(1 / (1 + np.exp(-margin)), model.predict_proba(x), atol=1e-6)


def test_a_card_without_attribution_is_refused_in_one_line():
    shipped = load_folder(REGISTRY)
    model = dataclasses.replace(shipped, card=shipped.card.model_copy(update={"attribution": None}))
    with pytest.raises(ModelError, match="has no attribution: register the model again") as refused:
        contributions_for(model)
    assert "\n" not in str(refused.value)


def test_top_reasons_are_the_largest_magnitudes_largest_first_ties_in_card_order():
    contributions = np.array([[0.5, -2.0, 1.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    names = ["a", "b", "c", "d"]
    assert top_reasons(contributions, names, 3) == [
        {"b": -2.0, "d": 2.0, "c": 1.0},
        {"a": 0.0, "b": 0.0, "c": 0.0},
    ]
    assert list(top_reasons(contributions, names, 3)[0]) == ["b", "d", "c"]
    assert top_reasons(contributions, names, 9)[0] == {"b": -2.0, "d": 2.0, "c": 1.0, "a": 0.5}
    assert top_reasons(contributions, names, 0) == [{}, {}]
    assert top_reasons(np.zeros((0, 4)), names, 2) == []
