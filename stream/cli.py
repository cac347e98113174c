"""The ``streamscore`` command line."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

from stream import __version__
from stream.broker import KAFKA_VERSION, BrokerError, EmbeddedKafka, kafka_classpath

app = typer.Typer(
    name="streamscore",
    help="Score a Kafka stream with an ONNX model; predictions with provenance out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def fail(message: str) -> typer.Exit:
    """Print a one-line error to stderr; return the exit to raise."""
    typer.echo(f"streamscore: error: {message}", err=True)
    return typer.Exit(2)


def wait_for_signal(alive: threading.Event | None = None, poll: float = 0.5) -> None:
    """Block until SIGINT or SIGTERM, or until ``alive`` is cleared by someone else."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(poll):
        if alive is not None and not alive.is_set():
            return


@app.command()
def version() -> None:
    """Print the streamscore version."""
    typer.echo(__version__)


@app.command()
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
) -> None:
    """Run a real single-node Apache Kafka broker (KRaft) on loopback until Ctrl-C or SIGTERM."""
    try:
        if fetch_only:
            typer.echo(kafka_classpath(kafka_version))
            return
        started = time.monotonic()
        kafka = EmbeddedKafka(
            port=port, data_dir=data_dir, version=kafka_version, heap=heap, start_timeout=timeout
        ).start()
    except BrokerError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"Kafka {kafka_version} ready in {time.monotonic() - started:.1f} s; data in {kafka.data_dir}")
    typer.echo(f"KAFKA_BOOTSTRAP_SERVERS={kafka.bootstrap_servers}", color=False)
    sys.stdout.flush()
    try:
        wait_for_signal()
    finally:
        kafka.stop()
        typer.echo("Kafka stopped")


@app.command()
def run(
    seconds: Annotated[float, typer.Option(help="Stop after this long; 0 runs until Ctrl-C.")] = 0.0,
) -> None:
    """The demo: a broker (embedded unless KAFKA_BOOTSTRAP_SERVERS is set) and traffic through it."""
    from stream.demo import run_demo

    try:
        run_demo(os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), seconds=seconds)
    except BrokerError as exc:
        raise fail(str(exc)) from None


if __name__ == "__main__":  # pragma: no cover
    app()
