"""Exact path-dependent TreeSHAP of a tree ensemble, vectorised over a batch.

Two exact ways, chosen per tree by size:

- a tree of at most ``TREE_BITS`` branch nodes gets a table of its contributions for every way a row
  can go at its branch nodes, made at load: a batch packs each tree's decisions into an index and
  gathers its rows of the table;
- a larger tree's leaves are taken one by one (:func:`~.paths.leaf_shapley`): per leaf a table over
  the patterns of the conditions a row meets on its path's distinct features when there are at most
  ``LEAF_BITS`` of them, else the leaf game's Shapley values computed for the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream.scoring.contributions.graph import Forest
from stream.scoring.contributions.paths import Decisions, Paths, leaf_shapley, paths, ratio

TREE_BITS = 10
"""A tree of at most this many branch nodes is answered from a table of ``2**bits`` rows."""
LEAF_BITS = 8
"""A leaf whose path has at most this many distinct features gets a table of its patterns."""
TABLE_BUDGET = 4_000_000
"""At most this many float64 entries of tree tables (32 MB); larger trees go leaf by leaf."""


@dataclass(frozen=True, slots=True)
class Slots:
    """Leaves with the distinct features of each path in ``width`` slots (a null player pads)."""

    feature: np.ndarray  # [L, width]: card feature index, ``features`` for padding
    ratio: np.ndarray  # [L, width, 1]
    value: np.ndarray  # [L, 1]
    first: np.ndarray  # the slots, most branches first: the row of ``ok`` (go, not go, true) of the first
    deeper: tuple[tuple[int, np.ndarray], ...]  # then for the first n slots, the row of the next branch
    unsort: np.ndarray  # the slots back in leaf order

    def bits(self, ok: np.ndarray) -> np.ndarray:
        """Whether each row meets every condition of each slot: ``[L, width, rows]``."""
        met = ok[self.first]
        for n, more in self.deeper:
            met[:n] &= ok[more]
        return met[self.unsort].reshape(*self.feature.shape, ok.shape[1])

    def table(self) -> np.ndarray:
        """Each leaf's contributions per pattern of the slots' bits: ``[L, width, 2**width]``."""
        width = self.feature.shape[1]
        patterns = (np.arange(1 << width)[None, :] >> np.arange(width)[:, None]) & 1
        return leaf_shapley(self.value, self.ratio, patterns[None].astype(np.float64))


def ok_rows(go: np.ndarray) -> np.ndarray:
    """``go``, its negation and a row of True: what a slot's branches read."""
    return np.vstack([go, ~go, np.ones((1, go.shape[1]), dtype=bool)])


def slots(
    forest: Forest,
    found: Paths,
    leaves: np.ndarray,
    cover: np.ndarray,
    columns: np.ndarray,
    row_of: np.ndarray,
    features: int,
) -> Slots:
    """The ``leaves`` (indices into ``found``) as slots; ``row_of``: each branch node's row of ``go``;
    a padding slot's feature is ``features``."""
    branches = int(row_of.max()) + 1 if len(row_of) else 0
    grouped = []
    for i in leaves:
        by_feature: dict[int, list[tuple[int, float]]] = {}
        for node, took in found.edges[i]:
            child = int(forest.true_at[node] if took else forest.false_at[node])
            row = int(row_of[node]) + (0 if took else branches)
            by_feature.setdefault(int(columns[forest.feature[node]]), []).append(
                (row, ratio(cover, node, child))
            )
        grouped.append(by_feature)
    width = max((len(g) for g in grouped), default=0) or 1
    feature = np.full((len(leaves), width), features, dtype=np.intp)
    ratios = np.ones((len(leaves), width, 1), dtype=np.float64)
    rows: list[list[int]] = []
    for li, by_feature in enumerate(grouped):
        items = list(by_feature.items())
        for slot in range(width):
            if slot < len(items):
                f, taken = items[slot]
                feature[li, slot] = f
                ratios[li, slot, 0] = np.prod([r for _, r in taken])
                rows.append([row for row, _ in taken])
            else:
                rows.append([2 * branches])
    order = sorted(range(len(rows)), key=lambda k: -len(rows[k]))
    ordered = [rows[k] for k in order]
    first = np.array([r[0] for r in ordered], dtype=np.intp)
    deeper = []
    for d in range(1, len(ordered[0]) if ordered else 0):
        n = sum(1 for r in ordered if len(r) > d)
        deeper.append((n, np.array([r[d] for r in ordered[:n]], dtype=np.intp)))
    unsort = np.argsort(np.array(order, dtype=np.intp))
    value = forest.value[found.leaf[leaves]][:, None]
    return Slots(feature, ratios, value, first, tuple(deeper), unsort)


class Scatter:
    """Sums slot values ``[L, width, C]`` per card feature into ``[C, features]`` (padding dropped)."""

    __slots__ = ("_features", "_order", "_present", "_starts")

    def __init__(self, feature: np.ndarray, features: int) -> None:
        flat = feature.ravel()
        self._order = np.argsort(flat, kind="stable")
        ordered = flat[self._order]
        self._starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        self._present = ordered[self._starts]
        self._features = features

    def __call__(self, values: np.ndarray) -> np.ndarray:
        flat = values.reshape(-1, values.shape[-1])[self._order]
        sums = np.add.reduceat(flat, self._starts, axis=0)
        out = np.zeros((values.shape[-1], self._features + 1), dtype=np.float64)
        out[:, self._present] = sums.T
        return out[:, : self._features]


class LeafTable:
    """Each leaf's contributions per pattern of its slots' bits, gathered per batch in feature order.

    A feature's shares ``[slots, rows]`` are summed over slots in slot order: the same bits for a row
    in any batch (a row alone is summed as two, else the sum would run along it, in another order).
    """

    __slots__ = ("_base", "_leaf", "_segments", "_values")

    def __init__(self, leaves: Slots, features: int) -> None:
        table = leaves.table()  # [L, width, patterns]
        width, patterns = table.shape[1], table.shape[2]
        flat = leaves.feature.ravel()
        real = np.flatnonzero(flat < features)
        slot = real[np.argsort(flat[real], kind="stable")]  # the slots of real features, by feature
        self._leaf, self._base = slot // width, (slot * patterns)[:, None]
        self._values = table.ravel()
        ordered = flat[slot]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        ends = np.r_[starts[1:], len(slot)]
        self._segments = [(int(ordered[a]), int(a), int(b)) for a, b in zip(starts, ends, strict=True)]

    def __call__(self, met: np.ndarray, out: np.ndarray) -> None:
        """Add to ``out`` ``[rows, features]`` the contributions of slot bits ``met`` ``[L, width, rows]``."""
        alone = met.shape[2] == 1
        if alone:
            met = np.repeat(met, 2, axis=2)
        pattern = met[:, 0].astype(np.intp)
        for j in range(1, met.shape[1]):
            pattern |= met[:, j].astype(np.intp) << j
        shares = self._values[self._base + pattern[self._leaf]]
        for feature, start, end in self._segments:
            total = shares[start:end].sum(axis=0)
            out[:, feature] += total[:1] if alone else total


class TreeShap:
    """Exact contributions of a tree ensemble's leaves to its summed margin, per card feature."""

    def __init__(self, forest: Forest, cover: np.ndarray, columns: np.ndarray, features: int) -> None:
        """``columns``: the card feature of each input column the trees read."""
        self.decide = Decisions(forest)
        self.features = features
        found = paths(forest)
        every = slots(forest, found, np.arange(len(found.leaf)), cover, columns, self.decide.row_of, features)
        self.expected = float(np.sum(every.value[:, 0] * np.prod(every.ratio[:, :, 0], axis=1)))
        tabled = self._tables(forest, found, cover, columns)
        rest = np.flatnonzero(~np.isin(found.tree, tabled))
        self.leaves = (
            slots(forest, found, rest, cover, columns, self.decide.row_of, features) if len(rest) else None
        )
        self.leaf_table: LeafTable | None = None
        if self.leaves is not None:
            self.scatter = Scatter(self.leaves.feature, features)
            if self.leaves.feature.shape[1] <= LEAF_BITS:
                self.leaf_table = LeafTable(self.leaves, features)

    def _tables(self, forest: Forest, found: Paths, cover: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """A table per tree small enough (see ``TREE_BITS``); the positions of the trees tabled."""
        branches: dict[int, set[int]] = {}
        for t, path in zip(found.tree.tolist(), found.edges, strict=True):
            branches.setdefault(t, set()).update(node for node, _ in path)
        small = sorted(t for t in set(found.tree.tolist()) if len(branches.get(t, ())) <= TREE_BITS)
        bits = max((len(branches.get(t, ())) for t in small), default=0)
        while small and len(small) * (1 << bits) * (self.features + 1) > TABLE_BUDGET:
            small = small[: len(small) // 2]
        # one column more, always 0: the sum over trees never runs along a row's only column, so it
        # adds in tree order whatever the batch's size (a row's contributions are the same bits)
        self.tables = np.zeros((len(small), 1 << bits, self.features + 1), dtype=np.float64)
        local = np.full(len(forest.mode), -1, dtype=np.intp)
        self.gather = np.full((len(small), max(bits, 1)), len(self.decide.branch), dtype=np.intp)
        for k, t in enumerate(small):
            nodes = sorted(branches.get(t, ()))
            local[:] = -1
            local[nodes] = np.arange(len(nodes))
            tree = slots(forest, found, np.flatnonzero(found.tree == t), cover, columns, local, self.features)
            combos = (np.arange(1 << len(nodes))[None, :] >> np.arange(len(nodes))[:, None]) & 1
            met = tree.bits(ok_rows(combos.astype(bool))).astype(np.float64)
            shares = leaf_shapley(tree.value, tree.ratio, met)
            self.tables[k, : 1 << len(nodes), : self.features] = Scatter(tree.feature, self.features)(shares)
            self.gather[k, : len(nodes)] = self.decide.row_of[nodes]
        self.flat = self.tables.reshape(-1, self.features + 1)
        self.bases = (np.arange(len(small)) << bits)[:, None]
        self.weights = (1 << np.arange(self.gather.shape[1])).astype(np.uint8 if bits <= 8 else np.uint16)
        return np.array(small, dtype=np.intp)

    def __call__(self, tensor: np.ndarray) -> np.ndarray:
        """Contributions ``[rows, features]`` of rows ``tensor`` (the trees' input)."""
        go = self.decide(tensor)
        out = np.zeros((len(tensor), self.features), dtype=np.float64)
        if len(self.tables):
            taken = np.vstack([go, np.zeros((1, go.shape[1]), dtype=bool)]).view(np.uint8)[self.gather]
            index = np.einsum("tbn,b->tn", taken, self.weights)
            out += self.flat[self.bases + index].sum(axis=0)[:, : self.features]
        if self.leaves is not None:
            met = self.leaves.bits(ok_rows(go))
            if self.leaf_table is not None:
                self.leaf_table(met, out)
            else:
                shares = leaf_shapley(self.leaves.value, self.leaves.ratio, met.astype(np.float64))
                out += self.scatter(shares)
        return out
