"""STREAMSCORE_REASONS and the model: one that cannot be explained stops start-up in one line, and is
refused at a reload while the model serving goes on; reasons off, nothing is asked of the model."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import subprocess
import sys

import orjson
import pytest
from conftest import ROOT
from model_versions import NAME, add_version, linear, registry

from stream.errors import ModelError
from stream.lifecycle.folder import FolderSource
from stream.lifecycle.uris import of_folder
from stream.messages import inbound
from stream.scoring.model import load, load_folder
from stream.scoring.pipeline import Pipeline
from stream.scoring.records import Topics
from stream.settings import Settings
from stream.tools.produce import events
from stream.worker.app import create_pipeline
from stream.worker.metrics import WorkerMetrics
from stream.worker.reload import ModelWatcher

SAYS = "STREAMSCORE_REASONS=3 needs a tree ensemble or a linear model with an attribution in its card"
TREE = {"method": "tree", "expected_value": 0.0, "covers": [1.0], "rows": 1}


def _no_attribution(doc: dict) -> None:
    doc["attribution"] = None


def _worker(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stream.cli.main", "worker"],
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "STREAMSCORE_METRICS_PORT": "0", **env},
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("model", "card", "why"),
    [
        (None, _no_attribution, "has no attribution"),
        (linear(width=9), lambda doc: doc.update(attribution=TREE), "is a MatMul node"),
    ],
    ids=["no-attribution", "neither-trees-nor-linear"],
)
def test_a_model_that_cannot_be_explained_stops_startup_in_one_line(tmp_path, model, card, why):
    add_version(registry(tmp_path), "2", model, edit_card=card)
    done = _worker({"STREAMSCORE_MODEL_DIR": str(tmp_path), "STREAMSCORE_REASONS": "3"})
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith(f"streamscore: error: {SAYS}, and loan-approval/2 cannot be explained: ")
    assert why in lines[0] and lines[0].endswith("or set STREAMSCORE_REASONS=0")
    off = create_pipeline(Settings(model_dir=tmp_path, reasons=0))  # what the worker builds at start-up
    assert off.model.card.version == "2", "off: the model is not asked for contributions"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The demo model trained with an attribution, into a registry of its own."""
    root = tmp_path_factory.mktemp("explained")
    command = [sys.executable, "-m", "stream.cli.main", "model", "train", "--registry", str(root)]
    command += ["--samples", "2000"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return root


def test_a_reload_to_a_model_that_cannot_be_explained_is_refused_and_reasons_go_on(trained, tmp_path):
    shutil.copytree(trained / NAME / "1", tmp_path / NAME / "1")
    pipeline = Pipeline(
        load(tmp_path, NAME), Topics("p", "v", "d"), pii_key=b"k" * 16,
        scorer={"version": "0", "revision": None, "worker_id": "w"}, max_message_bytes=65_536, reasons=3,
    )  # fmt: skip
    bad = add_version(tmp_path, "2", edit_card=_no_attribution)
    metrics = WorkerMetrics()
    watcher = ModelWatcher(FolderSource(of_folder(tmp_path, NAME, "latest")), pipeline, metrics, "1")
    assert asyncio.run(watcher.poll()) is None
    assert metrics.reload_failures._value.get() == 1 and pipeline.model.card.version == "1"
    values = [v for _, v, *_ in itertools.islice(events(seed=6), 8)]
    result = pipeline.process([inbound(v, b"k", "events", 0, i, 1) for i, v in enumerate(values)])
    reasons = [orjson.loads(r.value)["reasons"] for r in result.records if r.topic == "p"]
    assert len(reasons) == 8 and all(len(r) == 3 for r in reasons)
    with pytest.raises(ModelError, match="has no attribution"):
        pipeline.swap(load_folder(bad))
