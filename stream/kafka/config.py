"""How every Kafka client of the project connects: addresses, TLS and SASL from :class:`Settings`.

Two translations of the same settings: :func:`client_config` for confluent-kafka (librdkafka) and
:func:`faust_broker` for the Faust app (aiokafka underneath, which takes an ``ssl.SSLContext``).
:func:`connect` opens an admin client and fails fast, in one line that names the setting to fix,
when the broker refuses the credentials or the TLS handshake, or cannot be reached at all.

Functions that talk to Kafka take a :data:`Connection`: a bootstrap address (plaintext), or the
full librdkafka configuration :func:`client_config` returns.
"""

from __future__ import annotations

import logging
import re
import ssl
import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata

from stream.errors import ConfigError
from stream.settings import Settings

__all__ = ["Connection", "client_config", "connect", "explain", "faust_broker", "principal", "ssl_context"]

Connection = str | Mapping[str, Any]

KAFKA_LOG = logging.getLogger("streamscore.kafka")


def client_config(kafka: Connection | Settings, **extra: Any) -> dict[str, Any]:
    """librdkafka configuration: address and security from ``kafka``, then ``extra`` client options."""
    if isinstance(kafka, str):
        return {"bootstrap.servers": kafka, **extra}
    if not isinstance(kafka, Settings):
        return {**kafka, **extra}
    config: dict[str, Any] = {
        "bootstrap.servers": kafka.kafka_bootstrap_servers,
        "security.protocol": kafka.kafka_security_protocol,
        "logger": KAFKA_LOG,  # librdkafka's lines as log records: formatted, repeats held back
    }
    if kafka.kafka_sasl_mechanism is not None:  # the settings require all three with SASL_*
        config["sasl.mechanism"] = kafka.kafka_sasl_mechanism
        config["sasl.username"] = kafka.kafka_sasl_username
        config["sasl.password"] = kafka.kafka_sasl_password.get_secret_value()  # type: ignore[union-attr]
    if kafka.kafka_security_protocol.endswith("SSL"):
        for key, path in (
            ("ssl.ca.location", kafka.kafka_ssl_cafile),
            ("ssl.certificate.location", kafka.kafka_ssl_certfile),
            ("ssl.key.location", kafka.kafka_ssl_keyfile),
        ):
            if path is not None:
                config[key] = str(path)
        check = kafka.kafka_ssl_check_hostname
        config["ssl.endpoint.identification.algorithm"] = "https" if check else "none"
    return config | extra


def principal(kafka: Connection) -> str:
    """Who ``kafka`` connects as, for messages: the SASL user, when there is one."""
    user = kafka.get("sasl.username") if not isinstance(kafka, str) else None
    return f"Kafka user {user!r}" if user else "this client's Kafka principal"


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """The TLS context of the SSL protocols: the CA file (or the system's CAs), a client certificate."""
    context = ssl.create_default_context(
        cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    )
    if settings.kafka_ssl_certfile is not None:
        context.load_cert_chain(settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile)
    context.check_hostname = settings.kafka_ssl_check_hostname
    return context


def faust_broker(settings: Settings) -> dict[str, Any]:
    """``faust.App`` keyword arguments: ``broker`` URLs and, unless PLAINTEXT, ``broker_credentials``."""
    import faust  # here: only the outcome worker needs it, and it is slow to import

    kwargs: dict[str, Any] = {
        "broker": [f"kafka://{host.strip()}" for host in settings.kafka_bootstrap_servers.split(",")]
    }
    protocol = settings.kafka_security_protocol
    context = ssl_context(settings) if protocol.endswith("SSL") else None
    if protocol.startswith("SASL_"):
        kwargs["broker_credentials"] = faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value(),  # type: ignore[union-attr]
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=context,  # SASL_SSL with a context, SASL_PLAINTEXT without
        )
    elif context is not None:
        kwargs["broker_credentials"] = faust.SSLCredentials(context)
    return kwargs


def connect(kafka: Connection, timeout: float = 10.0) -> tuple[AdminClient, ClusterMetadata]:
    """An admin client that has reached the cluster, and its metadata; a one-line ConfigError if not.

    A refused login or TLS handshake ends the wait at once: librdkafka would retry them forever.
    """
    config = client_config(kafka)
    errors: list[KafkaError] = []
    admin = AdminClient({"log_level": 0, **config, "error_cb": errors.append})
    deadline = time.monotonic() + timeout
    while True:
        try:
            return admin, admin.list_topics(timeout=min(1.0, max(0.1, deadline - time.monotonic())))
        except KafkaException as exc:
            admin.poll(0)  # serves error_cb
            refused = [e for e in errors if e.code() in (KafkaError._AUTHENTICATION, KafkaError._SSL)]
            if refused or time.monotonic() >= deadline:
                raise ConfigError(explain(refused[0] if refused else exc.args[0], config)) from None


def explain(error: KafkaError, config: Mapping[str, Any]) -> str:
    """What went wrong talking to the cluster of ``config``, and which setting to check."""
    where = config.get("bootstrap.servers")
    protocol = config.get("security.protocol", "PLAINTEXT")
    reason = error.str().split("/bootstrap: ")[-1]  # without the broker's name and, below, the timing
    reason = re.sub(r" \(after \d+ms in state \w+\)$", "", reason)
    reason = reason.split(": broker certificate could not be verified")[0]  # its hint names its own settings
    if error.code() == KafkaError._AUTHENTICATION:
        return (
            f"authentication failed at {where} as {config.get('sasl.username')!r} with "
            f"{config.get('sasl.mechanism')} ({reason}): check KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD "
            "and KAFKA_SASL_MECHANISM"
        )
    if error.code() == KafkaError._SSL:
        return (
            f"TLS handshake with {where} failed ({reason}): check KAFKA_SSL_CAFILE (the CA that signed "
            "the broker's certificate), KAFKA_SSL_CHECK_HOSTNAME, and that the listener speaks TLS"
        )
    return (
        f"cannot reach Kafka at {where} over {protocol} ({reason}): start it, or set "
        "KAFKA_BOOTSTRAP_SERVERS to a broker that answers and KAFKA_SECURITY_PROTOCOL to what its "
        "listener speaks"
    )
