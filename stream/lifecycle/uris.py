"""Model URIs: one string names a model in either registry.

- ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``: the MLflow model registry at
  ``MLFLOW_TRACKING_URI`` (MLflow's own spelling);
- ``PATH/NAME@ALIAS``: the folder registry at ``PATH``, through the alias pointer that
  ``streamscore model promote`` writes;
- ``PATH/NAME/VERSION``: one version of the folder registry (a folder holding ``card.json``);
- ``PATH/NAME``: the folder registry's highest version.

An alias, or the highest version, can move: a worker watching it serves the new version once it
passes its checks. A version named outright never moves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from stream.errors import ModelError
from stream.scoring.model import CARD_FILE

__all__ = ["MLFLOW_PREFIX", "ModelUri", "of_folder", "parse"]

MLFLOW_PREFIX = "models:/"
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}"
_MLFLOW = re.compile(rf"^models:/(?P<name>{_NAME})(?:@(?P<alias>{_NAME})|/(?P<version>[0-9]+))$")
_FOLDER_ALIAS = re.compile(rf"^(?P<path>.+)/(?P<name>{_NAME})@(?P<alias>{_NAME})$")


@dataclass(frozen=True, slots=True)
class ModelUri:
    """A model in a registry: fixed at ``version``, or following ``alias`` (or, in a folder, the latest)."""

    registry: Literal["folder", "mlflow"]
    name: str
    version: str | None = None
    alias: str | None = None
    root: Path | None = None  # the folder registry's root

    @property
    def moves(self) -> bool:
        """True when the version it names can change (an alias, or the latest)."""
        return self.version is None

    def __str__(self) -> str:
        at = f"@{self.alias}" if self.alias else (f"/{self.version}" if self.version else "")
        return (
            f"{MLFLOW_PREFIX}{self.name}{at}" if self.registry == "mlflow" else f"{self.root}/{self.name}{at}"
        )


def parse(text: str) -> ModelUri:
    """The :class:`ModelUri` ``text`` spells; :class:`ModelError` saying the forms if it spells none."""
    text = text.strip().rstrip("/")
    if text.startswith(MLFLOW_PREFIX):
        m = _MLFLOW.match(text)
        if m is None:
            raise ModelError(
                f"model URI {text!r} is not models:/NAME@ALIAS or models:/NAME/VERSION (a number)"
            )
        return ModelUri("mlflow", m["name"], m["version"], m["alias"])
    if (m := _FOLDER_ALIAS.match(text)) is not None:
        return ModelUri("folder", m["name"], alias=m["alias"], root=Path(m["path"]))
    path = Path(text)
    if (path / CARD_FILE).is_file():
        return ModelUri("folder", path.parent.name, version=path.name, root=path.parent.parent)
    if path.is_dir() and path.name and str(path.parent):
        return ModelUri("folder", path.name, root=path.parent)
    raise ModelError(
        f"model URI {text!r} names no model: use models:/NAME@ALIAS or models:/NAME/VERSION (MLflow), "
        "or a folder registry's PATH/NAME@ALIAS, PATH/NAME/VERSION or PATH/NAME (latest)"
    )


def of_folder(root: Path, name: str, version: str) -> ModelUri:
    """The URI of STREAMSCORE_MODEL_DIR, _NAME and _VERSION (``latest`` or a version)."""
    return ModelUri("folder", name, None if version == "latest" else version, root=root)
