"""A broker that only speaks SASL_SSL: the worker, producer and readers get through with the right
credentials and CA, and every client fails at once, in one line naming the setting, without them."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from certs import Certificates, make_certificates
from conftest import MODELS, ROOT, WorkerProcess, read_topic

from stream.contracts import Prediction
from stream.errors import ConfigError
from stream.kafka.config import client_config, connect
from stream.kafka.topics import ensure_topics
from stream.settings import Settings
from stream.tools.broker import EmbeddedKafka, SaslSsl
from stream.tools.produce import produce

USER, PASSWORD = "alice", "alice-secret"


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory):
    """A second broker whose only client listener is SASL_SSL, with a CA made for this module."""
    certs = make_certificates(tmp_path_factory.mktemp("tls"))
    security = SaslSsl(certs.certfile, certs.keyfile, certs.cafile, users={USER: PASSWORD})
    with EmbeddedKafka(data_dir=tmp_path_factory.mktemp("kafka-sasl-ssl"), sasl_ssl=security) as kafka:
        yield kafka, certs


def _env(
    kafka: EmbeddedKafka, certs: Certificates, mechanism: str, password: str = PASSWORD
) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": mechanism,
        "KAFKA_SASL_USERNAME": USER,
        "KAFKA_SASL_PASSWORD": password,
        "KAFKA_SSL_CAFILE": str(certs.cafile),
    }


def _config(kafka: EmbeddedKafka, certs: Certificates, mechanism: str) -> dict:
    return client_config(Settings(**{k.lower(): v for k, v in _env(kafka, certs, mechanism).items()}))


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_worker_scores_every_event_over_sasl_ssl(secure, unique_name, tmp_path, guarantee):
    """exactly_once also has the broker reach itself over SASL_SSL (transaction markers)."""
    kafka, certs = secure
    base = unique_name("sec")
    topics = {
        f"STREAMSCORE_{t}_TOPIC": f"{base}.{t.lower()}" for t in ("INPUT", "PREDICTION", "PROVENANCE", "DLQ")
    }
    ensure_topics(_config(kafka, certs, "PLAIN"), {topics["STREAMSCORE_INPUT_TOPIC"]: 3})
    env = {
        **os.environ,
        **_env(kafka, certs, "SCRAM-SHA-512"),  # aiokafka under Faust, and librdkafka for topics and lag
        **topics,
        "STREAMSCORE_APP_ID": base,
        "STREAMSCORE_PROCESSING_GUARANTEE": guarantee,
        "STREAMSCORE_MODEL_DIR": str(MODELS),
        "STREAMSCORE_DATA_DIR": str(tmp_path / "worker"),
        "STREAMSCORE_METRICS_PORT": "0",
    }
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        produced = produce(
            _config(kafka, certs, "SCRAM-SHA-256"), topics["STREAMSCORE_INPUT_TOPIC"], count=300
        )
        predictions = read_topic(
            _config(kafka, certs, "PLAIN"),
            topics["STREAMSCORE_PREDICTION_TOPIC"],
            300,
            timeout=60,
            read_committed=guarantee == "exactly_once",
        )
        assert worker.proc.poll() is None, worker.output()
    finally:
        worker.stop()
    scored = [Prediction.model_validate_json(m.value()).event_id for m in predictions]
    assert sorted(scored) == sorted(produced.valid), worker.output()


def _cli(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "stream.cli.main", *args],
        env={**os.environ, "STREAMSCORE_MODEL_DIR": str(MODELS), "STREAMSCORE_METRICS_PORT": "0", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def test_clients_fail_fast_and_clearly_without_the_right_credentials(secure, tmp_path):
    kafka, certs = secure
    wrong_password = _env(kafka, certs, "SCRAM-SHA-256", password="not-the-password")
    plaintext = {"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}
    other_ca = {**_env(kafka, certs, "PLAIN"), "KAFKA_SSL_CAFILE": str(make_certificates(tmp_path).cafile)}
    cases = {  # command, environment -> what the one line must say
        "worker, wrong password": (
            ["worker"],
            wrong_password,
            ["authentication failed", "KAFKA_SASL_PASSWORD"],
        ),
        "produce, wrong password": (
            ["produce", "--count", "5"],
            wrong_password,
            ["authentication failed", "KAFKA_SASL_USERNAME"],
        ),
        "lag, wrong password": (["lag", "--group", "g"], wrong_password, ["authentication failed"]),
        "lag, CA that did not sign the broker": (
            ["lag", "--group", "g"],
            other_ca,
            ["TLS handshake", "certificate verify failed", "KAFKA_SSL_CAFILE"],
        ),
        "produce, plaintext to the SASL_SSL port": (
            ["produce", "--count", "5"],
            plaintext,
            ["cannot reach Kafka", "over PLAINTEXT", "KAFKA_SECURITY_PROTOCOL"],
        ),
    }
    started = time.monotonic()
    procs = {name: _cli(*args, env=env) for name, (args, env, _) in cases.items()}  # in parallel
    took = {}
    while len(took) < len(procs) and time.monotonic() - started < 45:
        took |= {
            n: time.monotonic() - started for n, p in procs.items() if n not in took and p.poll() is not None
        }
        time.sleep(0.05)
    for name, proc in procs.items():
        _, stderr = proc.communicate(timeout=1)
        lines = stderr.strip().splitlines()
        assert proc.returncode == 2, (name, stderr)
        assert len(lines) == 1 and lines[0].startswith("streamscore: error: "), (name, stderr)
        for words in cases[name][2]:
            assert words in lines[0], (name, words, lines[0])
        assert "not-the-password" not in stderr and PASSWORD not in stderr
    assert max(took.values()) < 40, took  # bounded: a 10 s connection timeout, plus start-up


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_a_refused_login_ends_the_wait_at_once(secure, mechanism):
    kafka, certs = secure
    config = {**_config(kafka, certs, mechanism), "sasl.password": "not-the-password"}
    started = time.monotonic()
    with pytest.raises(ConfigError, match=f"authentication failed at .* as 'alice' with {mechanism}"):
        connect(config, timeout=10.0)
    assert time.monotonic() - started < 3.0, "librdkafka retries forever; connect stops at the first refusal"
