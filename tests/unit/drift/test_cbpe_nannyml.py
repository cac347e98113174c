"""The estimator agrees with NannyML's CBPE on the same calibrated probabilities.

``tests/reference/cbpe_nannyml.json`` holds NannyML 0.13's estimates for seeded data, a reference
and five analysis chunks of 2,000 events, three under a covariate shift; ``cbpe_nannyml.py`` beside
it made them (in a virtual environment of its own) and regenerates the data from the seed with numpy
alone, as this test does. Both calibrations are compared: Platt (the data's exact inverse) and an
isotonic fit, applied identically on both sides. Accuracy, precision, recall and F1 are exact sums
of the probabilities on both sides: they agree within 1e-9 (the tolerance of :data:`EXACT`). ROC AUC
differs by the 1,000 score bins (events of a bin count as ties) and NannyML's rounding of its curve
to five decimals: at most :data:`AUC_TOLERANCE`, measured 1.4e-6 at most here. Intervals are not
compared: NannyML's bounds are three standard errors of the metric measured on the reference, ours
the 95% range of the realised figure if the calibration holds; both are printed for the record.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from stream.drift.estimation import Estimator
from stream.model_card import Calibration

HERE = Path(__file__).parents[2] / "reference"
EXACT = 1e-9
AUC_TOLERANCE = 1e-5


def _script():
    spec = importlib.util.spec_from_file_location("cbpe_nannyml", HERE / "cbpe_nannyml.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def stored():
    return json.loads((HERE / "cbpe_nannyml.json").read_text())


@pytest.fixture(scope="module")
def raw(stored):
    script = _script()
    d = script.data(stored["seed"])
    assert float(d["raw"].sum()) == pytest.approx(stored["raw_sum"], abs=1e-9), "not the data NannyML saw"
    assert int(d["positive"].sum()) == stored["positives"]
    return script, d["raw"][stored["reference_rows"] :]


def _calibration(stored, name, script) -> Calibration:
    common = {"error_before": 0.0, "error_after": 0.0, "bins": [], "reference": {}, "rows": 1}
    if name == "isotonic":
        return Calibration(method="isotonic", **stored["isotonic"], **common)
    return Calibration(
        method="platt", slope=1 / script.SLOPE, intercept=-script.SHIFT / script.SLOPE, **common
    )


@pytest.mark.parametrize("name", ["platt", "isotonic"])
def test_each_chunk_estimate_is_nannymls(stored, raw, name):
    script, analysis = raw
    estimator = Estimator(_calibration(stored, name, script), stored["threshold"])
    chunk = stored["chunk"]
    worst_auc = 0.0
    for i, expected in enumerate(stored["chunks"][name]):
        scores = analysis[i * chunk : (i + 1) * chunk]
        got = estimator.estimate(estimator.chunks(scores, np.array([0]), np.array([chunk]))).metrics
        for metric in ("accuracy", "precision", "recall", "f1"):
            assert got[metric].value == pytest.approx(expected[metric]["value"], abs=EXACT), (i, metric)
        gap = abs(got["roc_auc"].value - expected["roc_auc"]["value"])
        worst_auc = max(worst_auc, gap)
        print(
            name,
            i,
            {m: (round(got[m].lower, 4), round(got[m].upper, 4)) for m in got},
            {m: (round(e["lower"], 4), round(e["upper"], 4)) for m, e in expected.items()},
        )
    print(f"{name}: largest ROC AUC gap {worst_auc:.2e}")
    assert worst_auc <= AUC_TOLERANCE


def test_the_covariate_shift_moves_the_estimates(stored):
    """The stored chunks differ: the comparison is not of five copies of one figure."""
    accuracy = [c["accuracy"]["value"] for c in stored["chunks"]["platt"]]
    assert max(accuracy) - min(accuracy) > 0.03
