"""``streamscore worker`` and ``streamscore outcomes``: the scoring and the outcome workers."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from stream.cli.common import fail, settings
from stream.settings import Settings, settings_help


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


worker.__doc__ = (worker.__doc__ or "").format(settings=settings_help().replace("\n", "\n    "))
