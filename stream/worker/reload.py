"""Model reload: serve the new version a registry names without restarting the worker.

With a moving URI (the folder registry's latest or an alias, or an MLflow alias; see
:mod:`stream.lifecycle.uris`) and ``STREAMSCORE_MODEL_RELOAD_S`` above 0, the worker asks the
registry that often which version the URI names. Polling rather than SIGHUP: Faust's worker owns
the process's signals, container platforms rarely send custom ones, and every replica finds a
new version by itself.

A new version goes through every check of start-up (sha256, inputs and outputs against the card, a
probe batch; with ``STREAMSCORE_REASONS`` above 0, that it can be explained: its contributions are
built then, :mod:`stream.scoring.reasons`) in a thread, off the event loop. If it passes,
:meth:`~stream.scoring.pipeline.Pipeline.swap` hands it to the scoring loop, which serves it from
the next batch on (and records the switch, see :mod:`stream.lifecycle.changes`); if not, the error
is logged,
``streamscore_model_reload_failures_total`` counts it, and the previous model keeps serving. A
refused version is tried again only once it changes (a folder's files still being written, then
complete), so a bad version costs one error, not one per poll. A challenger that follows an alias
is watched the same way (``role="challenger"``) and scores beside the model from the next batch on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable
from typing import Any, Literal

from stream.contracts import ModelCard
from stream.errors import ModelError
from stream.lifecycle.sources import Source
from stream.scoring import model
from stream.scoring.pipeline import Pipeline
from stream.worker.metrics import WorkerMetrics

log = logging.getLogger("streamscore.reload")


class ModelWatcher:
    """Swaps the verified new version of a source in; keeps the old one otherwise."""

    def __init__(
        self,
        source: Source,
        pipeline: Pipeline,
        metrics: WorkerMetrics,
        serving: str,
        role: Literal["champion", "challenger"] = "champion",
    ) -> None:
        """``serving``: the version of the source the pipeline serves now in ``role``."""
        self.source, self.pipeline, self.metrics, self.role = source, pipeline, metrics, role
        self.serving = serving
        self.tried: Hashable | None = None  # the last version loaded, as it was then
        self._unread: str | None = None  # the last error reading the registry, logged once

    async def poll(self) -> ModelCard | None:
        """Look once; return the card of the model now serving if it changed, else None."""
        found = await asyncio.get_running_loop().run_in_executor(None, self._load_new)
        if found is None:
            return None
        version, new, prepared = found
        try:
            if self.role == "champion":
                self.pipeline.swap(new, prepared)
            else:
                self.pipeline.swap_challenger(new)
        except ModelError as exc:
            self._refuse(version, exc)
            return None
        self.serving = version
        card = new.card
        log.warning(
            "serving %s %s/%s (sha256 %s…) from the next batch on",
            "model" if self.role == "champion" else "challenger",
            card.name,
            card.version,
            card.sha256[:12],
            extra={"model": f"{card.name}/{card.version}", "sha256": card.sha256, "role": self.role},
        )
        if self.role == "champion":
            self.metrics.set_model(card)
        else:
            self.metrics.challenger.clear()
            mode = self.pipeline.challenge_mode
            self.metrics.challenger.labels(card.name, card.version, card.sha256, mode).set(1)
        return card

    def _load_new(self) -> tuple[str, model.LoadedModel, Any] | None:
        """The version named now if new, loaded, verified and (a champion) prepared for the pipeline
        (blocking); None if none or it fails."""
        version = None
        try:
            version = self.source.current()
            if version == self.serving:
                return None
            seen = self.source.stamp(version)
            if seen == self.tried:  # refused already, and unchanged since
                return None
            self.tried = seen
            loaded = self.source.load(version)
            return version, loaded, self.pipeline.prepare(loaded) if self.role == "champion" else None
        except Exception as exc:  # a reload must never stop a worker that is serving
            if version is not None:
                self._refuse(version, exc)
            elif str(exc) != self._unread:  # the registry did not answer: once per different error
                self._unread = str(exc)
                log.warning("model registry not read (%s): %s keeps serving", exc, self._serving_name())
            return None

    def _serving_name(self) -> str:
        model = self.pipeline.model if self.role == "champion" else self.pipeline.challenger
        return f"{model.card.name}/{model.card.version}" if model is not None else "no challenger"

    def _refuse(self, version: str | None, exc: Exception) -> None:
        champion = self.role == "champion"
        (self.metrics.reload_failures if champion else self.metrics.challenger_refused).inc()
        name = self.source.uri.name
        log.error(
            "%s %s/%s refused at reload, %s keeps serving: %s",
            "model" if champion else "challenger",
            name,
            version,
            self._serving_name(),
            exc,
            extra={"model": f"{name}/{version}", "serving": self._serving_name()},
        )
