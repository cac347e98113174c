"""Loan applications from River's Agrawal generator: the demo domain of training and ``produce``.

Only the producer and the training command use this module: the worker knows features only
through the model card. A drift can be injected at a known position: ``concept`` switches the
generator's classification function (only outcomes reveal it); ``feature`` shifts the salary and
loan distributions (visible in the inputs; the model stays right); ``age`` keeps only applicants of
38 to 42 or 58 to 62, next to the ages 40 and 60 where the concept's rule changes and the model is
least sure: its accuracy falls, and its scores say so before any outcome does.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Literal

from river.datasets import synth

FEATURES = ["salary", "commission", "age", "elevel", "car", "zipcode", "hvalue", "hyears", "loan"]
INTEGER = {"age", "elevel", "car", "zipcode", "hyears"}
CATEGORICAL = {"elevel": list(range(5)), "car": list(range(1, 21)), "zipcode": list(range(9))}
PERSONAL = {"zipcode"}
POSITIVE, NEGATIVE = "approve", "deny"

CLASSIFICATION_FUNCTION = 2
DRIFTED_FUNCTION = 5
PERTURBATION = 0.05

DriftKind = Literal["concept", "feature", "age"]
UNSURE_AGES = (range(38, 43), range(58, 63))


def applications(
    seed: int,
    drift_at: int | None = None,
    drift_kind: DriftKind = "concept",
) -> Iterator[tuple[dict[str, float | int], int]]:
    """Endless (features, label) pairs; label 1 means approve."""
    base = synth.Agrawal(CLASSIFICATION_FUNCTION, seed=seed, perturbation=PERTURBATION)
    if drift_at is None:
        yield from base
        return
    yield from itertools.islice(base, drift_at)
    if drift_kind == "concept":
        yield from synth.Agrawal(DRIFTED_FUNCTION, seed=seed + 1, perturbation=PERTURBATION)
    elif drift_kind == "age":
        for x, y in synth.Agrawal(CLASSIFICATION_FUNCTION, seed=seed + 1, perturbation=PERTURBATION):
            if any(x["age"] in ages for ages in UNSURE_AGES):
                yield x, y
    else:
        for x, y in synth.Agrawal(CLASSIFICATION_FUNCTION, seed=seed + 1, perturbation=PERTURBATION):
            yield {**x, "salary": x["salary"] * 1.6, "loan": x["loan"] * 0.5}, y
