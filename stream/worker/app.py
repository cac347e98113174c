"""The scoring worker: its model, topics and scoring loop in the Faust shell, with its timers.

:func:`create_app` loads the model, checks the principal's permissions, prepares the topics and
wires the scoring loop (:mod:`stream.worker.loop`) into a :class:`~stream.worker.shell.ShellApp`.
The loop reads the input topic with a confluent-kafka consumer in batches and commits with one
producer per process (transactional, exactly once): no per-message Python outside the pipeline.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import faust

from stream import __version__
from stream.contracts import Role
from stream.formats.startup import wire_codecs
from stream.kafka import permissions
from stream.kafka.config import client_config
from stream.kafka.lag import LagCollector
from stream.kafka.topics import ensure_topics, prepare_topics
from stream.keys import keys
from stream.lifecycle.changes import ChangeLog
from stream.lifecycle.sources import Source, champion_uri, load_challenger, open_source
from stream.logs import logging_config
from stream.scoring.events import EventShape
from stream.scoring.model import LoadedModel
from stream.scoring.pipeline import Pipeline
from stream.scoring.records import Topics
from stream.settings import Settings
from stream.worker.drift import DriftReporter
from stream.worker.health import Health
from stream.worker.health import serve as serve_http
from stream.worker.http_server import HttpLimits
from stream.worker.loop import ScoringLoop
from stream.worker.metrics import WorkerMetrics
from stream.worker.reload import ModelWatcher
from stream.worker.shell import BoundedWorker, LoopService, ShellApp
from stream.worker.stats import Stats

log = logging.getLogger("streamscore.worker")


def code_revision() -> str | None:
    """The git revision of the running code: ``STREAMSCORE_REVISION``, else ``git rev-parse``."""
    if os.environ.get("STREAMSCORE_REVISION"):
        return os.environ["STREAMSCORE_REVISION"]
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def create_pipeline(
    settings: Settings,
    loaded: LoadedModel | None = None,
    challenger: LoadedModel | None = None,
    role: Role = "champion",
) -> Pipeline:
    """Build the hot path around ``loaded``, else the model the settings name (loaded and verified),
    with ``challenger`` beside it; its records say ``role``. With ``STREAMSCORE_REASONS`` above 0 the
    model must be one that can be explained (:class:`~stream.errors.ModelError` otherwise); while a
    challenger scores beside it, no prediction carries reasons (the challenger's are not computed)."""
    personal = keys(settings).personal  # first: no secret, no start
    if loaded is None:
        source = open_source(champion_uri(settings), settings)
        loaded = source.load(source.current())
    decoder, serialize = wire_codecs(settings, loaded.card)  # into the event shape's contract
    shape = EventShape.of(settings)
    pipeline = Pipeline(
        loaded,
        Topics(settings.prediction_topic, settings.provenance_topic, settings.dlq_topic),
        pii_key=personal,
        scorer={
            "version": __version__,
            "revision": code_revision(),
            "worker_id": f"{socket.gethostname()}:{os.getpid()}",
        },
        max_message_bytes=settings.max_message_bytes,
        max_key_bytes=settings.max_key_bytes,
        max_record_bytes=settings.max_record_bytes,
        max_features=settings.max_features,
        max_string_length=settings.max_string_length,
        decoder=decoder,
        serialize=serialize,
        strict_fields=shape.strict,
        complete=shape.complete if shape.completes else None,
        extras=shape.ignored,
        role=role,
        challenger=challenger,
        shadow_topic=settings.challenger_topic,
        canary_percent=settings.canary_percent,
        reasons=settings.reasons,
    )
    if settings.reasons and pipeline.challenger is not None:
        log.warning(
            "STREAMSCORE_REASONS=%d: no reasons while a challenger scores beside the model", settings.reasons
        )
    return pipeline


def _ensure_side_topics(settings: Settings, partitions: int) -> None:
    """The challenger's topic and the model-changes topic, when the settings name them."""
    if settings.challenger_uri:  # shadow predictions: partitioned like the predictions
        ensure_topics(
            client_config(settings), {settings.challenger_topic: partitions}, settings.replication_factor
        )
    if settings.model_changes_topic:  # one order for every worker's records; keys never repeat
        compact = {"cleanup.policy": "compact"}
        rf = settings.replication_factor
        ensure_topics(client_config(settings), {settings.model_changes_topic: 1}, rf, config=compact)


def _shell(settings: Settings) -> ShellApp:
    """The Faust shell of the worker, its data in the data directory."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return ShellApp(
        settings.app_id,
        autodiscover=False,
        web_enabled=False,
        store="memory://",
        datadir=str(settings.data_dir / settings.app_id),
    )


def _worker_metrics(
    settings: Settings, pipeline: Pipeline, challenger: LoadedModel | None, refused: bool
) -> WorkerMetrics:
    """The worker's metrics, set to the models in service, with the consumer lag collected."""
    metrics = WorkerMetrics(max_clock_skew_s=settings.max_clock_skew_s)
    metrics.set_model(pipeline.model.card)
    if refused or (challenger is not None and pipeline.challenger is None):
        metrics.challenger_refused.inc()
    elif pipeline.challenger is not None:
        card = pipeline.challenger.card
        metrics.challenger.labels(card.name, card.version, card.sha256, pipeline.challenge_mode).set(1)
    metrics.registry.register(
        LagCollector(
            client_config(settings), [settings.app_id], [settings.input_topic], settings.lag_window_s
        )
    )
    return metrics


def _scoring_loop(
    settings: Settings, pipeline: Pipeline, metrics: WorkerMetrics, health: Health, partitions: int
) -> ScoringLoop:
    """The scoring loop, with the model-changes log and the drift reporter the settings ask for."""
    scoring = ScoringLoop(settings, pipeline, metrics, health, stats=Stats(settings.max_clock_skew_s))
    if settings.model_changes_topic:
        scoring.changes = ChangeLog(
            settings.model_changes_topic,
            settings.input_topic,
            settings.app_id,
            settings.instance_id,
            pipeline.scorer_id,
        )
    if settings.drift_window:
        scoring.drift = DriftReporter(
            settings, pipeline.model.card, metrics, pipeline.scorer_id, partitions, scoring.send
        )
    return scoring


def _add_reload_timers(
    app: ShellApp,
    settings: Settings,
    sources: tuple[Source, Source | None],
    serving: str,
    pipeline: Pipeline,
    metrics: WorkerMetrics,
    health: Health,
) -> None:
    """Timers following the champion's and the challenger's sources, when they can move."""
    source, challenger_source = sources
    if settings.model_reload_s and source.uri.moves:
        watcher = ModelWatcher(source, pipeline, metrics, serving)

        @app.timer(interval=settings.model_reload_s)
        async def reload_model() -> None:
            if (
                card := await watcher.poll()
            ):  # the loop serves it, and follows it in drift, from the next batch
                health.model = f"{card.name}/{card.version}"

    if settings.model_reload_s and challenger_source is not None and challenger_source.uri.moves:
        serving_challenger = pipeline.challenger.card.version if pipeline.challenger else None
        challenger_watcher = ModelWatcher(
            challenger_source, pipeline, metrics, serving_challenger or "", role="challenger"
        )

        @app.timer(interval=settings.model_reload_s)
        async def reload_challenger() -> None:
            await challenger_watcher.poll()


def create_app(settings: Settings) -> faust.App:
    """Load the model, prepare the topics, and wire the scoring loop into a Faust shell."""
    keys(settings)  # first: no secret, no start
    source = open_source(champion_uri(settings), settings)
    serving = source.current()
    challenger, refused, challenger_source = load_challenger(settings)
    pipeline = create_pipeline(settings, source.load(serving), challenger)
    needs = permissions.scoring_worker(settings)
    permissions.check(settings, needs, settings.app_id)  # before making topics, and once they all exist
    partitions = prepare_topics(settings)
    _ensure_side_topics(settings, partitions)
    app = _shell(settings)
    metrics = _worker_metrics(settings, pipeline, challenger, refused)
    health = Health()
    health.model = f"{pipeline.model.card.name}/{pipeline.model.card.version}"
    scoring = _scoring_loop(settings, pipeline, metrics, health, partitions)
    permissions.check(settings, needs, settings.app_id)
    app.service(LoopService(scoring, loop=app.loop, beacon=app.beacon))
    if settings.metrics_port:
        serve_http(settings.metrics_port, metrics.registry, health, HttpLimits.of(settings))
    _add_reload_timers(app, settings, (source, challenger_source), serving, pipeline, metrics, health)
    return app


def run_worker(settings: Settings, create: Callable[[Settings], faust.App] = create_app) -> None:
    """Run the app ``create`` makes until SIGINT/SIGTERM (Faust's worker handles signals and shutdown)."""
    app = create(settings)
    worker = BoundedWorker(
        app,
        loglevel="warn",
        quiet=True,
        redirect_stdouts=False,
        logging_config=logging_config(settings.log_level, settings.log_format),
    )
    worker.shutdown_timeout_s = settings.shutdown_timeout_s
    worker.spinner = None  # no terminal animation in logs
    worker.execute_from_commandline()
