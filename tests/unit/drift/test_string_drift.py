"""Drift of string features: PSI over the reference's category frequencies, and the share of unseen ones."""

from __future__ import annotations

import numpy as np
import pytest
import zoo

from stream.drift.monitor import DriftMonitor
from stream.lifecycle.importer import Options, import_model
from stream.scoring.model import load_folder


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("strings")
    made = zoo.pipeline(folder)
    return load_folder(import_model(made.model, made.reference, folder / "registry", "strings",
                                    options=Options(label=made.label)))  # fmt: skip


def _report(model, regions: list[str], n: int = 2_000):
    data = zoo.table(rows=n, seed=5)
    data["region"] = np.array(regions * (n // len(regions)))[:n]
    columns = {f: data[f] for f in model.feature_names}
    x, texts = model.feeds.table(model.card, columns)
    scores = model.predict(x, texts).scores
    monitor = DriftMonitor(model.card, window=n, partitions=1)
    monitor.update(x.astype(np.float32), scores, np.zeros(n, int), np.full(n, 1.8e9), np.arange(n))
    return monitor.current()


def test_the_reference_mix_does_not_drift_and_a_new_mix_does(model):
    reference = zoo.table(rows=2_000, seed=5)["region"].tolist()
    same = _report(model, reference)
    assert same.psi["region"] < 0.05 and same.unseen == {"region": 0.0, "product": 0.0}
    moved = _report(model, ["west"])
    assert moved.psi["region"] > 1.0 and "region" in moved.drifted and moved.unseen["region"] == 0.0


def test_categories_never_seen_are_their_own_share(model):
    report = _report(model, ["north", "atlantis", "lemuria", "north"])
    assert report.unseen["region"] == pytest.approx(0.5)
    assert "region" in report.drifted
