"""A bad model or setting stops the worker at start-up with one line that says what to fix."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import MODELS, ROOT
from model_versions import add_version, linear, nan_model, registry


def _worker(env):
    return subprocess.run(
        [sys.executable, "-m", "stream.cli.main", "worker"],
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"tamper": True}, "changed or corrupted"),
        ({"model": linear(width=4)}, r"as tensor(float)[N, 9]"),
        ({"model": nan_model("div")}, "not probabilities"),
    ],
    ids=["tampered", "wrong-inputs", "nan"],
)
def test_bad_model_stops_startup(tmp_path, bad, reason):
    add_version(registry(tmp_path), "2", **bad)
    done = _worker({"STREAMSCORE_MODEL_DIR": str(tmp_path)})
    assert done.returncode == 2
    assert done.stderr.strip().startswith("streamscore: error:")
    assert reason in done.stderr and len(done.stderr.strip().splitlines()) == 1


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


@pytest.mark.parametrize("command", ["worker", "outcomes", "run"])
@pytest.mark.parametrize(
    ("secret", "says"),
    [(None, "STREAMSCORE_SECRET is not set"), ("short", "STREAMSCORE_SECRET is shorter than 32 characters")],
    ids=["missing", "short"],
)
def test_no_secret_no_start(command, secret, says):
    """No public default: without a secret of its own the worker, the outcome worker and the demo stop
    at once (before any broker), in one line that names the setting and how to make a value."""
    env = {k: v for k, v in os.environ.items() if k != "STREAMSCORE_SECRET"}
    env |= {"STREAMSCORE_SECRET": secret} if secret else {}
    done = subprocess.run(
        [sys.executable, "-m", "stream.cli.main", command],
        env={**env, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "STREAMSCORE_MODEL_DIR": str(MODELS)},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith(f"streamscore: error: {says}")
    assert 'python -c "import secrets; print(secrets.token_hex(32))"' in lines[0]
    assert "cannot reach Kafka" not in done.stderr, "refused before connecting"


def test_the_retired_pii_key_is_refused():
    done = _worker({"STREAMSCORE_PII_KEY": "streamscore-development-key"})
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "STREAMSCORE_PII_KEY is no longer read" in done.stderr and "STREAMSCORE_SECRET" in done.stderr
