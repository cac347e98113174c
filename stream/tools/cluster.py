"""A Kafka cluster on loopback: a KRaft controller quorum and three brokers, each its own process.

Production Kafka replicates: every topic here has three replicas (``default.replication.factor``
3) and a write is acknowledged once two have it (``min.insync.replicas`` 2); the offsets and
transaction logs are kept the same way. The controllers (one by default, or three: a quorum that
survives one loss) only hold the metadata; the brokers hold the data, so stopping one broker moves
its partitions' leadership to another and stopping two leaves partitions with too few in-sync
replicas to accept a write.

Each broker listens twice: ``INTERNAL`` for the other brokers, ``EXTERNAL`` for clients. A client is
told the address in ``advertised`` for a broker (a network proxy in front of it, say) or else the
broker's own, so faults can be put on the clients' path alone. Every node has a data directory of
its own under ``data_dir`` and keeps its ports there: started again on the same directory the
cluster keeps its addresses, topics and data. Any node can be stopped, killed and started again on
its own (:meth:`KafkaCluster.kill`, :meth:`KafkaCluster.stop_node`, :meth:`KafkaCluster.start_node`).

    with KafkaCluster(data_dir=path) as cluster:
        print(cluster.bootstrap_servers)
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

from confluent_kafka.admin import AdminClient

from stream.tools.broker import cluster_id, format_storage, free_port, java_path, launch
from stream.tools.maven import KAFKA_VERSION, BrokerError, kafka_classpath

_STATE_FILE = "streamscore-cluster.json"
CONTROLLER_IDS = 100
"""Controllers are nodes 100, 101, ...; brokers are nodes 1, 2, 3."""

#: Replication as production runs it: three copies, a write acknowledged by two.
REPLICATION = {
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "offsets.topic.replication.factor": "3",
    "transaction.state.log.replication.factor": "3",
    "transaction.state.log.min.isr": "2",
    "share.coordinator.state.topic.replication.factor": "3",
    "share.coordinator.state.topic.min.isr": "2",
}


@dataclass
class Node:
    """One process of the cluster: its id, role, ports, data directory and, while it runs, process."""

    node_id: int
    role: Literal["broker", "controller"]
    data_dir: Path
    port: int  # a broker's client (EXTERNAL) port; a controller's CONTROLLER port
    internal_port: int = 0  # a broker's INTERNAL port, for the other brokers
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"


def controller_config(node: Node, voters: str) -> dict[str, str]:
    """A controller-only node's ``server.properties``.

    The controllers place new topics' replicas (so they hold the replication defaults) and fence a
    broker they have not heard from for 6 s, which then leaves the in-sync replicas.
    """
    return {
        "process.roles": "controller",
        "node.id": str(node.node_id),
        "controller.quorum.voters": voters,
        "listeners": f"CONTROLLER://127.0.0.1:{node.port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT",
        "log.dirs": str(node.data_dir / "log"),
        **REPLICATION,
        "broker.session.timeout.ms": "6000",
    }


def broker_config(node: Node, voters: str, advertised_port: int) -> dict[str, str]:
    """A broker-only node's ``server.properties``: two listeners, three replicas of everything."""
    return {
        "process.roles": "broker",
        "node.id": str(node.node_id),
        "controller.quorum.voters": voters,
        "listeners": f"INTERNAL://127.0.0.1:{node.internal_port},EXTERNAL://127.0.0.1:{node.port}",
        "advertised.listeners": (
            f"INTERNAL://127.0.0.1:{node.internal_port},EXTERNAL://127.0.0.1:{advertised_port}"
        ),
        "inter.broker.listener.name": "INTERNAL",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(node.data_dir / "log"),
        "num.partitions": "1",
        **REPLICATION,
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.num.partitions": "10",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "broker.heartbeat.interval.ms": "1000",
        "log.flush.interval.messages": "9223372036854775807",
        "num.io.threads": "4",
        "num.network.threads": "2",
    }


@dataclass
class KafkaCluster:
    """``brokers`` brokers and ``controllers`` controllers, each a Kafka process on 127.0.0.1.

    ``advertised`` maps a broker's node id to the port its clients are told (default: its own).
    ``data_dir`` persists across starts; a temporary one is made and removed when not given.
    """

    brokers: int = 3
    controllers: int = 1
    data_dir: Path | None = None
    advertised: Mapping[int, int] = field(default_factory=dict)
    version: str = KAFKA_VERSION
    heap: str = "512m"
    controller_heap: str = "256m"
    start_timeout: float = 90.0
    extra_config: Mapping[str, str] = field(default_factory=dict)
    full_jit: bool = False
    nodes: dict[int, Node] = field(default_factory=dict, init=False)
    _own_dir: bool = field(default=False, init=False, repr=False)
    _cluster_id: str = field(default="", init=False, repr=False)

    @property
    def bootstrap_servers(self) -> str:
        """Every broker's advertised address: a client reaches the cluster while any one answers."""
        return ",".join(f"127.0.0.1:{self._advertised_port(n)}" for n in self.broker_nodes)

    @property
    def broker_nodes(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.role == "broker"]

    def start(self) -> KafkaCluster:
        """Format each node's storage if new, start every process, and wait until all brokers serve."""
        self.plan()
        for node in self.nodes.values():
            self._spawn(node)
        self.wait_for(set(self.nodes) - self._controller_ids())
        return self

    def _controller_ids(self) -> set[int]:
        return {n.node_id for n in self.nodes.values() if n.role == "controller"}

    def plan(self) -> dict[int, Node]:
        """The nodes and their ports (those of an earlier start on ``data_dir``), before any starts:
        a proxy can be put in front of a broker before clients are told its address."""
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="streamscore-cluster-"))
            self._own_dir = True
        self.data_dir = self.data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        state_file = self.data_dir / _STATE_FILE
        saved = json.loads(state_file.read_text()) if state_file.exists() else {}
        if saved and (saved["brokers"], saved["controllers"]) != (self.brokers, self.controllers):
            raise BrokerError(
                f"{self.data_dir} holds a cluster of {saved['brokers']} brokers and {saved['controllers']} "
                "controllers: start it with those, or use another --data-dir"
            )
        self._cluster_id = saved.get("cluster_id") or cluster_id()
        ports = saved.get("ports", {})
        for i in range(self.controllers):
            node_id = CONTROLLER_IDS + i
            port = ports.get(str(node_id), [free_port()])[0]
            self.nodes[node_id] = Node(node_id, "controller", self.data_dir / f"controller-{node_id}", port)
        for node_id in range(1, self.brokers + 1):
            port, internal = ports.get(str(node_id)) or (free_port(), free_port())
            self.nodes[node_id] = Node(node_id, "broker", self.data_dir / f"broker-{node_id}", port, internal)
        state = {
            "brokers": self.brokers,
            "controllers": self.controllers,
            "cluster_id": self._cluster_id,
            "ports": {str(n.node_id): [n.port, n.internal_port] for n in self.nodes.values()},
        }
        state_file.write_text(json.dumps(state))
        return self.nodes

    def _advertised_port(self, node: Node) -> int:
        return self.advertised.get(node.node_id, node.port)

    def _spawn(self, node: Node) -> None:
        java, classpath = java_path(), f"{kafka_classpath(self.version)}/*"
        node.data_dir.mkdir(parents=True, exist_ok=True)
        voters = ",".join(
            f"{n.node_id}@127.0.0.1:{n.port}" for n in self.nodes.values() if n.role == "controller"
        )
        if node.role == "controller":
            config, heap = controller_config(node, voters), self.controller_heap
        else:
            config, heap = broker_config(node, voters, self._advertised_port(node)), self.heap
            config.update(self.extra_config)
        props = node.data_dir / "server.properties"
        props.write_text("".join(f"{k}={v}\n" for k, v in config.items()))
        if not (node.data_dir / "log" / "meta.properties").exists():
            format_storage(java, classpath, props, self._cluster_id, [])
        node.proc = launch(java, classpath, props, heap, self.full_jit, node.log_file)

    def wait_for(self, broker_ids: set[int]) -> None:
        """Wait until each broker in ``broker_ids`` answers on its own port and sees all of them."""
        deadline = time.monotonic() + self.start_timeout
        for node_id in sorted(broker_ids):
            node = self.nodes[node_id]
            admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{node.port}", "log_level": 0})
            while not self._serves(admin, broker_ids):
                self._check_alive()
                if time.monotonic() > deadline:
                    raise BrokerError(
                        f"Kafka broker {node_id} did not answer within {self.start_timeout:.0f} s: raise "
                        f"--timeout; each node's log is broker.log in its folder under {self.data_dir}"
                    )
                time.sleep(0.2)

    @staticmethod
    def _serves(admin: AdminClient, broker_ids: set[int]) -> bool:
        with contextlib.suppress(Exception):
            return broker_ids <= set(admin.list_topics(timeout=1.0).brokers)
        return False

    def _check_alive(self) -> None:
        """Raise if a node started by this cluster has exited, with the end of its log."""
        for node in self.nodes.values():
            if node.proc is not None and node.proc.poll() is not None:
                tail = node.log_file.read_text(errors="replace").strip().splitlines()[-5:]
                raise BrokerError(
                    f"Kafka node {node.node_id} exited (see {node.log_file}): {' | '.join(tail)}"
                )

    def kill(self, node_id: int) -> None:
        """SIGKILL one node, as a crash would; its data is kept."""
        node = self.nodes[node_id]
        if node.proc is not None:
            node.proc.kill()
            node.proc.wait()
            node.proc = None

    def stop_node(self, node_id: int, timeout: float = 30.0) -> None:
        """SIGTERM one node (a clean shutdown: a broker hands its leaderships over first) and wait."""
        node = self.nodes[node_id]
        proc, node.proc = node.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def start_node(self, node_id: int) -> None:
        """Start a stopped or killed node again on its data; a broker is waited for until it serves."""
        node = self.nodes[node_id]
        if node.pid is None:
            self._spawn(node)
        if node.role == "broker":
            self.wait_for({node_id})

    def stop(self) -> None:
        """Stop every node (brokers first, then controllers); remove a temporary data directory."""
        own = self._own_dir
        for node in sorted(self.nodes.values(), key=lambda n: n.role == "controller"):
            self.kill(node.node_id) if own else self.stop_node(node.node_id)
        if own and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir, self._own_dir = None, False

    def __enter__(self) -> KafkaCluster:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
