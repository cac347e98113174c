"""Champion and challenger compared on outcomes, on the real broker.

The scoring worker serves the shipped model (trained on the generator's first concept) with a
canary of 30%: a challenger trained on the concept after the change answers those keys live and
the champion shadows them; the other way round for the rest. Events of the new concept flow with
their outcomes a second later; the outcome worker pairs each event's two answers with its outcome
and calls the challenger better, and ``streamscore model compare`` prints that report. The
outcome join itself judges the live answers only: no shadow record counts as a duplicate.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import orjson
from conftest import ROOT, read_topic
from model_versions import NAME, registry

from stream.kafka.topics import ensure_topics
from stream.outcomes.pairing import ComparisonReport
from stream.tools.produce import produce
from stream.tools.train import train

PARTITIONS = 3
WINDOW = 50
EVENTS = 600


def test_a_challenger_on_the_new_concept_is_called_better(
    kafka_bootstrap, worker_topics, start_worker, tmp_path
):
    root = registry(tmp_path / "registry")
    train(root, version="2", samples=6_000, seed=5, drifted=True)
    ensure_topics(kafka_bootstrap, {worker_topics.input: PARTITIONS})
    start_worker(
        model_dir=root,
        model_version="1",
        challenger_uri=f"{root}/{NAME}/2",
        canary_percent=30,
        drift_window=0,
    )
    judge = start_worker("outcomes", outcome_window=WINDOW)
    sent = produce(
        kafka_bootstrap, worker_topics.input, count=EVENTS, seed=95, drift_at=0, drift_kind="concept",
        outcome_topic=worker_topics.outcomes, outcome_delay=1.0,
    )  # fmt: skip
    expected = len(sent.labels) // WINDOW  # every event paired: a report each WINDOW pairs
    deadline = time.monotonic() + 120
    comparisons: list[ComparisonReport] = []
    while len(comparisons) < expected and time.monotonic() < deadline:
        messages = read_topic(kafka_bootstrap, worker_topics.drift, expected, timeout=10, settle=1.0)
        docs = [orjson.loads(m.value()) for m in messages]
        comparisons = [ComparisonReport.model_validate(d) for d in docs if d["kind"] == "comparison"]
    performance = [d for d in docs if d["kind"] == "performance"]
    assert judge.proc.poll() is None, judge.output()[-3000:]
    assert len(comparisons) == expected, judge.output()[-3000:]
    first = comparisons[0]
    assert (first.champion.version, first.challenger.version) == ("1", "2") and first.pairs == WINDOW
    assert first.verdict == "challenger better", first  # at the first look: 50 outcomes
    assert first.log_loss_interval[1] < 0 and first.log_loss["challenger"] < first.log_loss["champion"]
    assert comparisons[-1].pairs == expected * WINDOW and comparisons[-1].verdict == "challenger better"
    assert performance and all(d["counts"]["duplicate"] == 0 for d in performance), (
        "shadow answers not joined"
    )
    assert max(d["counts"]["joined"] for d in performance) <= len(sent.labels)
    assert {d["model_version"] for d in performance} == {"1", "2"}, "the live answers of both models"

    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "STREAMSCORE_DRIFT_TOPIC": worker_topics.drift,
    }
    shown = subprocess.run(
        [sys.executable, "-m", "stream.cli.main", "model", "compare"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    pairs = f"{expected * WINDOW:,} paired outcomes"
    first_line = f"{NAME}/2 (challenger) against {NAME}/1 (champion) on {pairs}: challenger better"
    assert shown.stdout.splitlines()[0] == first_line, shown.stdout
