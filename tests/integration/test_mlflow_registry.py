"""Models from a real MLflow server: register, list, serve by alias, follow the alias, refuse a bad version.

A fixture runs ``mlflow server`` (SQLite, local artifact root) on loopback; the CLI and the worker
talk to it through MLflow's client. Each test registers a model of its own name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import orjson
from conftest import ROOT, Traffic, assert_versions_only_rise, read_topic
from model_versions import add_version

from stream.kafka.topics import ensure_topics
from stream.scoring.model import CARD_FILE, MODEL_FILE


def _cli(mlflow_uri, *args, timeout=120):
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri}
    return subprocess.run(
        [sys.executable, "-m", "stream.cli.main", "model", *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def _named(tmp_path, name, version="1", **kwargs):
    """A folder registry holding the shipped model as ``name`` (card renamed), at ``version``."""
    root = tmp_path / "registry"
    root.mkdir(exist_ok=True)

    def rename(card):
        card["name"] = name

    folder = add_version(root, version, edit_card=rename, **kwargs)
    return folder


def _register_unchecked(mlflow_uri, folder):
    """Publish ``folder`` as a new version without the register command's checks (a bad version)."""
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_uri)
    card = json.loads((folder / CARD_FILE).read_text())
    experiment = client.get_experiment_by_name("streamscore").experiment_id
    run = client.create_run(experiment)
    for file in (MODEL_FILE, CARD_FILE):
        client.log_artifact(run.info.run_id, str(folder / file), "model")
    client.set_terminated(run.info.run_id)
    version = client.create_model_version(card["name"], f"{run.info.artifact_uri}/model", run.info.run_id)
    return str(version.version)


def test_register_and_list(mlflow_server, tmp_path):
    name = f"loan-{uuid.uuid4().hex[:8]}"
    folder = _named(tmp_path, name)
    done = _cli(mlflow_server, "register", str(folder), "--alias", "champion")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"registered models:/{name}/1 as @champion"
    again = _cli(mlflow_server, "register", str(folder))
    assert again.stdout.strip() == f"registered models:/{name}/2", again.stderr
    listed = [line for line in _cli(mlflow_server, "list").stdout.splitlines() if line.startswith(name)]
    sha = json.loads((folder / CARD_FILE).read_text())["sha256"][:12]
    assert len(listed) == 2 and all(f"sha256 {sha}" in line and "roc_auc 0.99" in line for line in listed)
    assert listed[0].endswith("@champion") and not listed[1].endswith("@champion")

    tampered = _named(tmp_path, name, "9", tamper=True)
    refused = _cli(mlflow_server, "register", str(tampered))
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 2 and len(lines) == 1 and "changed or corrupted" in lines[0], refused.stderr


def test_a_bad_models_uri_stops_the_worker_with_one_line(mlflow_server, start_worker):
    worker = start_worker(
        model_uri="models:/no-such-model@champion", env={"MLFLOW_TRACKING_URI": mlflow_server}
    )
    assert worker.proc.wait(120) == 2
    lines = worker.output().strip().splitlines()
    assert len(lines) == 1, worker.output()
    assert (
        lines[0].startswith("streamscore: error: MLflow at http://127.0.0.1:") and "no-such-model" in lines[0]
    )


def test_a_worker_follows_the_alias_and_refuses_a_bad_version(
    mlflow_server, kafka_bootstrap, worker_topics, start_worker, tmp_path
):
    name = f"loan-{uuid.uuid4().hex[:8]}"
    assert _cli(mlflow_server, "register", str(_named(tmp_path, name)), "--alias", "champion").returncode == 0
    ensure_topics(kafka_bootstrap, {worker_topics.input: 3})
    worker = start_worker(
        model_uri=f"models:/{name}@champion",
        model_reload_s=0.5,
        batch_size=16,
        env={"MLFLOW_TRACKING_URI": mlflow_server},
    )
    with Traffic(kafka_bootstrap, worker_topics.input, rate=100, seed=72) as traffic:
        read_topic(kafka_bootstrap, worker_topics.predictions, 50, timeout=90, settle=0)
        bad = _register_unchecked(mlflow_server, _named(tmp_path, name, "2", tamper=True))
        assert _cli(mlflow_server, "promote", name, bad).returncode == 0
        worker.wait_for(f"{name}/{bad} refused at reload, {name}/1 keeps serving")
        good = _cli(mlflow_server, "register", str(_named(tmp_path, name, "3")))
        version = good.stdout.strip().rsplit("/", 1)[-1]
        promoted = _cli(mlflow_server, "promote", name, version)
        assert promoted.stdout.strip() == f"{name}@champion: {bad} -> {version}", promoted.stderr
        worker.wait_for(f"serving model {name}/{version}")
        after_swap = traffic.count
        time.sleep(2)
    sent = traffic.sent
    assert worker.proc.poll() is None, worker.output()
    predictions = read_topic(kafka_bootstrap, worker_topics.predictions, sent.count, timeout=60)
    docs = [orjson.loads(m.value()) for m in predictions]
    assert sorted(d["event_id"] for d in docs) == sorted(sent.valid), "every event scored exactly once"
    assert {d["model_name"] for d in docs} == {name}
    assert {d["model_version"] for d in docs} == {"1", version}, "the bad version never served"
    assert_versions_only_rise(predictions, docs)
    late = set(list(sent.valid)[after_swap:])
    assert late and {d["model_version"] for d in docs if d["event_id"] in late} == {version}
    assert worker.output().count("refused at reload") == 1


def test_an_imported_model_is_registered_with_its_inputs_and_task(mlflow_server, tmp_path):
    import zoo
    from mlflow import MlflowClient

    from stream.lifecycle.importer import Options, import_model, publish

    (tmp_path / "made").mkdir()
    made = zoo.pipeline(tmp_path / "made")
    folder = import_model(
        made.model, made.reference, tmp_path, "imported-pipeline", options=Options(label=made.label)
    )
    lines = publish(folder, mlflow_server, "champion")
    assert lines[0].startswith("registered models:/imported-pipeline/") and lines[0].endswith("as @champion")
    version = MlflowClient(mlflow_server).get_model_version_by_alias("imported-pipeline", "champion")
    assert version.tags["streamscore.inputs"] == ",".join(zoo.STRINGS + zoo.NUMBERS)
    assert version.tags["streamscore.task"] == "binary"
