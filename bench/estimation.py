"""Estimated against realised accuracy on the demo's three drifts, window by window, in process.

The demo model (``models/loan-approval``, its card's calibration) scores the demo's applications
with a drift from event ``CHANGE_AT`` (``stream.tools.datagen``: ``age``, ``feature``, ``concept``);
each window of ``WINDOW`` events gets the estimate the scoring worker would report
(:class:`stream.drift.estimation.Estimator`) and the accuracy its outcomes give. Per drift: the mean
estimated and realised accuracy before and after the change, the windows after the change until the
estimate falls below the card's reference by more than its margin (``None``: never), and the share
of windows whose realised accuracy fell inside the estimate's 95% interval.
"""

from __future__ import annotations

import itertools
import json
from typing import get_args

import numpy as np

from stream.drift.estimation import Estimator
from stream.scoring.model import LoadedModel, load_folder, resolve
from stream.settings import Settings
from stream.tools import datagen

CHANGE_AT = 10_000
WINDOW = 1_000
SEED = 11


def _windows(
    model: LoadedModel, estimator: Estimator, kind: datagen.DriftKind, change_at: int
) -> list[tuple[float, float, float, float]]:
    """(estimate, its lower and upper bound, realised accuracy) of each window, as many after the
    change as before."""
    pairs = list(itertools.islice(datagen.applications(SEED, change_at, kind), 2 * change_at))
    x = np.array([[p[0][f] for f in datagen.FEATURES] for p in pairs], dtype=np.float32)
    positive = np.array([p[1] == 1 for p in pairs])
    scores = model.predict_proba(x)
    out = []
    for a in range(0, len(scores), WINDOW):
        s, y = scores[a : a + WINDOW], positive[a : a + WINDOW]
        chunk = estimator.chunks(s, np.array([0]), np.array([len(s)]))
        accuracy = estimator.estimate(chunk).metrics["accuracy"]
        realised = float(np.mean((s >= estimator.threshold) == y))
        out.append((accuracy.value, accuracy.lower, accuracy.upper, realised))
    return out


def run(quick: bool = False) -> dict[str, object]:
    settings = Settings()
    model = load_folder(resolve(settings.model_dir, settings.model_name, settings.model_version))
    calibration = model.card.calibration
    if calibration is None:
        return {"error": f"the card of {model.card.name}/{model.card.version} has no calibration"}
    estimator = Estimator(calibration, model.card.output.threshold)
    floor = calibration.reference["accuracy"] - calibration.margin
    change_at = CHANGE_AT // (2 if quick else 1)
    report: dict[str, object] = {"window": WINDOW, "change_at": change_at}
    for kind in get_args(datagen.DriftKind):
        rows = _windows(model, estimator, kind, change_at)
        before, after = rows[: change_at // WINDOW], rows[change_at // WINDOW :]
        below = [i for i, r in enumerate(after) if r[0] < floor]
        report[kind] = {
            "estimated_before": round(float(np.mean([r[0] for r in before])), 4),
            "realised_before": round(float(np.mean([r[3] for r in before])), 4),
            "estimated_after": round(float(np.mean([r[0] for r in after])), 4),
            "realised_after": round(float(np.mean([r[3] for r in after])), 4),
            "windows_to_alarm": below[0] + 1 if below else None,
            "realised_inside_interval": round(float(np.mean([r[1] <= r[3] <= r[2] for r in rows])), 3),
        }
    return report


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
