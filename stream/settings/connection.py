"""How to reach the Kafka cluster: ``KAFKA_<NAME>``, the names of the Kafka client settings, so one
environment serves every Kafka tool of a deployment."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import AliasChoices, BaseModel, Field, FilePath, SecretStr, model_validator

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
_SASL_FIELDS = ("sasl_mechanism", "sasl_username", "sasl_password")
_TLS_FIELDS = ("ssl_cafile", "ssl_certfile", "ssl_keyfile")


def _kafka(name: str) -> AliasChoices:
    """Read ``kafka_<name>`` from ``KAFKA_<NAME>`` (or by its field name)."""
    return AliasChoices(f"KAFKA_{name.upper()}", f"kafka_{name}")


def _and(names: list[str]) -> str:
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


class KafkaConnection(BaseModel):
    """The cluster's address, and TLS and SASL to reach it."""

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=_kafka("bootstrap_servers"),
        description="Kafka bootstrap servers, from KAFKA_BOOTSTRAP_SERVERS.",
    )
    kafka_security_protocol: SecurityProtocol = Field(
        "PLAINTEXT",
        validation_alias=_kafka("security_protocol"),
        description="PLAINTEXT, SSL (TLS), SASL_PLAINTEXT, or SASL_SSL (SASL over TLS).",
    )
    kafka_sasl_mechanism: SaslMechanism | None = Field(
        None,
        validation_alias=_kafka("sasl_mechanism"),
        description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; required with the SASL protocols.",
    )
    kafka_sasl_username: str | None = Field(
        None, validation_alias=_kafka("sasl_username"), description="SASL user name."
    )
    kafka_sasl_password: SecretStr | None = Field(
        None, validation_alias=_kafka("sasl_password"), description="SASL password."
    )
    kafka_ssl_cafile: FilePath | None = Field(
        None,
        validation_alias=_kafka("ssl_cafile"),
        description="PEM file of the CA certificates to trust (default: the system's).",
    )
    kafka_ssl_certfile: FilePath | None = Field(
        None,
        validation_alias=_kafka("ssl_certfile"),
        description="PEM client certificate, for brokers that require one (with KAFKA_SSL_KEYFILE).",
    )
    kafka_ssl_keyfile: FilePath | None = Field(
        None, validation_alias=_kafka("ssl_keyfile"), description="PEM private key of that certificate."
    )
    kafka_ssl_check_hostname: bool = Field(
        True,
        validation_alias=_kafka("ssl_check_hostname"),
        description="Check that the broker's certificate names the host connected to.",
    )

    @model_validator(mode="after")
    def _security_is_coherent(self) -> Self:
        """Reject transport settings that cannot connect or would be ignored, saying what to set."""
        protocol = self.kafka_security_protocol
        sasl, tls = protocol.startswith("SASL_"), protocol.endswith("SSL")

        def env(names: tuple[str, ...], given: bool = True) -> list[str]:
            return [f"KAFKA_{n.upper()}" for n in names if (getattr(self, f"kafka_{n}") is not None) == given]

        missing = env(_SASL_FIELDS, given=False) if sasl else []
        if missing:
            raise ValueError(f"KAFKA_SECURITY_PROTOCOL={protocol} needs {_and(missing)}")
        unused_sasl = [] if sasl else env(_SASL_FIELDS)
        unused_tls = [] if tls else env(_TLS_FIELDS)
        if unused_sasl or unused_tls:
            fits = ("SASL_" if sasl or unused_sasl else "") + ("SSL" if tls or unused_tls else "PLAINTEXT")
            unused = unused_sasl + unused_tls
            it = "it" if len(unused) == 1 else "them"
            raise ValueError(
                f"{_and(unused)} set, but KAFKA_SECURITY_PROTOCOL={protocol} ignores {it}: "
                f"set KAFKA_SECURITY_PROTOCOL={fits}, or unset {it}"
            )
        if len(env(("ssl_certfile", "ssl_keyfile"))) == 1:
            raise ValueError("a client certificate needs both KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE")
        return self
