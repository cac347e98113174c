"""``streamscore model import`` refuses what it cannot serve with ONE line naming what to fix.

Each refusal leaves nothing in the registry.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from onnx import TensorProto, helper
from typer.testing import CliRunner
from zoo import LABEL, NUMBERS, ZOO

from stream.cli.main import app
from stream.errors import ModelError
from stream.lifecycle.importer import Options, import_model


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    return {name: ZOO[name](root / name) for name in ("pipeline_zipmap", "random_forest", "regressor")}


def _refusal(model, reference, registry, name="m", version=None, **options) -> str:
    with pytest.raises(ModelError) as caught:
        import_model(model, reference, registry, name, version, Options(**options))
    message = str(caught.value)
    assert "\n" not in message
    assert not (registry / name).exists() or not any((registry / name).iterdir()), "nothing is left behind"
    return message


def _graph(tmp_path, nodes, inputs, outputs, name="graph.onnx"):
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return path


def _reference(tmp_path, frame: pd.DataFrame, name="reference.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def test_an_input_no_column_feeds(zoo, tmp_path):
    entry = zoo["pipeline_zipmap"]
    reference = _reference(tmp_path, pd.read_csv(entry.reference).drop(columns=["region"]))
    message = _refusal(entry.model, reference, tmp_path)
    assert message.startswith("input 'region' of the model: no column of the reference feeds it")


def test_a_string_column_into_a_float_input(zoo, tmp_path):
    entry = zoo["random_forest"]
    frame = pd.read_csv(entry.reference)
    frame["income"] = frame["income"].astype(object)
    frame.loc[3, "income"] = "unknown"
    message = _refusal(entry.model, _reference(tmp_path, frame), tmp_path, label=LABEL)
    assert message.startswith(
        "column 'income' holds 'unknown' (row 4), not a number, but input 'input' takes float"
    )


def test_an_empty_cell_is_not_a_number(zoo, tmp_path):
    entry = zoo["pipeline_zipmap"]
    frame = pd.read_csv(entry.reference)
    frame.loc[0, "age"] = np.nan
    message = _refusal(entry.model, _reference(tmp_path, frame), tmp_path)
    assert message.startswith("column 'age' holds '' (row 1), not a number")


def test_an_output_it_does_not_understand(zoo, tmp_path):
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3])
    label = helper.make_tensor_value_info("label", TensorProto.INT64, [None])
    model = _graph(
        tmp_path, [helper.make_node("ArgMax", ["input"], ["label"], axis=1, keepdims=0)], [x], [label]
    )
    message = _refusal(model, zoo["random_forest"].reference, tmp_path, features=NUMBERS)
    assert message.startswith("the model's outputs label (tensor(int64) [2000]) are not understood")


def test_outputs_that_are_not_probabilities(zoo, tmp_path):
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3])
    out = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 3])
    model = _graph(tmp_path, [helper.make_node("Identity", ["input"], ["probabilities"])], [x], [out])
    message = _refusal(model, zoo["random_forest"].reference, tmp_path, features=NUMBERS)
    assert message.startswith("output 'probabilities' of the model gives [")
    assert message.endswith("for reference row 1: not class probabilities (each in [0, 1], summing to 1)")


def test_an_empty_reference(zoo, tmp_path):
    reference = tmp_path / "empty.csv"
    reference.write_text(",".join([*NUMBERS, LABEL]) + "\n")
    message = _refusal(zoo["random_forest"].model, reference, tmp_path)
    assert message == f"reference {reference} has no rows: give rows as the model sees them"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"label": "outcome"}, "--label 'outcome' names no column of the reference"),
        ({"features": ["income", "wage", "debt"]}, "--features names 'wage', not a column of the reference"),
        (
            {"label": LABEL, "positive": "yes"},
            "--positive 'yes' names no class of the model: its classes are",
        ),
        (
            {"features": ["income", "age"]},
            "input 'input' takes 3 features and --features names 2 (income, age)",
        ),
        ({}, "input 'input' takes 3 features and the reference has 4 (income, age, debt, label)"),
        ({"label": LABEL, "categorical": ["income"]}, "--categorical 'income': a categorical number takes"),
        ({"personal": ["nobody"]}, "--personal names 'nobody', not a feature column of the reference"),
        ({"label": LABEL, "threshold": 1.5}, "--threshold 1.5 is not between 0 and 1"),
    ],
)
def test_options_naming_nothing(zoo, tmp_path, options, expected):
    entry = zoo["random_forest"]
    assert _refusal(entry.model, entry.reference, tmp_path, **options).startswith(expected)


def test_a_label_that_is_no_class_of_the_model(zoo, tmp_path):
    entry = zoo["random_forest"]
    frame = pd.read_csv(entry.reference)
    frame[LABEL] = np.where(frame[LABEL] == 1, "yes", "no")
    message = _refusal(entry.model, _reference(tmp_path, frame), tmp_path, label=LABEL)
    assert message.startswith(f"label column '{LABEL}' holds 'no' (row 1), not a class of the model (0, 1)")


def test_positive_for_a_regressor(zoo, tmp_path):
    entry = zoo["regressor"]
    message = _refusal(entry.model, entry.reference, tmp_path, label="target", positive="1")
    assert message == "--positive applies to a binary classifier; this model is regression"


def test_an_integer_input_fed_fractions(tmp_path):
    age = helper.make_tensor_value_info("age", TensorProto.INT64, [None, 1])
    value = helper.make_tensor_value_info("value", TensorProto.FLOAT, [None, 1])
    model = _graph(
        tmp_path, [helper.make_node("Cast", ["age"], ["value"], to=TensorProto.FLOAT)], [age], [value]
    )
    whole = _reference(tmp_path, pd.DataFrame({"age": [30, 41, 52]}), "whole.csv")
    assert import_model(model, whole, tmp_path, "ages").name == "1", "whole numbers feed it"
    fractions = _reference(tmp_path, pd.DataFrame({"age": [30, 41.5, 52]}), "fractions.csv")
    message = _refusal(model, fractions, tmp_path, name="other")
    assert message.startswith("column 'age' holds numbers that are not whole, but input 'age' takes int64")


def test_an_existing_version_and_a_bad_name(zoo, tmp_path):
    entry = zoo["regressor"]
    import_model(
        entry.model, entry.reference, tmp_path, "reg", "7", Options(label="target", features=NUMBERS)
    )
    with pytest.raises(ModelError, match=r"reg/7 exists: choose another --version$"):
        import_model(entry.model, entry.reference, tmp_path, "reg", "7", Options(label="target"))
    assert _refusal(entry.model, entry.reference, tmp_path, name="../up").startswith(
        "--name '../up': use letters"
    )


def test_a_column_name_too_long_for_a_feature(zoo, tmp_path):
    entry = zoo["random_forest"]
    long = "x" * 300
    frame = pd.read_csv(entry.reference).rename(columns={"income": long})
    features = [long, "age", "debt"]
    message = _refusal(entry.model, _reference(tmp_path, frame), tmp_path, label=LABEL, features=features)
    assert message.startswith(
        f"the card of {entry.model} cannot be made: features.0: String should have at most"
    )


def test_a_file_that_is_not_onnx(zoo, tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"not a model")
    assert _refusal(model, zoo["regressor"].reference, tmp_path).startswith(
        f"onnxruntime cannot open {model}"
    )


def test_parquet_without_pyarrow(zoo, tmp_path, monkeypatch):
    reference = tmp_path / "reference.parquet"
    pd.read_csv(zoo["regressor"].reference).to_parquet(reference)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    message = _refusal(zoo["regressor"].model, reference, tmp_path)
    assert message == f"reading Parquet ({reference}) needs pyarrow: pip install pyarrow"


def test_the_command_prints_one_line_and_exits_2(zoo, tmp_path):
    entry = zoo["random_forest"]
    env = {"STREAMSCORE_MODEL_DIR": str(tmp_path), "MLFLOW_TRACKING_URI": ""}
    args = ["model", "import", str(entry.model), "--name", "rf", "--reference", str(entry.reference)]
    result = CliRunner().invoke(app, [*args, "--label", "nothing"], env=env)
    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert result.output.startswith("streamscore: error: --label 'nothing' names no column of the reference")
    assert not (tmp_path / "rf").exists()
