"""Exact contributions of a linear model fed by per-column preprocessing.

The graph up to the ``LinearClassifier`` / ``LinearRegressor`` node's input gives its columns ``z``
(one-hot strings, scaled numbers...); each column comes from one card feature. The contribution of
a feature is the sum, over its columns, of ``coefficient * (z - reference mean of z)``; they add up
to the margin less its reference mean, ``intercept + coefficients . means``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import onnx
import onnxruntime as ort

from stream.errors import ModelError
from stream.model_card import ModelCard
from stream.scoring.contributions.graph import attributes, prune
from stream.scoring.contributions.trees import Scatter
from stream.scoring.feeds import Feeds

PROBE_ROWS = 2_000
"""Reference rows changed one feature at a time to find which columns each feature feeds."""
SHIFTS = (1, 7, 101)
"""The rows are rotated by these many places, one feature at a time."""


class Weights(NamedTuple):
    """The linear node's terms of the card's margin: ``sign * (coefficients . z + intercept) + offset``."""

    coefficients: np.ndarray
    intercept: float
    sign: float
    offset: float
    single: bool  # a binary classifier of one row of coefficients (onnxruntime completes the other)


def weights(node: onnx.NodeProto, card: ModelCard) -> Weights:
    """The coefficients and intercept of the card's score margin, its sign and offset."""
    attrs = attributes(node)
    where = f"{card.name}/{card.version}"
    coefficients = np.asarray(attrs["coefficients"], dtype=np.float64)
    intercepts = np.asarray(attrs.get("intercepts", []), dtype=np.float64)
    if node.op_type == "LinearRegressor":
        if int(attrs.get("targets", 1)) != 1:
            raise ModelError(f"reasons need a regressor of one target; {where} has {attrs['targets']}")
        return Weights(coefficients, float(intercepts[0]) if len(intercepts) else 0.0, 1.0, 0.0, False)
    if card.output.task != "binary":
        raise ModelError(f"reasons need a binary classifier or a regressor; {where} is {card.output.task}")
    transform = attrs.get("post_transform", "NONE")
    if transform not in ("NONE", "LOGISTIC"):
        raise ModelError(f"reasons need a linear model scored by a logistic or no transform; {where} is not")
    rows = max(len(intercepts), 1)
    table = coefficients.reshape(rows, -1)
    if rows > 1:
        at = card.output.positive_index
        return Weights(table[at], float(intercepts[at]) if len(intercepts) else 0.0, 1.0, 0.0, False)
    first = card.output.positive_index == 0  # the complement: -s under LOGISTIC, 1 - s under none
    offset = 1.0 if first and transform == "NONE" else 0.0
    intercept = float(intercepts[0]) if len(intercepts) else 0.0
    return Weights(table[0], intercept, -1.0 if first else 1.0, offset, True)


def columns_graph(model: onnx.ModelProto, node: onnx.NodeProto) -> bytes | None:
    """The graph answering the linear node's input (None when that input is a graph input)."""
    name = node.input[0]
    if name in {i.name for i in model.graph.input}:
        return None
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    cut = onnx.ModelProto()
    cut.CopyFrom(model)
    return prune(cut, name, types.get(name, onnx.TensorProto.FLOAT))


class Columns:
    """The linear node's input columns for a batch, as float64."""

    __slots__ = ("_feeds", "_input", "_session", "_wanted")

    def __init__(self, graph: bytes | None, name: str, feeds: Feeds, options: Any) -> None:
        self._feeds, self._input = feeds, name
        self._session, self._wanted = None, set()
        if graph is not None:
            self._session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
            self._wanted = {i.name for i in self._session.get_inputs()}

    def __call__(self, x: np.ndarray, texts: np.ndarray | None) -> np.ndarray:
        fed = self._feeds(x, texts)
        if self._session is None:
            z = fed[self._input]
        else:
            z = self._session.run(None, {k: v for k, v in fed.items() if k in self._wanted})[0]
        z = np.asarray(z, dtype=np.float64)
        return z.reshape(len(x), -1)


def sources(columns: Columns, x: np.ndarray, texts: np.ndarray | None, card: ModelCard) -> list[str | None]:
    """The card feature each column comes from (None: a constant), found by rotating one feature's
    values at a time; a column moved by two features is refused."""
    x, texts = x[:PROBE_ROWS], None if texts is None else texts[:PROBE_ROWS]
    base = columns(x, texts)
    strings = [f.name for f in card.features if f.type == "string"]
    found: list[str | None] = [None] * base.shape[1]
    for i, spec in enumerate(card.features):
        moved = np.zeros(base.shape[1], dtype=bool)
        for shift in SHIFTS:
            xs = x.copy()
            xs[:, i] = np.roll(x[:, i], shift)
            ts = texts
            if texts is not None and spec.name in strings:
                ts = texts.copy()
                at = strings.index(spec.name)
                ts[:, at] = np.roll(texts[:, at], shift)
            changed = columns(xs, ts)
            moved |= np.any((changed != base) & ~(np.isnan(changed) & np.isnan(base)), axis=0)
        for c in np.flatnonzero(moved):
            if found[c] is not None:
                raise ModelError(
                    f"reasons need each column of the linear model to come from one feature; column {c} "
                    f"of {card.name}/{card.version} comes from {found[c]!r} and {spec.name!r}"
                )
            found[c] = spec.name
    return found


class LinearShap:
    """Contributions of a linear model: ``coefficient * (z - mean)`` summed per card feature."""

    __slots__ = ("_coefficients", "_columns", "_fed", "_means", "_scatter", "expected")

    def __init__(
        self,
        columns: Columns,
        coefficients: np.ndarray,
        intercept: float,
        means: np.ndarray,
        names: list[str | None],
        card: ModelCard,
    ) -> None:
        at = {f.name: i for i, f in enumerate(card.features)}
        self._columns = columns
        fed = [c for c, name in enumerate(names) if name is not None]
        self._fed = np.array(fed, dtype=np.intp)
        self._means, self._coefficients = means[fed][:, None], coefficients[fed][:, None]
        self._scatter = Scatter(np.array([at[names[c]] for c in fed], dtype=np.intp)[:, None], len(at))
        self.expected = float(intercept + coefficients @ means)

    def __call__(self, x: np.ndarray, texts: np.ndarray | None) -> np.ndarray:
        z = self._columns(x, texts)[:, self._fed].T
        return self._scatter(((z - self._means) * self._coefficients)[:, None, :])
