"""A bad model or setting stops the worker at start-up with one line that says what to fix."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from conftest import MODELS, ROOT


def _worker(env):
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", "worker"],
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_tampered_model_stops_startup(tmp_path):
    shutil.copytree(MODELS, tmp_path / "models")
    onnx_file = next((tmp_path / "models").rglob("model.onnx"))
    onnx_file.write_bytes(onnx_file.read_bytes() + b"\0")
    done = _worker({"STREAMSCORE_MODEL_DIR": str(tmp_path / "models")})
    assert done.returncode == 2
    assert done.stderr.strip().startswith("streamscore: error:")
    assert "changed or corrupted" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_unknown_model_name_stops_startup():
    done = _worker({"STREAMSCORE_MODEL_DIR": str(MODELS), "STREAMSCORE_MODEL_NAME": "nope"})
    assert done.returncode == 2 and "STREAMSCORE_MODEL_NAME" in done.stderr


def test_invalid_setting_stops_startup():
    done = _worker({"STREAMSCORE_BATCH_SIZE": "0"})
    assert done.returncode == 2 and "batch_size" in done.stderr
    done = _worker({"STREAMSCORE_PROCESSING_GUARANTEE": "maybe"})
    assert done.returncode == 2 and "processing_guarantee" in done.stderr


def test_unreachable_broker_stops_startup_clearly():
    done = _worker({"STREAMSCORE_MODEL_DIR": str(MODELS), "STREAMSCORE_METRICS_PORT": "0"})
    assert done.returncode == 2
    assert "cannot reach Kafka at 127.0.0.1:1" in done.stderr and "KAFKA_BOOTSTRAP_SERVERS" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
