"""Session-wide real Kafka and per-test topics.

``make test`` runs the suite in two pytest processes (pytest-xdist, ``--dist loadgroup``): the tests
of an integration (or fuzz) module stay in one process, unit tests are handed out one by one to
whichever process is free. Each process starts the session broker, schema registry and MLflow server
its tests need, on free ports and in temporary folders of its own.

The broker is chosen in this order: ``KAFKA_BOOTSTRAP_SERVERS`` when set; testcontainers' Kafka
module when a Docker engine answers; otherwise the embedded Apache Kafka broker of
``stream.tools.broker``. Tests under ``tests/unit``, ``tests/deploy`` and ``tests/bench`` are marked ``unit``
(a bench module marked ``integration`` excepted),
those under ``tests/integration`` ``integration``. Tests marked ``chaos`` (long fault injection, fuzzing) are
skipped unless ``-m`` selects them or ``STREAMSCORE_CHAOS=1`` (``make chaos`` sets it).

Workers refuse to start without ``STREAMSCORE_SECRET``: a session makes a random one (unless one is
set) for every worker it starts.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stream.kafka.topics import ensure_topics
from stream.tools.broker import EmbeddedKafka

TESTS = Path(__file__).parent
SPREAD_MODULES = frozenset({"test_faults"})
"""Integration modules whose tests share no costly module fixture: each test is a group of its own,
so that two processes share them out (a module is otherwise run whole in one process)."""
LONGEST_FIRST = (
    "test_faults", "test_getting_started", "test_explain_verify", "test_replay", "test_consumer_status",
    "test_demo_shutdown", "test_your_model_served", "test_mlflow_registry", "test_outcomes",
)  # fmt: skip
"""Modules whose groups take longest, handed out first so that the processes finish together
(the many short unit tests fill in at the end)."""
os.environ.setdefault("STREAMSCORE_SECRET", secrets.token_hex(32))


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    markexpr = config.getoption("markexpr") or ""
    selected = "chaos" in markexpr and "not chaos" not in markexpr
    chaos = selected or os.environ.get("STREAMSCORE_CHAOS") == "1"
    skip_chaos = pytest.mark.skip(reason="long chaos test: run with -m chaos or STREAMSCORE_CHAOS=1")
    for item in items:
        tier = Path(item.path).relative_to(TESTS).parts[0]
        if tier in ("deploy", "bench"):  # in process, as unit tests are, unless marked for the broker
            tier = "integration" if item.get_closest_marker("integration") else "unit"
        if tier in ("unit", "integration"):
            item.add_marker(getattr(pytest.mark, tier))
        if tier != "unit":  # with --dist loadgroup, a module with brokers and workers runs in one process
            module = Path(item.path).stem
            group = f"{module}::{item.originalname}" if module in SPREAD_MODULES else module
            item.add_marker(pytest.mark.xdist_group(group))
        if not chaos and item.get_closest_marker("chaos"):
            item.add_marker(skip_chaos)
    rank = {module: i for i, module in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(Path(item.path).stem, len(rank)))  # stable: in order within


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
        kafka = EmbeddedKafka(data_dir=tmp_path_factory.mktemp("kafka")).start()
        try:
            yield kafka.bootstrap_servers
        finally:
            kafka.kill()  # its data goes with the session: no clean shutdown to wait for


@pytest.fixture(scope="session")
def schema_registry() -> Iterator[str]:
    """URL of a real schema registry for the session: Apicurio Registry on loopback, stopped by pid.

    ``STREAMSCORE_TEST_SCHEMA_REGISTRY_URL`` uses another. Apicurio comes from Maven Central
    (``make registry`` caches it); where it cannot be fetched the tests that need it are skipped.
    """
    if os.environ.get("STREAMSCORE_TEST_SCHEMA_REGISTRY_URL"):
        yield os.environ["STREAMSCORE_TEST_SCHEMA_REGISTRY_URL"]
        return
    from stream.tools.apicurio import Apicurio, apicurio_home
    from stream.tools.broker import BrokerError

    try:
        apicurio_home()
    except BrokerError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(f"no schema registry: {exc}")
    with Apicurio() as registry:
        yield registry.url


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


ROOT = TESTS.parent
MODELS = ROOT / "models"


def model_scores(documents: list[dict]) -> dict[str, float]:
    """The demo model's score of each JSON event's features, by event id (the JSON path, in process)."""
    import orjson

    from stream.messages import inbound
    from stream.settings import Settings
    from stream.worker.app import create_pipeline

    pipeline = create_pipeline(Settings(model_dir=MODELS))
    batch = [inbound(orjson.dumps(d), None, "events", 0, i) for i, d in enumerate(documents)]
    records = pipeline.process(batch).records
    predictions = [orjson.loads(r.value) for r in records if r.topic == pipeline.topics.predictions]
    assert len(predictions) == len(documents)
    return {p["event_id"]: p["score"] for p in predictions}


def read_topic(
    bootstrap: str | dict,
    topic: str,
    expected: int,
    timeout: float = 60.0,
    settle: float = 1.0,
    read_committed: bool = False,
) -> list:
    """Every message of ``topic`` from the start: waits for ``expected``, then ``settle`` s for extras.

    ``bootstrap`` is an address, or a client configuration with security settings.
    """
    from confluent_kafka import Consumer, TopicPartition

    from stream.kafka.config import client_config

    consumer = Consumer(
        client_config(
            bootstrap,
            **{
                "group.id": f"reader-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed" if read_committed else "read_uncommitted",
            },
        )
    )
    deadline = time.monotonic() + timeout
    partitions: dict = {}
    while not partitions and time.monotonic() < deadline:  # the worker may not have made it yet
        metadata = consumer.list_topics(timeout=10).topics.get(topic)
        partitions = metadata.partitions if metadata is not None else {}
        time.sleep(0 if partitions else 0.2)
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    messages: list = []
    settle_until = None
    while time.monotonic() < deadline:
        batch = [m for m in consumer.consume(1000, timeout=0.2) if m.error() is None]
        messages += batch
        if len(messages) >= expected:
            settle_until = settle_until or time.monotonic() + settle
            if time.monotonic() >= settle_until:
                break
    consumer.close()
    return messages


@dataclass
class WorkerTopics:
    input: str
    predictions: str
    provenance: str
    dlq: str
    outcomes: str
    drift: str
    model_changes: str


class WorkerProcess:
    """``streamscore worker`` as a real process, with this test's own topics and group.

    ``command`` is the command line after ``streamscore``, e.g. ``worker --processes 2``.
    """

    def __init__(self, env: dict[str, str], log: Path, command: str = "worker") -> None:
        self.env, self.log, self.command = env, log, command
        self.proc: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stream.cli.main", *self.command.split()],
                env=self.env,
                stdout=out,
                stderr=out,
                cwd=ROOT,
            )
        return self

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_for(self, text: str, timeout: float = 60.0) -> None:
        """Wait until ``text`` is in the log; fail if the process ends or ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            assert self.proc is not None and self.proc.poll() is None, self.output()
            time.sleep(0.2)
        raise AssertionError(f"no {text!r} in the worker's log:\n{self.output()[-3000:]}")


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """Every sample a worker serves on ``port``, by (name, sorted labels)."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
def worker_topics(unique_name: Callable[[str], str]) -> WorkerTopics:
    base = unique_name("w")
    return WorkerTopics(
        *(
            f"{base}.{t}"
            for t in ("events", "predictions", "provenance", "dlq", "outcomes", "drift", "model-changes")
        )
    )


@pytest.fixture
def start_worker(kafka_bootstrap: str, worker_topics: WorkerTopics, unique_name, tmp_path):
    """Start workers sharing this test's topics and consumer group; all are stopped at the end.

    ``command`` is the CLI command: ``worker`` (scoring) or ``outcomes``.
    """
    workers: list[WorkerProcess] = []
    group = unique_name("app")

    def start(
        command: str = "worker",
        bootstrap: str | None = None,
        env: dict[str, str] | None = None,
        **settings: str,
    ) -> WorkerProcess:
        """A worker (``command``: ``worker`` or ``outcomes``) with ``STREAMSCORE_<NAME>`` ``settings``, on
        ``bootstrap`` (else the session's broker), with ``env`` added to its environment."""
        env = {
            **os.environ,
            **(env or {}),
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap or kafka_bootstrap,
            "STREAMSCORE_APP_ID": group,
            "STREAMSCORE_INPUT_TOPIC": worker_topics.input,
            "STREAMSCORE_PREDICTION_TOPIC": worker_topics.predictions,
            "STREAMSCORE_PROVENANCE_TOPIC": worker_topics.provenance,
            "STREAMSCORE_DLQ_TOPIC": worker_topics.dlq,
            "STREAMSCORE_OUTCOME_TOPIC": worker_topics.outcomes,
            "STREAMSCORE_DRIFT_TOPIC": worker_topics.drift,
            "STREAMSCORE_MODEL_CHANGES_TOPIC": worker_topics.model_changes,
            "STREAMSCORE_MODEL_DIR": str(MODELS),
            "STREAMSCORE_DATA_DIR": str(tmp_path / f"worker{len(workers)}"),
            "STREAMSCORE_METRICS_PORT": "0",
            "STREAMSCORE_INSTANCE_ID": f"worker{len(workers)}",
        }
        env.update({f"STREAMSCORE_{k.upper()}": str(v) for k, v in settings.items()})
        worker = WorkerProcess(env, tmp_path / f"worker{len(workers)}.log", command).start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def require_tool(name: str, package: str) -> str:
    """Path of a command from Debian; skipped where it is missing, a failure in CI (which installs it)."""
    import shutil

    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install {package}; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Tracking URI of a real ``mlflow server`` (SQLite, local artifacts) on loopback for the session."""
    import importlib.util

    if importlib.util.find_spec("mlflow") is None:
        message = "MLflow is not installed: pip install -e '.[mlflow]' (make test installs it)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    from mlflow_server import MlflowServer

    server = MlflowServer(tmp_path_factory.mktemp("mlflow")).start()
    try:
        yield server.uri
    finally:
        server.stop()


class Traffic:
    """Events published on a thread at ``rate``/s while the ``with`` block runs (``count``: so far)."""

    def __init__(self, bootstrap: str, topic: str, rate: float, seed: int) -> None:
        import threading

        from stream.tools.produce import produce

        self.count = 0
        self._stop = threading.Event()
        self._produced: list = []

        def progress(n: int) -> None:
            self.count += n

        self._thread = threading.Thread(
            target=lambda: self._produced.append(
                produce(bootstrap, topic, rate=rate, seed=seed, stop=self._stop, progress=progress)
            )
        )

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    @property
    def sent(self):
        (produced,) = self._produced
        return produced


def assert_versions_only_rise(predictions: list, docs: list[dict]) -> None:
    """Per partition, in offset order, a prediction's model version never goes back to an older one."""
    from collections import defaultdict

    by_partition = defaultdict(list)
    for m, d in zip(predictions, docs, strict=True):
        by_partition[m.partition()].append((m.offset(), d["model_version"]))
    for pairs in by_partition.values():
        sequence = [v for _, v in sorted(pairs)]
        assert sequence == sorted(sequence, key=int), "the old version until the swap, the new one after it"


@pytest.fixture(scope="module")
def results():
    """Rows of a fault-injection module's scenarios (``faults.Result``); written to
    ``STREAMSCORE_FAULTS_JSON`` at the module's end when set."""
    from faults import save

    rows: list = []
    yield rows
    if os.environ.get("STREAMSCORE_FAULTS_JSON") and rows:
        save(rows, Path(os.environ["STREAMSCORE_FAULTS_JSON"]))
