"""Broker faults on a three-broker cluster (replication factor 3, ``min.insync.replicas`` 2) under load.

Production Kafka replicates, and the faults that lose data there are a partition leader or a
coordinator dying while writes or commits are in flight, and the in-sync replicas falling below what
a write needs. ``make test`` runs the leader kill at least once so that the cluster is exercised on
every change; ``make chaos`` every scenario in both guarantees. The accounting is
:mod:`cluster_scenarios`'s: every input ends as one prediction (with its provenance) or one dead
letter, read with ``read_committed`` under exactly once.
"""

from __future__ import annotations

import time

import pytest
from cluster_scenarios import ALO, EOS, UnderLoad, java_hash, leaders, wait_in_sync
from faults import size, written

from stream.tools.cluster import KafkaCluster

pytestmark = pytest.mark.faults
BOTH = [ALO, EOS]
SHORTFALL_S = 20  # two brokers down: fewer in-sync replicas than a write needs


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with KafkaCluster(data_dir=tmp_path_factory.mktemp("cluster")) as kafka:
        yield kafka


@pytest.fixture
def healthy(cluster):
    """Every broker up and every replica in sync before a scenario (an earlier one may have failed)."""
    for node in cluster.broker_nodes:
        if node.pid is None:
            cluster.start_node(node.node_id)
    wait_in_sync(cluster.bootstrap_servers)
    return cluster


@pytest.mark.parametrize("guarantee", [ALO, pytest.param(EOS, marks=pytest.mark.chaos)])
def test_input_leader_killed_and_back(healthy, worker_topics, start_worker, results, guarantee):
    """SIGKILL the broker leading the input partition mid-stream, start it again: another replica
    leads meanwhile, the worker follows, and nothing is lost (or, exactly once, duplicated)."""
    run = UnderLoad(healthy.bootstrap_servers, worker_topics, guarantee).start(start_worker, seed=91)
    run.hold(size(2, 10))
    leader = leaders(run.bootstrap, worker_topics.input).most_common(1)[0][0]
    fault = time.time()
    healthy.kill(leader)
    run.hold(size(8, 20))
    back = time.time()
    healthy.start_node(leader)
    run.hold(size(3, 20))
    row, _ = run.finish(
        f"the input partition's leader killed, back after {size(8, 20)} s", fault, back, leader=leader
    )
    results.append(row)


@pytest.mark.chaos
@pytest.mark.parametrize("guarantee", BOTH)
def test_coordinator_killed_while_committing(healthy, worker_topics, start_worker, results, guarantee):
    """SIGKILL the broker the worker commits through (its transaction coordinator exactly once, its
    group coordinator at least once) while commits are under way, several a second; back after 10 s.
    Another broker takes the coordinator's partition over; the commit in flight is retried or aborted
    and its events read again, never applied twice."""
    run = UnderLoad(healthy.bootstrap_servers, worker_topics, guarantee).start(
        start_worker, seed=92, commit_interval_ms="200"
    )
    run.hold(5)
    victim = run.coordinator
    fault = time.time()
    healthy.kill(victim)
    run.hold(10)
    back = time.time()
    healthy.start_node(victim)
    run.hold(15)
    after = run.coordinator
    row, _ = run.finish("the worker's coordinator killed while committing, back after 10 s", fault, back,
                        coordinator=victim, coordinator_after=after)  # fmt: skip
    results.append(row)


@pytest.mark.chaos
@pytest.mark.parametrize("guarantee", BOTH)
def test_rolling_restart_of_every_broker(healthy, worker_topics, start_worker, results, guarantee):
    """Each broker in turn stopped cleanly (SIGTERM: it hands its leaderships over), started again,
    and waited for until every replica is back in sync, as an upgrade does it, under load."""
    run = UnderLoad(healthy.bootstrap_servers, worker_topics, guarantee).start(start_worker, seed=94)
    run.hold(3)
    first, steps = time.time(), {}
    for node in [n.node_id for n in healthy.broker_nodes]:
        began = time.monotonic()
        healthy.stop_node(node)
        run.hold(3)
        healthy.start_node(node)
        steps[node] = round(wait_in_sync(run.bootstrap) + (time.monotonic() - began), 1)
    last = time.time()
    run.hold(20)
    row, _ = run.finish("a rolling restart of the three brokers", first, last, seconds_per_broker=steps)
    results.append(row)


@pytest.mark.chaos
@pytest.mark.parametrize("guarantee", BOTH)
def test_in_sync_replicas_below_the_minimum(healthy, worker_topics, start_worker, results, guarantee):
    """Two of the three brokers down for 20 s: no write can have two in-sync replicas, so the worker
    makes no progress (its outputs do not grow), says why in one line, and resumes when they return."""
    run = UnderLoad(healthy.bootstrap_servers, worker_topics, guarantee).start(start_worker, seed=95)
    run.hold(3)
    survivor = leaders(run.bootstrap, worker_topics.input).most_common(1)[0][0]
    down = [n.node_id for n in healthy.broker_nodes if n.node_id != survivor]
    fault = time.time()
    for node in down:
        healthy.kill(node)
    outputs = (worker_topics.predictions, worker_topics.dlq)
    run.hold(10)  # the controller fences them (6 s) and shrinks the in-sync sets; in flight settles
    held = written(run.bootstrap, *outputs)
    run.hold(SHORTFALL_S - 10)
    still = written(run.bootstrap, *outputs)
    back = time.time()
    for node in down:
        healthy.start_node(node)
    run.hold(15)
    said = [line for line in run.output().splitlines() if "min.insync.replicas is 2" in line]
    row, _ = run.finish(f"two brokers down for {SHORTFALL_S} s (in-sync replicas below the minimum)", fault,
                        back, survivor=survivor, stalled_because=said[:1])  # fmt: skip
    assert still == held, f"outputs grew from {held} to {still} with one in-sync replica"
    assert said, "the worker did not say why it waits"
    results.append(row)


def test_java_hash_places_ids_as_kafka_does():
    assert java_hash("") == 0 and java_hash("a") == 97 and java_hash("hello") == 99162322
    assert java_hash("the quick brown fox jumps over the lazy dog") < 0  # wraps as a Java int
