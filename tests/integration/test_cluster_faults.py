"""Faults on a three-broker cluster (replication factor 3, ``min.insync.replicas`` 2) under load.

Production Kafka replicates, and the faults that lose data there are a partition leader dying while
writes are in flight and another replica taking over. ``make test`` runs the short size at least
once so that the cluster is exercised on every change; ``make chaos`` both guarantees, longer. The
same accounting as ``test_faults.py``: every input ends as one prediction (with its provenance) or
one dead letter, read with ``read_committed`` under exactly once.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from faults import Load, Result, account, collect, recovery, save, size, wait_written

from stream.kafka.topics import ensure_topics
from stream.tools.cluster import KafkaCluster

pytestmark = pytest.mark.faults
ALO, EOS = "at_least_once", "exactly_once"
RATE = 1_000  # events/s of steady load


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with KafkaCluster(data_dir=tmp_path_factory.mktemp("cluster")) as kafka:
        yield kafka


@pytest.fixture(scope="module")
def results():
    rows: list[Result] = []
    yield rows
    if os.environ.get("STREAMSCORE_FAULTS_JSON") and rows:
        save(rows, Path(os.environ["STREAMSCORE_FAULTS_JSON"]))


def _leaders(bootstrap: str, topic: str) -> Counter[int]:
    """How many of ``topic``'s partitions each broker leads."""
    partitions = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10).topics[topic]
    return Counter(p.leader for p in partitions.partitions.values())


@pytest.mark.parametrize("guarantee", [ALO, pytest.param(EOS, marks=pytest.mark.chaos)])
def test_input_leader_killed_and_back(cluster, worker_topics, start_worker, results, guarantee):
    """SIGKILL the broker leading the input partition mid-stream, start it again: another replica
    leads meanwhile, the worker follows, and nothing is lost (or, exactly once, duplicated)."""
    bootstrap, t = cluster.bootstrap_servers, worker_topics
    # one partition (outputs share the input's), so that the whole stream waits on the leader killed
    # and the recovery times measure it
    ensure_topics(
        bootstrap, dict.fromkeys([t.input, t.predictions, t.provenance, t.dlq], 1), replication_factor=3
    )
    began = time.monotonic()
    worker = start_worker(bootstrap=bootstrap, processing_guarantee=guarantee, replication_factor="3")
    load = Load(bootstrap, t.input, RATE, seed=91)
    wait_written(bootstrap, (t.predictions, t.dlq), 1, worker, 90)
    time.sleep(size(2, 10))
    leader = _leaders(bootstrap, t.input).most_common(1)[0][0]
    fault = time.time()
    cluster.kill(leader)
    time.sleep(size(8, 20))
    back = time.time()
    cluster.start_node(leader)
    time.sleep(size(3, 20))
    inputs = load.stop()
    outputs = collect(bootstrap, t, inputs, read_committed=guarantee == EOS, timeout=90)
    ledger = account(inputs, outputs)
    after_kill, after_back = recovery(outputs, fault), recovery(outputs, back)
    print(f"input leader {leader} killed ({guarantee}): {ledger}; {after_kill} after the kill")
    assert worker.proc.poll() is None, worker.output()[-3000:]
    assert not ledger.lost, f"{len(ledger.lost)} events lost, e.g. {ledger.lost[:5]}"
    assert not ledger.unexpected and not ledger.provenance_missing, ledger
    if guarantee == EOS:
        assert ledger.duplicated == 0, f"{ledger.duplicated} events with more than one outcome"
    worker.stop()
    results.append(
        Result(
            f"cluster: the input partition's leader killed, back after {size(8, 20)} s",
            guarantee,
            ledger.events,
            len(ledger.lost),
            ledger.duplicated,
            after_kill["first_output_s"],
            round(time.monotonic() - began, 1),
            {"from_kill": after_kill, "from_back": after_back, "brokers": 3, "leader": leader},
        )
    )


def _java_hash(text: str) -> int:
    """Java's ``String.hashCode``, with which Kafka places a transactional id's coordinator."""
    h = 0
    for unit in text.encode("utf-16-be").hex(" ", 2).split():
        h = (31 * h + int(unit, 16)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def _coordinator(bootstrap: str, transactional_id: str, partitions: int = 10) -> int:
    """The broker coordinating ``transactional_id``'s transactions: the leader of its partition of
    ``__transaction_state`` (``abs(hashCode) % partitions``, as Kafka's coordinator places it)."""
    topic = "__transaction_state"
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10).topics[topic]
    return metadata.partitions[abs(_java_hash(transactional_id)) % partitions].leader


def test_java_hash_places_ids_as_kafka_does():
    assert _java_hash("") == 0 and _java_hash("a") == 97 and _java_hash("hello") == 99162322
    assert _java_hash("streamscore-worker0") == _java_hash("streamscore-worker0")
    assert _java_hash("the quick brown fox jumps over the lazy dog") < 0  # wraps as a Java int


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    """A cluster whose clients reach each broker through a Toxiproxy proxy named ``broker-<id>``."""
    toxiproxy = pytest.importorskip("toxiproxy")
    if not toxiproxy.ready():
        pytest.skip("Toxiproxy is not built: run `make fault-tools`")
    folder = tmp_path_factory.mktemp("proxied")
    with toxiproxy.Toxiproxy() as proxies:
        nodes = KafkaCluster(data_dir=folder).plan()
        planned = {port for node in nodes.values() for port in (node.port, node.internal_port)}
        advertised = {n: proxies.proxy(f"broker-{n}", nodes[n].port, avoid=planned) for n in (1, 2, 3)}
        with KafkaCluster(data_dir=folder, advertised=advertised) as cluster:
            yield cluster, proxies


@pytest.mark.chaos
def test_commits_timed_out_take_a_new_producer_epoch(proxied, worker_topics, start_worker, results):
    """Latency on the worker's path to its transaction coordinator, longer than a transactional call
    may take (the session timeout, 6 s here), during commits, ten times: each ``EndTxn`` times out,
    the commit is called again and lands, and the worker replaces its producer (a new epoch, fencing
    the late request: librdkafka#5423) before the next transaction. Exactly once, nothing lost or
    duplicated."""
    cluster, proxies = proxied
    bootstrap, t = cluster.bootstrap_servers, worker_topics
    names = [t.input, t.predictions, t.provenance, t.dlq]
    ensure_topics(bootstrap, dict.fromkeys(names, 3), replication_factor=3)
    began = time.monotonic()
    worker = start_worker(
        bootstrap=bootstrap,
        processing_guarantee=EOS,
        replication_factor="3",
        instance_id="latency",
        session_timeout_s="6",
    )
    load = Load(bootstrap, t.input, RATE, seed=93)
    wait_written(bootstrap, (t.predictions, t.dlq), 1, worker, 90)
    coordinator = _coordinator(bootstrap, f"{worker.env['STREAMSCORE_APP_ID']}-latency")
    first_fault = time.time()
    for _ in range(10):
        toxic = proxies.add(f"broker-{coordinator}", "latency", latency=8_000)
        time.sleep(9)  # held past a call's timeout (removing it lets the data waiting through at once)
        proxies.remove(f"broker-{coordinator}", toxic)
        time.sleep(5)
    inputs = load.stop()
    outputs = collect(bootstrap, t, inputs, read_committed=True, timeout=120)
    ledger = account(inputs, outputs)
    replaced = worker.output().count("transactional producer replaced")
    seen = Counter(o.ident for o in outputs if o.kind != "provenance")
    for ident in [i for i, n in seen.items() if n > 1][:5]:  # each copy's kind and Kafka timestamp
        print("duplicated", ident, [(o.kind, round(o.ts, 3)) for o in outputs if o.ident == ident])
    print(f"latency on coordinator {coordinator} x10: {ledger}; producer replaced {replaced} times")
    assert worker.proc.poll() is None, worker.output()[-3000:]
    assert replaced >= 1, worker.output()[-5000:]
    assert not ledger.lost and ledger.duplicated == 0, ledger
    assert not ledger.unexpected and not ledger.provenance_missing, ledger
    worker.stop()
    results.append(
        Result(
            "cluster: 8 s latency to the transaction coordinator during commits, 10 times",
            EOS,
            ledger.events,
            len(ledger.lost),
            ledger.duplicated,
            None,
            round(time.monotonic() - began, 1),
            {"producer_replaced": replaced, "from_first": recovery(outputs, first_fault)},
        )
    )


@pytest.mark.chaos
def test_a_proxied_cluster_takes_network_faults(proxied):
    """Clients reach each broker through its Toxiproxy proxy: latency added on the leader's path
    slows a write by at least that much, and goes when the toxic is removed."""
    cluster, proxies = proxied
    topic = "proxied"
    ensure_topics(cluster.bootstrap_servers, {topic: 1}, replication_factor=3)
    leader = _leaders(cluster.bootstrap_servers, topic).most_common(1)[0][0]
    producer = Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all"})
    assert _write_seconds(producer, topic) < 1.0
    toxic = proxies.add(f"broker-{leader}", "latency", latency=1_500)
    assert _write_seconds(producer, topic) >= 1.5
    proxies.remove(f"broker-{leader}", toxic)
    assert _write_seconds(producer, topic) < 1.0


def _write_seconds(producer: Producer, topic: str) -> float:
    began = time.monotonic()
    producer.produce(topic, b"x")
    assert producer.flush(30) == 0
    return time.monotonic() - began
