"""Security settings become the same connection for librdkafka and for Faust (aiokafka), and
combinations that cannot work are refused when the settings are read, saying what to set."""

from __future__ import annotations

import ssl

import faust
import pytest
from certs import make_certificates
from confluent_kafka import KafkaError
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types.auth import AuthProtocol, SASLMechanism
from pydantic import ValidationError
from typer.testing import CliRunner

from stream.cli.main import app
from stream.errors import ConfigError
from stream.kafka.config import KAFKA_LOG, client_config, connect, explain, faust_broker
from stream.settings import Settings

SERVERS = "k1:9093,k2:9093"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("tls"))


def _settings(**kw) -> Settings:
    return Settings(kafka_bootstrap_servers=SERVERS, **{f"kafka_{k}": v for k, v in kw.items()})


def test_plaintext_is_the_default_and_adds_nothing():
    settings = _settings()
    assert client_config(settings) == {
        "bootstrap.servers": SERVERS,
        "security.protocol": "PLAINTEXT",
        "logger": KAFKA_LOG,  # librdkafka's lines through Python logging: formatted, repeats held back
    }
    assert faust_broker(settings) == {"broker": ["kafka://k1:9093", "kafka://k2:9093"]}


def test_ssl_with_a_client_certificate(certs):
    settings = _settings(
        security_protocol="SSL",
        ssl_cafile=certs.cafile,
        ssl_certfile=certs.certfile,
        ssl_keyfile=certs.keyfile,
    )
    assert client_config(settings, **{"linger.ms": 5}) == {
        "bootstrap.servers": SERVERS,
        "security.protocol": "SSL",
        "ssl.ca.location": str(certs.cafile),
        "ssl.certificate.location": str(certs.certfile),
        "ssl.key.location": str(certs.keyfile),
        "ssl.endpoint.identification.algorithm": "https",
        "linger.ms": 5,
        "logger": KAFKA_LOG,
    }
    credentials = faust_broker(settings)["broker_credentials"]
    assert isinstance(credentials, faust.SSLCredentials)
    auth = credentials_to_aiokafka_auth(credentials)
    assert auth["security_protocol"] == "SSL"
    context = auth["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert len(context.get_ca_certs()) == 1, "trusts the CA file only"


def test_ssl_without_hostname_check_still_verifies_the_chain(certs):
    settings = _settings(security_protocol="SSL", ssl_cafile=certs.cafile, ssl_check_hostname=False)
    assert client_config(settings)["ssl.endpoint.identification.algorithm"] == "none"
    context = faust_broker(settings)["broker_credentials"].context
    assert not context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED


def test_sasl_plaintext_scram():
    settings = _settings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="alice",
        sasl_password="s3cret",
    )
    assert client_config(settings) == {
        "bootstrap.servers": SERVERS,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "alice",
        "sasl.password": "s3cret",
        "logger": KAFKA_LOG,
    }
    credentials = faust_broker(settings)["broker_credentials"]
    assert credentials.protocol is AuthProtocol.SASL_PLAINTEXT and credentials.ssl_context is None
    assert credentials_to_aiokafka_auth(credentials) == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "alice",
        "sasl_plain_password": "s3cret",
        "ssl_context": None,
    }


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl(certs, mechanism):
    settings = _settings(
        security_protocol="SASL_SSL",
        sasl_mechanism=mechanism,
        sasl_username="alice",
        sasl_password="s3cret",
        ssl_cafile=certs.cafile,
    )
    config = client_config(settings)
    assert config["security.protocol"] == "SASL_SSL" and config["sasl.mechanism"] == mechanism
    assert config["ssl.ca.location"] == str(certs.cafile) and "ssl.key.location" not in config
    credentials = faust_broker(settings)["broker_credentials"]
    assert credentials.protocol is AuthProtocol.SASL_SSL
    assert credentials.mechanism is SASLMechanism(mechanism)
    auth = credentials_to_aiokafka_auth(credentials)
    assert auth["security_protocol"] == "SASL_SSL" and auth["sasl_plain_password"] == "s3cret"
    assert isinstance(auth["ssl_context"], ssl.SSLContext)


def test_settings_come_from_kafka_variables(monkeypatch, certs):
    for name, value in {
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "KAFKA_SASL_USERNAME": "alice",
        "KAFKA_SASL_PASSWORD": "s3cret",
        "KAFKA_SSL_CAFILE": str(certs.cafile),
        "KAFKA_SSL_CHECK_HOSTNAME": "false",
    }.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.kafka_sasl_mechanism == "SCRAM-SHA-256" and not settings.kafka_ssl_check_hostname
    assert "s3cret" not in repr(settings), "the password stays a secret"


@pytest.mark.parametrize(
    ("given", "says"),
    [
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256", "sasl_password": "p"},
            "KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_USERNAME",
        ),
        (
            {"security_protocol": "SASL_PLAINTEXT", "sasl_username": "u", "sasl_password": "p"},
            "needs KAFKA_SASL_MECHANISM",
        ),
        (
            {"sasl_mechanism": "PLAIN", "sasl_username": "u", "sasl_password": "p"},
            "ignores them: set KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT",
        ),
        ({"security_protocol": "SSL", "sasl_username": "u"}, "set KAFKA_SECURITY_PROTOCOL=SASL_SSL"),
        (
            {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "PLAIN",
                "sasl_username": "u",
                "sasl_password": "p",
                "ssl_cafile": "CA",
            },
            "KAFKA_SSL_CAFILE set, but KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT ignores it: .*=SASL_SSL",
        ),
        ({"security_protocol": "SSL", "ssl_certfile": "CERT"}, "needs both KAFKA_SSL_CERTFILE and"),
        ({"security_protocol": "SSL", "ssl_cafile": "/no/such/ca.pem"}, "does not point to a file"),
        ({"security_protocol": "TLS"}, "PLAINTEXT"),
    ],
)
def test_combinations_that_cannot_work_are_refused(certs, given, says):
    files = {"CA": certs.cafile, "CERT": certs.certfile}
    with pytest.raises(ValidationError, match=says):
        _settings(**{k: files.get(v, v) for k, v in given.items()})


def test_cli_refuses_them_in_one_line(monkeypatch):
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "alice")
    for command in (["produce", "--count", "1"], ["lag", "--group", "g"], ["tail", "t"], ["worker"]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2, (command, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT" in lines[0], (command, lines)


def test_errors_say_which_setting_to_check():
    config = client_config(
        _settings(
            security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_username="bob", sasl_password="x"
        )
    )
    refused = KafkaError(
        KafkaError._AUTHENTICATION,
        "sasl_plaintext://k1:9093/bootstrap: SASL authentication error: Authentication failed "
        "(after 12ms in state AUTH_REQ)",
    )
    message = explain(refused, config)
    assert message.startswith(f"authentication failed at {SERVERS} as 'bob' with PLAIN")
    assert "KAFKA_SASL_PASSWORD" in message and "after 12ms" not in message and "x" not in message.split()
    handshake = KafkaError(
        KafkaError._SSL, "ssl://k1:9093/bootstrap: SSL handshake failed: certificate verify failed"
    )
    assert "KAFKA_SSL_CAFILE" in explain(handshake, config)


def test_unreachable_broker_is_a_config_error_within_the_timeout():
    with pytest.raises(
        ConfigError, match=r"cannot reach Kafka at 127\.0\.0\.1:1 over PLAINTEXT .*KAFKA_BOOTSTRAP"
    ):
        connect("127.0.0.1:1", timeout=0.5)
