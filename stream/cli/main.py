"""The ``streamscore`` command line."""

from __future__ import annotations

import itertools
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from stream import __version__
from stream.cli.audit import register as register_audit
from stream.cli.common import fail, settings, wait_for_signal
from stream.cli.model import model_app
from stream.settings import DEFAULT_LAG_PORT, Settings, settings_help
from stream.tools.broker import KAFKA_VERSION, BrokerError, EmbeddedKafka, kafka_classpath

app = typer.Typer(
    name="streamscore",
    help="Score a Kafka stream with an ONNX model; predictions with provenance out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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


app.add_typer(model_app, name="model")


@app.command(context_settings={"help_option_names": ["--help"]})
def worker(
    processes: Annotated[
        str,
        typer.Option(
            help="Worker processes in the group under one supervisor: a number, or auto (the cores "
            "this process may use). Child i is <STREAMSCORE_INSTANCE_ID>-i, metrics on the port + i."
        ),
    ] = "1",
) -> None:
    """Run the scoring worker. Configured from the environment:

    \b
    {settings}
    """
    from stream.errors import StreamscoreError
    from stream.worker.supervisor import process_count

    config = settings()
    try:
        count = process_count(processes)
    except ValueError as exc:
        raise fail(str(exc)) from None
    try:
        if count > 1 or processes == "auto":
            raise typer.Exit(supervise(config, count))
        from stream.worker.app import run_worker

        run_worker(config)
    except StreamscoreError as exc:
        raise fail(str(exc)) from None


def supervise(config: Settings, count: int) -> int:
    """Run ``count`` scoring workers under a :class:`~stream.worker.supervisor.Supervisor`; its exit code."""
    import logging.config

    from stream.keys import keys
    from stream.logs import logging_config
    from stream.worker.http_server import HttpLimits
    from stream.worker.supervisor import Supervisor, child_env

    keys(config)  # no secret: one line here rather than one per child
    logging.config.dictConfig(logging_config(config.log_level, config.log_format))
    envs = [child_env(os.environ, config.instance_id, config.metrics_port, i) for i in range(count)]
    supervisor = Supervisor(envs)
    supervisor.serve(config.supervisor_port, HttpLimits.of(config))
    supervisor.handle_signals()
    return supervisor.run()


@app.command()
def outcomes() -> None:
    """Run the outcome worker: joins true outcomes with predictions, tracks model performance."""
    from stream.errors import StreamscoreError
    from stream.outcomes.app import create_outcome_app
    from stream.worker.app import run_worker

    config = settings()
    try:
        run_worker(config, create_outcome_app)
    except StreamscoreError as exc:
        raise fail(str(exc)) from None


@app.command()
def produce(
    count: Annotated[
        int | None, typer.Option(help="Events to publish (default: until --duration or Ctrl-C).")
    ] = None,
    rate: Annotated[
        float | None, typer.Option(help="Events per second (default: as fast as possible).")
    ] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    topic: Annotated[str | None, typer.Option(help="Topic (default: STREAMSCORE_INPUT_TOPIC).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generator: same seed, same events.")] = 0,
    malformed_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of malformed events.")
    ] = 0.0,
    drift_at: Annotated[int | None, typer.Option(help="Inject a drift after this many events.")] = None,
    drift_kind: Annotated[
        str, typer.Option(help="concept (labels change) or feature (inputs shift).")
    ] = "concept",
    outcomes: Annotated[
        bool, typer.Option(help="Also publish each event's true outcome to STREAMSCORE_OUTCOME_TOPIC.")
    ] = False,
    outcome_delay: Annotated[float, typer.Option(help="Seconds between an event and its outcome.")] = 5.0,
    format: Annotated[
        str, typer.Option(help="json, or json-schema or avro (STREAMSCORE_SCHEMA_REGISTRY_URL's).")
    ] = "json",
) -> None:
    """Publish loan-application events to the input topic (and, on request, their true outcomes)."""
    from stream.errors import ConfigError, StreamscoreError
    from stream.kafka.config import client_config
    from stream.tools.produce import produce as publish

    config = settings()
    if drift_kind not in ("concept", "feature"):
        raise fail("--drift-kind is concept or feature")
    serialize = None
    if format != "json":
        from stream.formats.events import event_serializer

        if format not in ("json-schema", "avro"):
            raise fail("--format is json, json-schema or avro")
        try:
            serialize = event_serializer(config, format, topic or config.input_topic)  # type: ignore[arg-type]
        except StreamscoreError as exc:
            raise fail(str(exc)) from None
    # a bar towards --count; without one (a duration or Ctrl-C), a bar over the events so far
    with typer.progressbar(
        length=count, iterable=None if count else itertools.count(), label="producing", show_pos=True
    ) as bar:
        try:
            produced = publish(
                client_config(config),
                topic or config.input_topic,
                count=count,
                rate=rate,
                duration=duration,
                seed=seed,
                malformed_fraction=malformed_fraction,
                drift_at=drift_at,
                drift_kind=drift_kind,  # type: ignore[arg-type]
                progress=bar.update,
                outcome_topic=settings.outcome_topic if outcomes else None,
                outcome_delay=outcome_delay,
                serialize=serialize,
            )
        except (ConfigError, RuntimeError) as exc:  # the broker refused or is away; deliveries failed
            raise fail(str(exc)) from None
    typer.echo(
        f"published {len(produced.valid)} valid and {len(produced.malformed)} malformed events"
        + (f", {len(produced.labels)} outcomes" if outcomes else "")
    )


@app.command()
def tail(
    topic: Annotated[str, typer.Argument(help="Topic to print.")],
    from_beginning: Annotated[bool, typer.Option(help="Start at the oldest message.")] = False,
    count: Annotated[int | None, typer.Option(help="Stop after this many messages.")] = None,
) -> None:
    """Pretty-print the messages of any topic (JSON values indented, headers shown); with
    STREAMSCORE_SCHEMA_REGISTRY_URL, Avro and JSON Schema values in the wire format decoded."""
    from stream.errors import ConfigError
    from stream.kafka.config import client_config
    from stream.tools.tail import tail as follow

    config = settings()
    wire = None
    if config.schema_registry_url:
        from stream.formats.reader import WireReader
        from stream.formats.registry import registry_client

        wire = WireReader(registry_client(config))
    try:
        follow(client_config(config), topic, from_beginning=from_beginning, count=count, wire=wire)
    except ConfigError as exc:
        raise fail(str(exc)) from None


@app.command()
def lag(
    group: Annotated[
        list[str] | None,
        typer.Option(help="Consumer group, repeat for several (default: STREAMSCORE_APP_ID)."),
    ] = None,
    topic: Annotated[
        list[str] | None,
        typer.Option(
            help="Also list these topics' partitions the group never committed "
            "(default without --group: STREAMSCORE_INPUT_TOPIC)."
        ),
    ] = None,
    window: Annotated[
        float,
        typer.Option(help="Seconds of snapshots behind the STATUS column (0: one snapshot, no status)."),
    ] = 5.0,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between snapshots.")] = 1.0,
    serve: Annotated[
        bool,
        typer.Option(help="Serve lag and status as Prometheus metrics instead (STREAMSCORE_LAG_WINDOW_S)."),
    ] = False,
    port: Annotated[int, typer.Option(help="Port of --serve.")] = DEFAULT_LAG_PORT,
) -> None:
    """Consumer lag per partition in messages and seconds, and what is wrong: a table, or an exporter."""
    from prometheus_client import CollectorRegistry

    from stream.errors import ConfigError
    from stream.kafka.config import client_config
    from stream.kafka.lag import LagCollector, sample, table
    from stream.kafka.lag_status import Window
    from stream.worker.health import serve as serve_http
    from stream.worker.http_server import HttpLimits

    config = settings()
    kafka = client_config(config)
    groups = group or [config.app_id]
    topics = topic or ([] if group else [config.input_topic])
    if serve:
        registry = CollectorRegistry()
        registry.register(LagCollector(kafka, groups, topics, config.lag_window_s))
        try:
            serve_http(port, registry, None, HttpLimits.of(config), "pick a free --port")
        except ConfigError as exc:
            raise fail(str(exc)) from None
        typer.echo(f"serving lag of {', '.join(groups)} on {config.metrics_host}:{port}/metrics")
        wait_for_signal()
        return
    snapshots = Window(window)
    try:
        for _ in range(round(window / interval) if window > 0 else 0):
            sample(kafka, groups, topics, snapshots, with_seconds=False)
            time.sleep(interval)
        rows = sample(kafka, groups, topics, snapshots)
    except ConfigError as exc:  # unreachable, or credentials refused
        raise fail(str(exc)) from None
    except Exception as exc:  # the admin client raises KafkaException and timeouts
        raise fail(f"cannot read offsets from {kafka['bootstrap.servers']}: {exc}") from None
    typer.echo(table(rows))


@app.command()
def schemas(
    out: Annotated[Path, typer.Option(help="Folder for the JSON Schema documents.")] = Path("schemas"),
) -> None:
    """Write the JSON Schema documents of the message contracts and the model card."""
    from stream.contracts import write_schemas

    for path in write_schemas(out):
        typer.echo(path)


@app.command()
def run(
    seconds: Annotated[float, typer.Option(help="Stop after this long; 0 runs until Ctrl-C.")] = 0.0,
) -> None:
    """The demo: a broker (embedded unless KAFKA_BOOTSTRAP_SERVERS is set) and traffic through it.

    With STREAMSCORE_INPUT_FORMAT or STREAMSCORE_OUTPUT_FORMAT avro or json-schema, the traffic is in
    that format, through Apicurio Registry unless STREAMSCORE_SCHEMA_REGISTRY_URL is set.

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


register_audit(app, fail, settings)  # explain, verify, replay
worker.__doc__ = (worker.__doc__ or "").format(settings=settings_help().replace("\n", "\n    "))

if __name__ == "__main__":  # pragma: no cover
    app()
