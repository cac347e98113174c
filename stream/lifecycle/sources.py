"""A model source: which version a URI names now, and that version loaded and verified.

Both registries give the same three calls (:class:`Source`), so start-up, the watcher that follows
an alias (:mod:`stream.worker.reload`) and the challenger load models the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from typing import Protocol

from stream.errors import StreamscoreError
from stream.lifecycle.folder import FolderSource
from stream.lifecycle.uris import ModelUri, of_folder, parse
from stream.scoring.model import LoadedModel
from stream.settings import Settings

__all__ = ["Source", "champion_uri", "load_challenger", "open_source"]

log = logging.getLogger("streamscore.worker")


class Source(Protocol):
    """A model in a registry."""

    uri: ModelUri

    def current(self) -> str:
        """The version the URI names now; :class:`~stream.errors.ModelError` when it names none."""
        ...

    def stamp(self, version: str) -> Hashable:
        """What must change before a refused ``version`` is tried again."""
        ...

    def load(self, version: str) -> LoadedModel:
        """``version`` loaded and verified; :class:`~stream.errors.ModelError` saying what to fix."""
        ...


def champion_uri(settings: Settings) -> ModelUri:
    """STREAMSCORE_MODEL_URI, else the folder registry's STREAMSCORE_MODEL_DIR, _NAME, _VERSION."""
    if settings.model_uri:
        return parse(settings.model_uri)
    return of_folder(settings.model_dir, settings.model_name, settings.model_version)


def open_source(uri: ModelUri, settings: Settings) -> Source:
    """The source of ``uri``: the folder registry, or MLflow at MLFLOW_TRACKING_URI."""
    if uri.registry == "folder":
        return FolderSource(uri)
    from stream.lifecycle.mlflow_registry import MlflowSource

    return MlflowSource(uri, settings.mlflow_tracking_uri, settings.data_dir / "mlflow-models")


def load_challenger(settings: Settings) -> tuple[LoadedModel | None, bool, Source | None]:
    """The challenger STREAMSCORE_CHALLENGER_URI names, checked like the champion; whether it was
    refused; and its source (to follow an alias).

    A malformed URI stops the worker (a setting to fix); a challenger that fails its checks does
    not: it is logged, and the champion goes on alone.
    """
    if not settings.challenger_uri:
        return None, False, None
    uri = parse(settings.challenger_uri)
    source = None
    try:
        source = open_source(uri, settings)
        return source.load(source.current()), False, source
    except StreamscoreError as exc:
        log.error("challenger %s refused, the champion goes on alone: %s", uri, exc)
        return None, True, source
