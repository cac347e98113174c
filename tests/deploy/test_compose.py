"""docker-compose.yml cannot run here; check that it agrees with the code's defaults."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from stream.settings import Settings
from stream.tools.apicurio import APICURIO_VERSION
from stream.tools.broker import KAFKA_VERSION

ROOT = Path(__file__).parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_present():
    assert {"kafka", "registry", "worker", "outcomes", "producer", "prometheus", "grafana"} <= set(
        COMPOSE["services"]
    )
    assert COMPOSE["services"]["producer"]["profiles"] == ["demo"]


def test_kafka_image_matches_embedded_version():
    assert COMPOSE["services"]["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"


def test_registry_image_matches_the_tests_registry():
    assert COMPOSE["services"]["registry"]["image"] == f"apicurio/apicurio-registry:{APICURIO_VERSION}"
    url = COMPOSE["services"]["worker"]["environment"]["STREAMSCORE_SCHEMA_REGISTRY_URL"]
    assert url == "http://registry:8080/apis/ccompat/v7"
    assert COMPOSE["services"]["producer"]["environment"]["STREAMSCORE_SCHEMA_REGISTRY_URL"] == url


def test_worker_environment_matches_settings_defaults():
    env = COMPOSE["services"]["worker"]["environment"]
    defaults = Settings(_env_file=None)
    for key, value in env.items():
        if key in (
            "KAFKA_BOOTSTRAP_SERVERS",
            "MLFLOW_TRACKING_URI",
            "STREAMSCORE_SECRET",
            "STREAMSCORE_SCHEMA_REGISTRY_URL",
        ):  # addresses, secret
            continue
        value = re.sub(r"\$\{\w+:-(.*)\}", r"\1", value)  # ${VAR:-default}: the default
        field = key.removeprefix("STREAMSCORE_").lower()
        assert field in Settings.model_fields, f"{key} is not a streamscore setting"
        assert str(getattr(defaults, field)) == value, key
    port = defaults.metrics_port
    assert f"{port}:{port}" in COMPOSE["services"]["worker"]["ports"]


def test_prometheus_scrapes_the_worker_metrics_port():
    scrape = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = scrape["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == [f"worker:{Settings(_env_file=None).metrics_port}"]
    outcomes = COMPOSE["services"]["outcomes"]["environment"]["STREAMSCORE_METRICS_PORT"]
    assert scrape["scrape_configs"][1]["static_configs"][0]["targets"] == [f"outcomes:{outcomes}"]


def test_worker_and_producer_reach_kafka_on_its_internal_listener():
    listeners = COMPOSE["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    internal = next(x for x in listeners.split(",") if x.startswith("INTERNAL://"))
    address = internal.removeprefix("INTERNAL://")
    for service in ("worker", "outcomes", "producer"):
        assert COMPOSE["services"][service]["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == address


def test_the_configuration_reference_is_generated_from_the_settings():
    """The configuration reference is the docs page generated from Settings: every setting read is on it."""
    from docs.gen.reference import configuration_page, settings_of
    from stream.settings import settings_rows

    page = configuration_page(settings_of(Settings))
    assert all(f"`{variable}`" in page for variable, _, _ in settings_rows())


def test_the_workers_secret_is_required_not_defaulted():
    """Compose stops with a message unless STREAMSCORE_SECRET is given; the image holds none."""
    for service in ("worker", "outcomes"):
        secret = COMPOSE["services"][service]["environment"]["STREAMSCORE_SECRET"]
        assert secret.startswith("${STREAMSCORE_SECRET:?") and secret.endswith("}"), service
    assert "STREAMSCORE_SECRET" not in (ROOT / "Dockerfile").read_text().split("# No secret")[0]
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()


def test_the_workers_are_restarted_when_they_end_themselves():
    """A worker exits 70 on what it cannot ride out (a stuck transaction, a fenced producer)."""
    for service in ("worker", "outcomes"):
        assert COMPOSE["services"][service]["restart"] in ("on-failure", "unless-stopped", "always")
