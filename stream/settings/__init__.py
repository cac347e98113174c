"""Configuration: the one place the environment is read.

The broker address and how to connect to it come from ``KAFKA_<NAME>`` (``KAFKA_BOOTSTRAP_SERVERS``,
``KAFKA_SECURITY_PROTOCOL``, ...: the names of the Kafka client settings, so one environment serves
every Kafka tool of a deployment); everything else from ``STREAMSCORE_<FIELD>``. Settings are
frozen once read. :class:`Settings` is one object made of groups, each a module of this package:

- :mod:`.connection`: how to reach the Kafka cluster (TLS, SASL);
- :mod:`.registry`: wire formats and the schema registry, and what a writer's schema may cost;
- :mod:`.limits`: what one input may cost, and the largest record produced;
- :mod:`.endpoints`: the HTTP endpoints' address and bounds;
- :mod:`.events`: where an input event keeps its id, time and features, and what becomes of the rest;
- :mod:`.topics`: the topics the workers read and write, and the layouts refused because they loop.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream.settings.connection import KafkaConnection
from stream.settings.endpoints import DEFAULT_METRICS_PORT, Endpoints
from stream.settings.events import EventFields
from stream.settings.limits import DEFAULT_MAX_CLOCK_SKEW_S, InputLimits
from stream.settings.registry import SchemaRegistry, WireFormat
from stream.settings.topics import clash

__all__ = [
    "DEFAULT_LAG_PORT",
    "DEFAULT_MAX_CLOCK_SKEW_S",
    "DEFAULT_METRICS_PORT",
    "DEFAULT_SUPERVISOR_PORT",
    "MIN_SECRET_LENGTH",
    "Settings",
    "WireFormat",
    "settings_help",
    "settings_rows",
]

DEFAULT_SUPERVISOR_PORT = 9463
DEFAULT_LAG_PORT = 9468  # streamscore lag --serve; the outcome worker of the demo uses 9465
_KAFKA_NAME = re.compile(r"[A-Za-z0-9._-]{1,200}")  # what a topic name holds, with room for suffixes
MIN_SECRET_LENGTH = 32
_RETIRED = ("pii_key",)  # refused when set, left out of the configuration table


class Settings(EventFields, Endpoints, InputLimits, SchemaRegistry, KafkaConnection, BaseSettings):
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

    model_config = SettingsConfigDict(
        env_prefix="STREAMSCORE_", frozen=True, extra="ignore", populate_by_name=True
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
    reasons: int = Field(
        0,
        ge=0,
        le=256,
        description="Reason codes: each prediction carries the K features whose exact contributions to its "
        "score's margin are largest in magnitude (a tree ensemble or a linear model with an attribution in "
        "its card; 0: none, nothing computed).",
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
    estimate_check_capacity: int = Field(
        100_000,
        ge=1_000,
        le=10_000_000,
        description="Outcome worker: most events kept in memory for the check of estimated performance "
        "(predictions waiting for their outcome, and as many joined pairs); the oldest go first.",
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
        0.0,
        ge=0,
        le=1_000,
        description="Longest the producer waits to fill a batch of records, in ms. At 0 a batch's records "
        "go out as soon as it is scored, and under load the producer still batches what queues up while "
        "its requests are in flight.",
    )
    batch_size: int = Field(256, ge=1, le=4096, description="Most events scored in one run.")
    batch_max_wait_ms: float = Field(
        10.0,
        gt=0,
        le=10_000,
        description="Longest the loop waits for an event when none has arrived, in milliseconds, before "
        "its periodic work (commits, reports). A batch never waits to fill: it takes what has arrived, "
        "so a lone event is scored at once and batches grow with the load up to BATCH_SIZE.",
    )
    session_timeout_s: float = Field(
        10.0, ge=6.0, le=300.0, description="A worker silent this long leaves the group; its partitions move."
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
    def _lookups_end_before_shutdown(self) -> Settings:
        """A registry lookup must give up before the shutdown bound (a shutdown waits for it)."""
        timeout, shutdown = self.schema_registry_timeout_s, self.shutdown_timeout_s
        if self.input_format != "json" and timeout >= shutdown:
            raise ValueError(
                f"STREAMSCORE_SCHEMA_REGISTRY_TIMEOUT_S={timeout:g} must be below "
                f"STREAMSCORE_SHUTDOWN_TIMEOUT_S={shutdown:g}: a shutdown waits for a lookup under way"
            )
        return self

    @model_validator(mode="after")
    def _topics_do_not_loop(self) -> Settings:
        """Refuse two settings naming one topic: a worker would read its own output, or mix records."""
        problem = clash(self)
        if problem:
            raise ValueError(problem)
        return self


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


def settings_help() -> str:
    """The settings as plain lines for ``--help``."""
    return "\n".join(f"{var}={default}: {meaning}" for var, default, meaning in settings_rows())
