"""The score's calibration on a labelled reference: error, isotonic fit, the method chosen, the card."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner
from zoo import LABEL, NUMBERS, ZOO

from stream.cli.main import app
from stream.drift.estimation import calibrated
from stream.drift.performance import calibration_error
from stream.lifecycle import calibration
from stream.lifecycle.importer import Options, import_model
from stream.model_card import ModelCard


def _logit(p):
    return np.log(p / (1 - p))


def _data(seed: int, n: int, slope: float = 0.5, shift: float = 1.0):
    """Labels drawn with probability ``truth``; raw scores that misstate it (too flat, shifted)."""
    rng = np.random.default_rng(seed)
    truth = 1 / (1 + np.exp(-rng.normal(0, 2.5, n)))
    positive = rng.random(n) < truth
    raw = 1 / (1 + np.exp(-(slope * _logit(truth) + shift)))
    return positive, raw, truth


def test_the_expected_calibration_error_by_hand():
    positive = np.array([True, False, True, True])
    scores = np.array([0.05, 0.15, 0.95, 0.85])  # bins 0, 1, 9, 8: gaps .95, .15, .05, .15
    fitted = calibration.fit(positive, scores, 0.5)
    assert fitted.error_before == pytest.approx((0.95 + 0.15 + 0.05 + 0.15) / 4)
    assert [(b.lower, b.count, b.positive_rate) for b in fitted.bins] == [
        (0.0, 1, 1.0),
        (0.1, 1, 0.0),
        (0.8, 1, 1.0),
        (0.9, 1, 1.0),
    ]


def test_isotonic_is_monotone_and_is_scikit_learns():
    positive, raw, _ = _data(1, 5_000)
    knots, values = calibration.isotonic(raw, positive)
    assert np.all(np.diff(knots) >= 0) and np.all(np.diff(values) >= 0)
    isotonic = pytest.importorskip("sklearn.isotonic")
    expected = isotonic.IsotonicRegression(out_of_bounds="clip").fit(raw, positive).predict(raw)
    np.testing.assert_allclose(np.interp(raw, knots, values), expected, atol=1e-12)


def test_a_miscalibrated_model_is_fixed():
    positive, raw, _ = _data(2, 20_000)
    fitted = calibration.fit(positive, raw, 0.5)
    assert fitted.method == "isotonic" and fitted.rows == 20_000
    assert fitted.error_before > 0.1 and fitted.error_after < 0.02
    fresh_positive, fresh_raw, _ = _data(3, 20_000)  # judged on rows it was not fitted on
    assert calibration_error(fresh_positive, calibrated(fitted, fresh_raw)) < 0.02
    assert fitted.reference["accuracy"] == pytest.approx(np.mean((raw >= 0.5) == positive))


def test_platt_recovers_a_logistic_miscalibration():
    positive, raw, _ = _data(4, 50_000, slope=0.5, shift=1.0)
    slope, intercept = calibration.platt(raw, positive)
    assert (slope, intercept) == pytest.approx((2.0, -2.0), abs=0.1)  # the inverse of 0.5 * logit + 1


def test_well_calibrated_scores_are_not_made_worse():
    positive, _, truth = _data(5, 20_000)
    fitted = calibration.fit(positive, truth, 0.5)
    assert fitted.error_after <= fitted.error_before


def test_one_class_gives_no_calibration():
    assert calibration.fit(np.ones(10, dtype=bool), np.linspace(0, 1, 10), 0.5) is None


@pytest.fixture(scope="module")
def forest(tmp_path_factory):
    return ZOO["random_forest"](tmp_path_factory.mktemp("zoo"))


def test_an_import_with_a_label_calibrates_and_without_says_there_is_no_estimate(forest, tmp_path):
    env = {"STREAMSCORE_MODEL_DIR": str(tmp_path), "MLFLOW_TRACKING_URI": ""}
    args = ["model", "import", str(forest.model), "--name", "rf", "--reference", str(forest.reference)]
    plain = CliRunner().invoke(app, [*args, "--features", ",".join(NUMBERS)], env=env)
    assert plain.exit_code == 0, plain.output
    assert plain.output.splitlines()[-1] == "no labelled reference: no performance estimate"
    first = ModelCard.model_validate_json((tmp_path / "rf" / "1" / "card.json").read_text())
    assert first.calibration is None
    labelled = CliRunner().invoke(app, [*args, "--label", LABEL, "--estimate-margin", "0.02"], env=env)
    assert labelled.exit_code == 0, labelled.output
    assert labelled.output.splitlines()[-1].startswith("performance estimate: ")
    card = ModelCard.model_validate_json((tmp_path / "rf" / "2" / "card.json").read_text())
    assert card.calibration is not None and card.calibration.margin == 0.02
    assert set(card.calibration.reference) == {"accuracy", "precision", "recall", "f1", "roc_auc"}
    assert card.calibration.reference["accuracy"] == pytest.approx(card.metrics["accuracy"])
    wrong = CliRunner().invoke(app, [*args, "--label", LABEL, "--estimate-margin", "2"], env=env)
    assert wrong.exit_code != 0 and "--estimate-margin 2.0 is not between 0 and 1" in wrong.output


def test_a_multiclass_import_has_no_calibration(tmp_path, tmp_path_factory):
    name = next(n for n in ZOO if "multi" in n)
    entry = ZOO[name](tmp_path_factory.mktemp("multi"))
    folder = import_model(entry.model, entry.reference, tmp_path, "m", options=Options(label=entry.label))
    assert ModelCard.model_validate_json((folder / "card.json").read_text()).calibration is None
