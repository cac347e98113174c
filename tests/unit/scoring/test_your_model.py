"""Imported models of every kind served by the pipeline: each score is onnxruntime's on the same row.

The expected answers come from onnxruntime run directly on the model file, fed by hand from the
event's values (not through the pipeline's own feeds); events carry fields no model reads.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import onnxruntime as ort
import orjson
import pytest
import zoo

from stream.contracts import Prediction, Provenance
from stream.lifecycle.importer import Options, import_model
from stream.messages import inbound
from stream.scoring.model import LoadedModel, load_folder, session_options
from stream.scoring.pipeline import Pipeline, Topics

TOPICS = Topics("predictions", "provenance", "events.dlq")


def _imported(kind: str, folder: Path) -> tuple[zoo.Zoo, LoadedModel]:
    made = zoo.MAKERS[kind](folder)
    personal = ["region"] if "region" in made.features else []
    options = Options(label=made.label, personal=personal)
    return made, load_folder(
        import_model(made.model, made.reference, folder / "registry", kind, options=options)
    )


@pytest.fixture(scope="module", params=sorted(zoo.MAKERS))
def served(request, tmp_path_factory):
    return _imported(request.param, tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="module", params=["pipeline", "pipeline-double"])
def reads_strings(request, tmp_path_factory):
    return _imported(request.param, tmp_path_factory.mktemp(request.param))


WHEN = dt.datetime(2026, 12, 6, tzinfo=dt.UTC).isoformat()


def _pipeline(model: LoadedModel) -> Pipeline:
    scorer = {"version": "0", "revision": None, "worker_id": "h:1"}
    return Pipeline(model, TOPICS, pii_key=b"k", scorer=scorer, max_message_bytes=65_536)


def _batch(rows: list[dict[str, object]], prefix: str = "e", **extra: object) -> list:
    """Events of ``rows`` (with ``extra`` fields no model reads), keyed ``k<i>``."""
    return [
        inbound(
            orjson.dumps({"event_id": f"{prefix}{i}", "occurred_at": WHEN, "features": {**row, **extra}}),
            f"k{i}".encode(), "events", 0, i,
        )
        for i, row in enumerate(rows)
    ]  # fmt: skip


def _rows(n: int = 64, seed: int = 7) -> list[dict[str, object]]:
    data = zoo.table(rows=n, seed=seed)
    rows = []
    for i in range(n):
        row = {
            c: (str(data[c][i]) if c in zoo.STRINGS else float(data[c][i])) for c in zoo.NUMBERS + zoo.STRINGS
        }
        rows.append(row)
    rows[0]["region"] = "atlantis"  # a category the reference never saw: scored, the model decides
    return rows


def _expected(made: zoo.Zoo, rows: list[dict[str, object]]) -> list:
    """onnxruntime's answers, fed by hand: one input per column, or one float tensor of the features
    (one thread, as the worker runs it: a tree ensemble's sums in another order differ in the last bit)."""
    session = ort.InferenceSession(str(made.model), session_options(), providers=["CPUExecutionProvider"])
    feeds = {}
    for graph in session.get_inputs():
        if graph.name in made.features and len(made.inputs) > 1:
            values = [r[graph.name] for r in rows]
            dtype = {"tensor(string)": object, "tensor(double)": np.float64}.get(graph.type, np.float32)
            feeds[graph.name] = np.array(values, dtype=dtype).reshape(-1, 1)
        else:
            feeds[graph.name] = np.array([[r[f] for f in made.features] for r in rows], dtype=np.float32)
    return session.run(None, feeds)


def test_every_event_is_scored_as_onnxruntime_scores_its_row(served):
    made, model = served
    rows = _rows()
    result = _pipeline(model).process(_batch(rows, channel="web"))
    assert result.scored == len(rows) and not result.dead_letters
    unread = {"channel", *rows[0]} - set(model.feature_names)
    assert result.ignored == dict.fromkeys(unread, len(rows))
    predictions = [
        Prediction.model_validate_json(r.value) for r in result.records if r.topic == "predictions"
    ]
    provenance = [Provenance.model_validate_json(r.value) for r in result.records if r.topic == "provenance"]
    assert (
        [p.event_id for p in predictions]
        == [f"e{i}" for i in range(len(rows))]
        == [p.event_id for p in provenance]
    )
    outputs = _expected(made, rows)
    scores = np.array([p.score for p in predictions])
    task = model.card.output.task
    assert task == made.task
    if task == "regression":
        assert np.array_equal(scores, np.asarray(outputs[0], dtype=np.float64).reshape(-1))
        assert {p.label for p in predictions} == {""}
        return
    probabilities = outputs[1]
    if isinstance(probabilities, list):  # ZipMap
        classes = [str(c) for c in probabilities[0]]
        probabilities = np.array([list(m.values()) for m in probabilities])
    else:
        classes = [str(c) for c in (model.card.output.classes or [])] or ["0", "1"]
    if task == "binary":
        positive = classes.index(model.card.output.positive_label) if model.card.output.classes else 1
        assert np.array_equal(scores, probabilities[:, positive].astype(np.float32).astype(np.float64))
        assert [p.label for p in predictions] == [
            model.card.output.positive_label
            if s >= model.card.output.threshold
            else model.card.output.negative_label
            for s in scores
        ]
    else:
        labels = [str(label) for label in outputs[0]]
        assert [p.label for p in predictions] == labels
        assert all(set(p.probabilities or {}) == set(model.card.output.classes or ()) for p in predictions)
        assert np.array_equal(scores, probabilities.max(axis=1).astype(np.float64))


def test_a_personal_string_is_hashed_and_never_in_clear(reads_strings):
    _, model = reads_strings
    rows = _rows(4)
    pipeline = _pipeline(model)
    records = [r for r in pipeline.process(_batch(rows)).records if r.topic == "provenance"]
    hashes = [orjson.loads(r.value)["personal"]["region"] for r in records]
    assert len(set(hashes)) == len({r["region"] for r in rows})
    assert not any(row["region"].encode() in r.value for row, r in zip(rows, records, strict=True))
    # the feature hash tells rows that differ only in a string apart
    other = dict(rows[1], region="south" if rows[1]["region"] != "south" else "north")
    twice = _batch([rows[1], other], prefix="x")
    hashed = [
        orjson.loads(r.value)["feature_hash"]
        for r in pipeline.process(twice).records
        if r.topic == "provenance"
    ]
    assert hashed[0] != hashed[1]


def test_a_string_where_a_number_is_needed_is_a_dead_letter_naming_it(served):
    _, model = served
    row = _rows(1)[0]
    pipeline = _pipeline(model)
    bad = [
        {**row, "income": "lots"},
        {k: v for k, v in row.items() if k != "debt"},
    ]
    if "region" in model.feature_names:
        bad.append({**row, "region": 3})
    result = pipeline.process(_batch(bad, prefix="b"))
    reasons = [dict(r.headers)["__connect.errors.exception.message"].decode() for r in result.records]
    assert result.dead_letters == {"features": len(bad)}
    assert reasons[:2] == ["feature 'income' is a string: a number is required", "feature 'debt' is missing"]
    if len(bad) > 2:
        assert reasons[2] == "feature 'region' is a number: a string is required"
