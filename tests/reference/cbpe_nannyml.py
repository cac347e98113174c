"""NannyML's CBPE on seeded data: the figures streamscore's estimator is checked against.

Not a test: run it in a virtual environment with NannyML 0.13 (and scikit-learn, which it brings)::

    python3 -m venv /tmp/nannyml-venv && /tmp/nannyml-venv/bin/pip install "nannyml==0.13.*" statsmodels
    /tmp/nannyml-venv/bin/python tests/reference/cbpe_nannyml.py

It writes ``cbpe_nannyml.json`` beside itself: the data's seed and shape, both calibrations, and per
analysis chunk NannyML's estimates with their sampling errors and bounds. The data are regenerated
from the seed by :func:`data` (numpy alone), which ``tests/unit/drift/test_cbpe_nannyml.py`` copies.
NannyML is given the calibrated probabilities and a calibrator that does nothing, so that only the
estimators are compared.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np

SEED = 28
REFERENCE_ROWS = 10_000
CHUNK = 2_000
SHIFTS = [0.0, 0.0, 0.6, 1.2, -1.0]  # mean of the latent variable per analysis chunk: a covariate shift
THRESHOLD = 0.5
SLOPE, SHIFT = 0.7, 0.4  # raw score = sigmoid(SLOPE * latent + SHIFT): too flat, too high
METRICS = ["accuracy", "precision", "recall", "f1", "roc_auc"]


def data(seed: int = SEED) -> dict[str, np.ndarray]:
    """Reference labels and raw scores, and the analysis chunks' raw scores (and their labels)."""
    rng = np.random.default_rng(seed)
    n = REFERENCE_ROWS + CHUNK * len(SHIFTS)
    latent = rng.standard_normal(n) * 2.0
    latent[REFERENCE_ROWS:] += np.repeat(np.array(SHIFTS) * 2.0, CHUNK)
    positive = rng.random(n) < 1 / (1 + np.exp(-latent))
    raw = 1 / (1 + np.exp(-(SLOPE * latent + SHIFT)))
    return {"positive": positive, "raw": raw}


def platt(raw: np.ndarray) -> np.ndarray:
    """The exact calibration of these scores: sigmoid(logit(raw) / SLOPE - SHIFT / SLOPE)."""
    logit = np.log(raw / (1 - raw))
    return 1 / (1 + np.exp(-(logit / SLOPE - SHIFT / SLOPE)))


def _cbpe(reference: dict, analysis: dict) -> list[dict]:
    os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"  # no usage report over the network
    warnings.filterwarnings("ignore", "The resulting number of chunks is too low")
    import nannyml as nml
    import pandas as pd
    from nannyml.calibration import NoopCalibrator

    estimator = nml.CBPE(
        y_pred_proba="p",
        y_pred="predicted",
        y_true="positive",
        problem_type="classification_binary",
        metrics=METRICS,
        chunk_size=CHUNK,
        calibrator=NoopCalibrator(),
    )
    estimator.fit(pd.DataFrame(reference))
    frame = estimator.estimate(pd.DataFrame(analysis)).filter(period="analysis").to_df()
    return [
        {
            m: {
                "value": float(row[(m, "value")]),
                "sampling_error": float(row[(m, "sampling_error")]),
                "lower": float(row[(m, "lower_confidence_boundary")]),
                "upper": float(row[(m, "upper_confidence_boundary")]),
            }
            for m in METRICS
        }
        for _, row in frame.iterrows()
    ]


def main() -> None:
    from sklearn.isotonic import IsotonicRegression

    d = data()
    ref = slice(0, REFERENCE_ROWS)
    raw, positive = d["raw"], d["positive"]
    fitted = IsotonicRegression(out_of_bounds="clip").fit(raw[ref], positive[ref])
    knots = (fitted.X_thresholds_.tolist(), fitted.y_thresholds_.tolist())
    out = {
        "seed": SEED,
        "reference_rows": REFERENCE_ROWS,
        "chunk": CHUNK,
        "shifts": SHIFTS,
        "threshold": THRESHOLD,
        "raw_sum": float(raw.sum()),
        "positives": int(positive.sum()),
        "isotonic": {"scores": knots[0], "probabilities": knots[1]},
        "chunks": {},
    }
    for name, calibrate in (("platt", platt), ("isotonic", lambda s: np.interp(s, *knots))):
        p = calibrate(raw)
        table = {"p": p, "predicted": (raw >= THRESHOLD).astype(int), "positive": positive.astype(int)}
        reference = {k: v[ref] for k, v in table.items()}
        analysis = {k: v[REFERENCE_ROWS:] for k, v in table.items() if k != "positive"}
        out["chunks"][name] = _cbpe(reference, analysis)
    (Path(__file__).parent / "cbpe_nannyml.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
