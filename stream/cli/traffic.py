"""``streamscore produce`` and ``streamscore tail``: traffic into a topic, and a look at any topic."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from stream.cli.common import fail, settings

if TYPE_CHECKING:
    from stream.settings import Settings
    from stream.tools.produce import Produced


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
        str,
        typer.Option(
            help="concept (labels change), feature (inputs shift, the model stays right) or age "
            "(applicants move to the ages where the model is least sure: its accuracy falls)."
        ),
    ] = "concept",
    outcomes: Annotated[
        bool, typer.Option(help="Also publish each event's true outcome to STREAMSCORE_OUTCOME_TOPIC.")
    ] = False,
    outcome_delay: Annotated[float, typer.Option(help="Seconds between an event and its outcome.")] = 5.0,
    format: Annotated[
        str, typer.Option(help="json, or json-schema, avro or protobuf (STREAMSCORE_SCHEMA_REGISTRY_URL's).")
    ] = "json",
) -> None:
    """Publish loan-application events to the input topic (and, on request, their true outcomes)."""
    from stream.kafka.config import client_config
    from stream.tools.produce import produce as publish

    config = settings()
    if drift_kind not in ("concept", "feature", "age"):
        raise fail("--drift-kind is concept, feature or age")
    serialize = _event_serializer(config, format, topic or config.input_topic)
    produced = _with_progress(
        count,
        lambda progress: publish(
            client_config(config),
            topic or config.input_topic,
            count=count,
            rate=rate,
            duration=duration,
            seed=seed,
            malformed_fraction=malformed_fraction,
            drift_at=drift_at,
            drift_kind=drift_kind,  # type: ignore[arg-type]
            progress=progress,
            outcome_topic=config.outcome_topic if outcomes else None,
            outcome_delay=outcome_delay,
            serialize=serialize,
        ),
    )
    typer.echo(
        f"published {len(produced.valid)} valid and {len(produced.malformed)} malformed events"
        + (f", {len(produced.labels)} outcomes" if outcomes else "")
    )


def _event_serializer(config: Settings, format: str, topic: str) -> Callable[[bytes], bytes] | None:
    """The serializer of ``--format`` for ``topic``: None for json; a one-line error for the unknown."""
    if format == "json":
        return None
    from stream.errors import StreamscoreError
    from stream.formats.events import event_serializer

    if format not in ("json-schema", "avro", "protobuf"):
        raise fail("--format is json, json-schema, avro or protobuf")
    try:
        return event_serializer(config, format, topic)  # type: ignore[arg-type]
    except StreamscoreError as exc:
        raise fail(str(exc)) from None


def _with_progress(count: int | None, publish: Callable[[Callable[[int], None]], Produced]) -> Produced:
    """Run ``publish`` with a progress callback; a one-line error if the broker refuses or is away."""
    from stream.errors import ConfigError

    # a bar towards --count; without one (a duration or Ctrl-C), a bar over the events so far
    with typer.progressbar(
        length=count, iterable=None if count else itertools.count(), label="producing", show_pos=True
    ) as bar:
        try:
            return publish(bar.update)
        except (ConfigError, RuntimeError) as exc:  # the broker refused or is away; deliveries failed
            raise fail(str(exc)) from None


def tail(
    topic: Annotated[str, typer.Argument(help="Topic to print.")],
    from_beginning: Annotated[bool, typer.Option(help="Start at the oldest message.")] = False,
    count: Annotated[int | None, typer.Option(help="Stop after this many messages.")] = None,
) -> None:
    """Pretty-print the messages of any topic (JSON values indented, headers shown); with
    STREAMSCORE_SCHEMA_REGISTRY_URL, Avro, JSON Schema and Protobuf values in the wire format decoded."""
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
