"""An ONNX graph's inputs and outputs, as onnxruntime declares them, mapped onto a reference's columns.

Inputs: ONE tensor ``[N, F]`` taking the features in order, or ONE INPUT PER COLUMN (named like
the column, ``[N, 1]`` or ``[N]``), of floats, doubles, 32/64-bit integers or strings.
Outputs, read from what the graph answers on reference rows: a classifier's probabilities (a
tensor ``[N, C]``, or skl2onnx's ZipMap: a sequence of maps), with or without its labels, or a
regressor's one value per row. Anything else is refused with one line saying what to fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from stream.errors import ModelError
from stream.lifecycle.reference import Column
from stream.model_card import InputType, ModelInput, Task

__all__ = [
    "DTYPES",
    "GraphInput",
    "Reading",
    "class_of",
    "graph_inputs",
    "known_classes",
    "larger",
    "map_inputs",
    "read_outputs",
    "truth_of",
]

ELEMENT_TYPES: dict[str, InputType] = {
    "tensor(float)": "float",
    "tensor(double)": "double",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(string)": "string",
}
DTYPES: dict[str, Any] = {"float": np.float32, "double": np.float64, "int32": np.int32, "int64": np.int64}
DTYPES["string"] = object
_VALUES = ("tensor(float)", "tensor(double)")
_LABELS = ("tensor(int64)", "tensor(int32)", "tensor(string)")
_UNDERSTOOD = (
    "streamscore reads a classifier's probabilities (a tensor [N, C] or a ZipMap) beside its labels, "
    "or a regressor's one value per row ([N] or [N, 1])"
)


class GraphInput(NamedTuple):
    """One input of the graph: its name, element type, rank and width (None: not fixed)."""

    name: str
    type: InputType
    rank: int
    width: int | None


class Reading(NamedTuple):
    """How the graph answers: its task, the output to read and a classifier's class labels."""

    task: Task
    tensor: str
    zipmap: bool
    classes: list[str] | None
    """A classifier's label of each probability column (a ZipMap's: in the order of its keys)."""


def graph_inputs(session: Any) -> list[GraphInput]:
    """The graph's inputs; one of an element type or rank streamscore cannot feed is refused."""
    found = []
    for i in session.get_inputs():
        kind = ELEMENT_TYPES.get(i.type)
        if kind is None or len(i.shape) not in (1, 2):
            raise ModelError(
                f"input {i.name!r} of the model is {i.type}{list(i.shape)}: streamscore feeds tensors "
                "[N, F] or [N] of float, double, int32, int64 or string"
            )
        width = 1 if len(i.shape) == 1 else i.shape[1] if isinstance(i.shape[1], int) else None
        found.append(GraphInput(i.name, kind, len(i.shape), width))
    return found


def map_inputs(
    inputs: Sequence[GraphInput], columns: Sequence[str], label: str | None, chosen: Sequence[str] | None
) -> list[ModelInput]:
    """The card's inputs: which columns feed each graph input, in its column order."""
    narrow = all(i.width in (1, None) for i in inputs)
    several = chosen is not None and len(chosen) > 1
    single = len(inputs) == 1 and (inputs[0].name not in columns or not narrow or several)
    if single:
        return [_one_tensor(inputs[0], columns, label, chosen)]
    if not narrow:
        shown = ", ".join(f"{i.name} [N, {i.width or '?'}]" for i in inputs)
        raise ModelError(
            f"the model takes inputs {shown}: streamscore feeds one tensor [N, F] of every feature "
            "or one input [N, 1] per column, named like the column"
        )
    return _per_column(inputs, columns, label, chosen)


def _one_tensor(
    tensor: GraphInput, columns: Sequence[str], label: str | None, chosen: Sequence[str] | None
) -> ModelInput:
    names = list(chosen) if chosen is not None else [c for c in columns if c != label]
    missing = [n for n in names if n not in columns]
    if missing:
        raise ModelError(f"--features names {missing[0]!r}, not a column of the reference: {list(columns)}")
    if label is not None and label in names:
        raise ModelError(f"--label {label!r} is also a feature: leave it out of --features")
    if tensor.width is not None and tensor.width != len(names):
        given = "--features names" if chosen is not None else "the reference has"
        given += ", besides the label," if label is not None and chosen is None else ""
        hint = "" if label is not None or chosen is not None else " (and its label column with --label)"
        raise ModelError(
            f"input {tensor.name!r} takes {tensor.width} features and {given} {len(names)} "
            f"({', '.join(names)}): name the model's {tensor.width} features in order with --features{hint}"
        )
    return ModelInput(name=tensor.name, type=tensor.type, features=names)


def _per_column(
    inputs: Sequence[GraphInput], columns: Sequence[str], label: str | None, chosen: Sequence[str] | None
) -> list[ModelInput]:
    names = [i.name for i in inputs]
    for i in inputs:
        if i.name not in columns:
            raise ModelError(
                f"input {i.name!r} of the model: no column of the reference feeds it; the model takes "
                f"one input per column ({', '.join(names)}), the reference has {', '.join(columns)}"
            )
        if i.name == label:
            raise ModelError(f"--label {label!r} is a column the model takes as input {i.name!r}")
    if chosen is not None and sorted(chosen) != sorted(names):
        raise ModelError(
            f"--features names {', '.join(chosen)}: the model takes one input per column, "
            f"{', '.join(names)}; leave --features out or name exactly those"
        )
    by_name = {i.name: i for i in inputs}
    return [ModelInput(name=n, type=by_name[n].type, features=[n]) for n in (chosen or names)]


def _rows(value: Any) -> tuple[int, ...]:
    return np.shape(value) if not isinstance(value, list) else (len(value),)


def _wide(shape: tuple[int, ...]) -> bool:
    return len(shape) == 2 and shape[1] >= 2


def read_outputs(
    session: Any, produced: Mapping[str, Any], known: Sequence[str] | None
) -> tuple[Reading, np.ndarray]:
    """How to read the outputs, from what the graph ``produced`` on reference rows (all of its outputs).

    Returns the reading and, for a classifier, the probabilities ``[N, C]`` in class order (a
    regressor: its values ``[N]``). ``known``: the label column's classes, sorted, when there is one.
    """
    outs = {o.name: o for o in session.get_outputs()}
    n = len(next(iter(produced.values())))
    probs = [
        o.name
        for o in outs.values()
        if o.type.startswith("seq(map(") or (o.type in _VALUES and _wide(_rows(produced[o.name])))
    ]
    labels = [
        o.name for o in outs.values() if o.type in _LABELS and _rows(produced[o.name]) in ((n,), (n, 1))
    ]
    if len(probs) == 1:
        others = [o for o in outs if o not in probs and o not in labels[:1]]
        if others:
            o = outs[others[0]]
            raise ModelError(f"output {o.name!r} ({o.type}) of the model is not understood: {_UNDERSTOOD}")
        return _classifier(outs[probs[0]], produced, labels[0] if labels else None, known)
    if not probs and len(outs) == 1:
        o = next(iter(outs.values()))
        if o.type in _VALUES and _rows(produced[o.name]) in ((n,), (n, 1)):
            values = np.asarray(produced[o.name], dtype=np.float64).reshape(-1)
            _check_rows(o.name, ~np.isfinite(values), values, "a finite value")
            return Reading("regression", o.name, False, None), values
    shown = ", ".join(f"{o.name} ({o.type} {list(_rows(produced[o.name]))})" for o in outs.values())
    raise ModelError(f"the model's outputs {shown} are not understood: {_UNDERSTOOD}")


def _classifier(
    out: Any, produced: Mapping[str, Any], label: str | None, known: Sequence[str] | None
) -> tuple[Reading, np.ndarray]:
    value = produced[out.name]
    zipmap = out.type.startswith("seq(map(")
    if zipmap:
        keys = list(value[0]) if value else []
        classes = [str(k) for k in keys]
        probabilities = np.array([[m[k] for k in keys] for m in value], dtype=np.float64)
    else:
        probabilities = np.asarray(value, dtype=np.float64)
        decided = None if label is None else np.asarray(produced[label]).reshape(-1)
        classes = _tensor_classes(out.name, probabilities, decided, known)
    wrong = ~np.isfinite(probabilities).all(axis=1) | (np.abs(probabilities.sum(axis=1) - 1.0) > 1e-3)
    wrong |= ((probabilities < -1e-6) | (probabilities > 1 + 1e-6)).any(axis=1)
    _check_rows(out.name, wrong, probabilities, "class probabilities (each in [0, 1], summing to 1)")
    task: Task = "binary" if len(classes) == 2 else "multiclass"
    return Reading(task, out.name, zipmap, classes), probabilities


def _check_rows(output: str, wrong: np.ndarray, values: np.ndarray, what: str) -> None:
    """Refuse the output when a reference row's answer is not ``what``."""
    if wrong.any():
        row = int(np.argmax(wrong))
        shown = np.array2string(np.asarray(values[row]), precision=4, separator=", ")
        raise ModelError(
            f"output {output!r} of the model gives {shown} for reference row {row + 1}: not {what}"
        )


def _tensor_classes(
    output: str, probabilities: np.ndarray, decided: np.ndarray | None, known: Sequence[str] | None
) -> list[str]:
    """Each probability column's class: the label the graph decides where the column is the largest."""
    width = probabilities.shape[1]
    if decided is None:
        return list(known) if known is not None and len(known) == width else [str(j) for j in range(width)]
    top = probabilities.argmax(axis=1)
    seen: dict[int, str] = {}
    for j in range(width):
        found, counts = np.unique(decided[top == j].astype(str), return_counts=True)
        if len(found):
            seen[j] = str(found[counts.argmax()])
    if len(seen) == width:
        return [seen[j] for j in range(width)]
    if known is not None and len(known) == width and all(known[j] == c for j, c in seen.items()):
        return list(known)
    missing = next(j for j in range(width) if j not in seen)
    raise ModelError(
        f"column {missing} of output {output!r}: no reference row is decided as it, so its class is "
        "unknown; give --label (the label column's classes, sorted, name the columns) or rows of every class"
    )


def class_of(values: np.ndarray) -> list[str]:
    """Labels as the model names classes: whole numbers without a decimal point, others as written."""
    return [str(int(v)) if isinstance(v, float) and v.is_integer() else str(v) for v in values.tolist()]


def labels_of(column: Column) -> list[str]:
    return class_of(column.numbers) if column.numbers is not None else [str(t) for t in column.texts]


def known_classes(column: Column | None) -> list[str] | None:
    """The label column's classes, sorted as the training library sorts them."""
    if column is None:
        return None
    if column.numbers is not None and column.type == "integer":
        return class_of(np.unique(column.numbers))
    return sorted({str(t) for t in column.texts})


def larger(classes: list[str]) -> str:
    if all(re.fullmatch(r"-?\d+", c) for c in classes):
        return max(classes, key=int)
    return max(classes)


def truth_of(column: Column, classes: list[str]) -> np.ndarray:
    """Each row's class index; a label that is not a class of the model is refused."""
    at = {c: i for i, c in enumerate(classes)}
    labels = labels_of(column)
    for row, value in enumerate(labels, start=1):
        if value not in at:
            raise ModelError(
                f"label column {column.name!r} holds {value!r} (row {row}), not a class of the model "
                f"({', '.join(classes)}): name the label column the model was trained on"
            )
    return np.array([at[v] for v in labels], dtype=np.intp)
