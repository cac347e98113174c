"""Exact per-feature contributions to a score's margin, from the ONNX graph and the card's attribution.

The margin is what the scoring node adds up before its post transform: a binary classifier's
log-odds (LOGISTIC; a tree ensemble or linear model with no transform: the score itself), a
regressor's value. For each row, ``contributions.sum() + expected_value == margin``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
import onnxruntime as ort

from stream.errors import ModelError
from stream.model_card import Attribution, ModelCard
from stream.scoring.contributions import graph as graphs
from stream.scoring.contributions.linear import Columns, LinearShap, columns_graph, weights
from stream.scoring.contributions.trees import TreeShap
from stream.scoring.feeds import Feeds
from stream.scoring.model import LoadedModel, session_options

Explain = Callable[[np.ndarray, np.ndarray | None], np.ndarray]


class Contributions:
    """Each feature's contribution to the margin of each row, in card feature order (float64)."""

    __slots__ = ("_explain", "_feeds", "_margin", "_margin_graph", "_read", "expected_value", "sign")

    def __init__(
        self,
        explain: Explain,
        expected_value: float,
        sign: float,
        margin_graph: bytes,
        read: tuple[int | None, float],
        feeds: Feeds,
    ) -> None:
        self._explain, self.sign, self._feeds = explain, sign, feeds
        self.expected_value = expected_value
        self._margin_graph, self._read = margin_graph, read
        self._margin: ort.InferenceSession | None = None

    def __call__(self, x: np.ndarray, texts: np.ndarray | None) -> np.ndarray:
        """``[rows, features]`` for rows ``x`` and ``texts`` as :meth:`LoadedModel.predict` takes them.

        A row's contributions are the same bits in any batch: every sum runs in a fixed order per row.
        """
        found = self._explain(x, texts)
        return found if self.sign == 1.0 else -found

    def margin(self, x: np.ndarray, texts: np.ndarray | None) -> np.ndarray:
        """The raw margin of each row, from onnxruntime on the graph cut before the post transform."""
        if self._margin is None:
            self._margin = ort.InferenceSession(
                self._margin_graph, session_options(), providers=["CPUExecutionProvider"]
            )
        wanted = {i.name for i in self._margin.get_inputs()}
        fed = {k: v for k, v in self._feeds(x, texts).items() if k in wanted}
        out = np.asarray(self._margin.run(None, fed)[0], dtype=np.float64)
        column, sign = self._read
        raw = out[:, column] if column is not None else out.reshape(-1)
        return raw if sign == 1.0 else -raw


def graph_of(model: LoadedModel) -> onnx.ModelProto:
    return graphs.read_model(model.path.read_bytes(), str(model.path))


def ranks(graph: onnx.ModelProto) -> dict[str, int]:
    """Each graph input's rank."""
    return {i.name: len(i.type.tensor_type.shape.dim) for i in graph.graph.input}


def tree_columns(card: ModelCard, name: str) -> np.ndarray:
    """The card feature index of each column of the graph input ``name``."""
    at = {f.name: i for i, f in enumerate(card.features)}
    spec = next(i for i in card.inputs if i.name == name)
    return np.array([at[f] for f in spec.features], dtype=np.intp)


def tensor_of(feeds: Feeds, name: str) -> Callable[[np.ndarray, np.ndarray | None], np.ndarray]:
    """The graph input ``name`` of a batch, as a ``[rows, columns]`` array."""

    def tensor(x: np.ndarray, texts: np.ndarray | None) -> np.ndarray:
        part = feeds(x, texts)[name]
        return part.reshape(len(x), -1)

    return tensor


def build(graph: onnx.ModelProto, card: ModelCard, attribution: Attribution | None) -> Contributions:
    """The contributions of ``card``'s model in ``graph``; a ModelError saying why there are none."""
    node = graphs.scoring_node(graph, card)
    where = f"{card.name}/{card.version}"
    if attribution is None:
        raise ModelError(
            f"the card of {where} has no attribution: register the model again with `streamscore model "
            "import` (or `model train`) to give reasons"
        )
    feeds = Feeds(card, ranks(graph))
    cut = graphs.margin_graph(graph, node)
    features = len(card.features)
    if node.op_type in graphs.TREES:
        forest = graphs.forest(graph, node, card)
        if attribution.method != "tree" or len(attribution.covers or ()) != len(forest.mode):
            raise ModelError(f"the card of {where} has no node covers for its {len(forest.mode)} tree nodes")
        shap = TreeShap(forest, np.asarray(attribution.covers), tree_columns(card, forest.input), features)
        tensor = tensor_of(feeds, forest.input)
        expected = forest.sign * (shap.expected + forest.base) + forest.offset

        def explain(x: np.ndarray, texts: np.ndarray | None) -> np.ndarray:
            return shap(tensor(x, texts))

        read = _read(card, node, forest.single, forest.sign)
        return Contributions(explain, expected, forest.sign, cut, read, feeds)
    coefficients, intercept, sign, offset, single = weights(node, card)
    if attribution.method != "linear" or attribution.means is None or attribution.columns is None:
        raise ModelError(f"the card of {where} has no column means for its linear model")
    if len(attribution.means) != len(coefficients) or len(attribution.columns) != len(coefficients):
        raise ModelError(
            f"the card of {where} has {len(attribution.means)} column means, its model {len(coefficients)}"
        )
    columns = Columns(columns_graph(graph, node), node.input[0], feeds, session_options())
    linear = LinearShap(
        columns, coefficients, intercept, np.asarray(attribution.means), attribution.columns, card
    )
    expected = sign * linear.expected + offset
    return Contributions(linear, expected, sign, cut, _read(card, node, single, sign), feeds)


def _read(card: ModelCard, node: onnx.NodeProto, single: bool, sign: float) -> tuple[int | None, float]:
    """Which column of the graph cut before its post transform holds the margin, and its sign: a binary
    classifier scoring one class under LOGISTIC has it in the second column (the first holds what
    no transform would answer), so a first-column positive class reads it turned."""
    if card.output.task == "regression":
        return None, 1.0
    if single and graphs.attributes(node).get("post_transform", "NONE") == "LOGISTIC":
        return 1, sign
    return card.output.positive_index, 1.0


def contributions_for(model: LoadedModel) -> Contributions:
    """The contributions of ``model``; ModelError with one line when its graph or card cannot give them."""
    return build(graph_of(model), model.card, model.card.attribution)


def top_reasons(contributions: np.ndarray, names: list[str], k: int) -> list[dict[str, float]]:
    """Per row, the ``k`` features whose contributions are largest in magnitude, largest first (ties: card
    order), feature name to contribution."""
    if k <= 0:
        return [{} for _ in range(len(contributions))]
    order = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, :k]
    picked = np.take_along_axis(contributions, order, axis=1)
    return [
        {names[i]: v for i, v in zip(row, values, strict=True)}
        for row, values in zip(order.tolist(), picked.tolist(), strict=True)
    ]
