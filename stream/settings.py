"""Configuration: the one place the environment is read.

The broker address and how to connect to it come from ``KAFKA_<NAME>`` (``KAFKA_BOOTSTRAP_SERVERS``,
``KAFKA_SECURITY_PROTOCOL``, ...: the names of the Kafka client settings, so one environment serves
every Kafka tool of a deployment); everything else from ``STREAMSCORE_<FIELD>``. Settings are
frozen once read.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, FilePath, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream.contracts import MAX_FEATURES, MAX_STRING_LENGTH
from stream.messages import MAX_KEY_BYTES, MAX_RECORD_BYTES
from stream.topic_layout import clash

DEFAULT_METRICS_PORT = 9464
DEFAULT_SUPERVISOR_PORT = 9463
DEFAULT_LAG_PORT = 9468  # streamscore lag --serve; the outcome worker of the demo uses 9465
DEFAULT_MAX_CLOCK_SKEW_S = 86_400.0
_KAFKA_NAME = re.compile(r"[A-Za-z0-9._-]{1,200}")  # what a topic name holds, with room for suffixes
MIN_SECRET_LENGTH = 32
PREDICTION_ROOM = 32_768  # a prediction's bytes besides its key: value, headers, framing
_RETIRED = ("pii_key",)  # refused when set, left out of the configuration table
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
_SASL_FIELDS = ("sasl_mechanism", "sasl_username", "sasl_password")
_TLS_FIELDS = ("ssl_cafile", "ssl_certfile", "ssl_keyfile")
WireFormat = Literal["json", "json-schema", "avro"]


def _kafka(name: str) -> AliasChoices:
    """Read ``kafka_<name>`` from ``KAFKA_<NAME>`` (or by its field name)."""
    return AliasChoices(f"KAFKA_{name.upper()}", f"kafka_{name}")


class Settings(BaseSettings):
    """streamscore's settings, each from ``STREAMSCORE_<NAME>`` unless said otherwise."""

    @field_validator("drift_window")
    @classmethod
    def _window_size(cls, value: int) -> int:
        if 0 < value < 100:
            raise ValueError("a drift window needs at least 100 events (or 0 to turn drift tracking off)")
        return value

    @field_validator("app_id")
    @classmethod
    def _kafka_name(cls, value: str) -> str:
        """The app id names the consumer group and prefixes topics and the state folder."""
        if not _KAFKA_NAME.fullmatch(value) or value in (".", ".."):
            raise ValueError(
                f"{value!r} cannot prefix Kafka topic names: use 1 to 200 letters, digits, '.', '_' or "
                "'-' (and not '.' or '..' alone)"
            )
        return value

    @field_validator("metrics_host")
    @classmethod
    def _ip_address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an IP address: use 0.0.0.0 (every interface), 127.0.0.1 (this host "
                "only), :: or an address of this host"
            ) from None
        return value

    model_config = SettingsConfigDict(
        env_prefix="STREAMSCORE_", frozen=True, extra="ignore", populate_by_name=True
    )

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
    app_id: str = Field("streamscore", description="Consumer group id and prefix of internal topics.")
    input_topic: str = Field("events", description="Topic of incoming events.")
    prediction_topic: str = Field("predictions", description="Topic the predictions go to.")
    provenance_topic: str = Field("provenance", description="Topic of per-event provenance.")
    dlq_topic: str = Field("events.dlq", description="Dead-letter topic for events that fail.")
    drift_topic: str = Field("drift", description="Topic of drift reports.")
    model_changes_topic: str = Field(
        "model-changes",
        description="Compacted topic recording every start and switch of a worker's model, with the first "
        "offset of each input partition it scored (empty: not recorded).",
    )
    drift_window: int = Field(
        5_000,
        ge=0,
        description="Events per drift window, compared with the reference each time it fills (0: drift off).",
    )
    drift_window_s: float = Field(
        0.0, ge=0, description="Also end a drift window after this many seconds of event time (0: by events)."
    )
    drift_psi_threshold: float = Field(0.25, gt=0, description="PSI above which a feature has drifted.")
    drift_distance_threshold: float = Field(
        0.1, gt=0, le=1, description="KS (numeric) or total variation (categorical) distance alarm level."
    )
    outcome_topic: str = Field(
        "outcomes", description="Topic of true outcomes keyed by event_id (empty: no outcome topic)."
    )
    outcome_retention_s: float = Field(
        86_400.0, gt=0, description="How long a prediction waits for its outcome, in seconds."
    )
    outcome_max_pending: int = Field(
        10_000_000,
        ge=1_000,
        description="Most entries the outcome worker keeps on disk (joined ones until they expire); the "
        "oldest expire first.",
    )
    outcome_sample: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="Share of events whose outcome is joined, chosen by a hash of event_id (the same on "
        "every worker and across restarts).",
    )
    outcome_window: int = Field(
        1_000, ge=50, description="Outcomes in the rolling accuracy, ROC AUC, log loss and calibration."
    )
    partitions: int = Field(6, ge=1, description="Partitions of topics the worker creates.")
    replication_factor: int = Field(1, ge=1, description="Replication of topics it creates.")
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        "at_least_once", description="at_least_once, or exactly_once with Kafka transactions."
    )
    model_dir: Path = Field(Path("models"), description="Model registry folder.")
    model_name: str = Field("loan-approval", description="Model to serve from the registry.")
    model_version: str = Field("latest", description="Version to serve, or latest.")
    model_uri: str | None = Field(
        None,
        description="The model to serve, overriding MODEL_DIR/NAME/VERSION: models:/NAME@ALIAS or "
        "models:/NAME/VERSION (MLflow, at MLFLOW_TRACKING_URI), or a folder registry's PATH/NAME@ALIAS, "
        "PATH/NAME/VERSION or PATH/NAME (latest).",
    )
    mlflow_tracking_uri: str | None = Field(
        None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "mlflow_tracking_uri"),
        description="The MLflow server of models:/ URIs, from MLFLOW_TRACKING_URI.",
    )
    challenger_uri: str | None = Field(
        None,
        description="A second model (any form of MODEL_URI) scoring every event beside the champion: in "
        "shadow, or live for CANARY_PERCENT of the keys.",
    )
    challenger_topic: str = Field(
        "predictions.challenger", description="Topic of the shadow predictions (never the predictions topic)."
    )
    canary_percent: float = Field(
        0.0,
        ge=0.0,
        le=100.0,
        description="Share of keys (a stable hash of the message key) the challenger answers live; the "
        "champion then scores them in shadow (0: the challenger only in shadow).",
    )
    model_reload_s: float = Field(
        0.0,
        ge=0,
        description="With latest or an alias: look for a new version this often, in seconds, and serve it "
        "once it passes every start-up check (0: never).",
    )
    instance_id: str = Field(
        default_factory=socket.gethostname,
        pattern=r"^[A-Za-z0-9._-]{1,200}$",
        description="This worker's name, unique in its group and stable across its restarts: its client id "
        "and, exactly once, its transactional id (<app_id>-<instance_id>). Default: the host name.",
    )
    commit_interval_ms: float = Field(
        100.0,
        ge=1,
        le=60_000,
        description="How often the outputs and offsets of the batches scored so far are committed, in ms.",
    )
    transaction_timeout_s: int = Field(
        60, ge=1, le=900, description="Exactly once: the broker aborts a transaction left open this long."
    )
    linger_ms: float = Field(
        5.0, ge=0, le=1_000, description="Longest the producer waits to fill a batch of records, in ms."
    )
    batch_size: int = Field(256, ge=1, le=4096, description="Most events scored in one run.")
    batch_max_wait_ms: float = Field(
        10.0, gt=0, le=10_000, description="Longest a batch waits to fill, in milliseconds."
    )
    session_timeout_s: float = Field(
        10.0, ge=6.0, le=300.0, description="A worker silent this long leaves the group; its partitions move."
    )
    max_message_bytes: int = Field(
        65_536, ge=256, description="Larger input messages are dead-lettered unparsed."
    )
    max_key_bytes: int = Field(
        MAX_KEY_BYTES,
        ge=16,
        description="Events with a longer key are dead-lettered (a prediction carries its event's key).",
    )
    max_record_bytes: int = Field(
        MAX_RECORD_BYTES,
        ge=65_536,
        description="Largest record produced (key, value and headers); a dead letter of a larger input is "
        "cut to fit, saying so. At most the output topics' max.message.bytes.",
    )
    max_features: int = Field(
        MAX_FEATURES, ge=1, description="Events with more features are dead-lettered before they are read."
    )
    max_string_length: int = Field(
        MAX_STRING_LENGTH,
        ge=1,
        description="Events with a longer feature name or string value are dead-lettered.",
    )
    max_clock_skew_s: float = Field(
        DEFAULT_MAX_CLOCK_SKEW_S,
        gt=0,
        description="Events whose occurred_at is further than this from the time they are scored (either "
        "way), in seconds, are scored but kept out of the end-to-end latency, and counted in "
        "streamscore_events_clock_skewed_total.",
    )
    input_format: WireFormat = Field(
        "json",
        description="Input values: json, or json-schema or avro in the Confluent wire format (a registry's).",
    )
    output_format: WireFormat = Field(
        "json",
        description="Predictions and provenance: json, or json-schema or avro (registered as <topic>-value).",
    )
    schema_registry_url: str | None = Field(
        None, description="Schema registry (Confluent API) URL; required by the json-schema and avro formats."
    )
    schema_registry_basic_auth_user_info: SecretStr | None = Field(
        None, description="Schema registry basic auth, as user:password."
    )
    schema_registry_ssl_ca_location: FilePath | None = Field(
        None, description="PEM file of the CA certificates the registry's HTTPS is checked against."
    )
    schema_registry_ssl_certificate_location: FilePath | None = Field(
        None, description="PEM client certificate for the registry (with the key location)."
    )
    schema_registry_ssl_key_location: FilePath | None = Field(
        None, description="PEM private key of that certificate."
    )
    schema_registry_timeout_s: float = Field(
        5.0,
        gt=0,
        le=60,
        description="Longest a registry request may take, answer included; a lookup past it ends the worker "
        "without committing (a restart asks again), at start-up it stops start-up. No retries.",
    )
    schema_registry_miss_ttl_s: float = Field(
        60.0,
        ge=0,
        description="How long a schema id the registry does not know is remembered as unknown (its events "
        "dead-lettered without asking); after that the registry is asked again.",
    )
    schema_registry_lookups_per_s: float = Field(
        10.0,
        gt=0,
        description="Most registry lookups of schema ids not in the cache, per second (as many at once); "
        "an event naming such an id beyond that is dead-lettered.",
    )
    schema_cache_size: int = Field(
        1_000,
        ge=1,
        description="Most schema ids (known or not) held in the cache; the least recently used go first.",
    )
    schema_cache_fields: int = Field(
        10_000,
        ge=1,
        description="Most fields of the writer schemas held in the cache, all told (an unknown id: one).",
    )
    schema_max_bytes: int = Field(
        65_536,
        ge=1_024,
        description="Writer schemas larger than this are refused: their events dead-lettered.",
    )
    schema_max_fields: int = Field(
        1_000,
        ge=1,
        description="Writer schemas with more fields are refused (each JSON object counts: an Avro field "
        "or type, a JSON Schema property or subschema): their events dead-lettered.",
    )
    schema_max_depth: int = Field(
        32,
        ge=4,
        description="Writer schemas nesting objects and arrays deeper than this are refused: their events "
        "dead-lettered.",
    )
    secret: SecretStr | None = Field(
        None,
        description="The workers' secret (required by worker, outcomes and run): the personal-data hashing "
        "and state-signing keys are derived from it.",
    )
    previous_secrets: SecretStr | None = Field(
        None,
        description="Earlier secrets, comma-separated: state they signed is still accepted (key rotation).",
    )
    pii_key: SecretStr | None = Field(
        None, description="No longer read: its presence is refused (use STREAMSCORE_SECRET)."
    )
    metrics_port: int = Field(
        DEFAULT_METRICS_PORT, ge=0, le=65535, description="Prometheus metrics port (0: off)."
    )
    metrics_host: str = Field(
        "0.0.0.0",
        description="Address the HTTP endpoints (metrics, probes; the supervisor's and lag --serve's too) "
        "listen on: 0.0.0.0 every IPv4 interface (probes and scrapers in a pod), 127.0.0.1 this host only, "
        ":: every interface.",
    )
    metrics_max_connections: int = Field(
        32,
        ge=1,
        le=10_000,
        description="Connections the HTTP endpoints hold at once; a new one beyond takes the place of the "
        "one waiting longest for its request.",
    )
    metrics_read_timeout_s: float = Field(
        5.0,
        gt=0,
        le=300,
        description="Seconds a client of the HTTP endpoints has to send its request, and again to take the "
        "answer, before it is dropped.",
    )
    lag_window_s: float = Field(
        120.0,
        gt=0,
        description="Seconds of lag snapshots (one per scrape) behind streamscore_consumer_status.",
    )
    supervisor_port: int = Field(
        DEFAULT_SUPERVISOR_PORT,
        ge=0,
        le=65535,
        description="With worker --processes: the supervisor's metrics port (restarts; 0: off).",
    )
    data_dir: Path = Field(Path(".streamscore"), description="Worker state folder.")
    log_level: Literal["debug", "info", "warn", "error"] = Field("info", description="Log level.")
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="Log lines as json or text; auto: text on a terminal, JSON otherwise."
    )
    shutdown_timeout_s: float = Field(
        10.0,
        gt=0,
        description="A worker still shutting down this long after SIGTERM/SIGINT (the broker gone, say) "
        "exits with code 70 without committing more.",
    )

    @model_validator(mode="after")
    def _security_is_coherent(self) -> Settings:
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
        for name in ("input_format", "output_format"):
            if getattr(self, name) != "json" and not self.schema_registry_url:
                raise ValueError(
                    f"STREAMSCORE_{name.upper()}={getattr(self, name)} needs STREAMSCORE_SCHEMA_REGISTRY_URL"
                )
        return self

    @model_validator(mode="after")
    def _registry_bounds_fit(self) -> Settings:
        """A lookup must give up before the shutdown bound; the cache must hold the largest schema."""
        timeout, shutdown = self.schema_registry_timeout_s, self.shutdown_timeout_s
        if self.input_format != "json" and timeout >= shutdown:
            raise ValueError(
                f"STREAMSCORE_SCHEMA_REGISTRY_TIMEOUT_S={timeout:g} must be below "
                f"STREAMSCORE_SHUTDOWN_TIMEOUT_S={shutdown:g}: a shutdown waits for a lookup under way"
            )
        if self.schema_cache_fields < self.schema_max_fields:
            raise ValueError(
                f"STREAMSCORE_SCHEMA_CACHE_FIELDS={self.schema_cache_fields} cannot hold a schema of "
                f"STREAMSCORE_SCHEMA_MAX_FIELDS={self.schema_max_fields} fields: raise it, or lower the other"
            )
        return self

    @model_validator(mode="after")
    def _predictions_fit(self) -> Settings:
        """A prediction carries its event's key: the largest key must leave room for the rest."""
        if self.max_key_bytes + PREDICTION_ROOM > self.max_record_bytes:
            raise ValueError(
                f"STREAMSCORE_MAX_KEY_BYTES={self.max_key_bytes} leaves no room for a prediction in "
                f"STREAMSCORE_MAX_RECORD_BYTES={self.max_record_bytes}: keep the key at least "
                f"{PREDICTION_ROOM} bytes under the record limit"
            )
        return self

    @model_validator(mode="after")
    def _topics_do_not_loop(self) -> Settings:
        """Refuse two settings naming one topic: a worker would read its own output, or mix records."""
        problem = clash(self)
        if problem:
            raise ValueError(problem)
        return self


def _and(names: list[str]) -> str:
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def settings_rows() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) of every setting."""
    rows = []
    for name, info in Settings.model_fields.items():
        if name in _RETIRED:
            continue
        var = name.upper() if name.startswith(("kafka_", "mlflow_")) else f"STREAMSCORE_{name.upper()}"
        default = "(unset)" if info.default is None else str(info.default)
        default = "(the host name)" if info.default_factory is socket.gethostname else default
        rows.append((var, default, info.description or ""))
    return rows


def settings_table() -> str:
    """The settings as a Markdown table, as on the configuration reference page."""
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    lines += [f"| `{var}` | `{default}` | {meaning} |" for var, default, meaning in settings_rows()]
    return "\n".join(lines)


def settings_help() -> str:
    """The settings as plain lines for ``--help``."""
    return "\n".join(f"{var}={default}: {meaning}" for var, default, meaning in settings_rows())
