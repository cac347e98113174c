"""From a batch's rows to the graph's inputs, and from its outputs to scores: planned once per model.

The hot path holds a batch as ``x``, the card's features in card order (numbers; a string
feature's column holds its category code), and ``texts``, the string features' values in card
order (an object array, None when the card has none). A :class:`Feeds` made from the card and the
session turns them into the graph's inputs: one float tensor of every feature is ``x`` itself (no
copy), other inputs are column slices cast to their element type; strings go in as they came.

:class:`Answers` reads the outputs the card names: a binary classifier's positive-class
probability (a tensor ``[N, C]`` or skl2onnx's ZipMap), a multiclass classifier's probabilities
with the most probable class as its label, or a regressor's value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from stream.model_card import ModelCard

DTYPES: dict[str, Any] = {
    "float": np.float32,
    "double": np.float64,
    "int32": np.int32,
    "int64": np.int64,
    "string": object,
}
"""The numpy type of each element type a card may name."""
ORT_TYPES = {f"tensor({name})": name for name in DTYPES}


class Scored(NamedTuple):
    """A batch's answers: a score per row, and for a multiclass model the labels and probabilities."""

    scores: np.ndarray
    labels: list[str] | None = None
    probabilities: np.ndarray | None = None


class _Input(NamedTuple):
    name: str
    strings: bool  # taken from texts, else from x
    columns: np.ndarray | None  # None: every column of x, in order
    dtype: Any
    flat: bool  # a rank-1 input: one column as [N]


class Feeds:
    """The graph's inputs for a batch, planned from the card once."""

    __slots__ = ("_inputs", "string_names", "wide")

    def __init__(self, card: ModelCard, ranks: Mapping[str, int]) -> None:
        """``ranks``: each graph input's rank (1 or 2)."""
        names = [f.name for f in card.features]
        self.string_names = [f.name for f in card.features if f.type == "string"]
        number_at = {name: i for i, name in enumerate(names)}
        string_at = {name: i for i, name in enumerate(self.string_names)}
        self._inputs: list[_Input] = []
        for spec in card.inputs:
            strings = spec.type == "string"
            at = string_at if strings else number_at
            cols = np.array([at[f] for f in spec.features], dtype=np.intp)
            every = not strings and cols.tolist() == list(range(len(names)))
            flat = ranks.get(spec.name, 2) == 1
            self._inputs.append(_Input(spec.name, strings, None if every else cols, DTYPES[spec.type], flat))
        self.wide = any(i.dtype in (np.float64, np.int64) for i in self._inputs)
        """Some input takes doubles or 64-bit integers: rows are read as float64, not float32."""

    def __call__(self, x: np.ndarray, texts: np.ndarray | None) -> dict[str, np.ndarray]:
        feeds = {}
        for name, strings, columns, dtype, flat in self._inputs:
            source = texts if strings else x
            assert source is not None, "a card with string features is fed texts"
            part = source if columns is None else source[:, columns]
            if flat:
                part = part[:, 0]
            feeds[name] = part if part.dtype == dtype else part.astype(dtype)
        return feeds

    def table(
        self, card: ModelCard, data: Mapping[str, Sequence[Any] | np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``x`` and ``texts`` from columns by feature name (strings need not be in the categories)."""
        n = len(next(iter(data.values()))) if data else 0
        x = np.zeros((n, len(card.features)), dtype=np.float64 if self.wide else np.float32)
        texts = np.empty((n, len(self.string_names)), dtype=object) if self.string_names else None
        for i, spec in enumerate(card.features):
            values = data[spec.name]
            if spec.type == "string" and texts is not None:
                column = self.string_names.index(spec.name)
                texts[:, column] = [str(v) for v in values]
                x[:, i] = category_codes(spec.categories or [], texts[:, column])
            else:
                x[:, i] = np.asarray(values, dtype=np.float64)
        return x, texts


def category_codes(categories: Sequence[str], values: Sequence[str] | np.ndarray) -> np.ndarray:
    """Each value's index in ``categories``; -1 for one never seen in the reference."""
    at = {c: i for i, c in enumerate(categories)}
    return np.array([at.get(v, -1) for v in values], dtype=np.float64)


class Answers:
    """Reads the scores (and a multiclass model's labels) from the graph's outputs."""

    __slots__ = ("_classes", "_positive", "_task", "_zipmap", "outputs")

    def __init__(self, card: ModelCard) -> None:
        out = card.output
        self.outputs = [out.tensor]
        self._task, self._zipmap, self._positive = out.task, out.zipmap, out.positive_index
        self._classes = np.array(out.classes or [out.negative_label, out.positive_label], dtype=object)
        if out.zipmap and not out.classes:  # the maps are read in the order negative, positive
            self._positive = 1

    def __call__(self, produced: Sequence[Any]) -> Scored:
        out = produced[0]
        if self._task == "regression":
            return Scored(np.asarray(out, dtype=np.float64).reshape(-1))
        if self._zipmap:
            out = self._unzip(out)
        probabilities = np.asarray(out)
        if self._task == "binary":
            return Scored(probabilities[:, self._positive])
        top = probabilities.argmax(axis=1)
        scores = probabilities[np.arange(len(top)), top]
        return Scored(scores, self._classes[top].tolist(), probabilities)

    def _unzip(self, maps: Sequence[Mapping[Any, float]]) -> np.ndarray:
        """A ZipMap's maps as a ``[N, C]`` array in the card's class order."""
        if not maps:
            return np.zeros((0, len(self._classes)), dtype=np.float32)
        by_label = {str(k): k for k in maps[0]}
        keys = [by_label[str(c)] for c in self._classes]
        return np.array([[m[k] for k in keys] for m in maps], dtype=np.float32)
