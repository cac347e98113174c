"""Linear models' contributions against shap's LinearExplainer, and the graphs that cannot give any.

The zoo's scikit-learn pipeline (one-hot strings and scaled numbers into a logistic regression,
one input per column; floats, and doubles cast to floats) is imported with its reference; each
feature's contribution is the sum of shap's values over the columns it feeds, with the
reference's transformed rows as the background, and they add up to the graph's margin.
"""

from __future__ import annotations

import numpy as np
import onnx
import pandas as pd
import pytest
import shap
import zoo
import zoo_sources

from stream.errors import ModelError
from stream.lifecycle.attribution import attribute, reference_rows
from stream.scoring.contributions import contributions_for
from stream.scoring.contributions.core import graph_of, ranks
from stream.scoring.contributions.graph import scoring_node
from stream.scoring.contributions.linear import Columns, columns_graph, sources
from stream.scoring.feeds import Feeds
from stream.scoring.model import session_options

TOLERANCE = 1e-5


@pytest.fixture(scope="module", params=["pipeline", "pipeline-double"])
def linear(request, tmp_path_factory):
    made, source = zoo_sources.with_source(request.param, tmp_path_factory.mktemp(request.param))
    model = zoo_sources.imported(
        made, tmp_path_factory.mktemp("registry"), request.param, personal=["region"]
    )
    data = zoo.table(rows=300, seed=1)
    data["region"][:5] = "nowhere"  # a category the reference never had: no one-hot column set
    return model, source, data


def _frame(data: dict[str, np.ndarray]) -> pd.DataFrame:
    columns = zoo.STRINGS + zoo.NUMBERS
    return pd.DataFrame({c: data[c] if c in zoo.STRINGS else data[c].astype(np.float64) for c in columns})


def _fed_by(source) -> list[str]:
    """The feature feeding each column of the pipeline's transform: a string's one-hot columns, then
    the numbers."""
    encoder = source.named_steps["prepare"].named_transformers_["strings"]
    return [f for f, found in zip(zoo.STRINGS, encoder.categories_, strict=True) for _ in found] + zoo.NUMBERS


def test_the_pipeline_matches_shap_and_adds_up_to_the_margin(linear):
    model, source, data = linear
    prepare, classify = source.named_steps["prepare"], source.named_steps["classify"]
    background = prepare.transform(_frame(zoo.table()))
    # every reference row as the background (shap samples 100 of them by default)
    explainer = shap.LinearExplainer(
        classify, shap.maskers.Independent(background, max_samples=len(background))
    )
    per_column = explainer.shap_values(prepare.transform(_frame(data)))
    fed = _fed_by(source)
    theirs = np.column_stack(
        [per_column[:, [i for i, n in enumerate(fed) if n == f]].sum(axis=1) for f in model.feature_names]
    )
    x, texts = model.feeds.table(model.card, {f: data[f] for f in model.feature_names})
    contributions = contributions_for(model)
    explained = contributions(x, texts)
    assert np.max(np.abs(explained - theirs)) < TOLERANCE
    assert abs(contributions.expected_value - float(explainer.expected_value)) < TOLERANCE
    margin = contributions.margin(x, texts)
    assert np.max(np.abs(explained.sum(axis=1) + contributions.expected_value - margin)) < TOLERANCE
    assert np.allclose(1 / (1 + np.exp(-margin)), model.predict_proba(x, texts), atol=1e-6)


def test_each_column_is_traced_to_the_feature_feeding_it(linear):
    model, source, _ = linear
    assert model.card.attribution.method == "linear"
    assert model.card.attribution.columns == _fed_by(source)


def _interactions(folder):
    """A logistic regression on the numbers and their pairwise products: columns of two features."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    data = zoo.table()
    model = make_pipeline(
        PolynomialFeatures(interaction_only=True), StandardScaler(), LogisticRegression(max_iter=500)
    )
    model.fit(zoo._numbers(data), data[zoo.LABEL])
    onx = convert_sklearn(
        model,
        initial_types=[("input", FloatTensorType([None, len(zoo.NUMBERS)]))],
        options={id(model.steps[-1][1]): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    return zoo._one_tensor(folder, onx, data, zoo.LABEL, "binary")


def test_a_column_of_two_features_is_refused_and_the_import_goes_on(tmp_path):
    model = zoo_sources.imported(_interactions(tmp_path / "made"), tmp_path / "registry", "interactions")
    assert model.card.attribution is None
    with pytest.raises(ModelError, match="has no attribution") as refused:
        contributions_for(model)
    assert "\n" not in str(refused.value)
    graph = graph_of(model)
    node = scoring_node(graph, model.card)
    columns = Columns(
        columns_graph(graph, node), node.input[0], Feeds(model.card, ranks(graph)), session_options()
    )
    x, _ = model.feeds.table(model.card, {f: zoo.table()[f] for f in model.feature_names})
    with pytest.raises(ModelError, match=r"comes from 'income' and 'age'"):
        sources(columns, x, None, model.card)


@pytest.mark.parametrize("kind", ["three-classes"])
def test_a_multiclass_model_gives_no_reasons(kind, tmp_path):
    model = zoo_sources.imported(zoo.MAKERS[kind](tmp_path / "made"), tmp_path / "registry", kind)
    assert model.card.attribution is None
    with pytest.raises(
        ModelError, match="reasons need a binary classifier or a regressor; three-classes/1 is"
    ):
        contributions_for(model)


def test_a_graph_of_neither_kind_says_what_it_is(tmp_path):
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.neural_network import MLPClassifier

    data = zoo.table()
    mlp = MLPClassifier(hidden_layer_sizes=(4,), max_iter=50, random_state=0).fit(
        zoo._numbers(data) / 1e4, data[zoo.LABEL]
    )
    onx = convert_sklearn(
        mlp,
        initial_types=[("input", FloatTensorType([None, 3]))],
        options={id(mlp): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    made = zoo._one_tensor(tmp_path / "made", onx, data, zoo.LABEL, "binary")
    model = zoo_sources.imported(made, tmp_path / "registry", "mlp")
    assert (
        attribute(
            made.model.read_bytes(),
            model.card,
            *reference_rows(made.model.read_bytes(), model.card, {f: data[f] for f in model.feature_names}),
        )
        is None
    )
    with pytest.raises(
        ModelError, match=r"^reasons need a tree ensemble or a linear model; mlp/1 is a \w+ node"
    ):
        contributions_for(model)
    assert onnx.load(made.model).graph.node
