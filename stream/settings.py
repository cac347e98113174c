"""Configuration: the one place the environment is read.

The broker address comes from ``KAFKA_BOOTSTRAP_SERVERS`` (the convention of Kafka tooling);
everything else from ``STREAMSCORE_<FIELD>``. Settings are frozen once read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream.codec import MAX_FEATURES, MAX_STRING_LENGTH

DEFAULT_METRICS_PORT = 9464


class Settings(BaseSettings):
    """streamscore's settings, each from ``STREAMSCORE_<NAME>`` unless said otherwise."""

    model_config = SettingsConfigDict(
        env_prefix="STREAMSCORE_", frozen=True, extra="ignore", populate_by_name=True
    )

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "kafka_bootstrap_servers"),
        description="Kafka bootstrap servers, from KAFKA_BOOTSTRAP_SERVERS.",
    )
    app_id: str = Field("streamscore", description="Consumer group id and prefix of internal topics.")
    input_topic: str = Field("events", description="Topic of incoming events.")
    prediction_topic: str = Field("predictions", description="Topic the predictions go to.")
    provenance_topic: str = Field("provenance", description="Topic of per-event provenance.")
    dlq_topic: str = Field("events.dlq", description="Dead-letter topic for events that fail.")
    drift_topic: str = Field("drift", description="Topic of drift reports.")
    drift_window: int = Field(
        5_000, ge=100, description="Events per drift window; compared with the reference each time it fills."
    )
    partitions: int = Field(6, ge=1, description="Partitions of topics the worker creates.")
    replication_factor: int = Field(1, ge=1, description="Replication of topics it creates.")
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        "at_least_once", description="at_least_once, or exactly_once with Kafka transactions."
    )
    model_dir: Path = Field(Path("models"), description="Model registry folder.")
    model_name: str = Field("loan-approval", description="Model to serve from the registry.")
    model_version: str = Field("latest", description="Version to serve, or latest.")
    model_reload_s: float = Field(
        0.0,
        ge=0,
        description="With latest: look for a new highest version this often, in seconds, and serve it once "
        "it passes every start-up check (0: never).",
    )
    batch_size: int = Field(64, ge=1, le=4096, description="Most events scored in one run.")
    batch_max_wait_ms: float = Field(
        10.0, gt=0, le=10_000, description="Longest a batch waits to fill, in milliseconds."
    )
    session_timeout_s: float = Field(
        10.0, ge=6.0, le=300.0, description="A worker silent this long leaves the group; its partitions move."
    )
    max_message_bytes: int = Field(
        65_536, ge=256, description="Larger input messages are dead-lettered unparsed."
    )
    max_features: int = Field(
        MAX_FEATURES, ge=1, description="Events with more features are dead-lettered before they are read."
    )
    max_string_length: int = Field(
        MAX_STRING_LENGTH,
        ge=1,
        description="Events with a longer feature name or string value are dead-lettered.",
    )
    pii_key: SecretStr = Field(
        SecretStr("streamscore-development-key"),
        description="Secret key of the keyed hash applied to personal fields.",
    )
    metrics_port: int = Field(
        DEFAULT_METRICS_PORT, ge=0, le=65535, description="Prometheus metrics port (0: off)."
    )
    data_dir: Path = Field(Path(".streamscore"), description="Worker state folder.")
    log_level: Literal["debug", "info", "warn", "error"] = Field("info", description="Log level.")


def settings_rows() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) of every setting."""
    rows = []
    for name, info in Settings.model_fields.items():
        var = (
            "KAFKA_BOOTSTRAP_SERVERS" if name == "kafka_bootstrap_servers" else f"STREAMSCORE_{name.upper()}"
        )
        default = "(a development key: set it)" if isinstance(info.default, SecretStr) else str(info.default)
        rows.append((var, default, info.description or ""))
    return rows


def settings_table() -> str:
    """The settings as a Markdown table, as in the README."""
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    lines += [f"| `{var}` | `{default}` | {meaning} |" for var, default, meaning in settings_rows()]
    return "\n".join(lines)


def settings_help() -> str:
    """The settings as plain lines for ``--help``."""
    return "\n".join(f"{var}={default}: {meaning}" for var, default, meaning in settings_rows())
