"""A zoo of ONNX models for tests: each function writes ``model.onnx`` and ``reference.csv`` into a folder.

Every model is trained here on seeded synthetic loan data (about 2,000 rows, a few seconds at most):
scikit-learn pipelines exported with one input per column (ZipMap on or off), tree ensembles on one
float tensor (scikit-learn, XGBoost and LightGBM), a regressor and a three-class classifier with
string labels. The reference CSV holds the rows as the model sees them, and the label column.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

ROWS = 2_000
NUMBERS = ["income", "age", "debt"]
STRINGS = ["region", "product"]
REGIONS = ["north", "south", "east", "west", "centre"]
PRODUCTS = ["card", "loan", "mortgage"]
LABEL = "label"
ONNXMLTOOLS_OPSET = 15
"""The highest opset onnxmltools 1.16 converts XGBoost and LightGBM models to."""


class Zoo(NamedTuple):
    """A model written by the zoo: its files, the label column and what an import should find."""

    model: Path
    reference: Path
    label: str
    task: str
    features: list[str]
    inputs: list[str]


def table(rows: int = ROWS, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded loan data: three numbers, two strings, a binary label, a target and a three-class label."""
    rng = np.random.default_rng(seed)
    income = np.round(rng.lognormal(10.5, 0.5, rows), 2)
    age = rng.integers(18, 80, rows).astype(np.float64)
    debt = np.round(rng.gamma(2.0, 5_000.0, rows), 2)
    region = rng.choice(REGIONS, rows, p=[0.4, 0.25, 0.15, 0.12, 0.08])
    product = rng.choice(PRODUCTS, rows, p=[0.5, 0.3, 0.2])
    bump = np.where(region == "north", 0.6, 0.0) + np.where(product == "mortgage", -0.5, 0.2)
    logit = (np.log(income) - 10.5) * 2.5 - debt / 8_000.0 + (age - 45) / 30.0 + bump
    label = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    target = income / 1_000.0 - debt / 2_000.0 + age * 0.3 + rng.normal(0, 2.0, rows)
    tier = np.array(["low", "mid", "high"])[np.digitize(logit + rng.normal(0, 0.5, rows), [-0.7, 0.7])]
    return {
        "income": income,
        "age": age,
        "debt": debt,
        "region": region,
        "product": product,
        LABEL: label,
        "target": np.round(target, 4),
        "tier": tier,
    }


def write_csv(path: Path, data: dict[str, np.ndarray], columns: list[str]) -> Path:
    """The ``columns`` of ``data`` as a CSV file (whole numbers without a decimal point)."""

    def cell(v: Any) -> str:
        return str(int(v)) if isinstance(v, float | np.floating) and float(v).is_integer() else str(v)

    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(columns)
        for i in range(len(data[columns[0]])):
            out.writerow([cell(data[c][i]) for c in columns])
    return path


def _save(folder: Path, onx: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    path.write_bytes(onx.SerializeToString())
    return path


def _numbers(data: dict[str, np.ndarray]) -> np.ndarray:
    return np.column_stack([data[c] for c in NUMBERS]).astype(np.float32)


def _scaler(double: bool) -> Any:
    """StandardScaler, after a cast to float when the inputs are doubles (LinearClassifier takes floats)."""
    from skl2onnx.sklapi import CastTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if not double:
        return StandardScaler()
    return Pipeline([("cast", CastTransformer(dtype=np.float32)), ("scale", StandardScaler())])


def pipeline(folder: Path, zipmap: bool = True, double: bool = False, seed: int = 0) -> Zoo:
    """ColumnTransformer (one-hot strings, scaled numbers) and LogisticRegression, one input per column."""
    import pandas as pd
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    data = table(seed=seed)
    columns = STRINGS + NUMBERS
    frame = pd.DataFrame({c: data[c] if c in STRINGS else data[c].astype(np.float64) for c in columns})
    clf = LogisticRegression(max_iter=500)
    model = Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [
                        ("strings", OneHotEncoder(handle_unknown="ignore"), STRINGS),
                        ("numbers", _scaler(double), NUMBERS),
                    ]
                ),
            ),
            ("classify", clf),
        ]
    ).fit(frame, data[LABEL])
    number = DoubleTensorType if double else FloatTensorType
    types = [(c, StringTensorType([None, 1])) for c in STRINGS] + [(c, number([None, 1])) for c in NUMBERS]
    options = None if zipmap else {id(clf): {"zipmap": False}}
    onx = convert_sklearn(model, initial_types=types, options=options, target_opset={"": 17, "ai.onnx.ml": 3})
    return Zoo(
        _save(folder, onx),
        write_csv(folder / "reference.csv", data, [*columns, LABEL]),
        LABEL,
        "binary",
        columns,
        columns,
    )


def _one_tensor(folder: Path, onx: Any, data: dict[str, np.ndarray], label: str, task: str) -> Zoo:
    return Zoo(
        _save(folder, onx),
        write_csv(folder / "reference.csv", data, [*NUMBERS, label]),
        label,
        task,
        list(NUMBERS),
        ["input"],
    )


def _sklearn_tensor(folder: Path, estimator: Any, label: str, task: str, zipmap: bool, seed: int) -> Zoo:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    data = table(seed=seed)
    estimator.fit(_numbers(data), data[label])
    options = {id(estimator): {"zipmap": False}} if task != "regression" and not zipmap else None
    onx = convert_sklearn(
        estimator,
        initial_types=[("input", FloatTensorType([None, len(NUMBERS)]))],
        options=options,
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    return _one_tensor(folder, onx, data, label, task)


def random_forest(folder: Path, seed: int = 0) -> Zoo:
    """RandomForestClassifier on one float tensor, probabilities as a tensor."""
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(n_estimators=20, max_depth=6, random_state=seed)
    return _sklearn_tensor(folder, forest, LABEL, "binary", False, seed)


def gradient_boosting(folder: Path, seed: int = 0) -> Zoo:
    """GradientBoostingClassifier on one float tensor, probabilities as ZipMap's maps."""
    from sklearn.ensemble import GradientBoostingClassifier

    trees = GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=seed)
    return _sklearn_tensor(folder, trees, LABEL, "binary", True, seed)


def regressor(folder: Path, seed: int = 0) -> Zoo:
    """GradientBoostingRegressor on one float tensor: one value per row."""
    from sklearn.ensemble import GradientBoostingRegressor

    trees = GradientBoostingRegressor(n_estimators=30, max_depth=3, random_state=seed)
    return _sklearn_tensor(folder, trees, "target", "regression", False, seed)


def multiclass(folder: Path, zipmap: bool = False, seed: int = 0) -> Zoo:
    """Multinomial LogisticRegression with string labels low, mid, high on one float tensor."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    zoo = _sklearn_tensor(folder, model, "tier", "multiclass", True, seed)
    if zipmap:
        return zoo
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    onx = convert_sklearn(
        model,
        initial_types=[("input", FloatTensorType([None, len(NUMBERS)]))],
        options={id(model.steps[-1][1]): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    return zoo._replace(model=_save(folder, onx))


def xgboost(folder: Path, seed: int = 0) -> Zoo:
    """An XGBoost classifier through onnxmltools on one float tensor."""
    import xgboost as xgb
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    data = table(seed=seed)
    model = xgb.XGBClassifier(n_estimators=30, max_depth=3, random_state=seed, n_jobs=1)
    model.fit(_numbers(data), data[LABEL])
    onx = convert_xgboost(
        model,
        initial_types=[("input", FloatTensorType([None, len(NUMBERS)]))],
        target_opset=ONNXMLTOOLS_OPSET,
    )
    return _one_tensor(folder, onx, data, LABEL, "binary")


def lightgbm(folder: Path, seed: int = 0) -> Zoo:
    """A LightGBM classifier through onnxmltools on one float tensor (ZipMap's maps)."""
    import lightgbm as lgb
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    data = table(seed=seed)
    model = lgb.LGBMClassifier(n_estimators=30, random_state=seed, n_jobs=1, verbose=-1)
    model.fit(_numbers(data), data[LABEL])
    onx = convert_lightgbm(
        model,
        initial_types=[("input", FloatTensorType([None, len(NUMBERS)]))],
        target_opset=ONNXMLTOOLS_OPSET,
    )
    return _one_tensor(folder, onx, data, LABEL, "binary")


ZOO: dict[str, Callable[[Path], Zoo]] = {
    "pipeline_zipmap": lambda folder: pipeline(folder, zipmap=True),
    "pipeline_tensor_double": lambda folder: pipeline(folder, zipmap=False, double=True),
    "random_forest": random_forest,
    "gradient_boosting": gradient_boosting,
    "xgboost": xgboost,
    "lightgbm": lightgbm,
    "regressor": regressor,
    "multiclass": multiclass,
    "multiclass_zipmap": lambda folder: multiclass(folder, zipmap=True),
}
"""Every zoo model by name: ``ZOO[name](folder)`` writes it."""


MAKERS: dict[str, Callable[[Path], Zoo]] = {
    "pipeline": pipeline,
    "pipeline-double": lambda folder: pipeline(folder, zipmap=False, double=True),
    "random-forest": random_forest,
    "gradient-boosting": gradient_boosting,
    "xgboost": xgboost,
    "lightgbm": lightgbm,
    "regressor": regressor,
    "three-classes": multiclass,
}
"""Every kind of model, by name: ``pipeline`` has one input per column and ZipMap, ``pipeline-double``
takes doubles and gives a probability tensor."""
