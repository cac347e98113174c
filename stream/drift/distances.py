"""Distances between a window's distribution and the reference, over the reference's bins.

- :func:`psi`: the population stability index (below 0.1 stable, 0.1-0.25 moderate shift, above
  0.25 significant);
- :func:`distance`: total variation for categories, Kolmogorov-Smirnov over ordered bins;
- :class:`Binning`: maps values to the bins of one reference distribution (quantile edges for
  numeric features, the categories for categorical ones).
"""

from __future__ import annotations

import numpy as np

from stream.contracts import ReferenceStats

_EPS = 1e-4


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index between two distributions over the same bins."""
    e = np.clip(expected, _EPS, None)
    a = np.clip(actual, _EPS, None)
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def distance(expected: np.ndarray, actual: np.ndarray, categorical: bool) -> float:
    """Total variation for categories; Kolmogorov-Smirnov over ordered bins otherwise."""
    e = expected / expected.sum()
    a = actual / max(actual.sum(), 1)
    if categorical:
        return float(0.5 * np.abs(a - e).sum())
    return float(np.abs(np.cumsum(a) - np.cumsum(e)).max())


class Binning:
    """Maps values to the bins of one reference distribution."""

    def __init__(self, ref: ReferenceStats, categorical: bool, categories: list[str] | None = None) -> None:
        """``categories``: a string feature's, whose codes are their indices (-1: never seen)."""
        self.categorical = categorical and bool(ref.categories)
        self.strings = categories is not None
        self.mean, self.std = ref.mean, max(ref.std, 1e-12)
        if categories is not None:
            shares = np.array([(ref.categories or {}).get(c, 0.0) for c in categories])
            self.categorical, self.codes = True, np.arange(len(categories), dtype=np.float64)
            # the reference's share outside the kept categories is what "unseen" expects
            self.expected = np.append(shares, max(0.0, 1.0 - shares.sum()))
            self.mean = float(shares @ self.codes - self.expected[-1])  # of the codes the rows hold
            self.std = max(float(np.sqrt(shares @ self.codes**2 + self.expected[-1] - self.mean**2)), 1e-12)
        elif self.categorical and ref.categories:
            codes = np.array([float(c) for c in ref.categories])
            order = np.argsort(codes)
            self.codes = codes[order]
            # one bin per known category, and a last one for categories never seen in training
            self.expected = np.append(np.array(list(ref.categories.values()))[order], 0.0)
        else:
            self.edges = np.array(ref.bin_edges)
            self.expected = np.array(ref.bin_fractions)
        self.size = len(self.expected)

    def bins(self, values: np.ndarray) -> np.ndarray:
        """The bin of each value (categories never seen in training: the last bin)."""
        if not self.categorical:
            return np.searchsorted(self.edges, values, side="left")
        bins = np.minimum(np.searchsorted(self.codes, values), len(self.codes) - 1)
        bins[self.codes[bins] != values] = len(self.codes)
        return bins
