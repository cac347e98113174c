"""``streamscore broker`` and ``streamscore run``: a real Kafka broker, and the whole demo, here."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from stream.cli.common import fail, settings, wait_for_signal
from stream.tools.broker import EmbeddedKafka
from stream.tools.cluster import KafkaCluster
from stream.tools.maven import KAFKA_VERSION, BrokerError, kafka_classpath


def broker(
    port: Annotated[
        int,
        typer.Option(help="Client port on 127.0.0.1; 0 picks a free one (or the one used before)."),
    ] = 0,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where the broker keeps its log; reuse it to keep topics and data. "
            "A fresh temporary folder, removed at exit, when not given."
        ),
    ] = None,
    kafka_version: Annotated[str, typer.Option(help="Apache Kafka version to run.")] = KAFKA_VERSION,
    heap: Annotated[str, typer.Option(help="JVM heap size of the broker.")] = "512m",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the broker to answer.")] = 60.0,
    fetch_only: Annotated[
        bool,
        typer.Option(help="Only resolve Kafka's jars from Maven Central into the cache, then exit."),
    ] = False,
    nodes: Annotated[
        int,
        typer.Option(
            help="Brokers: 1, a single node (broker and controller in one); 3 or more, a cluster of that "
            "many brokers and a controller quorum, three replicas of every topic, a write acknowledged "
            "by two.",
            min=1,
        ),
    ] = 1,
    controllers: Annotated[
        int, typer.Option(help="With --nodes 3 or more: controllers in the quorum (1 or 3).", min=1, max=3)
    ] = 1,
) -> None:
    """Run a real Apache Kafka broker (KRaft), or a cluster, on loopback until Ctrl-C or SIGTERM."""
    if nodes == 2 or (nodes > 1 and port):
        raise fail(
            "--nodes 2 cannot hold three replicas: use 1 or 3+"
            if nodes == 2
            else "--port is for a single node: a cluster picks free ports and keeps them in --data-dir"
        )
    try:
        if fetch_only:
            typer.echo(kafka_classpath(kafka_version))
            return
        started = time.monotonic()
        common = {"data_dir": data_dir, "version": kafka_version, "heap": heap, "start_timeout": timeout}
        kafka: EmbeddedKafka | KafkaCluster = (
            EmbeddedKafka(port=port, **common) if nodes == 1 else KafkaCluster(nodes, controllers, **common)
        ).start()
    except BrokerError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"Kafka {kafka_version} ready in {time.monotonic() - started:.1f} s; data in {kafka.data_dir}")
    _nodes(kafka)
    typer.echo(f"KAFKA_BOOTSTRAP_SERVERS={kafka.bootstrap_servers}", color=False)
    sys.stdout.flush()
    try:
        wait_for_signal()
    finally:
        kafka.stop()
        typer.echo("Kafka stopped")


def _nodes(kafka: EmbeddedKafka | KafkaCluster) -> None:
    """A cluster's nodes, one line each: what each is, its pid, port and folder."""
    for node in kafka.nodes.values() if isinstance(kafka, KafkaCluster) else ():
        where = f"port 127.0.0.1:{node.port}, data {node.data_dir}"
        typer.echo(f"node {node.node_id}: {node.role}, pid {node.pid}, {where}")


def run(
    seconds: Annotated[float, typer.Option(help="Stop after this long; 0 runs until Ctrl-C.")] = 0.0,
) -> None:
    """The demo: a broker (embedded unless KAFKA_BOOTSTRAP_SERVERS is set) and traffic through it.

    With STREAMSCORE_INPUT_FORMAT or STREAMSCORE_OUTPUT_FORMAT avro, json-schema or protobuf, the traffic
    is in that format, through Apicurio Registry unless STREAMSCORE_SCHEMA_REGISTRY_URL is set.

    Needs STREAMSCORE_SECRET like the workers it starts (``make run`` makes a random one per run).
    """
    from stream.errors import ConfigError
    from stream.keys import keys
    from stream.tools.apicurio import demo_registry
    from stream.tools.demo import run_demo

    try:
        with demo_registry():  # only when a registered format is asked for without a registry
            keys(settings())
            run_demo(os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), seconds=seconds)
    except (BrokerError, ConfigError) as exc:
        raise fail(str(exc)) from None
