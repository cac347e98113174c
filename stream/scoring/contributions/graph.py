"""What contributions read from an ONNX graph: the node whose output the card scores, and its attributes.

:func:`scoring_node` walks back from the card's output tensor through the nodes that only pass
probabilities on (Identity, ZipMap, Cast) to the node computing them; :func:`forest` reads a
``TreeEnsembleClassifier`` or ``TreeEnsembleRegressor`` (ai.onnx.ml) into arrays; :func:`margin_graph`
is the graph cut at that node's raw scores (its post transform NONE), run to check the margin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from stream.errors import ModelError
from stream.model_card import ModelCard

TREES = ("TreeEnsembleClassifier", "TreeEnsembleRegressor")
LINEAR = ("LinearClassifier", "LinearRegressor")
_PASSING = ("Identity", "ZipMap", "Cast")
MODES = ("BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ")
"""The comparison of each branch node, coded by its index here; a leaf is coded -1."""


def read_model(data: bytes, where: str) -> onnx.ModelProto:
    """The ONNX model in ``data``; a file that is not one is refused naming ``where``."""
    try:
        return onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf's decode errors
        raise ModelError(f"cannot read the ONNX graph of {where}: {exc}") from exc


def attributes(node: onnx.NodeProto) -> dict[str, Any]:
    """A node's attributes by name (tensors as numpy arrays, strings decoded)."""
    found: dict[str, Any] = {}
    for a in node.attribute:
        value = helper.get_attribute_value(a)
        if isinstance(value, onnx.TensorProto):
            value = numpy_helper.to_array(value)
        elif isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, list) and value and isinstance(value[0], bytes):
            value = [v.decode() for v in value]
        found[a.name] = value
    return found


def scoring_node(model: onnx.ModelProto, card: ModelCard) -> onnx.NodeProto:
    """The node computing the card's output, past the nodes that only pass it on; refused when it is
    neither a tree ensemble nor a linear model."""
    if card.output.task == "multiclass":
        raise ModelError(
            f"reasons need a binary classifier or a regressor; {card.name}/{card.version} is multiclass"
        )
    producers = {out: node for node in model.graph.node for out in node.output}
    node = producers.get(card.output.tensor)
    while node is not None and node.op_type in _PASSING:
        node = producers.get(node.input[0])
    if node is None or node.op_type not in TREES + LINEAR:
        what = "a graph input" if node is None else f"a {node.op_type} node"
        raise ModelError(
            f"reasons need a tree ensemble or a linear model; {card.name}/{card.version} is {what} "
            f"giving {card.output.tensor!r}"
        )
    return node


def score_output(node: onnx.NodeProto) -> str:
    """The node's output holding scores (a classifier's second, a regressor's only one)."""
    return node.output[1] if node.op_type.endswith("Classifier") else node.output[0]


def margin_graph(model: onnx.ModelProto, node: onnx.NodeProto) -> bytes:
    """The graph cut at ``node``'s scores with its post transform NONE: the raw margin of each class."""
    cut = onnx.ModelProto()
    cut.CopyFrom(model)
    target = next(n for n in cut.graph.node if list(n.output) == list(node.output))
    for a in target.attribute:
        if a.name == "post_transform":
            a.s = b"NONE"
    return prune(cut, score_output(node), onnx.TensorProto.FLOAT)


def prune(model: onnx.ModelProto, output: str, elem: int) -> bytes:
    """``model`` answering only ``output`` (of element type ``elem``), without the nodes it does not need."""
    producers = {out: node for node in model.graph.node for out in node.output}
    needed, wanted = set(), [output]
    while wanted:
        name = wanted.pop()
        node = producers.get(name)
        if node is not None and id(node) not in needed:
            needed.add(id(node))
            wanted.extend(node.input)
    kept = [n for n in model.graph.node if id(n) in needed]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info(output, elem, None))
    return model.SerializeToString()


@dataclass(frozen=True, slots=True)
class Forest:
    """A tree ensemble's nodes in ONNX order, and the leaf values of the scored class (or target)."""

    tree: np.ndarray  # tree id of each node
    feature: np.ndarray  # input column each branch node compares
    threshold: np.ndarray  # float64, the threshold as the graph holds it
    mode: np.ndarray  # index in MODES, -1 for a leaf
    true_at: np.ndarray  # ONNX index of the true child (-1 for a leaf)
    false_at: np.ndarray
    missing_true: np.ndarray  # bool: a NaN takes the true branch
    value: np.ndarray  # float64 leaf value of the scored class (0 on branch nodes)
    base: float  # added to the sum of the leaves
    sign: float  # the card's score margin is sign * (leaves + base) + offset
    offset: float
    single: bool  # a binary classifier scoring one class (onnxruntime makes the other its complement)
    input: str  # the graph input the trees read
    float32: bool  # the comparisons are made in float32


def _values(attrs: dict[str, Any], name: str) -> np.ndarray:
    """A float attribute, or its ``_as_tensor`` twin (double thresholds)."""
    if f"{name}_as_tensor" in attrs:
        return np.asarray(attrs[f"{name}_as_tensor"], dtype=np.float64)
    return np.asarray(attrs.get(name, []), dtype=np.float64)


def forest(model: onnx.ModelProto, node: onnx.NodeProto, card: ModelCard) -> Forest:
    """The tree ensemble ``node`` as arrays, its leaves valued for the card's score."""
    attrs = attributes(node)
    where = f"{card.name}/{card.version}"
    inputs = {i.name: i for i in model.graph.input}
    if node.input[0] not in inputs:
        raise ModelError(
            f"reasons need a tree ensemble reading a graph input; {where} feeds its trees from another node"
        )
    trees, ids = np.asarray(attrs["nodes_treeids"]), np.asarray(attrs["nodes_nodeids"])
    at = {(int(t), int(i)): k for k, (t, i) in enumerate(zip(trees, ids, strict=True))}
    modes = [MODES.index(m) if m in MODES else -1 for m in attrs["nodes_modes"]]
    mode = np.asarray(modes, dtype=np.int8)

    def child(key: str) -> np.ndarray:
        pairs = zip(trees, attrs[key], mode, strict=True)
        return np.array([at[(int(t), int(c))] if m >= 0 else -1 for t, c, m in pairs], dtype=np.intp)

    value, base, sign, offset, single = _leaf_values(attrs, at, card, node.op_type)
    tracks = attrs.get("nodes_missing_value_tracks_true") or [0] * len(trees)
    elem = inputs[node.input[0]].type.tensor_type.elem_type
    return Forest(
        tree=trees.astype(np.int64),
        feature=np.asarray(attrs["nodes_featureids"], dtype=np.intp),
        threshold=_values(attrs, "nodes_values"),
        mode=mode,
        true_at=child("nodes_truenodeids"),
        false_at=child("nodes_falsenodeids"),
        missing_true=np.asarray(tracks, dtype=bool),
        value=value,
        base=base,
        sign=sign,
        offset=offset,
        single=single,
        input=node.input[0],
        float32=elem != onnx.TensorProto.DOUBLE,
    )


def _leaf_values(
    attrs: dict[str, Any], at: dict[tuple[int, int], int], card: ModelCard, op: str
) -> tuple[np.ndarray, float, float, float, bool]:
    """Each node's leaf value for the scored class, the base value, and the sign and offset making the
    sum the card's score margin (onnxruntime's convention for a binary classifier given one class)."""
    where = f"{card.name}/{card.version}"
    kind = "class" if op == "TreeEnsembleClassifier" else "target"
    ids = np.asarray(attrs[f"{kind}_ids"], dtype=np.int64)
    weights = _values(attrs, f"{kind}_weights")
    bases = _values(attrs, "base_values")
    if kind == "target":
        if int(attrs.get("n_targets", 1)) != 1 or attrs.get("aggregate_function", "SUM") not in (
            "SUM",
            "AVERAGE",
        ):
            raise ModelError(
                f"reasons need a regressor of one target summing or averaging trees; {where} is not"
            )
        chosen, sign, offset = 0, 1.0, 0.0
    elif card.output.task != "binary":
        raise ModelError(f"reasons need a binary classifier or a regressor; {where} is {card.output.task}")
    elif len(set(ids.tolist())) > 1 or len(bases) > 1:
        chosen, sign, offset = card.output.positive_index, 1.0, 0.0
    else:  # one class scored: onnxruntime answers it as the second column, its complement the first
        chosen, sign = int(ids[0]) if len(ids) else 0, 1.0 if card.output.positive_index == 1 else -1.0
        complement = attrs.get("post_transform", "NONE") == "NONE" and bool(np.all(weights >= 0))
        offset = 1.0 if sign < 0 and complement else 0.0
    if kind == "class" and attrs.get("post_transform", "NONE") not in ("NONE", "LOGISTIC"):
        raise ModelError(f"reasons need a tree ensemble scored by a logistic or no transform; {where} is not")
    value = np.zeros(len(at), dtype=np.float64)
    picked = ids == chosen
    keys = zip(
        np.asarray(attrs[f"{kind}_treeids"])[picked],
        np.asarray(attrs[f"{kind}_nodeids"])[picked],
        strict=True,
    )
    np.add.at(value, [at[(int(t), int(n))] for t, n in keys], weights[picked])
    if attrs.get("aggregate_function") == "AVERAGE":
        value /= len(set(at_tree for at_tree, _ in at))
    base = float(bases[chosen if len(bases) > 1 else 0]) if len(bases) else 0.0
    single = kind == "class" and not (len(set(ids.tolist())) > 1 or len(bases) > 1)
    return value, base, sign, offset, single
