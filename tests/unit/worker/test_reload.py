"""The model watcher swaps a verified new version in between batches and keeps the old one otherwise."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os

import orjson
import pytest
from confluent_kafka import Message
from fuzz.outcomes import make_pipeline
from model_versions import NAME, WIDTH, add_version, linear, nan_model, registry

from stream.errors import ModelError
from stream.lifecycle.folder import FolderSource
from stream.lifecycle.uris import of_folder
from stream.messages import inbound
from stream.scoring.model import load
from stream.tools.produce import events
from stream.worker.metrics import WorkerMetrics
from stream.worker.reload import ModelWatcher


@pytest.fixture
def root(tmp_path):
    return registry(tmp_path)


@pytest.fixture
def watched(root):
    pipeline = make_pipeline(root)
    metrics = WorkerMetrics()
    metrics.set_model(pipeline.model.card)
    return (
        pipeline,
        metrics,
        ModelWatcher(FolderSource(of_folder(root, NAME, "latest")), pipeline, metrics, "1"),
    )


def _poll(watcher):
    return asyncio.run(watcher.poll())


def _messages(n, seed=0):
    return [
        inbound(value, key, "events", 0, i)
        for i, (key, value, *_) in enumerate(itertools.islice(events(seed), n))
    ]


def _models_of(result):
    """(version, sha256) of every provenance record of a batch result."""
    docs = [orjson.loads(r.value) for r in result.records if r.topic == "provenance"]
    return {(d["model"]["version"], d["model"]["sha256"]) for d in docs}


def _info(metrics):
    return {
        (s.labels["version"], s.labels["sha256"]): s.value
        for family in metrics.registry.collect()
        if family.name == "streamscore_model_info"
        for s in family.samples
    }


def _failures(metrics):
    return metrics.registry.get_sample_value("streamscore_model_reload_failures_total")


def test_nothing_new_changes_nothing(watched):
    pipeline, metrics, watcher = watched
    assert _poll(watcher) is None
    assert pipeline.model.card.version == "1" and _failures(metrics) == 0


def test_good_new_version_is_swapped_in(watched, root, caplog):
    pipeline, metrics, watcher = watched
    old_sha = pipeline.model.card.sha256
    add_version(root, "2")
    with caplog.at_level(logging.INFO, "streamscore.reload"):
        card = _poll(watcher)
    assert card is not None and card.version == "2" and card.sha256 != old_sha
    assert pipeline.model.card.version == "2"
    result = pipeline.process(_messages(10))
    assert result.scored == 10 and _models_of(result) == {("2", card.sha256)}
    preds = [orjson.loads(r.value) for r in result.records if r.topic == "predictions"]
    assert {p["model_version"] for p in preds} == {"2"}
    assert _info(metrics) == {("2", card.sha256): 1.0}, "the info gauge names only the new model"
    assert _failures(metrics) == 0 and "serving model loan-approval/2" in caplog.text
    assert _poll(watcher) is None, "swapped once"


BAD = {
    "tampered": ({"tamper": True}, "changed or corrupted"),
    "wrong-inputs": ({"model": linear(width=4)}, r"as tensor(float)[N, 9]"),
    "nan-div": ({"model": nan_model("div")}, "not probabilities"),
    "nan-log": ({"model": nan_model("log")}, "not probabilities"),
    "bad-card": ({"edit_card": lambda c: c.pop("features")}, "is invalid at features"),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_new_version_keeps_the_previous_model(watched, root, caplog, kind):
    pipeline, metrics, watcher = watched
    before = _info(metrics)
    bad, reason = BAD[kind]
    add_version(root, "2", **bad)
    with caplog.at_level(logging.ERROR, "streamscore.reload"):
        assert _poll(watcher) is None
    assert pipeline.model.card.version == "1" and _info(metrics) == before
    assert _failures(metrics) == 1
    (record,) = [r for r in caplog.records if r.name == "streamscore.reload"]
    assert record.levelno == logging.ERROR
    assert "loan-approval/2 refused at reload, loan-approval/1 keeps serving" in record.getMessage()
    assert reason in record.getMessage()
    result = pipeline.process(_messages(5))
    assert result.scored == 5 and {v for v, _ in _models_of(result)} == {"1"}

    assert _poll(watcher) is None and _failures(metrics) == 1, "an unchanged bad version is not retried"
    good = add_version(root, "3")
    assert _poll(watcher).version == "3" and pipeline.model.path.parent == good


def test_a_bad_version_is_retried_once_its_files_change(watched, root):
    pipeline, metrics, watcher = watched
    onnx_file = add_version(root, "2", tamper=True) / "model.onnx"
    assert _poll(watcher) is None and _failures(metrics) == 1
    data = bytearray(onnx_file.read_bytes())
    data[len(data) // 2] ^= 0xFF  # the byte restored: the file its card describes
    onnx_file.write_bytes(bytes(data))
    stat = onnx_file.stat()
    os.utime(onnx_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a later write
    assert _poll(watcher).version == "2" and pipeline.model.card.version == "2"
    assert _failures(metrics) == 1


def test_a_model_beyond_the_input_bounds_is_refused(root):
    pipeline = make_pipeline(root, max_features=WIDTH)
    metrics = WorkerMetrics()
    watcher = ModelWatcher(FolderSource(of_folder(root, NAME, "latest")), pipeline, metrics, "1")

    def ten_features(card):
        card["features"].append({"name": "extra", "type": "number"})
        card["input_tensor"], card["output"]["tensor"] = "features", "probabilities"

    add_version(root, "2", linear(width=WIDTH + 1), edit_card=ten_features)
    assert load(root, NAME, "2").card.version == "2", "the model itself is sound"
    assert _poll(watcher) is None and _failures(metrics) == 1
    assert pipeline.model.card.version == "1"
    with pytest.raises(ModelError, match="10 features, more than the limit of 9"):
        pipeline.swap(load(root, NAME, "2"))


class _SwapsWhenRead(Message):
    """A message that swaps the pipeline's model the moment the pipeline reads it."""

    def __init__(self, value, key, offset, swap):
        super().__init__(topic="events", partition=0, offset=offset, key=key, value=value)
        self._swap = swap

    def value(self):
        if self._swap is not None:
            self._swap, swap = None, self._swap
            swap()
        return super().value()


def test_a_swap_during_a_batch_takes_effect_at_the_next(root):
    pipeline = make_pipeline(root)
    new = load(root, NAME, add_version(root, "2").name)
    msgs = _messages(6)
    batch = [
        *msgs[:3],
        _SwapsWhenRead(msgs[3].value(), msgs[3].key(), 3, lambda: pipeline.swap(new)),
        *msgs[4:],
    ]
    first = pipeline.process(batch)
    assert first.scored == 6 and {v for v, _ in _models_of(first)} == {"1"}, "one model per batch"
    second = pipeline.process(_messages(3, seed=1))
    assert {v for v, _ in _models_of(second)} == {"2"}
