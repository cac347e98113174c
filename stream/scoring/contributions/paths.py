"""A tree ensemble's decisions, leaf paths and node covers, and the Shapley values of one leaf.

Path-dependent TreeSHAP splits into one game per leaf: with ``P`` the distinct features on the
leaf's path, ``s_u`` whether the row meets every condition on ``u`` along it and ``r_u`` the product
of the cover ratios (child over parent) of those branches, the leaf adds
``v * prod_{u in S} s_u * prod_{u in P \\ S} r_u`` to the expectation given the features ``S``.
:func:`leaf_shapley` gives that game's Shapley values for many leaves and rows at once; a path is
padded to ``width`` slots with null players (``s = r = 1``), which change no one's value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stream.scoring.contributions.graph import Forest

CHUNK = 8_192
"""Reference rows sent through the trees at a time when counting covers."""


class Decisions:
    """Which branch each row takes at every branch node: ``go[b, n]``, True for the true branch."""

    __slots__ = ("_feature", "_missing", "_modes", "_threshold", "branch", "row_of")

    def __init__(self, forest: Forest) -> None:
        self.branch = np.flatnonzero(forest.mode >= 0)
        self.row_of = np.full(len(forest.mode), -1, dtype=np.intp)
        self.row_of[self.branch] = np.arange(len(self.branch))
        self._feature = forest.feature[self.branch]
        dtype = np.float32 if forest.float32 else np.float64
        self._threshold = forest.threshold[self.branch].astype(dtype)[:, None]
        modes = forest.mode[self.branch]
        self._modes = [(int(m), np.flatnonzero(modes == m)) for m in np.unique(modes)]
        self._missing = forest.missing_true[self.branch][:, None]

    def __call__(self, tensor: np.ndarray) -> np.ndarray:
        """``go`` of rows ``tensor`` (the trees' input, in its element type): ``[branches, rows]``."""
        xs = tensor.T[self._feature]
        if len(self._modes) == 1:
            go = _compare(self._modes[0][0], xs, self._threshold)
        else:
            go = np.empty(xs.shape, dtype=bool)
            for mode, at in self._modes:
                go[at] = _compare(mode, xs[at], self._threshold[at])
        if np.isnan(tensor).any():
            go = np.where(np.isnan(xs), self._missing, go)
        return go


def _compare(mode: int, xs: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    if mode == 0:
        return xs <= threshold
    if mode == 1:
        return xs < threshold
    if mode == 2:
        return xs >= threshold
    if mode == 3:
        return xs > threshold
    return (xs == threshold) if mode == 4 else (xs != threshold)


@dataclass(frozen=True, slots=True)
class Paths:
    """Every leaf (ONNX index) and the branches from its tree's root to it."""

    leaf: np.ndarray
    tree: np.ndarray  # position of each leaf's tree, 0..trees-1
    edges: list[list[tuple[int, bool]]]  # per leaf: (branch node, took the true branch)


def paths(forest: Forest) -> Paths:
    """The leaves of ``forest`` in tree order and their paths; refused (ValueError) if not trees."""
    children = set(forest.true_at[forest.mode >= 0].tolist()) | set(
        forest.false_at[forest.mode >= 0].tolist()
    )
    roots = [k for k in range(len(forest.mode)) if k not in children]
    leaf, tree, edges = [], [], []
    for position, root in enumerate(roots):
        stack: list[tuple[int, list[tuple[int, bool]]]] = [(root, [])]
        while stack:
            node, path = stack.pop()
            if len(path) > len(forest.mode):
                raise ValueError("the tree ensemble's nodes form a cycle")
            if forest.mode[node] < 0:
                leaf.append(node)
                tree.append(position)
                edges.append(path)
                continue
            stack.append((int(forest.false_at[node]), [*path, (node, False)]))
            stack.append((int(forest.true_at[node]), [*path, (node, True)]))
    return Paths(np.array(leaf, dtype=np.intp), np.array(tree, dtype=np.intp), edges)


def covers(forest: Forest, tensor: np.ndarray) -> np.ndarray:
    """How many rows of ``tensor`` pass through each node, in ONNX node order."""
    decide, found = Decisions(forest), paths(forest)
    counts = np.zeros(len(found.leaf), dtype=np.float64)
    for start in range(0, len(tensor), CHUNK):
        go = decide(tensor[start : start + CHUNK])
        for i, path in enumerate(found.edges):
            reached = np.ones(go.shape[1], dtype=bool)
            for node, took in path:
                reached &= go[decide.row_of[node]] == took
            counts[i] += reached.sum()
    cover = np.zeros(len(forest.mode), dtype=np.float64)
    for i, path in enumerate(found.edges):
        for node in [n for n, _ in path] + [int(found.leaf[i])]:
            cover[node] += counts[i]
    return cover


def ratio(cover: np.ndarray, parent: int, child: int) -> float:
    """The share of a node's cover its child takes (an even split where no reference row went)."""
    return float(cover[child] / cover[parent]) if cover[parent] > 0 else 0.5


def leaf_shapley(value: np.ndarray, r: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Shapley values of leaf games: ``value`` ``[L, 1]``, ``r`` ``[L, width, 1]``, ``s`` ``[L, width, C]``
    (slot axis 1) to ``[L, width, C]``: feature ``i`` gets ``v (s_i - r_i) sum_m w_m e_m`` with ``e_m``
    the coefficients of ``prod_{j != i} (r_j + z s_j)`` and ``w_m = m! (width - 1 - m)! / width!``."""
    width = r.shape[1]
    weights = [
        math.factorial(m) * math.factorial(width - 1 - m) / math.factorial(width) for m in range(width)
    ]
    out = np.empty(np.broadcast_shapes(r.shape, s.shape), dtype=np.float64)
    for i in range(width):
        e = [np.ones_like(s[:, 0])]
        for j in range(width):
            if j == i:
                continue
            rj, sj = r[:, j], s[:, j]
            e = [e[0] * rj, *(e[m] * rj + e[m - 1] * sj for m in range(1, len(e))), e[-1] * sj]
        total = sum(w * c for w, c in zip(weights, e, strict=True))
        out[:, i] = value * (s[:, i] - r[:, i]) * total
    return out
