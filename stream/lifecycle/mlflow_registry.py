"""The MLflow model registry: register a folder model, list, promote, and a source that follows an alias.

A model version's artifacts are ``model/model.onnx`` and ``model/card.json``, logged by a run of
the experiment ``streamscore``; the card's holdout metrics are the run's metrics and its fields
are tags of the run and of the version. Loading downloads both artifacts into a folder of its own
and applies every start-up check (:func:`stream.scoring.model.load_folder`); the card's version is the
registry's version number, so that predictions name the version MLflow shows.

MLflow is an optional extra (``pip install 'streamscore[mlflow]'``); the worker talks to the
server through MLflow's client at ``MLFLOW_TRACKING_URI``, with a short timeout and two retries so
that a server that does not answer is a one-line error, not minutes of waiting.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from stream.errors import ConfigError, ModelError
from stream.lifecycle.uris import ModelUri
from stream.scoring import model

__all__ = ["MlflowSource", "client", "listing", "promote", "register"]

EXPERIMENT = "streamscore"
ARTIFACT_PATH = "model"
EXTRA = "pip install 'streamscore[mlflow]'"
T = TypeVar("T")

for _name, _value in (
    ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2"),
    ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1"),
    ("MLFLOW_HTTP_REQUEST_TIMEOUT", "10"),
    ("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true"),
):
    os.environ.setdefault(_name, _value)


def client(tracking_uri: str | None) -> Any:
    """An ``MlflowClient`` for ``tracking_uri``; a one-line error when MLflow or the URI is missing."""
    if not tracking_uri:
        raise ConfigError(
            "MLflow's registry (a models:/ URI, model register) needs MLFLOW_TRACKING_URI: set it to the "
            "MLflow server's address"
        )
    try:
        from mlflow import MlflowClient
    except ImportError:
        raise ConfigError(
            f"MLflow's registry (a models:/ URI) needs MLflow, an optional extra: {EXTRA}"
        ) from None
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _call(what: str, tracking_uri: str, fn: Callable[[], T]) -> T:
    """``fn()``; any failure of the client becomes one :class:`ModelError` line saying ``what``."""
    try:
        return fn()
    except ModelError:
        raise
    except Exception as exc:  # MlflowException, requests' errors: one line either way
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"MLflow at {tracking_uri}: {what}: {first[:300]}") from exc


class MlflowSource:
    """A model of the MLflow registry: a fixed version, or the version an alias points at."""

    def __init__(self, uri: ModelUri, tracking_uri: str | None, cache: Path) -> None:
        self.uri, self.tracking_uri, self.cache = uri, tracking_uri or "", cache
        self.client = client(tracking_uri)

    def current(self) -> str:
        """The version the URI names now (one request when it is an alias)."""
        uri = self.uri
        if uri.version is not None:
            return uri.version
        what = (
            f"no version of {uri.name!r} under alias {uri.alias!r} (set it with `streamscore model promote`)"
        )
        found = _call(
            what, self.tracking_uri, lambda: self.client.get_model_version_by_alias(uri.name, uri.alias)
        )
        return str(found.version)

    def stamp(self, version: str) -> Hashable:
        """A version's artifacts do not change: a refused version is not tried again."""
        return version

    def load(self, version: str) -> model.LoadedModel:
        """Download ``version``'s ONNX file and card, then every start-up check."""
        name, where = self.uri.name, f"models:/{self.uri.name}/{version}"
        self.cache.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f"{name}-{version}-", dir=self.cache))
        try:
            _call(
                f"cannot download {where}",
                self.tracking_uri,
                lambda: self._download(name, version, folder),
            )
            missing = [f for f in (model.MODEL_FILE, model.CARD_FILE) if not (folder / f).is_file()]
            if missing:
                raise ModelError(
                    f"{where} has no {' and no '.join(missing)} among its artifacts: register it with "
                    "`streamscore model register FOLDER`"
                )
            try:
                loaded = model.load_folder(folder)
            except ModelError as exc:
                raise ModelError(str(exc).replace(str(folder), where)) from exc
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if loaded.card.name != name:
            raise ModelError(
                f"{where} holds a card of model {loaded.card.name!r}: register it under its own name"
            )
        card = loaded.card.model_copy(update={"version": version})
        return dataclasses.replace(loaded, card=card, path=Path(where) / model.MODEL_FILE)

    def _download(self, name: str, version: str, folder: Path) -> None:
        from mlflow.artifacts import download_artifacts

        source = self.client.get_model_version_download_uri(name, version)
        fetched = download_artifacts(
            artifact_uri=source, dst_path=str(folder), tracking_uri=self.tracking_uri
        )
        for file in (model.MODEL_FILE, model.CARD_FILE):  # the artifacts' own folder, flattened
            if (Path(fetched) / file).is_file() and Path(fetched) != folder:
                os.replace(Path(fetched) / file, folder / file)


def register(tracking_uri: str | None, folder: Path, alias: str | None = None) -> tuple[str, str]:
    """Publish the folder model in ``folder`` (checked first); return its name and new version."""
    mlflow = client(tracking_uri)
    uri = tracking_uri or ""
    loaded = model.load_folder(folder)  # a model that would be refused at start-up is not published
    card = loaded.card
    tags = {
        "streamscore.card_version": card.version,
        "streamscore.sha256": card.sha256,
        "streamscore.created_at": card.created_at.isoformat(),
        "streamscore.inputs": ",".join(i.name for i in card.inputs),
        "streamscore.task": card.output.task,
        "streamscore.features": ",".join(f.name for f in card.features),
        "streamscore.threshold": str(card.output.threshold),
    }

    def publish() -> tuple[str, str]:
        experiment = mlflow.get_experiment_by_name(EXPERIMENT)
        experiment_id = experiment.experiment_id if experiment else mlflow.create_experiment(EXPERIMENT)
        run = mlflow.create_run(experiment_id, run_name=f"register {card.name} {card.version}", tags=tags)
        run_id = run.info.run_id
        for file in (model.MODEL_FILE, model.CARD_FILE):
            mlflow.log_artifact(run_id, str(folder / file), ARTIFACT_PATH)
        for key, value in card.metrics.items():
            mlflow.log_metric(run_id, key, value)
        mlflow.set_terminated(run_id)
        if not mlflow.search_registered_models(filter_string=f"name='{card.name}'"):
            mlflow.create_registered_model(card.name, description=card.description)
        version = mlflow.create_model_version(
            card.name,
            source=f"{run.info.artifact_uri}/{ARTIFACT_PATH}",
            run_id=run_id,
            tags=tags,
            description=card.description,
        )
        if alias:
            mlflow.set_registered_model_alias(card.name, alias, version.version)
        return card.name, str(version.version)

    return _call(f"cannot register {folder}", uri, publish)


def promote(tracking_uri: str | None, name: str, version: str, alias: str) -> str | None:
    """Point ``alias`` of ``name`` at ``version``; return the version it pointed at before."""
    mlflow = client(tracking_uri)
    uri = tracking_uri or ""
    _call(f"no version {version} of {name!r}", uri, lambda: mlflow.get_model_version(name, version))
    registered = _call(f"no model {name!r}", uri, lambda: mlflow.get_registered_model(name))
    previous = (getattr(registered, "aliases", None) or {}).get(alias)
    _call(f"cannot set alias {alias!r}", uri, lambda: mlflow.set_registered_model_alias(name, alias, version))
    return None if previous is None else str(previous)


def listing(tracking_uri: str | None) -> Iterator[str]:
    """One line per version of every registered model: sha256, aliases, holdout metrics."""
    mlflow = client(tracking_uri)
    uri = tracking_uri or ""
    models = _call("cannot list models", uri, lambda: mlflow.search_registered_models())
    for registered in sorted(models, key=lambda m: m.name):
        pointed: dict[str, list[str]] = {}
        for alias, version in sorted((getattr(registered, "aliases", None) or {}).items()):
            pointed.setdefault(str(version), []).append(f"@{alias}")
        versions = _call(
            f"cannot list versions of {registered.name!r}",
            uri,
            lambda name=registered.name: mlflow.search_model_versions(f"name='{name}'"),
        )
        for mv in sorted(versions, key=lambda v: int(v.version)):
            metrics = mlflow.get_run(mv.run_id).data.metrics if mv.run_id else {}
            shown = ", ".join(f"{k} {x:.4f}" for k, x in sorted(metrics.items()))
            sha = (mv.tags or {}).get("streamscore.sha256", "?")[:12]
            marks = " ".join(pointed.get(str(mv.version), []))
            yield f"{mv.name} {mv.version}  sha256 {sha}  {shown}" + (f"  {marks}" if marks else "")
