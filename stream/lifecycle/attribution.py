"""What a card's ``attribution`` holds, computed from the reference rows at ``model train`` and ``import``.

A tree ensemble's node covers (the reference rows through each node: with the training rows as
the reference, the covers scikit-learn and LightGBM keep) and the margin's mean; a linear model's
column means and the feature each column comes from. A graph that cannot give contributions gets
none, and the model is registered all the same.
"""

from __future__ import annotations

import numpy as np
import onnx

from stream.errors import ModelError
from stream.model_card import Attribution, ModelCard
from stream.scoring.contributions import core
from stream.scoring.contributions import graph as graphs
from stream.scoring.contributions.linear import Columns, columns_graph, sources, weights
from stream.scoring.contributions.paths import covers
from stream.scoring.feeds import Feeds
from stream.scoring.model import session_options

__all__ = ["attribute", "reference_rows"]

CHUNK = 20_000


def reference_rows(
    data: bytes, card: ModelCard, columns: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray | None]:
    """``x`` and ``texts`` of the reference ``columns`` by feature name, as the loaded model takes them."""
    graph = graphs.read_model(data, card.name)
    return Feeds(card, core.ranks(graph)).table(card, columns)


def attribute(data: bytes, card: ModelCard, x: np.ndarray, texts: np.ndarray | None) -> Attribution | None:
    """The attribution of the model ``data`` described by ``card`` on reference rows ``x`` and ``texts``
    (as :meth:`LoadedModel.predict` takes them); None when its graph cannot give contributions."""
    graph = graphs.read_model(data, card.name)
    try:
        node = graphs.scoring_node(graph, card)
        feeds = Feeds(card, core.ranks(graph))
        if node.op_type in graphs.TREES:
            return _trees(graph, node, card, feeds, x, texts)
        return _linear(graph, node, card, feeds, x, texts)
    except ModelError:
        return None


def _trees(
    graph: onnx.ModelProto,
    node: onnx.NodeProto,
    card: ModelCard,
    feeds: Feeds,
    x: np.ndarray,
    texts: np.ndarray | None,
) -> Attribution:
    """Covers counted on the reference rows; the margin's mean from them."""
    forest = graphs.forest(graph, node, card)
    tensor = core.tensor_of(feeds, forest.input)(x, texts)
    cover = covers(forest, tensor)
    mean = float(np.dot(forest.value, cover) / len(x)) + forest.base
    expected = forest.sign * mean + forest.offset
    return Attribution(method="tree", expected_value=expected, covers=cover.tolist(), rows=len(x))


def _linear(
    graph: onnx.ModelProto,
    node: onnx.NodeProto,
    card: ModelCard,
    feeds: Feeds,
    x: np.ndarray,
    texts: np.ndarray | None,
) -> Attribution:
    """The linear node's column means on the reference rows, and the feature of each column."""
    coefficients, intercept, sign, offset, _ = weights(node, card)
    columns = Columns(columns_graph(graph, node), node.input[0], feeds, session_options())
    total = np.zeros(len(coefficients), dtype=np.float64)
    for start in range(0, len(x), CHUNK):
        part = columns(x[start : start + CHUNK], None if texts is None else texts[start : start + CHUNK])
        total += part.sum(axis=0)
    means = total / len(x)
    names = sources(columns, x, texts, card)
    expected = sign * float(intercept + coefficients @ means) + offset
    return Attribution(
        method="linear", expected_value=expected, means=means.tolist(), columns=names, rows=len(x)
    )
