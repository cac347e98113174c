"""The workers import only what serving needs: no training, data-frame or plotting libraries.

Each case runs ``streamscore worker`` (or ``outcomes``) in a fresh interpreter: it loads the settings,
the keys and the model, builds the pipeline and stops at its first Kafka call (made to fail at once
rather than wait for a broker). Whatever it imported on the way is then listed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import MODELS, ROOT

HEAVY = (
    "sklearn",
    "scipy.stats",
    "scipy.sparse",
    "scipy.special",
    "pandas",
    "pyarrow",
    "matplotlib",
    "mlflow",
    "skl2onnx",
    "onnxmltools",
    "river.datasets",
    "river.stream",
    "river.drift.datasets",
)
"""Packages no worker serves with. SciPy's top level stays: River's statistics import it (a few MiB)."""

SCRIPT = """
import json, sys
from stream.errors import ConfigError
from stream.kafka import config

def first_kafka_call(*args, **kwargs):
    raise ConfigError("first Kafka call")

config.connect = first_kafka_call  # before any module binds it
from stream.cli.main import app
try:
    app([sys.argv[1]], prog_name="streamscore")
except SystemExit as exc:
    code = exc.code
print(json.dumps({"exit": code, "loaded": sorted(set(sys.argv[2:]) & set(sys.modules))}))
"""


@pytest.mark.parametrize("command", ["worker", "outcomes"])
def test_worker_start_imports_nothing_heavy(command: str) -> None:
    env = {
        **os.environ,
        "STREAMSCORE_MODEL_DIR": str(MODELS),
        "STREAMSCORE_METRICS_PORT": "0",
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, command, *HEAVY],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert "first Kafka call" in done.stderr, done.stderr  # it went as far as that
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["exit"] == 2
    assert result["loaded"] == []


def test_river_drift_imported_later_serves_the_same_detectors() -> None:
    script = (
        "import sys\n"
        "from stream.drift.detectors import ADWIN, PageHinkley\n"
        "assert 'river.drift' not in sys.modules and 'sklearn' not in sys.modules\n"
        "import river.drift\n"
        "assert river.drift.ADWIN is ADWIN and river.drift.PageHinkley is PageHinkley\n"
        "assert river.drift.datasets.AirlinePassengers\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
