"""``streamscore produce --outcomes`` sends the true outcomes to the outcome topic of the settings."""

from __future__ import annotations

from typer.testing import CliRunner

from stream.cli.main import app
from stream.tools import produce as producer
from stream.tools.produce import Produced


def test_outcomes_go_to_the_configured_outcome_topic(monkeypatch):
    calls: list[dict] = []

    def publish(kafka, topic, **options):
        calls.append({"topic": topic, **options})
        return Produced(valid={"e1": {}}, labels={"e1": 1})

    monkeypatch.setattr(producer, "produce", publish)
    env = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "STREAMSCORE_OUTCOME_TOPIC": "true-outcomes"}
    result = CliRunner().invoke(app, ["produce", "--count", "1", "--outcomes"], env=env)
    assert result.exit_code == 0, repr(result.exception)
    assert [call["outcome_topic"] for call in calls] == ["true-outcomes"]
    assert "published 1 valid and 0 malformed events, 1 outcomes" in result.output


def test_without_outcomes_none_are_sent(monkeypatch):
    calls: list[dict] = []

    def publish(kafka, topic, **options):
        calls.append(options)
        return Produced(valid={"e1": {}})

    monkeypatch.setattr(producer, "produce", publish)
    env = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    result = CliRunner().invoke(app, ["produce", "--count", "1"], env=env)
    assert result.exit_code == 0, repr(result.exception)
    assert calls[0]["outcome_topic"] is None
    assert result.output.rstrip().endswith("published 1 valid and 0 malformed events")
