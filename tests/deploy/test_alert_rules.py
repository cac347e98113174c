"""The alert rules are valid and fire when, and only when, their unit tests say (promtool)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import require_tool

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def promtool():
    return require_tool("promtool", "prometheus")


def test_rules_are_valid(promtool):
    done = subprocess.run([promtool, "check", "rules", "deploy/prometheus/alerts.yml"], cwd=ROOT,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 13 rules found" in done.stdout


def test_rules_unit_tests_pass(promtool):
    done = subprocess.run([promtool, "test", "rules", "alerts_test.yml"], cwd=ROOT / "tests" / "prometheus",
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_prometheus_config_loads_the_rules(promtool):
    done = subprocess.run([promtool, "check", "config", "deploy/prometheus/prometheus.yml"], cwd=ROOT,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "alerts.yml" in done.stdout
