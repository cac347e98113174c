"""Network faults between the worker and a three-broker cluster, through Toxiproxy.

Each broker advertises its proxy's address (``broker-<id>``), so every client reaches every broker
through a path a scenario can slow, stall or cut: latency on the worker's path to its coordinator
long enough that the transactional calls time out while their requests are still on the way (the
case librdkafka#5423 is about: no KIP-890 in the client, so the worker takes a new producer epoch),
and the path stalled for 30 s, then healed. Accounting as in :mod:`cluster_scenarios`.
"""

from __future__ import annotations

import time

import pytest
from cluster_scenarios import ALO, EOS, UnderLoad, leaders
from confluent_kafka import Producer

from stream.kafka.topics import ensure_topics
from stream.tools.cluster import KafkaCluster

pytestmark = [pytest.mark.faults, pytest.mark.chaos]
BOTH = [ALO, EOS]
CALL_TIMEOUT_S = 6  # the worker's session timeout here, which bounds each transactional call
LATENCY_MS = 8_000  # beyond a call's timeout, so that the call gives up while its request is under way
STALL_S = 30


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


@pytest.mark.parametrize("guarantee", BOTH)
def test_commits_timed_out_take_a_new_producer_epoch(
    proxied, worker_topics, start_worker, results, guarantee
):
    """8 s of latency on the worker's path to its coordinator, ten times, each held 9 s: the calls
    in flight give up after 6 s while their requests are still on the way. Exactly once, the worker
    then replaces its producer (a new epoch fences the late requests) before the next transaction;
    nothing is lost or, exactly once, duplicated."""
    cluster, proxies = proxied
    run = UnderLoad(cluster.bootstrap_servers, worker_topics, guarantee).start(
        start_worker, seed=93, partitions=3, instance_id="latency", session_timeout_s=str(CALL_TIMEOUT_S)
    )
    path = f"broker-{run.coordinator}"
    first = time.time()
    for _ in range(10):
        toxic = proxies.add(path, "latency", latency=LATENCY_MS)
        run.hold(9)  # held past a call's timeout (removing it lets the data waiting through at once)
        proxies.remove(path, toxic)
        run.hold(5)
    last = time.time()
    run.hold(40)  # the backlog of ten faults drains (the lag's recovery is measured)
    replaced = run.output().count("transactional producer replaced")
    row, _ = run.finish(f"{LATENCY_MS / 1000:g} s latency to the coordinator, 10 times", first, last,
                        coordinator=path, producer_replaced=replaced)  # fmt: skip
    if guarantee == EOS:
        assert replaced >= 1, "the replacement path was not taken"
    results.append(row)


@pytest.mark.parametrize("guarantee", BOTH)
def test_coordinator_path_stalled_then_healed(proxied, worker_topics, start_worker, results, guarantee):
    """The worker's path to its coordinator stalls both ways for 30 s (bytes dropped, connections
    held open), then heals: the worker waits, retries, rejoins if the group moved on, and loses
    nothing (nor, exactly once, duplicates)."""
    cluster, proxies = proxied
    run = UnderLoad(cluster.bootstrap_servers, worker_topics, guarantee).start(start_worker, seed=96)
    run.hold(3)
    path = f"broker-{run.coordinator}"
    fault = time.time()
    toxics = [proxies.add(path, "timeout", stream, timeout=0) for stream in ("upstream", "downstream")]
    run.hold(STALL_S)
    for toxic in toxics:
        proxies.remove(path, toxic)
    healed = time.time()
    run.hold(20)
    row, _ = run.finish(
        f"the path to the coordinator stalled for {STALL_S} s", fault, healed, coordinator=path
    )
    results.append(row)


def test_a_proxied_cluster_takes_network_faults(proxied):
    """Clients reach each broker through its Toxiproxy proxy: latency added on the leader's path
    slows a write by at least that much, and goes when the toxic is removed."""
    cluster, proxies = proxied
    topic = "proxied"
    ensure_topics(cluster.bootstrap_servers, {topic: 1}, replication_factor=3)
    leader = leaders(cluster.bootstrap_servers, topic).most_common(1)[0][0]
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
