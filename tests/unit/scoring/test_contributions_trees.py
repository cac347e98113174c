"""Tree ensembles' contributions against shap's TreeExplainer on the model each graph came from.

The demo's GradientBoostingClassifier (trained by ``stream.tools.train``), and the zoo's
scikit-learn, XGBoost and LightGBM ensembles imported with their reference: contributions equal
shap's path-dependent TreeSHAP (raw margin) within 1e-5 and add up, with the expected value, to the
margin onnxruntime computes from the graph. The rows explained include values exactly on a
threshold of the graph and, for XGBoost and LightGBM, missing values.

XGBoost keeps as a node's cover its training rows' summed hessians, not their count: shap's own
TreeExplainer (XGBoost's TreeSHAP) therefore weighs branches otherwise. The cross-check gives shap
the covers XGBoost's own routing of the training rows counts (``pred_leaf``), in shap's algorithm.
"""

from __future__ import annotations

import numpy as np
import pytest
import shap
import zoo
import zoo_sources

from stream.scoring.contributions import contributions_for
from stream.scoring.contributions.core import graph_of
from stream.scoring.contributions.graph import forest, scoring_node
from stream.scoring.model import load_folder
from stream.tools import train

TOLERANCE = 1e-5


def _with_ties(model, x: np.ndarray, rows: int = 40) -> np.ndarray:
    """``x`` with its first ``rows`` rows each holding, in one feature, a threshold of the graph."""
    graph = graph_of(model)
    trees = forest(graph, scoring_node(graph, model.card), model.card)
    branch = np.flatnonzero(trees.mode >= 0)[:rows]
    tied = x.copy()
    for i, node in enumerate(branch):
        tied[i, trees.feature[node]] = np.float32(trees.threshold[node])
    return tied


def _lightgbm_ties(source, x: np.ndarray, rows: int = 40) -> np.ndarray:
    """``x`` with rows holding a LightGBM threshold exactly in float32. LightGBM keeps doubles, which
    onnxmltools rounds to float32: a value between the two goes the other way in the graph (whose
    margin contributions follow), so only thresholds that round down or not at all are taken."""
    found, todo = [], [t["tree_structure"] for t in source.booster_.dump_model()["tree_info"]]
    while todo:
        node = todo.pop()
        if "split_feature" in node:
            if float(np.float32(node["threshold"])) <= node["threshold"]:
                found.append((node["split_feature"], np.float32(node["threshold"])))
            todo += [node["left_child"], node["right_child"]]
    tied = x.copy()
    for i, (feature, threshold) in enumerate(found[:rows]):
        tied[i, feature] = threshold
    return tied


def _with_missing(x: np.ndarray) -> np.ndarray:
    holes = x.copy()
    holes[3::7, 0] = np.nan
    holes[5::11, 2] = np.nan
    return holes


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo model trained into a temporary registry, its scikit-learn model and holdout rows."""
    seen = []
    with pytest.MonkeyPatch.context() as patch:
        fit = train._fit
        patch.setattr(train, "_fit", lambda *a: seen.append(fit(*a)) or seen[-1])
        folder = train.train(tmp_path_factory.mktemp("registry"), "loan-approval")
    model = load_folder(folder)
    x, _ = train._dataset(20_000, 7, drifted=False)
    return model, seen[0], _with_ties(model, x[15_000:15_400])


@pytest.fixture(scope="module", params=["gradient-boosting", "regressor", "xgboost", "lightgbm"])
def zoo_model(request, tmp_path_factory):
    made, source = zoo_sources.with_source(request.param, tmp_path_factory.mktemp(request.param))
    model = zoo_sources.imported(made, tmp_path_factory.mktemp("registry"), request.param)
    x = zoo._numbers(zoo.table(rows=400, seed=1))
    x = _lightgbm_ties(source, x) if request.param == "lightgbm" else _with_ties(model, x)
    if request.param in ("xgboost", "lightgbm"):
        x = _with_missing(x)
    return request.param, model, source, x


def _margin_gap(explained: np.ndarray, expected: float, margin: np.ndarray) -> float:
    """How far contributions and expected value are from the margin, relative to the margin's size."""
    return float(np.max(np.abs(explained.sum(axis=1) + expected - margin) / np.maximum(1.0, np.abs(margin))))


def test_the_demo_matches_shap_and_adds_up_to_the_margin(demo):
    model, clf, x = demo
    contributions = contributions_for(model)
    explained = contributions(x, None)
    explainer = shap.TreeExplainer(clf, model_output="raw")
    assert explained.shape == (len(x), len(model.card.features))
    assert np.max(np.abs(explained - explainer.shap_values(x))) < TOLERANCE
    assert abs(contributions.expected_value - float(np.ravel(explainer.expected_value)[0])) < TOLERANCE
    assert model.card.attribution.expected_value == pytest.approx(contributions.expected_value, abs=1e-9)
    assert _margin_gap(explained, contributions.expected_value, contributions.margin(x, None)) < TOLERANCE


def test_the_demo_margin_is_the_log_odds_of_its_score(demo):
    model, _, x = demo
    margin = contributions_for(model).margin(x, None)
    assert np.allclose(1 / (1 + np.exp(-margin)), model.predict_proba(x), atol=1e-6)


def test_the_demo_covers_are_scikit_learns_training_counts(demo):
    model, clf, _ = demo
    graph = graph_of(model)
    trees = forest(graph, scoring_node(graph, model.card), model.card)
    ours = np.asarray(model.card.attribution.covers)
    theirs = np.concatenate([t[0].tree_.weighted_n_node_samples for t in clf.estimators_])
    roots = ours[np.r_[0, np.flatnonzero(np.diff(trees.tree)) + 1]]
    assert np.all(roots == 15_000)
    assert np.array_equal(np.sort(ours), np.sort(theirs))


def _xgboost_counted(source, explainer) -> shap.TreeExplainer:
    """shap's algorithm on XGBoost's trees with covers counting the training rows as XGBoost routes them."""
    import xgboost

    leaves = source.get_booster().predict(xgboost.DMatrix(zoo._numbers(zoo.table())), pred_leaf=True)
    trees = []
    for t, tree in enumerate(explainer.model.trees):
        cover = np.bincount(leaves[:, t].astype(int), minlength=len(tree.children_left)).astype(float)
        for n in range(len(cover) - 1, -1, -1):
            if tree.children_left[n] >= 0:
                cover[n] = cover[tree.children_left[n]] + cover[tree.children_right[n]]
        parts = ("children_left", "children_right", "children_default", "features", "thresholds", "values")
        trees.append({**{p: getattr(tree, p) for p in parts}, "node_sample_weight": cover})
    return shap.TreeExplainer({"trees": trees, "base_offset": explainer.model.base_offset[0]})


def test_zoo_ensembles_match_shap_and_add_up_to_the_margin(zoo_model):
    kind, model, source, x = zoo_model
    contributions = contributions_for(model)
    explained = contributions(x, None)
    explainer = shap.TreeExplainer(source, model_output="raw")
    if kind == "xgboost":
        theirs = _xgboost_counted(source, explainer).shap_values(x.astype(np.float64), check_additivity=False)
        margins = source.predict(zoo._numbers(zoo.table()), output_margin=True)
        assert abs(contributions.expected_value - float(np.mean(margins))) < TOLERANCE
    else:
        theirs = np.asarray(explainer.shap_values(x))
        theirs = theirs[..., 1] if theirs.ndim == 3 else theirs
        expected = float(np.ravel(explainer.expected_value)[-1])
        assert abs(contributions.expected_value - expected) < TOLERANCE * max(1.0, abs(expected))
    assert np.max(np.abs(explained - theirs)) < TOLERANCE
    assert _margin_gap(explained, contributions.expected_value, contributions.margin(x, None)) < TOLERANCE
