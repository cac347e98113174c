"""``streamscore lag``: consumer lag per partition, as a table or served as Prometheus metrics."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from stream.cli.common import fail, settings, wait_for_signal
from stream.settings import DEFAULT_LAG_PORT


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
