"""Reason codes on the real broker: workers with STREAMSCORE_REASONS=3, one serving the demo model
trained with an attribution into a registry of the test's own (trees), one the zoo's imported
scikit-learn pipeline (one-hot strings and scaled numbers into a logistic regression). Every
prediction carries the three features of largest contribution, bit-exactly those computed offline
for the same rows."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import pytest
import zoo
from confluent_kafka import Producer
from conftest import MODELS, WorkerProcess, read_topic

from stream.contracts import Prediction
from stream.lifecycle.importer import Options, import_model
from stream.scoring.contributions import contributions_for
from stream.scoring.features import FeatureReader
from stream.scoring.model import LoadedModel, load
from stream.tools.produce import produce

EVENTS = 300
Sent = dict[str, dict[str, object]]  # event_id -> features


def _worker(kafka_bootstrap: str, tmp: Path, models: Path, name: str) -> tuple[WorkerProcess, dict[str, str]]:
    base = f"reasons-{name}-{os.getpid()}-{time.monotonic_ns()}"
    topics = {t: f"{base}.{t}" for t in ("events", "predictions", "provenance", "dlq")}
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "STREAMSCORE_APP_ID": base,
        "STREAMSCORE_INPUT_TOPIC": topics["events"],
        "STREAMSCORE_PREDICTION_TOPIC": topics["predictions"],
        "STREAMSCORE_PROVENANCE_TOPIC": topics["provenance"],
        "STREAMSCORE_DLQ_TOPIC": topics["dlq"],
        "STREAMSCORE_OUTCOME_TOPIC": f"{base}.outcomes",
        "STREAMSCORE_DRIFT_TOPIC": f"{base}.drift",
        "STREAMSCORE_MODEL_CHANGES_TOPIC": f"{base}.model-changes",
        "STREAMSCORE_MODEL_DIR": str(models),
        "STREAMSCORE_MODEL_NAME": name,
        "STREAMSCORE_DATA_DIR": str(tmp / "data"),
        "STREAMSCORE_METRICS_PORT": "0",
        "STREAMSCORE_REASONS": "3",
        "STREAMSCORE_BATCH_SIZE": "64",
    }
    return WorkerProcess(env, tmp / "worker.log").start(), topics


def _served(
    kafka_bootstrap: str, tmp: Path, model: LoadedModel, send: Callable[[str], Sent]
) -> tuple[LoadedModel, Sent, list[Prediction], WorkerProcess]:
    """What a worker with three reasons wrote for the events ``send`` publishes to its input topic."""
    worker, topics = _worker(kafka_bootstrap, tmp, model.path.parent.parent.parent, model.card.name)
    try:
        worker.wait_for("assigned partitions", timeout=120)
        sent = send(topics["events"])
        messages = read_topic(kafka_bootstrap, topics["predictions"], len(sent), timeout=120)
        predictions = [Prediction.model_validate_json(m.value()) for m in messages]
        assert len(predictions) == len(sent), worker.output()[-3000:]
        assert worker.proc is not None and worker.proc.poll() is None, worker.output()[-3000:]
    finally:
        worker.stop()
    return model, sent, predictions, worker


@pytest.fixture(scope="module")
def trees(kafka_bootstrap, tmp_path_factory):
    """The demo model (its card has an attribution), served on the demo's events."""
    tmp = tmp_path_factory.mktemp("reasons-trees")
    model = load(MODELS, "loan-approval")

    def send(topic: str) -> Sent:
        return produce(kafka_bootstrap, topic, count=EVENTS, seed=28).valid

    return _served(kafka_bootstrap, tmp, model, send)


@pytest.fixture(scope="module")
def linear(kafka_bootstrap, tmp_path_factory):
    """The zoo's scikit-learn pipeline (strings one-hot, a logistic regression), imported and served."""
    tmp = tmp_path_factory.mktemp("reasons-linear")
    (tmp / "made").mkdir()
    made = zoo.pipeline(tmp / "made")
    import_model(made.model, made.reference, tmp / "models", "zoo-linear", options=Options(label=made.label))
    model = load(tmp / "models", "zoo-linear")
    assert model.card.attribution is not None and model.card.attribution.method == "linear"
    data = zoo.table(rows=120, seed=99)
    columns = zoo.NUMBERS + zoo.STRINGS

    def send(topic: str) -> Sent:
        sent: Sent = {}
        producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 5})
        now = dt.datetime.now(dt.UTC).isoformat()
        for i in range(120):
            features = {c: str(data[c][i]) if c in zoo.STRINGS else float(data[c][i]) for c in columns}
            sent[f"z{i}"] = features
            event = {"event_id": f"z{i}", "occurred_at": now, "features": features}
            producer.produce(topic, orjson.dumps(event), key=f"k{i % 13}".encode())
        assert producer.flush(30) == 0
        return sent

    return _served(kafka_bootstrap, tmp, model, send)


def _by_magnitude(row: np.ndarray, names: list[str], k: int) -> list[tuple[str, float]]:
    order = sorted(range(len(names)), key=lambda i: -abs(row[i]))[:k]
    return [(names[i], float(row[i])) for i in order]


@pytest.mark.parametrize("case", ["trees", "linear"])
def test_every_prediction_carries_the_three_largest_contributions_computed_offline(case, request):
    model, sent, predictions, _ = request.getfixturevalue(case)
    ids = list(sent)
    rows = FeatureReader(model.card.features, wide=model.feeds.wide).rows([sent[i] for i in ids])
    assert not any(rows.errors)
    explainer = contributions_for(model)
    contributions = explainer(rows.x, rows.texts)
    margins = explainer.margin(rows.x, rows.texts)
    np.testing.assert_allclose(contributions.sum(axis=1) + explainer.expected_value, margins, atol=1e-4)
    expected = {i: _by_magnitude(c, model.feature_names, 3) for i, c in zip(ids, contributions, strict=True)}
    assert sorted(p.event_id for p in predictions) == sorted(ids)
    for prediction in predictions:
        assert prediction.reasons is not None, prediction
        assert list(prediction.reasons.items()) == expected[prediction.event_id], prediction.event_id
