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


@pytest.mark.chaos
def test_a_proxied_cluster_takes_network_faults(tmp_path):
    """Clients reach each broker through its Toxiproxy proxy: latency added on the leader's path
    slows a write by at least that much, and goes when the toxic is removed."""
    toxiproxy = pytest.importorskip("toxiproxy")
    if not toxiproxy.ready():
        pytest.skip("Toxiproxy is not built: run `make fault-tools`")
    with toxiproxy.Toxiproxy() as proxies:
        nodes = KafkaCluster(data_dir=tmp_path).plan()
        planned = {port for node in nodes.values() for port in (node.port, node.internal_port)}
        advertised = {n: proxies.proxy(f"broker-{n}", nodes[n].port, avoid=planned) for n in (1, 2, 3)}
        with KafkaCluster(data_dir=tmp_path, advertised=advertised) as cluster:
            topic = "proxied"
            ensure_topics(cluster.bootstrap_servers, {topic: 1}, replication_factor=3)
            leader = _leaders(cluster.bootstrap_servers, topic).most_common(1)[0][0]
            producer = Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all"})
            assert _write_seconds(producer, topic) < 1.0
            proxies.add(f"broker-{leader}", "latency", latency=1_500)
            assert _write_seconds(producer, topic) >= 1.5
            proxies.remove(f"broker-{leader}", "latency-downstream")
            assert _write_seconds(producer, topic) < 1.0


def _write_seconds(producer: Producer, topic: str) -> float:
    began = time.monotonic()
    producer.produce(topic, b"x")
    assert producer.flush(30) == 0
    return time.monotonic() - began
