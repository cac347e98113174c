"""The cluster's configuration replicates as production does, and its set-up errors say what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stream.cli.main import app
from stream.tools.cluster import KafkaCluster, Node, broker_config, controller_config
from stream.tools.maven import BrokerError

VOTERS = "100@127.0.0.1:9100"


def test_brokers_keep_three_replicas_and_acknowledge_with_two(tmp_path):
    config = broker_config(Node(2, "broker", tmp_path, port=9002, internal_port=9012), VOTERS, 19002)
    assert config["process.roles"] == "broker" and config["node.id"] == "2"
    for key in ("default.replication.factor", "offsets.topic.replication.factor"):
        assert config[key] == "3"
    assert config["min.insync.replicas"] == config["transaction.state.log.min.isr"] == "2"
    assert config["listeners"] == "INTERNAL://127.0.0.1:9012,EXTERNAL://127.0.0.1:9002"
    # clients are told the advertised port (a proxy's), the other brokers the internal one
    assert config["advertised.listeners"] == "INTERNAL://127.0.0.1:9012,EXTERNAL://127.0.0.1:19002"
    assert config["inter.broker.listener.name"] == "INTERNAL"


def test_controllers_place_replicas_with_the_same_defaults(tmp_path):
    """In KRaft the controller resolves a new topic's replication factor: it must hold the default."""
    config = controller_config(Node(100, "controller", tmp_path, port=9100), VOTERS)
    assert config["process.roles"] == "controller"
    assert config["default.replication.factor"] == "3" and config["min.insync.replicas"] == "2"
    assert config["controller.quorum.voters"] == VOTERS


def test_a_data_dir_keeps_its_ports_and_refuses_another_shape(tmp_path):
    first = KafkaCluster(data_dir=tmp_path)
    first.plan()
    again = KafkaCluster(data_dir=tmp_path)
    again.plan()
    assert {n: (v.port, v.internal_port) for n, v in again.nodes.items()} == {
        n: (v.port, v.internal_port) for n, v in first.nodes.items()
    }
    assert again._cluster_id == first._cluster_id
    assert json.loads((tmp_path / "streamscore-cluster.json").read_text())["brokers"] == 3
    with pytest.raises(BrokerError, match="holds a cluster of 3 brokers and 1 controllers"):
        KafkaCluster(brokers=4, data_dir=tmp_path).plan()


def test_bootstrap_servers_are_the_advertised_addresses(tmp_path):
    cluster = KafkaCluster(data_dir=tmp_path, advertised={2: 19002})
    cluster.plan()
    ports = [cluster.nodes[1].port, 19002, cluster.nodes[3].port]
    assert cluster.bootstrap_servers == ",".join(f"127.0.0.1:{p}" for p in ports)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nodes", "2"], "--nodes 2 cannot hold three replicas"),
        (["--nodes", "3", "--port", "9092"], "--port is for a single node"),
    ],
)
def test_impossible_clusters_are_refused_in_one_line(args, message):
    result = CliRunner().invoke(app, ["broker", *args])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output


def test_a_missing_java_stops_a_cluster_too(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrokerError, match="java not found"):
        KafkaCluster(data_dir=tmp_path).start()
