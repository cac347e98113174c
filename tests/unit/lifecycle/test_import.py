"""``streamscore model import``: every model of the zoo becomes a registry entry the worker serves.

Each card is checked against what the zoo wrote (inputs, feature types, task, classes) and the
scores the loaded model gives on reference rows are compared with onnxruntime run here directly.
"""

from __future__ import annotations

import json
import time

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from typer.testing import CliRunner
from zoo import LABEL, NUMBERS, REGIONS, STRINGS, ZOO, table, write_csv

from stream.cli.main import app
from stream.lifecycle import cards
from stream.lifecycle.importer import Options, import_model, publish
from stream.model_card import ModelCard
from stream.scoring.model import load_folder, sha256_file

CARD = "card.json"


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    return {name: write(root / name) for name, write in ZOO.items()}


def _direct_scores(entry, card: ModelCard, frame: pd.DataFrame) -> np.ndarray:
    """The score of each row computed here: onnxruntime on the graph, outputs read by hand."""
    session = ort.InferenceSession(str(entry.model), providers=["CPUExecutionProvider"])
    feeds = {}
    for i in session.get_inputs():
        if i.type == "tensor(string)":
            feeds[i.name] = frame[[i.name]].astype(str).to_numpy(dtype=object)
        else:
            dtype = np.float64 if i.type == "tensor(double)" else np.float32
            names = [i.name] if i.name in frame else NUMBERS
            feeds[i.name] = frame[names].to_numpy(dtype=dtype)
    out = session.run([card.output.tensor], feeds)[0]
    if card.output.task == "regression":
        return np.asarray(out, dtype=np.float64).reshape(-1)
    if card.output.zipmap:
        keys = list(out[0])
        out = np.array([[m[k] for k in keys] for m in out])
        if card.output.task == "binary":
            return out[:, [str(k) for k in keys].index(card.output.positive_label)]
    out = np.asarray(out, dtype=np.float64)
    return out[:, card.output.positive_index] if card.output.task == "binary" else out.max(axis=1)


@pytest.mark.parametrize("name", list(ZOO))
def test_each_zoo_model_imports_and_serves_its_scores(zoo, name, tmp_path):
    entry = zoo[name]
    folder = import_model(entry.model, entry.reference, tmp_path, name, options=Options(label=entry.label))
    assert folder == tmp_path / name / "1"
    card = ModelCard.model_validate_json((folder / "card.json").read_text())
    assert card.output.task == entry.task
    assert [f.name for f in card.features] == entry.features
    assert [i.name for i in card.inputs] == entry.inputs
    types = {f.name: f.type for f in card.features}
    assert types["income"] == "number" and types["age"] == "integer"
    assert all(types[s] == "string" for s in STRINGS if s in types)
    assert card.sha256 == sha256_file(folder / "model.onnx") == sha256_file(entry.model)
    assert set(card.reference) == {*entry.features, "score"}
    expected_metrics = {
        "binary": {"accuracy", "roc_auc", "log_loss", "positive_rate"},
        "multiclass": {"accuracy", "log_loss"},
        "regression": {"mae", "rmse", "r2"},
    }[entry.task]
    assert set(card.metrics) == expected_metrics
    frame = pd.read_csv(entry.reference)
    loaded = load_folder(folder)
    columns = {f.name: frame[f.name].to_numpy() for f in card.features}
    served = loaded.predict_columns(columns).scores
    direct = _direct_scores(entry, card, frame)
    np.testing.assert_allclose(served, direct, rtol=1e-5, atol=1e-6)  # float32, other batch sizes
    assert card.reference["score"].mean == pytest.approx(float(direct.mean()), rel=1e-5)


def test_a_binary_card_names_its_classes_and_the_positive_one(zoo, tmp_path):
    entry = zoo["random_forest"]
    default = ModelCard.model_validate_json(
        (
            import_model(entry.model, entry.reference, tmp_path, "rf", options=Options(features=NUMBERS))
            / CARD
        ).read_text()
    )
    assert (default.output.positive_label, default.output.negative_label) == ("1", "0")
    assert default.output.positive_index == 1 and default.metrics == {}
    flipped_folder = import_model(
        entry.model,
        entry.reference,
        tmp_path,
        "rf",
        options=Options(label=LABEL, positive="0", threshold=0.3),
    )
    flipped = ModelCard.model_validate_json((flipped_folder / "card.json").read_text())
    assert flipped_folder.name == "2"
    assert (flipped.output.positive_label, flipped.output.positive_index, flipped.output.threshold) == (
        "0",
        0,
        0.3,
    )
    score = default.reference["score"].mean
    assert flipped.reference["score"].mean == pytest.approx(1 - score, abs=1e-6)
    assert flipped.metrics["positive_rate"] == pytest.approx(
        1 - float(pd.read_csv(entry.reference)[LABEL].mean())
    )


def test_string_features_keep_their_categories_most_frequent_first(zoo, tmp_path):
    entry = zoo["pipeline_zipmap"]
    folder = import_model(
        entry.model,
        entry.reference,
        tmp_path,
        "pipe",
        options=Options(personal=["region"], categorical=["age"]),
    )
    card = ModelCard.model_validate_json((folder / "card.json").read_text())
    region = next(f for f in card.features if f.name == "region")
    counts = pd.read_csv(entry.reference)["region"].value_counts()
    assert region.categories == list(counts.index) and region.categories[0] == REGIONS[0]
    assert region.personal and region.kind == "categorical"
    fractions = card.reference["region"].categories
    assert list(fractions) == region.categories
    assert fractions["north"] == pytest.approx(counts["north"] / counts.sum())
    assert [(i.name, i.type) for i in card.inputs][:3] == [
        ("region", "string"),
        ("product", "string"),
        ("income", "float"),
    ]
    age = next(f for f in card.features if f.name == "age")
    assert age.kind == "categorical" and age.values == sorted(set(pd.read_csv(entry.reference)["age"]))
    assert set(card.reference["age"].categories) == {str(v) for v in age.values}


def test_multiclass_card_lists_classes_in_column_order(zoo, tmp_path):
    for name in ("multiclass", "multiclass_zipmap"):
        entry = zoo[name]
        folder = import_model(entry.model, entry.reference, tmp_path, name, options=Options(label="tier"))
        card = ModelCard.model_validate_json((folder / "card.json").read_text())
        assert card.output.classes == ["high", "low", "mid"]
        answer = load_folder(folder).predict_columns(
            {f: pd.read_csv(entry.reference)[f].to_numpy()[:50] for f in NUMBERS}
        )
        assert answer.labels is not None and set(answer.labels) <= {"high", "low", "mid"}
        assert card.metrics["accuracy"] > 0.6


def test_the_card_fingerprints_the_reference_and_libraries(zoo, tmp_path):
    entry = zoo["xgboost"]
    card = ModelCard.model_validate_json(
        (
            import_model(entry.model, entry.reference, tmp_path, "xgb", options=Options(label=LABEL))
            / "card.json"
        ).read_text()
    )
    reference = card.training["reference"]
    assert reference["sha256"] == sha256_file(entry.reference)
    assert reference["rows"] == 2_000 and reference["columns"] == [*NUMBERS, LABEL]
    assert {"python", "numpy", "onnxruntime", "streamscore"} <= set(card.training["libraries"])


def test_a_parquet_reference_gives_the_csv_card(zoo, tmp_path):
    entry = zoo["pipeline_tensor_double"]
    parquet = tmp_path / "reference.parquet"
    pd.read_csv(entry.reference).to_parquet(parquet)
    from_csv = json.loads(
        (import_model(entry.model, entry.reference, tmp_path, "a") / "card.json").read_text()
    )
    from_parquet = json.loads((import_model(entry.model, parquet, tmp_path, "b") / "card.json").read_text())
    assert from_parquet["features"] == from_csv["features"]
    assert from_parquet["reference"] == from_csv["reference"]
    assert from_parquet["training"]["reference"]["format"] == "parquet"


def test_rare_categories_beyond_the_kept_ones_count_as_unseen():
    texts = np.array([f"c{i}" for i in range(cards.MAX_CATEGORIES + 500)] + ["c7"] * 10, dtype=object)
    spec, stats = cards.string_feature("city", texts)
    assert len(spec.categories) == cards.MAX_CATEGORIES and spec.categories[0] == "c7"
    assert sum(stats.categories.values()) == pytest.approx(1 - 500 / len(texts))


def test_the_folder_alias_moves_to_the_import(zoo, tmp_path):
    entry = zoo["lightgbm"]
    folder = import_model(entry.model, entry.reference, tmp_path, "lgbm", options=Options(label=LABEL))
    assert publish(folder, None, "champion") == ["lgbm@champion: none -> 1"]
    assert json.loads((tmp_path / "lgbm" / "aliases.json").read_text()) == {"champion": "1"}


def test_the_command_imports_and_prints_the_folder(zoo, tmp_path):
    entry = zoo["regressor"]
    env = {"STREAMSCORE_MODEL_DIR": str(tmp_path), "MLFLOW_TRACKING_URI": ""}
    args = ["model", "import", str(entry.model), "--name", "reg", "--reference", str(entry.reference)]
    result = CliRunner().invoke(app, [*args, "--label", "target", "--features", ",".join(NUMBERS)], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"imported {tmp_path / 'reg' / '1'}",
        "a regression model: no performance estimate",
    ]
    assert (
        ModelCard.model_validate_json((tmp_path / "reg" / "1" / "card.json").read_text()).metrics["r2"] > 0.9
    )


def test_a_reference_of_100000_rows(zoo, tmp_path, record_property):
    """Measured, not asserted: the time to import a model with a 100,000-row reference."""
    entry = zoo["pipeline_zipmap"]
    reference = write_csv(tmp_path / "large.csv", table(rows=100_000, seed=5), [*STRINGS, *NUMBERS, LABEL])
    start = time.perf_counter()
    folder = import_model(entry.model, reference, tmp_path, "large", options=Options(label=LABEL))
    elapsed = time.perf_counter() - start
    record_property("import_100k_rows_s", round(elapsed, 2))
    print(f"import of a 100,000-row reference: {elapsed:.2f} s")
    card = ModelCard.model_validate_json((folder / "card.json").read_text())
    assert card.reference["score"].count == 100_000 and card.training["reference"]["rows"] == 100_000
