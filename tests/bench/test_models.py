"""The kinds of model in process and the ladder's rung of a model with one input per column."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bench import ladder, models
from docs.gen.results import Run, models_section
from stream.scoring.model import load_folder

KINDS = {"tensor", "columns", "trees"}
FIGURES = {"pipeline_per_event_us", "best_per_event_us", "cpu_per_event_us", "events_per_s", "vs_tensor"}


@pytest.fixture(scope="module")
def section():
    return models.run(repeat=6, import_rows=3_000)


def test_each_model_is_timed_and_compared_with_the_one_tensor_model(section):
    assert set(section) >= KINDS
    for kind in KINDS:
        assert set(section[kind]) >= FIGURES, kind
        assert section[kind]["events_per_s"] > 0 and section[kind]["cpu_per_event_us"] > 0
        want = round(section[kind]["events_per_s"] / section["tensor"]["events_per_s"], 3)
        assert section[kind]["vs_tensor"] == want
    assert section["tensor"]["vs_tensor"] == 1.0
    assert (section["tensor"]["inputs"], section["tensor"]["string_features"]) == (1, 0)
    assert (section["columns"]["inputs"], section["columns"]["features"]) == (5, 5)
    assert section["columns"]["string_features"] == 2
    assert (section["trees"]["inputs"], section["trees"]["string_features"]) == (1, 0)
    assert section["batch"] == models.BATCH


def test_the_import_of_a_reference_is_timed_with_its_size(section):
    assert section["import_rows"] == 3_000
    assert 0 < section["import_seconds"] < 600
    assert section["import_reference_mib"] > 0


def test_the_results_page_shows_each_model_and_the_import(section, tmp_path):
    run = Run(tmp_path / "2026-12-06.json", {"date": "2026-12-06T07:00:00", "models": section})
    lines = models_section([run])
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| ---")][1:]
    assert [row.split(":")[0] for row in rows] == ["| tensor", "| columns", "| trees"]
    assert "`model import` of 3,000 reference rows" in "\n".join(lines)


@pytest.fixture(scope="module")
def columns_rung(tmp_path_factory):
    rung = next(r for r in ladder.chosen(quick=True) if r.key == "streamscore-columns")
    pools: dict = {}
    folder = tmp_path_factory.mktemp("ladder")
    return rung, pools, folder, ladder.prepared(rung, folder, pools)


def test_the_columns_rung_serves_an_imported_model_on_events_carrying_its_features(columns_rung):
    rung, pools, folder, (served, pool) = columns_rung
    assert _version(served).is_relative_to(folder)
    model = load_folder(_version(served))
    assert [i.name for i in model.card.inputs] == ["region", "product", "income", "age", "debt"]
    assert len(pool.messages) == ladder.POOL
    features = orjson.loads(pool.messages[0]["value"])["features"]
    assert set(features) == set(model.feature_names)
    assert isinstance(features["region"], str) and isinstance(features["age"], int)
    assert ladder.prepared(rung, folder, pools)[1] is pool, "the model and its events are made once"
    demo, demo_pool = ladder.prepared(ladder.chosen(True, ["streamscore"])[0], folder, pools)
    assert demo.settings == () and demo_pool is not pool


def test_the_pools_scores_are_the_pipelines_for_the_same_events(columns_rung):
    _, _, _, (served, pool) = columns_rung
    model = load_folder(_version(served))
    generated = [(m["key"], m["value"], "", {}) for m in pool.messages[:512]]
    pipeline, batches = models._bench(model, generated)
    scored = {}
    for batch in batches:
        for record in pipeline.process(batch).records:
            if record.topic == models.TOPICS.predictions:
                prediction = orjson.loads(record.value)
                scored[prediction["event_id"]] = prediction["score"]
    assert len(scored) == 512
    assert all(abs(score - pool.scores[event_id]) <= 1e-6 for event_id, score in scored.items())
    assert not any(abs(score + 1e-3 - pool.scores[event_id]) <= 1e-6 for event_id, score in scored.items())


def _version(rung) -> Path:
    """The model folder a rung's settings serve."""
    settings = dict(rung.settings)
    names = ("STREAMSCORE_MODEL_DIR", "STREAMSCORE_MODEL_NAME", "STREAMSCORE_MODEL_VERSION")
    return Path(*(settings[n] for n in names))
