"""The folder registry's side of the lifecycle: its aliases, its listing, and a source over it.

Versions live in ``<root>/<name>/<version>/`` (:mod:`stream.scoring.model`). An alias is a pointer in
``<root>/<name>/aliases.json`` (``{"champion": "3"}``), written whole and renamed into place, so
that a watcher reads the old pointer or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Hashable, Iterator
from pathlib import Path

from stream.errors import ModelError
from stream.lifecycle.uris import ModelUri
from stream.scoring import model

__all__ = ["FolderSource", "aliases", "listing", "set_alias"]

ALIASES_FILE = "aliases.json"


def aliases(root: Path, name: str) -> dict[str, str]:
    """The aliases of ``name``: alias -> version (empty when none was set)."""
    path = root / name / ALIASES_FILE
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the aliases of {name!r} in {path}: {exc}") from exc
    if not isinstance(doc, dict) or not all(isinstance(v, str) for v in doc.values()):
        raise ModelError(f"{path} is not a JSON object of alias -> version: restore it or promote again")
    return doc


def set_alias(root: Path, name: str, alias: str, version: str) -> str | None:
    """Point ``alias`` of ``name`` at ``version`` (which must load); return the version it had."""
    model.load(root, name, version)  # every start-up check, before anyone is pointed at it
    current = aliases(root, name)
    previous = current.get(alias)
    current[alias] = version
    path = root / name / ALIASES_FILE
    staging = path.with_suffix(".json.tmp")
    staging.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    os.replace(staging, path)
    return previous


def listing(root: Path) -> Iterator[str]:
    """One line per version of every model in the registry: sha256, aliases, holdout metrics."""
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        pointed: dict[str, list[str]] = {}
        for alias, version in sorted(aliases(root, folder.name).items()):
            pointed.setdefault(version, []).append(f"@{alias}")
        for v in model.versions(root, folder.name):
            card = model.load_card(folder / v)
            metrics = ", ".join(f"{k} {x:.4f}" for k, x in card.metrics.items())
            marks = " ".join(pointed.get(v, []))
            yield f"{card.name} {card.version}  sha256 {card.sha256[:12]}  {metrics}" + (
                f"  {marks}" if marks else ""
            )


class FolderSource:
    """A model of the folder registry: a fixed version, an alias, or the highest version."""

    def __init__(self, uri: ModelUri) -> None:
        assert uri.root is not None
        self.uri, self.root = uri, uri.root

    def current(self) -> str:
        """The version the URI names now."""
        uri = self.uri
        if uri.version is not None:
            return uri.version
        if uri.alias is not None:
            version = aliases(self.root, uri.name).get(uri.alias)
            if version is None:
                raise ModelError(
                    f"model {uri.name!r} has no alias {uri.alias!r} in {self.root}: set it with "
                    f"`streamscore model promote {uri.name} VERSION --alias {uri.alias}`"
                )
            return version
        return model.resolve(self.root, uri.name).name

    def stamp(self, version: str) -> Hashable:
        """The version as its files are now: a refused version is tried again only once they change."""
        folder = self.root / self.uri.name / version

        def stat(path: Path) -> tuple[int, int] | None:
            try:
                st = path.stat()
            except OSError:
                return None
            return st.st_mtime_ns, st.st_size

        return version, stat(folder / model.CARD_FILE), stat(folder / model.MODEL_FILE)

    def load(self, version: str) -> model.LoadedModel:
        """``version`` loaded and verified (every start-up check)."""
        return model.load(self.root, self.uri.name, version)
