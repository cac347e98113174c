"""Why writes wait, in one line, from hand-made cluster metadata; and when that line is logged."""

from __future__ import annotations

import logging
from concurrent.futures import Future
from dataclasses import dataclass, field

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import ResourceType

from stream.kafka import stall
from stream.kafka.stall import NO_CAUSE, StallExplainer, StallReporter

# --- fakes with the attributes of confluent-kafka's metadata classes ---------------------------------


@dataclass
class Partition:
    id: int
    leader: int
    replicas: list[int]
    isrs: list[int]
    error: KafkaError | None = None


@dataclass
class Topic:
    topic: str
    partitions: dict[int, Partition]
    error: KafkaError | None = None


@dataclass
class Cluster:
    topics: dict[str, Topic]
    brokers: dict[int, object]


@dataclass
class Entry:
    value: str | None


def healthy(n: int = 3) -> list[tuple[int, list[int]]]:
    return [(1 + p % 3, [1, 2, 3]) for p in range(n)]


def topic(name: str, parts: list[tuple[int, list[int]]], error: KafkaError | None = None) -> Topic:
    """``parts``: (leader, in-sync replicas) of partitions 0, 1, ...; three replicas each."""
    partitions = {p: Partition(p, leader, [1, 2, 3], isrs) for p, (leader, isrs) in enumerate(parts)}
    return Topic(name, partitions, error)


@dataclass
class FakeAdmin:
    """``topics``: name -> Topic (or an exception to raise); ``configs``: (type, name) -> value or error."""

    topics: dict[str, Topic | Exception]
    configs: dict[tuple[ResourceType, str], str | Exception] = field(default_factory=dict)
    live: tuple[int, ...] = (1, 2, 3)
    listed: list[tuple[str, float]] = field(default_factory=list)
    described: list[tuple[ResourceType, str]] = field(default_factory=list)

    def list_topics(self, topic=None, timeout=-1):
        self.listed.append((topic, timeout))
        found = self.topics.get(topic, Topic(topic, {}, KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)))
        if isinstance(found, Exception):
            raise found
        return Cluster({topic: found}, dict.fromkeys(self.live))

    def describe_configs(self, resources, request_timeout=-1):
        futures = {}
        for resource in resources:
            key = (resource.restype, resource.name)
            self.described.append(key)
            value = self.configs.get(key, KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)))
            future: Future = Future()
            if isinstance(value, Exception):
                future.set_exception(value)
            else:
                future.set_result({"min.insync.replicas": Entry(value), "retention.ms": Entry("1")})
            futures[resource] = future
        return futures


def admin_of(*topics: Topic, min_isr: str = "2", **kw) -> FakeAdmin:
    configs = {(ResourceType.TOPIC, t.topic): min_isr for t in topics}
    return FakeAdmin({t.topic: t for t in topics}, configs, **kw)


def explain(admin: FakeAdmin, *names: str, timeout: float = 2.0) -> str | None:
    return StallExplainer({"bootstrap.servers": "x:9092"}, names, admin=admin).explain(timeout)


# --- the explainer ---------------------------------------------------------------------------------


def test_two_brokers_down_leave_one_in_sync_replica_of_three():
    admin = admin_of(topic("predictions", [(1, [1]), *healthy(2)[1:]]), live=(1,))
    assert explain(admin, "predictions") == (
        "writes to predictions[0] wait: 1 in-sync replica (broker 1) of 3, min.insync.replicas is 2; "
        "brokers 2, 3 are out of sync (down)"
    )


@pytest.mark.parametrize(
    ("live", "said"),
    [((1, 2, 3), "brokers 2, 3 are out of sync"), ((1, 2), "brokers 2, 3 are out of sync (3 down)")],
)
def test_replicas_out_of_sync_are_told_down_only_when_missing_from_the_metadata(live, said):
    admin = admin_of(topic("predictions", [(1, [1])]), live=live)
    assert explain(admin, "predictions").endswith("min.insync.replicas is 2; " + said)


def test_a_partition_without_a_leader_is_named():
    admin = admin_of(topic("predictions", [*healthy(2), (-1, [])]))
    assert explain(admin, "predictions") == (
        "writes to predictions[2] wait: the partition has no leader (replicas 1, 2, 3)"
    )


@pytest.mark.parametrize(
    ("min_isr", "isrs", "expected"),
    [
        ("2", [1, 2], None),  # one replica down, still enough
        ("2", [1, 2, 3], None),
        ("3", [1, 2], "2 in-sync replicas (brokers 1, 2) of 3, min.insync.replicas is 3; broker 3 is"),
        ("1", [1], None),
    ],
)
def test_enough_in_sync_replicas_is_no_cause(min_isr, isrs, expected):
    admin = admin_of(topic("predictions", [(1, isrs)]), min_isr=min_isr)
    line = explain(admin, "predictions")
    assert line is None if expected is None else expected in line


def test_a_healthy_cluster_gives_none():
    admin = admin_of(topic("predictions", healthy()), topic("provenance", healthy()))
    assert explain(admin, "predictions", "provenance") is None


def test_more_short_partitions_and_topics_are_counted_on_the_same_line():
    admin = admin_of(
        topic("predictions", [(1, [1, 2, 3]), (2, [2]), (3, [3]), (-1, [])]),
        topic("provenance", [(2, [2]), (3, [3, 2, 1])]),
        live=(1, 2, 3),
    )
    line = explain(admin, "predictions", "provenance", "dead-letters")
    assert line.startswith("writes to predictions[1] wait: 1 in-sync replica (broker 2) of 3, ")
    assert line.endswith("brokers 1, 3 are out of sync; and 1 more topic and 3 more partitions")
    assert "\n" not in line
    one_more = admin_of(topic("predictions", [(-1, []), (-1, [])]))
    assert explain(one_more, "predictions").endswith("(replicas 1, 2, 3); and 1 more partition")


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART), "the topic does not exist"),
        (KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED), "its metadata reads Broker: Topic authorization"),
    ],
)
def test_a_topic_whose_metadata_is_an_error_is_a_cause(error, said):
    admin = admin_of(topic("predictions", healthy()), topic("dead-letters", [], error))
    assert explain(admin, "predictions", "dead-letters").startswith(f"writes to dead-letters wait: {said}")


@pytest.mark.parametrize("timeout", [2.0, 0.5])
def test_a_cluster_that_does_not_answer_is_one_line(timeout):
    down = KafkaException(KafkaError(KafkaError._TRANSPORT, "Failed to get metadata"))
    admin = FakeAdmin({"predictions": down})
    assert explain(admin, "predictions", timeout=timeout) == (
        f"the cluster does not answer (no metadata in {timeout:g} s)"
    )
    assert all(0 < wait <= timeout for _, wait in admin.listed)


def test_it_never_raises():
    admin = FakeAdmin({"predictions": RuntimeError("boom")})
    assert explain(admin, "predictions") == "the cluster's state cannot be read (boom)"


def test_min_insync_replicas_is_read_once_per_topic():
    admin = admin_of(topic("predictions", [(1, [1])]))
    explainer = StallExplainer({}, ["predictions"], admin=admin)
    first, second = explainer.explain(), explainer.explain()
    assert first == second and "min.insync.replicas is 2" in first
    assert admin.described == [(ResourceType.TOPIC, "predictions")]


def test_the_brokers_min_insync_replicas_stands_in_for_an_unreadable_topics():
    admin = admin_of(topic("predictions", [(1, [1, 2])]), live=(2, 1))
    denied = KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))
    admin.configs = {(ResourceType.TOPIC, "predictions"): denied, (ResourceType.BROKER, "1"): "3"}
    line = explain(admin, "predictions")
    assert "2 in-sync replicas (brokers 1, 2) of 3, min.insync.replicas is 3;" in line


def test_an_unknown_min_insync_replicas_is_said_so():
    admin = FakeAdmin({"predictions": topic("predictions", [(1, [1]), (1, [1, 2, 3])])})
    explainer = StallExplainer({}, ["predictions"], admin=admin)
    assert explainer.explain() == (
        "writes to predictions[0] wait: 1 in-sync replica (broker 1) of 3, min.insync.replicas unknown; "
        "brokers 2, 3 are out of sync"
    )
    explainer.explain()  # not read: asked again
    assert admin.described.count((ResourceType.TOPIC, "predictions")) == 2


def test_describe_configs_that_raises_at_once_is_an_unknown_value():
    admin = admin_of(topic("predictions", [(1, [1])]))

    def refuse(*_, **__):
        raise KafkaException(KafkaError(KafkaError._TRANSPORT))

    admin.describe_configs = refuse
    assert "min.insync.replicas unknown" in explain(admin, "predictions")


def test_the_admin_client_is_made_once_from_the_config(monkeypatch):
    made = []

    def fake_admin_client(config):
        made.append(config)
        return admin_of(topic("predictions", healthy()))

    monkeypatch.setattr(stall, "AdminClient", fake_admin_client)
    config = {"bootstrap.servers": "b:9093", "security.protocol": "SASL_SSL", "sasl.username": "u"}
    explainer = StallExplainer(config, ["predictions"])
    assert made == []
    assert explainer.explain() is None and explainer.explain() is None
    assert len(made) == 1 and made[0].items() >= config.items()


def test_an_admin_client_that_cannot_be_made_is_a_line_not_an_error(monkeypatch):
    def refuse(config):
        raise KafkaException(KafkaError(KafkaError._INVALID_ARG, "No such configuration property"))

    monkeypatch.setattr(stall, "AdminClient", refuse)
    line = StallExplainer({"bootstrap.servers": "b:9092"}, ["predictions"]).explain()
    assert line.startswith("the cluster's state cannot be read (") and "No such configuration" in line


# --- the reporter ----------------------------------------------------------------------------------


class Explainer:
    """Returns ``line``; counts its calls."""

    def __init__(self, line: str | None = "writes to p[0] wait: because") -> None:
        self.line = line
        self.calls = 0

    def __call__(self) -> str | None:
        self.calls += 1
        return self.line


def warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "streamscore.worker" and r.levelno == logging.WARNING]


def test_a_stall_is_logged_once_after_a_while(caplog):
    caplog.set_level(logging.INFO, "streamscore.worker")
    explainer = Explainer()
    reporter = StallReporter(explainer, after_s=5.0)
    for now in (100.0, 101.0, 104.9):
        reporter.waiting(now)
    assert warnings(caplog) == [] and explainer.calls == 0 and not reporter.stalled
    for now in (105.0, 106.0, 120.0, 134.9):
        reporter.waiting(now)
    [record] = warnings(caplog)
    assert record.getMessage() == "writes to p[0] wait: because"
    assert record.stalled_because == "writes to p[0] wait: because"
    assert explainer.calls == 1 and reporter.stalled


def test_the_cause_is_looked_at_again_and_relogged_only_when_it_changes(caplog):
    caplog.set_level(logging.INFO, "streamscore.worker")
    explainer = Explainer()
    reporter = StallReporter(explainer, after_s=5.0, recheck_s=30.0)
    for now in range(0, 66):
        reporter.waiting(float(now))
    assert explainer.calls == 3  # at 5, 35, 65
    assert len(warnings(caplog)) == 1
    explainer.line = "the cluster does not answer (no metadata in 2 s)"
    for now in range(66, 95):
        reporter.waiting(float(now))
    assert len(warnings(caplog)) == 1  # not looked at again before 95
    reporter.waiting(95.0)
    assert [r.stalled_because for r in warnings(caplog)][-1] == explainer.line
    assert len(warnings(caplog)) == 2 and explainer.calls == 4


def test_writes_that_flow_again_say_after_how_long(caplog):
    caplog.set_level(logging.INFO, "streamscore.worker")
    reporter = StallReporter(Explainer(), after_s=5.0)
    reporter.waiting(10.0)
    reporter.waiting(16.0)
    reporter.flowing(31.3)
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos == ["writes flow again after 21.3 s"] and not reporter.stalled
    reporter.flowing(32.0)  # flowing on: nothing more said
    reporter.waiting(40.0)  # a new wait starts from its own beginning
    reporter.waiting(44.0)
    assert len(warnings(caplog)) == 1
    reporter.waiting(45.0)
    assert len(warnings(caplog)) == 2


def test_short_waits_between_writes_say_nothing(caplog):
    caplog.set_level(logging.INFO, "streamscore.worker")
    explainer = Explainer()
    reporter = StallReporter(explainer, after_s=5.0)
    for start in range(0, 100, 5):
        reporter.waiting(float(start))
        reporter.waiting(start + 4.0)
        reporter.flowing(start + 4.5)
    assert caplog.records == [] and explainer.calls == 0


def test_a_failing_explainer_is_a_line_too(caplog):
    caplog.set_level(logging.INFO, "streamscore.worker")

    def broken() -> str | None:
        raise RuntimeError("down")

    reporter = StallReporter(broken, after_s=1.0)
    reporter.waiting(0.0)
    reporter.waiting(1.0)
    assert [r.getMessage() for r in warnings(caplog)] == ["the cause cannot be told (down)"]


def test_a_cause_not_yet_in_the_metadata_is_waited_for(caplog):
    """Brokers killed leave the in-sync replicas only once fenced: the cause shows seconds later."""
    caplog.set_level(logging.INFO, "streamscore.worker")
    explainer = Explainer(None)
    reporter = StallReporter(explainer, after_s=5.0, recheck_s=30.0)
    for now in range(10):
        reporter.waiting(float(now))
    assert warnings(caplog) == [] and explainer.calls == 1  # at 5
    explainer.line = "writes to p[0] wait: 1 in-sync replica"
    reporter.waiting(10.0)
    assert [r.getMessage() for r in warnings(caplog)] == [explainer.line]


def test_a_stall_without_a_cause_is_said_after_the_recheck_time(caplog):
    caplog.set_level(logging.INFO, "streamscore.worker")
    explainer = Explainer(None)
    reporter = StallReporter(explainer, after_s=5.0, recheck_s=30.0)
    for now in range(30):
        reporter.waiting(float(now))
    assert warnings(caplog) == [] and explainer.calls == 5  # at 5, 10, 15, 20, 25
    reporter.waiting(30.0)
    assert [r.getMessage() for r in warnings(caplog)] == [NO_CAUSE]
    for now in range(31, 60):
        reporter.waiting(float(now))
    assert explainer.calls == 6 and len(warnings(caplog)) == 1  # said: looked at every 30 s
