"""The embedded broker's ``server.properties`` and the client settings that reach it.

A single node in KRaft mode, broker and controller in one, on loopback. Given :class:`SaslSsl`, the
client listener speaks SASL_SSL (PLAIN and both SCRAM mechanisms) and the broker reaches itself as
its own user; with ACLs, Kafka's ``StandardAuthorizer`` allows nothing without one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from stream.tools.maven import BrokerError

BROKER_USER = "streamscore-broker"  # the broker's own SASL user, for its inter-broker listener
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
_SIMPLE = re.compile(r"[A-Za-z0-9_.-]+")

#: Only the broker's own user (and the loopback controller listener, whose principal is ANONYMOUS)
#: is a super user; nothing is allowed without an ACL.
ACL_CONFIG = {
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "super.users": f"User:{BROKER_USER};User:ANONYMOUS",
    "allow.everyone.if.no.acl.found": "false",
}


@dataclass(frozen=True)
class SaslSsl:
    """A SASL_SSL client listener: the broker's PEM certificate and unencrypted PKCS#8 key, the CA
    that signed it, and ``users`` (name -> password) accepted with PLAIN and both SCRAM mechanisms.
    SCRAM users are written when the storage is formatted: a restart on the same data keeps the first.
    """

    certfile: Path
    keyfile: Path
    cafile: Path
    users: Mapping[str, str]

    def __post_init__(self) -> None:
        for text in (*self.users, *self.users.values()):
            if not _SIMPLE.fullmatch(text):
                raise BrokerError(f"SASL user names and passwords are [A-Za-z0-9_.-]+ here, not {text!r}")


@dataclass(frozen=True)
class BrokerAddress:
    """Where the broker keeps its data and listens, and the password of its own SASL user."""

    data_dir: Path
    port: int
    controller_port: int
    broker_password: str


def server_config(
    where: BrokerAddress, sasl_ssl: SaslSsl | None, acls: bool, extra_config: Mapping[str, str]
) -> dict[str, str]:
    """The broker's ``server.properties``: a plaintext single node, then SASL_SSL, ACLs and extras."""
    config = plaintext_config(where)
    if sasl_ssl is not None:
        config.update(sasl_ssl_config(where, sasl_ssl))
    if acls:
        if sasl_ssl is None:
            raise BrokerError("ACLs need SASL users: give sasl_ssl as well")
        config.update(ACL_CONFIG)
    config.update(extra_config)
    return config


def plaintext_config(where: BrokerAddress) -> dict[str, str]:
    """A single node, broker and controller in one, with plaintext listeners on 127.0.0.1."""
    return {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{where.controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{where.port},CONTROLLER://127.0.0.1:{where.controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{where.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(where.data_dir / "log"),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "10",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "log.flush.interval.messages": "9223372036854775807",
        "log.retention.hours": "168",
        "num.io.threads": "4",
        "num.network.threads": "2",
    }


def sasl_ssl_config(where: BrokerAddress, security: SaslSsl) -> dict[str, str]:
    """The SASL_SSL client listener, which the broker also uses to reach itself (as its own user).

    Writes the PEM keystore Kafka reads (the key, then the chain) into the data directory.
    """
    keystore = where.data_dir / "keystore.pem"
    keystore.write_bytes(security.keyfile.read_bytes() + b"\n" + security.certfile.read_bytes())
    keystore.chmod(0o600)
    users = {BROKER_USER: where.broker_password, **security.users}
    plain = " ".join(
        [f'username="{BROKER_USER}" password="{where.broker_password}"']
        + [f'user_{name}="{password}"' for name, password in users.items()]
    )
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    return {
        "listeners": f"SASL_SSL://127.0.0.1:{where.port},CONTROLLER://127.0.0.1:{where.controller_port}",
        "advertised.listeners": f"SASL_SSL://127.0.0.1:{where.port}",
        "inter.broker.listener.name": "SASL_SSL",
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
        "sasl.enabled.mechanisms": ",".join(("PLAIN", *SCRAM_MECHANISMS)),
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "listener.name.sasl_ssl.plain.sasl.jaas.config": (
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain};"
        ),
        **{f"listener.name.sasl_ssl.{m.lower()}.sasl.jaas.config": scram for m in SCRAM_MECHANISMS},
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(security.cafile.resolve()),
    }


def superuser_client_config(
    bootstrap_servers: str, sasl_ssl: SaslSsl | None, broker_password: str
) -> dict[str, object]:
    """librdkafka settings with which the broker is reached (as its own user over SASL_SSL)."""
    config: dict[str, object] = {"bootstrap.servers": bootstrap_servers, "log_level": 0}
    if sasl_ssl is not None:
        config |= {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "PLAIN",
            "sasl.username": BROKER_USER,
            "sasl.password": broker_password,
            "ssl.ca.location": str(sasl_ssl.cafile),
        }
    return config


def scram_format_args(sasl_ssl: SaslSsl | None) -> list[str]:
    """``kafka-storage format`` arguments that write each SASL user's SCRAM credentials."""
    users = sasl_ssl.users if sasl_ssl is not None else {}
    return [
        arg
        for name, password in users.items()
        for m in SCRAM_MECHANISMS
        for arg in ("--add-scram", f"{m}=[name={name},password={password}]")
    ]
