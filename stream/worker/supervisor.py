"""Several scoring workers of one consumer group on one host, under one supervisor.

``streamscore worker --processes N`` starts N ``streamscore worker`` processes, each in a session
of its own (so a terminal's Ctrl-C reaches the supervisor alone), and forwards SIGINT and SIGTERM
to every one of them as SIGTERM, then waits for their clean shutdown (each commits what it
scored). Child *i* is named ``<STREAMSCORE_INSTANCE_ID>-<i>`` (its client id and, exactly once,
its transactional id: stable across restarts, so a restarted child fences its predecessor) and
serves its metrics on the base port + *i*. A child that dies is started again after a back-off
that doubles from ``backoff`` up to ``max_backoff`` (reset once a child has run ``stable_after``
seconds); each restart is logged and counted in ``streamscore_worker_restarts_total{instance}``,
served with ``/healthz`` on the supervisor's own port. A child that ends with exit code 2 (a
setting or credential refused) stops them all: starting it again would not help.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge

from stream.processes import die_with_parent
from stream.worker.health import Health
from stream.worker.health import serve as serve_http
from stream.worker.http_server import HttpLimits, HttpServer

log = logging.getLogger("streamscore.supervisor")

EXIT_CONFIG = 2  # a child refused its settings or credentials: not worth a restart
WORKER_COMMAND = (sys.executable, "-m", "stream.cli.main", "worker")


def process_count(value: str) -> int:
    """``auto`` (the cores this process may run on) or a whole number of at least 1."""
    count = len(os.sched_getaffinity(0)) if value == "auto" else int(value) if value.isdigit() else 0
    if count < 1:
        raise ValueError(f"--processes is auto or a whole number of at least 1, not {value!r}")
    return count


def child_env(env: Mapping[str, str], instance_id: str, metrics_port: int, index: int) -> dict[str, str]:
    """The environment of child ``index``: its own instance id and metrics port (0 stays off)."""
    return {
        **env,
        "STREAMSCORE_INSTANCE_ID": f"{instance_id}-{index}",
        "STREAMSCORE_METRICS_PORT": str(metrics_port + index if metrics_port else 0),
    }


@dataclass
class Child:
    """One worker process and when it may be started again."""

    index: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restart_at: float = 0.0
    delay: float = 0.0

    @property
    def name(self) -> str:
        return self.env["STREAMSCORE_INSTANCE_ID"]


@dataclass
class Supervisor:
    """Keeps ``len(envs)`` copies of ``command`` running until :meth:`stop`."""

    envs: Sequence[dict[str, str]]
    command: Sequence[str] = WORKER_COMMAND
    backoff: float = 1.0
    max_backoff: float = 30.0
    stable_after: float = 60.0
    stop_timeout: float = 30.0
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    _stopping: threading.Event = field(default_factory=threading.Event, init=False)
    exit_code: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.children = [Child(i, dict(env), delay=self.backoff) for i, env in enumerate(self.envs)]
        self.restarts = Counter(
            "streamscore_worker_restarts", "Worker processes started again after they died.",
            ["instance"], registry=self.registry,
        )  # fmt: skip
        self.running = Gauge(
            "streamscore_worker_processes", "Worker processes running.", registry=self.registry
        )

    def serve(self, port: int, limits: HttpLimits | None = None) -> HttpServer | None:
        """Serve the restart counter and ``/healthz`` on ``port`` (0: not at all) within ``limits``."""
        if not port:
            return None
        health = Health(stall_after=float("inf"))
        hint = "set STREAMSCORE_SUPERVISOR_PORT to a free port, or 0 to turn it off"
        return serve_http(port, self.registry, health, limits, hint)

    def run(self, poll: float = 0.2) -> int:
        """Start every child, restart those that die, and return once all have stopped."""
        for child in self.children:
            self._start(child)
        while not self._stopping.wait(poll):
            now = time.monotonic()
            for child in self.children:
                if child.proc is not None and (code := child.proc.poll()) is not None:
                    self._died(child, code, now)
                if child.proc is None and now >= child.restart_at and not self._stopping.is_set():
                    self.restarts.labels(child.name).inc()
                    self._start(child)
            self.running.set(sum(c.proc is not None for c in self.children))
        self._stop_children()
        return self.exit_code

    def stop(self, *_: object) -> None:
        """Ask every child to stop (SIGTERM); :meth:`run` returns once they have. Signal-handler safe."""
        self._stopping.set()

    def handle_signals(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self.stop)

    def _start(self, child: Child) -> None:
        child.proc = subprocess.Popen(
            list(self.command), env=child.env, start_new_session=True, preexec_fn=die_with_parent
        )
        child.started = time.monotonic()
        log.info("started worker %s (pid %d)", child.name, child.proc.pid)

    def _died(self, child: Child, code: int, now: float) -> None:
        child.proc = None
        if code == EXIT_CONFIG:
            log.error("worker %s refused its configuration (exit code 2): stopping all workers", child.name)
            self.exit_code = EXIT_CONFIG
            self.stop()
            return
        if now - child.started >= self.stable_after:
            child.delay = self.backoff
        child.restart_at = now + child.delay
        log.warning(
            "worker %s exited with code %d: restarting it in %.1f s", child.name, code, child.delay,
            extra={"instance": child.name, "exit_code": code},
        )  # fmt: skip
        child.delay = min(child.delay * 2, self.max_backoff)

    def _stop_children(self) -> None:
        alive = [c.proc for c in self.children if c.proc is not None and c.proc.poll() is None]
        for proc in alive:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for proc in alive:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker pid %d did not stop within %.0f s: killing it", proc.pid, self.stop_timeout)
                proc.kill()
                proc.wait()
        self.running.set(0)
