"""The graph run on every reference row: the columns as its inputs, a probe batch first, then chunks.

A column of the wrong type for its input (text into a number, fractions into an integer) is
refused before anything runs, with one line saying what to fix.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from stream.errors import ModelError
from stream.lifecycle.reference import Column, Reference
from stream.lifecycle.signature import DTYPES
from stream.model_card import ModelInput

__all__ = ["feed_type", "feeds", "run"]

PROBE_ROWS = 256
CHUNK_ROWS = 20_000


def feed_type(column: Column, given: ModelInput) -> str:
    """The feature type of ``column`` feeding ``given``; a column of the wrong type is refused."""
    if given.type == "string":
        return "string"
    if column.numbers is None:
        row, text = column.not_number or (0, "")
        raise ModelError(
            f"column {column.name!r} holds {text!r} (row {row}), not a number, but input {given.name!r} "
            f"takes {given.type}: fix the column or export the model with a string input"
        )
    if given.type in ("int32", "int64"):
        if column.type != "integer":
            raise ModelError(
                f"column {column.name!r} holds numbers that are not whole, but input {given.name!r} takes "
                f"{given.type}: fix the column or export the model with a float input"
            )
        return "integer"
    return column.type


def feeds(inputs: list[ModelInput], ref: Reference, ranks: dict[str, int]) -> dict[str, np.ndarray]:
    """Every reference row as the graph's inputs."""
    fed = {}
    for given in inputs:
        cols = [ref.columns[f] for f in given.features]
        if given.type == "string":
            block = np.column_stack([c.texts for c in cols]).astype(object)
        else:
            block = np.column_stack([c.numbers for c in cols]).astype(DTYPES[given.type])
        fed[given.name] = block[:, 0] if ranks[given.name] == 1 else block
    return fed


def run(session: Any, fed: dict[str, np.ndarray], rows: int) -> dict[str, Any]:
    """Every output of the graph on every row: a probe batch first, then in chunks."""
    names = [o.name for o in session.get_outputs()]
    parts: dict[str, list[Any]] = {n: [] for n in names}
    bounds = [0, min(PROBE_ROWS, rows), *range(PROBE_ROWS + CHUNK_ROWS, rows, CHUNK_ROWS), rows]
    for start, end in itertools.pairwise(bounds):
        if end <= start:
            continue
        try:
            produced = session.run(names, {k: v[start:end] for k, v in fed.items()})
        except Exception as exc:  # onnxruntime raises its own exception types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"the model fails on reference rows {start + 1}-{end}: {first}") from exc
        for n, value in zip(names, produced, strict=True):
            parts[n].append(value)
    return {n: _joined(p) for n, p in parts.items()}


def _joined(parts: list[Any]) -> Any:
    if isinstance(parts[0], list):
        return [m for part in parts for m in part]
    return np.concatenate([np.asarray(p) for p in parts])
