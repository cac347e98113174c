"""A broker with ACLs on (StandardAuthorizer, nothing allowed without an ACL): the workers do their
whole job with the permissions docs/operations/security.md lists, a user without write on the
internal topics cannot plant state, and a missing permission stops the worker in one line naming the
topic and operation."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time

import pytest
from certs import make_certificates
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)
from conftest import MODELS, ROOT, WorkerProcess, read_topic

from stream.contracts import Outcome, PerformanceReport, Prediction
from stream.kafka.topics import ensure_topics
from stream.tools.broker import EmbeddedKafka, SaslSsl
from stream.tools.produce import produce

USERS = {"scorer": "scorer-pw", "judge": "judge-pw", "mallory": "mallory-pw", "partial": "partial-pw"}
PARTITIONS = 3


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory):
    certs = make_certificates(tmp_path_factory.mktemp("tls"))
    security = SaslSsl(certs.certfile, certs.keyfile, certs.cafile, users=USERS)
    with EmbeddedKafka(data_dir=tmp_path_factory.mktemp("kafka-acls"), sasl_ssl=security, acls=True) as kafka:
        yield kafka, certs


def _user(kafka: EmbeddedKafka, certs, user: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "KAFKA_SASL_USERNAME": user,
        "KAFKA_SASL_PASSWORD": USERS[user],
        "KAFKA_SSL_CAFILE": str(certs.cafile),
    }


def _client(env: dict[str, str]) -> dict[str, str]:
    return {
        "bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"],
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": env["KAFKA_SASL_MECHANISM"],
        "sasl.username": env["KAFKA_SASL_USERNAME"],
        "sasl.password": env["KAFKA_SASL_PASSWORD"],
        "ssl.ca.location": env["KAFKA_SSL_CAFILE"],
    }


def _topics(base: str) -> dict[str, str]:
    names = ("INPUT", "PREDICTION", "PROVENANCE", "DLQ", "OUTCOME", "DRIFT", "MODEL_CHANGES")
    return {f"STREAMSCORE_{t}_TOPIC": f"{base}.{t.lower()}" for t in names}


def scoring_acls(user: str, app: str, topics: dict[str, str]) -> list[tuple[str, str, str]]:
    """(resource type, name, operation) for the scoring worker: the Kafka ACLs table of the security page."""
    t = topics
    return [
        ("topic", t["STREAMSCORE_INPUT_TOPIC"], "READ"),
        *(
            ("topic", t[f"STREAMSCORE_{x}_TOPIC"], "WRITE")
            for x in ("PREDICTION", "PROVENANCE", "DLQ", "DRIFT", "MODEL_CHANGES")
        ),
        ("topic", t["STREAMSCORE_OUTCOME_TOPIC"], "DESCRIBE"),
        ("topic", f"{app}-drift-state", "READ"),
        ("topic", f"{app}-drift-state", "WRITE"),
        ("group", app, "READ"),
    ]


def outcome_acls(user: str, app: str, topics: dict[str, str]) -> list[tuple[str, str, str]]:
    """The outcome worker's: the Kafka ACLs table of the security page."""
    t = topics
    return [
        *(("topic", t[f"STREAMSCORE_{x}_TOPIC"], "DESCRIBE") for x in ("INPUT", "PREDICTION")),
        *(("topic", t[f"STREAMSCORE_{x}_TOPIC"], "READ") for x in ("PROVENANCE", "OUTCOME")),
        *(("topic", t[f"STREAMSCORE_{x}_TOPIC"], "WRITE") for x in ("DLQ", "DRIFT")),
        ("topic", f"{app}-outcomes-pending-changelog", "READ"),
        ("topic", f"{app}-outcomes-pending-changelog", "WRITE"),
        ("topic", f"{app}-outcomes-repartition", "READ"),
        ("topic", f"{app}-outcomes-repartition", "WRITE"),
        ("group", f"{app}-outcomes", "READ"),
    ]


def _grant(kafka: EmbeddedKafka, user: str, acls: list[tuple[str, str, str]]) -> None:
    kinds = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP}
    bindings = [
        AclBinding(
            kinds[kind],
            name,
            ResourcePatternType.LITERAL,
            f"User:{user}",
            "*",
            getattr(AclOperation, op),
            AclPermissionType.ALLOW,
        )
        for kind, name, op in acls
    ]
    admin = AdminClient(kafka.superuser_config())
    for future in admin.create_acls(bindings, request_timeout=30).values():
        future.result(30)


def _worker_env(kafka, certs, user: str, app: str, topics: dict[str, str], tmp_path) -> dict[str, str]:
    return {
        **os.environ,
        **_user(kafka, certs, user),
        **topics,
        "STREAMSCORE_APP_ID": app,
        "STREAMSCORE_DRIFT_WINDOW": "100",
        "STREAMSCORE_OUTCOME_WINDOW": "50",
        "STREAMSCORE_MODEL_DIR": str(MODELS),
        "STREAMSCORE_DATA_DIR": str(tmp_path / user),
        "STREAMSCORE_METRICS_PORT": "0",
    }


def _admin_creates(kafka: EmbeddedKafka, app: str, topics: dict[str, str]) -> None:
    """Every topic made by an administrator first, so that no worker needs CREATE."""
    admin = kafka.superuser_config()
    ensure_topics(
        admin,
        {name: PARTITIONS for name in topics.values()}
        | {topics["STREAMSCORE_DRIFT_TOPIC"]: 1, f"{app}-outcomes-repartition": PARTITIONS},
    )
    compacted = {f"{app}-drift-state": PARTITIONS, f"{app}-outcomes-pending-changelog": PARTITIONS}
    ensure_topics(admin, compacted, config={"cleanup.policy": "compact"})


def test_the_workers_do_their_whole_job_with_the_listed_permissions_and_no_more(secured, tmp_path):
    kafka, certs = secured
    app = "acl-app"
    topics = _topics(app)
    _admin_creates(kafka, app, topics)
    _grant(kafka, "scorer", scoring_acls("scorer", app, topics))
    _grant(kafka, "judge", outcome_acls("judge", app, topics))
    _grant(kafka, "mallory", [("topic", topics["STREAMSCORE_INPUT_TOPIC"], "WRITE")])  # a producer of events

    scorer = WorkerProcess(
        _worker_env(kafka, certs, "scorer", app, topics, tmp_path), tmp_path / "scorer.log"
    )
    judge_env = _worker_env(kafka, certs, "judge", app, topics, tmp_path)
    judge = WorkerProcess(judge_env, tmp_path / "judge.log", "outcomes")
    scorer.start(), judge.start()
    try:
        admin = kafka.superuser_config()
        produced = produce(
            _client(_user(kafka, certs, "mallory")),
            topics["STREAMSCORE_INPUT_TOPIC"],
            count=300,
            seed=81,
        )
        predictions = read_topic(admin, topics["STREAMSCORE_PREDICTION_TOPIC"], 300, timeout=120)
        assert sorted(Prediction.model_validate_json(m.value()).event_id for m in predictions) == sorted(
            produced.valid
        ), scorer.output()[-3_000:]
        # outcomes for them (written by the administrator): the judge joins them and reports
        producer = Producer({**admin, "partitioner": "murmur2_random"})  # as provenance is keyed
        for event_id in produced.valid:
            outcome = Outcome(event_id=event_id, positive=True, observed_at=dt.datetime.now(dt.UTC))
            outcome = outcome.model_dump_json().encode()
            producer.produce(topics["STREAMSCORE_OUTCOME_TOPIC"], outcome, event_id.encode())
        assert producer.flush(30) == 0
        deadline = time.monotonic() + 120
        reports: list = []
        while not reports and time.monotonic() < deadline:
            drift = read_topic(admin, topics["STREAMSCORE_DRIFT_TOPIC"], 1, timeout=10, settle=0.5)
            reports = [m for m in drift if b'"performance"' in m.value()]
        assert reports, judge.output()[-3_000:]
        assert PerformanceReport.model_validate_json(reports[0].value()).counts["joined"] >= 50

        # mallory, who may write events, cannot plant state in the internal topics
        refused = []
        planter = Producer({**_client(_user(kafka, certs, "mallory")), "message.timeout.ms": 10_000})
        internal = ("drift-state", "outcomes-pending-changelog", "outcomes-repartition")
        for topic in internal:
            planter.produce(
                f"{app}-{topic}", b"planted", b"0", on_delivery=lambda err, _m: refused.append(err)
            )
        planter.flush(20)
        assert [e.code() for e in refused] == [KafkaError.TOPIC_AUTHORIZATION_FAILED] * 3, refused
        assert scorer.proc.poll() is None and judge.proc.poll() is None
    finally:
        assert scorer.stop() == 0, scorer.output()[-3_000:]
        assert judge.stop() == 0, judge.output()[-3_000:]
    for log in (scorer.output(), judge.output()):
        assert "AUTHORIZATION_FAILED" not in log and "AuthorizationFailed" not in log, log[-3_000:]
    assert "drift state" not in scorer.output() or "refused" not in scorer.output()


@pytest.mark.parametrize(
    ("missing", "says"),
    [
        (
            ("topic", "STREAMSCORE_PROVENANCE_TOPIC", "WRITE"),
            "may not WRITE topic '{name}' (TOPIC_AUTHORIZATION_FAILED)",
        ),
        (("topic", "drift-state", "READ"), "may not READ topic '{name}' (TOPIC_AUTHORIZATION_FAILED)"),
        (("group", "app", "READ"), "may not READ group '{name}' (GROUP_AUTHORIZATION_FAILED)"),
    ],
    ids=["write-provenance", "read-state", "read-group"],
)
def test_a_missing_permission_stops_the_worker_in_one_line(secured, tmp_path, missing, says):
    kafka, certs = secured
    app = f"partial-{missing[1].lower()[-10:]}"
    topics = _topics(app)
    _admin_creates(kafka, app, topics)
    names = {**topics, "drift-state": f"{app}-drift-state", "app": app}
    name = names[missing[1]]
    user = "partial"
    _grant(kafka, user, [a for a in scoring_acls(user, app, topics) if a != (missing[0], name, missing[2])])
    done = subprocess.run(
        [sys.executable, "-m", "stream.cli.main", "worker"],
        env=_worker_env(kafka, certs, user, app, topics, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr[-3_000:]
    assert says.format(name=name) in lines[0] and "Kafka user 'partial'" in lines[0], lines[0]
