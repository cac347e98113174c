"""The embedded broker's set-up errors say what to do, and its CLI documents every option."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from stream.cli.main import app
from stream.tools import broker
from stream.tools.broker import BrokerError, EmbeddedKafka


def test_missing_java_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrokerError, match="java not found: install a Java 17"):
        EmbeddedKafka(data_dir=tmp_path).start()


def test_missing_maven_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    with pytest.raises(BrokerError, match="mvn not found: install Apache Maven"):
        broker.kafka_classpath("4.4.0")


def test_unknown_kafka_version_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(BrokerError, match=r"could not fetch Apache Kafka 0\.0\.1"):
        broker.kafka_classpath("0.0.1")
    assert not (tmp_path / "streamscore" / "kafka" / "0.0.1" / "libs").exists()


def test_broker_help_documents_every_option():
    result = CliRunner().invoke(app, ["broker", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in (
        "--port",
        "--data-dir",
        "--kafka-version",
        "--heap",
        "--timeout",
        "--fetch-only",
        "--nodes",
        "--controllers",
    ):
        assert option in result.output


def test_cli_error_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    result = CliRunner().invoke(app, ["broker", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("streamscore: error: java not found")


def test_cluster_id_never_reads_as_an_option(monkeypatch):
    """An id drawn with a leading '-' (one in 64) would be taken by kafka-storage for an option."""
    import uuid

    dash_first = uuid.UUID(bytes=bytes([0xF8]) + bytes(15))  # base64 of 0b111110... starts with '-'
    plain = uuid.UUID(bytes=bytes([0x10]) + bytes(15))
    draws = iter([dash_first, dash_first, plain])
    monkeypatch.setattr(broker.uuid, "uuid4", lambda: next(draws))
    cluster_id = broker.cluster_id()
    assert cluster_id == "EAAAAAAAAAAAAAAAAAAAAA"
    assert len(cluster_id) == 22 and not cluster_id.startswith("-")
