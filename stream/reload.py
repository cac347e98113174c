"""Model reload: serve a new registry version without restarting the worker.

With ``STREAMSCORE_MODEL_VERSION=latest`` and ``STREAMSCORE_MODEL_RELOAD_S`` above 0 the worker
looks at the registry that often. Polling rather than SIGHUP: Faust's worker owns the process's
signals, container platforms rarely send custom ones, and every replica finds a new version by itself.

A new highest version goes through every check of start-up (:func:`stream.model.load`: sha256,
inputs and outputs against the card, a probe batch) in a thread, off the event loop. If it passes,
:meth:`~stream.pipeline.Pipeline.swap` serves it from the next batch on and ``streamscore_model_info``
changes; if not, the error is logged, ``streamscore_model_reload_failures_total`` counts it, and the
previous model keeps serving. A refused version is tried again only once its files change (a copy
still being written, then complete), so a bad version costs one error, not one per poll.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from stream import model
from stream.contracts import ModelCard
from stream.errors import ModelError
from stream.metrics import WorkerMetrics
from stream.pipeline import Pipeline

log = logging.getLogger("streamscore.reload")

Fingerprint = tuple[str, tuple[int, int] | None, tuple[int, int] | None]


class ModelWatcher:
    """Swaps a verified new highest version of the pipeline's model in; keeps the old one otherwise."""

    def __init__(self, root: Path, name: str, pipeline: Pipeline, metrics: WorkerMetrics) -> None:
        self.root, self.name, self.pipeline, self.metrics = root, name, pipeline, metrics
        self.tried: Fingerprint | None = None  # the last version loaded, as its files were then

    async def poll(self) -> ModelCard | None:
        """Look once; return the card of the model now serving if it changed, else None."""
        new = await asyncio.get_running_loop().run_in_executor(None, self._load_new)
        if new is None:
            return None
        try:
            self.pipeline.swap(new)
        except ModelError as exc:
            self._refuse(new.path.parent.name, exc)
            return None
        log.warning(
            "serving model %s/%s (sha256 %s…) from the next batch on",
            new.card.name,
            new.card.version,
            new.card.sha256[:12],
            extra={"model": f"{new.card.name}/{new.card.version}", "sha256": new.card.sha256},
        )
        self.metrics.set_model(new.card)
        return new.card

    def _load_new(self) -> model.LoadedModel | None:
        """The new highest version, loaded and verified (blocking); None if there is none or it fails."""
        version = None
        try:
            available = model.versions(self.root, self.name)
            current = self.pipeline.model.path.parent.name
            if not available or available[-1] == current:
                return None
            version = available[-1]
            seen = self._fingerprint(version)
            if seen == self.tried:  # refused already, and unchanged since
                return None
            self.tried = seen
            return model.load(self.root, self.name, version)
        except Exception as exc:  # a reload must never stop a worker that is serving
            self._refuse(version, exc)
            return None

    def _fingerprint(self, version: str) -> Fingerprint:
        folder = self.root / self.name / version

        def stat(path: Path) -> tuple[int, int] | None:
            try:
                st = path.stat()
            except OSError:
                return None
            return st.st_mtime_ns, st.st_size

        return version, stat(folder / model.CARD_FILE), stat(folder / model.MODEL_FILE)

    def _refuse(self, version: str | None, exc: Exception) -> None:
        self.metrics.reload_failures.inc()
        current = self.pipeline.model.card
        log.error(
            "model %s/%s refused at reload, %s/%s keeps serving: %s",
            self.name,
            version,
            current.name,
            current.version,
            exc,
            extra={"model": f"{self.name}/{version}", "serving": f"{current.name}/{current.version}"},
        )
