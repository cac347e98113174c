"""The Faust shell both workers share: Faust runs the process, a thread of its own runs the loop.

:class:`ShellApp` is a Faust app without Faust's own Kafka clients: Faust runs start-up,
SIGINT/SIGTERM, the shutdown order and timers. :class:`LoopService` starts a :class:`Loop` (the
scoring loop, the outcome loop) on a thread of its own and stops it on shutdown;
:class:`BoundedWorker` bounds that shutdown. No reach into Faust's consumer, producer or commit
machinery.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Protocol

import faust
from faust.app.base import BootStrategy

from stream.kafka.clients import fatal


class _NoKafka(BootStrategy):
    """Faust starts none of its own Kafka clients: the scoring loop owns the worker's Kafka I/O."""

    enable_kafka = False


class ShellApp(faust.App):
    """A Faust app that runs services and timers, with no Faust consumer, producer or tables."""

    BootStrategy = _NoKafka


class Loop(Protocol):
    """A loop that runs on a thread of its own until stopped (:class:`~stream.worker.loop.ScoringLoop`, the
    outcome loop)."""

    def run(self) -> None: ...

    def stop(self) -> None: ...


class LoopService(faust.Service):
    """Runs a :class:`Loop` on its own thread while the app runs."""

    def __init__(self, scoring: Loop, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.scoring = scoring
        self._thread = threading.Thread(target=scoring.run, name="scoring-loop", daemon=True)

    async def on_start(self) -> None:
        self._thread.start()

    async def on_stop(self) -> None:
        self.scoring.stop()
        await asyncio.to_thread(self._thread.join)


class BoundedWorker(faust.Worker):
    """Faust's worker with a bound on its shutdown: clients waiting for a broker that has gone (a
    commit, a flush, a leave-group) cannot hold the process; past the bound it exits without committing."""

    shutdown_timeout_s: float = 10.0

    async def stop(self) -> None:
        timer = threading.Timer(
            self.shutdown_timeout_s,
            fatal,
            [f"shutdown took more than {self.shutdown_timeout_s:g} s (is the broker away?): exiting without "
             "committing more; what was not committed is read again by the next worker"],
        )  # fmt: skip
        timer.daemon = True
        timer.start()
        await super().stop()
