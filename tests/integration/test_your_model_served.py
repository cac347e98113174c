"""Imported models of every kind served by real workers on the real broker, from the producer's own events.

Each model of the zoo (tests/zoo.py) is imported with ``import_model`` and served, as champion or
as a challenger in shadow (each model reads its own features from the events): a scikit-learn
pipeline with one input per column and two string features, the same in doubles, a random forest
and gradient-boosted trees on one float tensor, XGBoost and LightGBM through onnxmltools, a
regressor and a three-class classifier. Events are flat (``txn_id``, ``ts`` in epoch milliseconds,
the features at the top level, fields no model reads): every event is scored exactly once by each
model, with 0 dead letters, and each score equals onnxruntime's on the same row (within two float32
steps: onnxruntime's tree ensembles add their trees in an order that depends on the batch's size,
and the worker's batches are not the test's).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnxruntime as ort
import orjson
import pytest
import zoo
from confluent_kafka import Producer
from conftest import WorkerProcess, read_topic

from stream.contracts import Prediction
from stream.lifecycle.importer import Options, import_model
from stream.scoring.model import session_options

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("your-model")]
EVENTS = 150
SERVED = {  # worker: (champion, challenger or None)
    "strings": ("pipeline", "xgboost"),
    "trees": ("lightgbm", "random-forest"),
    "doubles": ("gradient-boosting", "pipeline-double"),
    "regressor": ("regressor", None),
    "classes": ("three-classes", None),
}


def _rows(n: int) -> list[dict[str, object]]:
    data = zoo.table(rows=n, seed=99)
    rows = [
        {c: str(data[c][i]) if c in zoo.STRINGS else float(data[c][i]) for c in zoo.NUMBERS + zoo.STRINGS}
        for i in range(n)
    ]
    rows[0]["region"] = "atlantis"  # never seen in the reference
    return rows


def _expected(made: zoo.Zoo, rows: list[dict[str, object]]) -> tuple[np.ndarray, list[str] | None]:
    """onnxruntime's scores (and a multiclass model's labels), fed by hand from the rows."""
    session = ort.InferenceSession(str(made.model), session_options(), providers=["CPUExecutionProvider"])
    feeds = {}
    for graph in session.get_inputs():
        if len(made.inputs) > 1:
            dtype = {"tensor(string)": object, "tensor(double)": np.float64}.get(graph.type, np.float32)
            feeds[graph.name] = np.array([r[graph.name] for r in rows], dtype=dtype).reshape(-1, 1)
        else:
            feeds[graph.name] = np.array([[r[f] for f in made.features] for r in rows], dtype=np.float32)
    out = session.run(None, feeds)
    if made.task == "regression":
        return np.asarray(out[0], dtype=np.float64).reshape(-1), None
    probabilities = out[1]
    if isinstance(probabilities, list):  # ZipMap: the positive class is the larger label
        probabilities = np.array([[m[k] for k in sorted(m)] for m in probabilities])
    if made.task == "binary":
        return probabilities[:, 1].astype(np.float64), None
    return probabilities.max(axis=1).astype(np.float64), [str(label) for label in out[0]]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    root = tmp_path_factory.mktemp("your-models")
    made = {}
    for name, maker in zoo.MAKERS.items():
        folder = root / "made" / name
        folder.mkdir(parents=True)
        made[name] = maker(folder)
        import_model(made[name].model, made[name].reference, root / "models", name,
                     options=Options(label=made[name].label))  # fmt: skip
    return root / "models", made


def _worker(kafka_bootstrap: str, models, tag: str, tmp_path) -> tuple[WorkerProcess, dict[str, str]]:
    champion, challenger = SERVED[tag]
    base = f"served-{tag}-{os.getpid()}-{time.monotonic_ns()}"
    topics = {t: f"{base}.{t}" for t in ("events", "predictions", "provenance", "dlq", "shadow")}
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "STREAMSCORE_APP_ID": base,
        "STREAMSCORE_INPUT_TOPIC": topics["events"],
        "STREAMSCORE_PREDICTION_TOPIC": topics["predictions"],
        "STREAMSCORE_PROVENANCE_TOPIC": topics["provenance"],
        "STREAMSCORE_DLQ_TOPIC": topics["dlq"],
        "STREAMSCORE_CHALLENGER_TOPIC": topics["shadow"],
        "STREAMSCORE_OUTCOME_TOPIC": f"{base}.outcomes",
        "STREAMSCORE_DRIFT_TOPIC": f"{base}.drift",
        "STREAMSCORE_MODEL_CHANGES_TOPIC": f"{base}.model-changes",
        "STREAMSCORE_MODEL_DIR": str(models),
        "STREAMSCORE_MODEL_NAME": champion,
        "STREAMSCORE_DATA_DIR": str(tmp_path / tag),
        "STREAMSCORE_METRICS_PORT": "0",
        "STREAMSCORE_EVENT_ID_FIELD": "txn_id",
        "STREAMSCORE_EVENT_TIME_FIELD": "ts",
        "STREAMSCORE_FEATURES_FIELD": "",
    }
    if challenger:
        env["STREAMSCORE_CHALLENGER_URI"] = f"{models}/{challenger}/1"
    return WorkerProcess(env, tmp_path / f"{tag}.log").start(), topics


def _publish(kafka_bootstrap: str, topic: str, rows: list[dict[str, object]]) -> None:
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 5})
    now = int(time.time() * 1000)
    for i, row in enumerate(rows):
        event = {"txn_id": f"t{i}", "ts": now + i, **row, "channel": "web", "note": None}
        producer.produce(topic, orjson.dumps(event), key=f"card-{i % 37}".encode())
    assert producer.flush(30) == 0


def test_every_kind_of_model_scores_flat_events_as_onnxruntime(kafka_bootstrap, registry, tmp_path):
    models, made = registry
    rows = _rows(EVENTS)
    started = {tag: _worker(kafka_bootstrap, models, tag, tmp_path) for tag in SERVED}
    try:
        for worker, _ in started.values():
            worker.wait_for("assigned partitions", timeout=120)
        for _, topics in started.values():
            _publish(kafka_bootstrap, topics["events"], rows)
        answers = _read_all(kafka_bootstrap, started, ("predictions", "shadow"), EVENTS)
        answers |= _read_all(kafka_bootstrap, started, ("dlq",), 0)  # once every event was scored
        for tag, (worker, _) in started.items():
            assert answers[tag, "dlq"] == [], worker.output()
            for name, kind in zip(SERVED[tag], ("predictions", "shadow"), strict=True):
                if name is not None:
                    _check(made[name], rows, answers[tag, kind], f"{tag}: {name}")
            assert worker.proc.poll() is None, worker.output()
        _explained(started["strings"][0], rows[0])
    finally:
        for worker, _ in started.values():
            worker.stop()


def _read_all(kafka_bootstrap: str, started: dict, kinds: tuple[str, ...], expected: int) -> dict:
    """The messages of those topics of every worker, read at once (each read waits to settle)."""
    with ThreadPoolExecutor(8) as pool:
        read = {
            (tag, kind): pool.submit(read_topic, kafka_bootstrap, topics[kind], expected, 90)
            for tag, (_, topics) in started.items()
            for kind in kinds
            if kind != "shadow" or SERVED[tag][1]
        }
        return {key: future.result() for key, future in read.items()}


def _check(made: zoo.Zoo, rows: list[dict[str, object]], messages: list, where: str) -> None:
    """Every event scored once by the model, as onnxruntime scores its row."""
    predictions = {p.event_id: p for p in (Prediction.model_validate_json(m.value()) for m in messages)}
    assert sorted(predictions) == sorted(f"t{i}" for i in range(EVENTS)), where
    assert len(messages) == EVENTS and {p.model_name for p in predictions.values()} == {where.split(": ")[1]}
    scores, labels = _expected(made, rows)
    online = np.array([predictions[f"t{i}"].score for i in range(EVENTS)])
    np.testing.assert_allclose(online, scores, rtol=2**-22, atol=1e-7, err_msg=where)
    if labels is not None:
        assert [predictions[f"t{i}"].label for i in range(EVENTS)] == labels


def _explained(worker: WorkerProcess, row: dict[str, object]) -> None:
    """``explain`` reads the flat event as the worker did and re-scores it to the same score."""
    done = subprocess.run(
        [sys.executable, "-m", "stream.cli.main", "explain", "t0", "--json"],
        env=worker.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    explained = json.loads(done.stdout)
    assert explained["outcome"] == "scored" and explained["features"]["region"] == row["region"] == "atlantis"
    assert explained["bit_exact"] is True and explained["score_now"] == explained["score_then"], explained
