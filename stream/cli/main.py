"""The ``streamscore`` command line: one Typer app with the commands of every module of :mod:`stream.cli`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stream import __version__
from stream.cli.audit import explain, replay, verify
from stream.cli.demo import broker, run
from stream.cli.lag import lag
from stream.cli.model import model_app
from stream.cli.traffic import produce, tail
from stream.cli.workers import outcomes, worker


def version() -> None:
    """Print the streamscore version."""
    typer.echo(__version__)


def schemas(
    out: Annotated[Path, typer.Option(help="Folder for the schema documents.")] = Path("schemas"),
) -> None:
    """Write the JSON Schema documents of the message contracts and the model card, and the Protobuf
    files of the outputs."""
    from stream.contracts import json_schemas, write_schemas
    from stream.formats.protobuf_writer import proto_schemas

    for path in write_schemas(out, {**json_schemas(), **proto_schemas()}):
        typer.echo(path)


app = typer.Typer(
    name="streamscore",
    help="Score a Kafka stream with an ONNX model; predictions with provenance out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(version)
app.command()(broker)
app.add_typer(model_app, name="model")
app.command(context_settings={"help_option_names": ["--help"]})(worker)
app.command()(outcomes)
app.command()(produce)
app.command()(tail)
app.command()(lag)
app.command()(schemas)
app.command()(run)
app.command()(explain)
app.command()(verify)
app.command()(replay)

if __name__ == "__main__":  # pragma: no cover
    app()
