"""Session-wide real Kafka and per-test topics.

The broker is chosen in this order: ``KAFKA_BOOTSTRAP_SERVERS`` when set; testcontainers' Kafka
module when a Docker engine answers; otherwise the embedded Apache Kafka broker of
``stream.broker``. Tests under ``tests/unit`` are marked ``unit``, those under
``tests/integration`` ``integration``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stream.broker import EmbeddedKafka
from stream.topics import ensure_topics

TESTS = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(item.path).relative_to(TESTS).parts[0]
        if tier in ("unit", "integration"):
            item.add_marker(getattr(pytest.mark, tier))


def _docker_engine_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers of the one real Kafka broker this test session uses."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    elif _docker_engine_answers():
        from testcontainers.community.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield container.get_bootstrap_server()
    else:
        with EmbeddedKafka(data_dir=tmp_path_factory.mktemp("kafka")) as kafka:
            yield kafka.bootstrap_servers


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Names no other test uses: ``<prefix>-<test>-<random>``."""
    test = request.node.name.replace("[", "-").replace("]", "")[:40]

    def make(prefix: str) -> str:
        return f"{prefix}-{test}-{uuid.uuid4().hex[:8]}"

    return make


@pytest.fixture
def new_topic(kafka_bootstrap: str, unique_name: Callable[[str], str]) -> Callable[..., str]:
    """Create a topic of this test's own with ``partitions`` partitions; return its name."""

    def make(partitions: int = 3, prefix: str = "t") -> str:
        name = unique_name(prefix)
        ensure_topics(kafka_bootstrap, {name: partitions})
        return name

    return make
