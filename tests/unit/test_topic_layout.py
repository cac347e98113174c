"""Topic layouts that loop or mix records are refused at start-up, in one line naming both settings."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import pytest
from conftest import MODELS, ROOT
from pydantic import ValidationError

from stream.audit.errors import AuditError
from stream.audit.replay import plan
from stream.outcomes.kafka import OutcomeTopics
from stream.settings import Settings

TOPIC_FIELDS = [
    "input_topic",
    "outcome_topic",
    "provenance_topic",
    "prediction_topic",
    "challenger_topic",
    "dlq_topic",
    "drift_topic",
    "model_changes_topic",
]
INTERNAL = ["app-drift-state", "app-outcomes-repartition", "app-outcomes-pending-changelog"]


def _refusal(**topics: str) -> str:
    with pytest.raises(ValidationError) as caught:
        Settings(app_id="app", **topics)
    errors = caught.value.errors()
    assert len(errors) == 1 and errors[0]["loc"] == ()
    message = errors[0]["msg"].removeprefix("Value error, ")
    assert "\n" not in message and message.endswith("give it its own topic"), message
    return message


@pytest.mark.parametrize(
    ("setting", "other", "says"),
    [
        ("dlq_topic", "input_topic", "dead letters would be read again as events"),
        ("prediction_topic", "input_topic", "predictions would be read again as events"),
        ("drift_topic", "input_topic", "drift reports would be read again as events"),
        ("provenance_topic", "input_topic", "provenance records would be read again as events"),
        ("prediction_topic", "provenance_topic", "predictions would be read as provenance"),
    ],
)
def test_the_layouts_of_the_issue_are_refused(setting, other, says):
    message = _refusal(**{setting: "shared", other: "shared"})
    assert message.startswith(f"STREAMSCORE_{setting.upper()} is the ")
    assert f"STREAMSCORE_{other.upper()}" in message and "'shared'" in message and says in message


@pytest.mark.parametrize(("first", "second"), list(itertools.combinations(TOPIC_FIELDS, 2)))
def test_no_two_topic_settings_may_name_one_topic(first, second):
    message = _refusal(**{first: "same", second: "same"})
    assert f"STREAMSCORE_{first.upper()}" in message and f"STREAMSCORE_{second.upper()}" in message


@pytest.mark.parametrize("field", TOPIC_FIELDS)
@pytest.mark.parametrize("internal", INTERNAL)
def test_no_topic_setting_may_name_an_internal_topic(field, internal):
    message = _refusal(**{field: internal})
    assert message.startswith(f"STREAMSCORE_{field.upper()} is ") and "STREAMSCORE_APP_ID" in message


def test_the_internal_topics_checked_are_the_ones_the_workers_use():
    settings = Settings(app_id="app")
    outcome = OutcomeTopics.of(settings)
    assert {outcome.repartition, outcome.changelog} | {"app-drift-state"} == set(INTERNAL)


def test_distinct_topics_and_topics_turned_off_are_accepted():
    assert Settings().dlq_topic == "events.dlq"
    assert Settings(outcome_topic="", model_changes_topic="").outcome_topic == ""


def _cli(command: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stream.cli.main", *command.split()],
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "STREAMSCORE_MODEL_DIR": str(MODELS)}
        | env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


@pytest.mark.parametrize("command", ["worker", "outcomes"])
def test_a_looping_layout_stops_the_workers_in_one_line(command):
    done = _cli(command, {"STREAMSCORE_INPUT_TOPIC": "events", "STREAMSCORE_DLQ_TOPIC": "events"})
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("streamscore: error: ") and "cannot reach Kafka" not in lines[0]
    assert "STREAMSCORE_DLQ_TOPIC" in lines[0] and "STREAMSCORE_INPUT_TOPIC" in lines[0]


@pytest.mark.parametrize(
    ("output", "clash"),
    [
        ("events", "'events'"),  # the live input
        ("predictions", "'predictions'"),
        ("p.provenance", "'p.provenance'"),
        ("drift", "'drift'"),
        ("model-changes", "'model-changes'"),
        ("live", "'live.dlq'"),  # its dead letters: the live dead-letter topic
        ("p", "'p.provenance'"),  # its provenance: the live provenance topic
        ("app-drift-state", "'app-drift-state'"),
    ],
)
def test_replay_refuses_an_output_topic_of_the_live_worker(output, clash):
    settings = Settings(
        app_id="app",
        kafka_bootstrap_servers="127.0.0.1:1",  # refused before the broker is asked anything
        model_dir=MODELS,
        dlq_topic="live.dlq",
        provenance_topic="p.provenance",
    )
    with pytest.raises(AuditError) as caught:
        plan(settings, "beginning", "end", "loan-approval/1", output)
    message = str(caught.value)
    assert message.startswith(f"--output-topic {output}: ") and clash in message and "\n" not in message
