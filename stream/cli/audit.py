"""The audit commands: ``explain``, ``verify``, ``replay`` (registered on the app of ``stream.cli.main``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from stream.cli.common import fail, settings

if TYPE_CHECKING:
    from stream.audit.verify import VerifyReport
    from stream.worker.http_protocol import HttpLimits

__all__ = ["explain", "replay", "verify"]

Since = Annotated[
    str,
    typer.Option(
        help="How far back to look: an age (90m, 2d) or an ISO 8601 time; 'all' for everything held."
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """Turn streamscore's and Kafka's errors into the command line's one-line error."""
    from confluent_kafka import KafkaException

    from stream.errors import StreamscoreError

    try:
        yield
    except StreamscoreError as exc:
        raise fail(str(exc)) from None
    except KafkaException as exc:
        raise fail(f"Kafka: {exc.args[0].str()}") from None


def _since_ms(text: str) -> int | None:
    """``--since`` in epoch milliseconds; None for 'all'."""
    from stream.audit.lookup import parse_time

    return None if text == "all" else parse_time(text)


def explain(
    event_id: Annotated[
        str | None, typer.Argument(help="The event's id (or give --partition and --offset).")
    ] = None,
    topic: Annotated[str | None, typer.Option(help="Input topic (default STREAMSCORE_INPUT_TOPIC).")] = None,
    partition: Annotated[int | None, typer.Option(help="Input partition, with --offset.")] = None,
    offset: Annotated[int | None, typer.Option(help="Input offset, with --partition.")] = None,
    since: Since = "7d",
    as_json: AsJson = False,
) -> None:
    """Why an event got its score: its input, features, model and code, and the score re-computed now."""
    from stream.audit.explain import explain as find
    from stream.audit.explain import render
    from stream.keys import keys

    config = settings()
    if (event_id is None) == (partition is None or offset is None):
        raise fail("give an EVENT_ID, or --partition and --offset of the input (not both)")
    with _one_line_errors():
        position = None if event_id is not None else (topic or config.input_topic, partition, offset)
        found = find(config, keys(config).personal, _since_ms(since), event_id, position)
    typer.echo(found.model_dump_json(indent=2) if as_json else render(found))


def verify(
    sample: Annotated[int, typer.Option(min=1, help="Provenance records to draw at random.")] = 100,
    since: Since = "all",
    seed: Annotated[int | None, typer.Option(help="Seed of the draw (default: a new one each time).")] = None,
    as_json: AsJson = False,
    serve: Annotated[
        bool, typer.Option(help="Check a new draw every --every seconds; metrics on --port.")
    ] = False,
    every: Annotated[float, typer.Option(min=1.0, help="Seconds between draws with --serve.")] = 300.0,
    address: Annotated[
        str, typer.Option(help="Metrics address of --serve (0.0.0.0: every one).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Metrics port of --serve.")] = 9469,
) -> None:
    """Re-score a random sample of provenance records; exit 1 if any differs from its model's score."""
    from stream.audit.verify import render
    from stream.audit.verify import verify as check
    from stream.keys import keys

    config = settings()
    with _one_line_errors():
        key = keys(config).personal
    if serve:
        from stream.worker.http_protocol import HttpLimits

        limits = HttpLimits.of(config).model_copy(update={"host": address})
        _serve(lambda: check(config, key, sample, _since_ms(since), seed), every, limits, port)
        return
    with _one_line_errors():
        report = check(config, key, sample, _since_ms(since), seed)
    typer.echo(report.model_dump_json(indent=2) if as_json else render(report))
    if not report.ok:
        raise typer.Exit(1)


def _serve(check: Callable[[], VerifyReport], every: float, limits: HttpLimits, port: int) -> None:
    """Check a new draw every ``every`` seconds until SIGINT or SIGTERM; metrics on ``port``."""
    import signal
    import threading

    from stream.audit.verify import VerifyMetrics
    from stream.audit.verify import serve as run
    from stream.worker.health import serve as serve_http

    metrics = VerifyMetrics()
    with _one_line_errors():
        serve_http(port, metrics.registry, None, limits, "pick a free --port")
    typer.echo(f"verifying a draw every {every:g} s; metrics on {limits.host}:{port}/metrics", err=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with _one_line_errors():
        run(check, metrics, every, stop)


def replay(
    start: Annotated[str, typer.Option("--from", help="beginning, an ISO 8601 time, an age, or P:O,P:O.")],
    end: Annotated[str, typer.Option("--to", help="end, a time, an age, or P:O,... (exclusive).")],
    model: Annotated[str, typer.Option(help="The pinned model: NAME/VERSION.")],
    output_topic: Annotated[str, typer.Option(help="Predictions go here; provenance to <T>.provenance.")],
    group: Annotated[
        str | None, typer.Option(help="The replay's consumer group (default <app_id>-replay-<T>).")
    ] = None,
    exactly_once: Annotated[bool, typer.Option(help="One transaction per commit (read_committed).")] = False,
) -> None:
    """Re-score a range of the input topic with a pinned model into its own topics (role replay).

    Resumable: run the same command again after Ctrl-C or a crash and it goes on from its last commit.
    """
    import logging.config

    from stream.audit.replay import plan, run, stderr_line
    from stream.logs import logging_config
    from stream.worker.app import create_pipeline

    config = settings()
    logging.config.dictConfig(logging_config("warn", config.log_format))  # the loop's warnings only
    with _one_line_errors():
        chosen = plan(config, start, end, model, output_topic, group, exactly_once)
        for note in chosen.notes:
            typer.echo(note, err=True)
        how = "resuming" if chosen.resumed else "starting"
        typer.echo(
            f"{how} replay group {chosen.settings.app_id}: {chosen.total:,} events of "
            f"{chosen.settings.input_topic} with {model} into {output_topic}",
            err=True,
        )
        handled, finished = run(chosen, lambda s: create_pipeline(s, role="replay"), stderr_line)
    if not finished:
        typer.echo(f"\nstopped after {handled:,} events: run the same command again to resume", err=True)
        raise typer.Exit(130)
    typer.echo(f"\nreplayed {handled:,} events into {output_topic}", err=True)
