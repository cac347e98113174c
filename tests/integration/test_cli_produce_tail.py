"""The producer and tail commands against the real broker."""

from __future__ import annotations

from conftest import read_topic
from typer.testing import CliRunner

from stream.cli.main import app
from stream.contracts import Event


def test_produce_for_a_duration_then_tail(kafka_bootstrap, new_topic):
    topic = new_topic(partitions=3)
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    result = CliRunner().invoke(
        app, ["produce", "--topic", topic, "--duration", "1", "--rate", "100"], env=env
    )
    assert result.exit_code == 0, result.output
    published = int(result.output.split("published ")[1].split(" valid")[0])
    assert 90 <= published <= 101
    messages = read_topic(kafka_bootstrap, topic, published, timeout=30, settle=0.5)
    assert len(messages) == published
    assert all(Event.model_validate_json(m.value()) for m in messages)

    shown = CliRunner().invoke(app, ["tail", topic, "--from-beginning", "--count", "2"], env=env)
    assert shown.exit_code == 0, shown.output
    assert shown.output.count(f"{topic}[") == 2 and '"event_id"' in shown.output
