"""What every command module shares: the one-line error, the settings, waiting for a signal."""

from __future__ import annotations

import signal
import threading

import typer
from pydantic import ValidationError

from stream.settings import Settings
from stream.terminal import printable


def fail(message: str) -> typer.Exit:
    """Print a one-line error to stderr (control characters escaped); return the exit to raise."""
    typer.echo(f"streamscore: error: {printable(message)}", err=True)
    return typer.Exit(2)


def settings() -> Settings:
    """The settings from the environment; a one-line error naming the first invalid one."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = f"invalid setting {first['loc'][0]}: " if first["loc"] else "invalid settings: "
        raise fail(where + first["msg"].removeprefix("Value error, ")) from None


def wait_for_signal(alive: threading.Event | None = None, poll: float = 0.5) -> None:
    """Block until SIGINT or SIGTERM, or until ``alive`` is cleared by someone else."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(poll):
        if alive is not None and not alive.is_set():
            return
