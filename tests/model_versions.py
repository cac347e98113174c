"""Model versions for tests: the shipped model registered again, and bad ONNX graphs built here."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import onnx
from conftest import MODELS
from onnx import TensorProto, helper

from stream.scoring.model import CARD_FILE, MODEL_FILE, sha256_file

NAME = "loan-approval"
SHIPPED = MODELS / NAME / "1"
WIDTH = 9  # features of the shipped card


def registry(root: Path) -> Path:
    """A registry holding a copy of the shipped version 1."""
    shutil.copytree(SHIPPED, root / NAME / "1")
    return root


def replace_model(folder: Path, model: onnx.ModelProto | bytes, **card: object) -> None:
    """Write ``model`` into ``folder`` and make the card agree with it (sha256, and ``card`` fields)."""
    path = folder / MODEL_FILE
    path.write_bytes(model if isinstance(model, bytes) else model.SerializeToString())
    doc = json.loads((folder / CARD_FILE).read_text())
    doc.update(card, sha256=sha256_file(path))
    (folder / CARD_FILE).write_text(json.dumps(doc))


def add_version(
    root: Path,
    version: str,
    model: onnx.ModelProto | None = None,
    *,
    tamper: bool = False,
    edit_card: Callable[[dict], None] | None = None,
) -> Path:
    """Register ``version``: ``model``, or the shipped one re-stamped so that its sha256 differs.

    ``tamper`` flips a byte of model.onnx after the card is written. The version is prepared
    beside the registry and renamed into it, so a watcher never sees it half written.
    """
    staging = root / f".staging-{version}"
    shutil.copytree(SHIPPED, staging)
    if model is None:
        model = onnx.load(SHIPPED / MODEL_FILE)
        model.doc_string = f"registered again as version {version}"
    replace_model(staging, model, version=version)
    if edit_card is not None:
        doc = json.loads((staging / CARD_FILE).read_text())
        edit_card(doc)
        (staging / CARD_FILE).write_text(json.dumps(doc))
    if tamper:
        data = bytearray((staging / MODEL_FILE).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (staging / MODEL_FILE).write_bytes(bytes(data))
    folder = root / NAME / version
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(folder)
    return folder


def _model(nodes: list, width: int, initializers: list) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def linear(width: int = WIDTH, weight: float = 0.0) -> onnx.ModelProto:
    """features @ a [width, 2] matrix of ``weight``: probabilities only for small weights."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [width, 2], [weight] * (width * 2))
    return _model([helper.make_node("MatMul", ["features", "w"], ["probabilities"])], width, [w])


def nan_model(op: str, width: int = WIDTH) -> onnx.ModelProto:
    """A model computing NaN from any input: ``div`` is 0/0, ``log`` is log(-1)."""
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [width, 2], [0.0] * (width * 2))
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    nodes = [helper.make_node("MatMul", ["features", "zero"], ["zeros"])]  # [N, 2] of 0
    if op == "div":
        nodes.append(helper.make_node("Div", ["zeros", "zeros"], ["probabilities"]))
    else:
        nodes += [
            helper.make_node("Sub", ["zeros", "one"], ["minus_one"]),
            helper.make_node("Log", ["minus_one"], ["probabilities"]),
        ]
    return _model(nodes, width, [zero, one])
