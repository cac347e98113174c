"""Data drift against the model card's reference: sliding windows, PSI, and a change detector.

Per batch, each feature column and the score are binned on the card's reference quantile edges
with one vectorised ``searchsorted`` + ``bincount`` (no per-event Python); a window keeps the bin
counts of its last batches and drops the oldest whole batch once it holds more than ``window``
events. When the window is full, and then every ``window`` events, it is compared with the
reference: a population stability index (PSI) over the same bins for numeric features, over the
categories for categorical ones. Between comparisons, River's ADWIN watches the score stream event
by event (about 0.2 µs an update), so a shift in the model's output is flagged when it happens, not
only at a window boundary.

Conventional PSI reading: below 0.1 stable, 0.1-0.25 moderate shift, above 0.25 a significant
shift; :data:`PSI_THRESHOLD` is the alarm level.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
from river.drift import ADWIN

from stream.contracts import ModelCard, ReferenceStats

PSI_THRESHOLD = 0.25
_EPS = 1e-4


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index between two distributions over the same bins."""
    e = np.clip(expected, _EPS, None)
    a = np.clip(actual, _EPS, None)
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


class _Binning:
    """Maps values to the bins of one reference distribution."""

    def __init__(self, ref: ReferenceStats, categorical: bool) -> None:
        if categorical and ref.categories:
            codes = np.array([float(c) for c in ref.categories])
            order = np.argsort(codes)
            self.codes = codes[order]
            # one bin per known category, and a last one for categories never seen in training
            self.expected = np.append(np.array(list(ref.categories.values()))[order], 0.0)
        else:
            self.codes = None
            self.edges = np.array(ref.bin_edges)
            self.expected = np.array(ref.bin_fractions)
        self.size = len(self.expected)

    def counts(self, values: np.ndarray) -> np.ndarray:
        if self.codes is None:
            bins = np.searchsorted(self.edges, values, side="left")
        else:
            bins = np.searchsorted(self.codes, values)
            bins = np.minimum(bins, len(self.codes) - 1)
            unknown = self.codes[bins] != values
            bins[unknown] = len(self.codes)
        return np.bincount(bins, minlength=self.size)


@dataclass
class WindowReport:
    """One comparison of a full window with the reference."""

    events: int
    window_start: float  # earliest event time in the window, epoch seconds
    window_end: float
    psi: dict[str, float]  # per feature, and "score"
    drifted: list[str]  # names whose PSI is above the threshold
    score_change: bool  # ADWIN flagged the score stream since the last report


@dataclass
class DriftMonitor:
    """Windows of every feature and of the score, compared with the card's reference."""

    card: ModelCard
    window: int = 5_000
    threshold: float = PSI_THRESHOLD
    _names: list[str] = field(init=False)
    _binnings: list[_Binning] = field(init=False)
    _batches: deque[tuple[int, list[np.ndarray], tuple[float, float]]] = field(init=False)
    _totals: list[np.ndarray] = field(init=False)
    _events: int = field(init=False, default=0)
    _since_report: int = field(init=False, default=0)
    _adwin: ADWIN = field(init=False)
    _score_change: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self._names = [f.name for f in self.card.features] + ["score"]
        kinds = [f.kind == "categorical" for f in self.card.features] + [False]
        self._binnings = [
            _Binning(self.card.reference[n], c) for n, c in zip(self._names, kinds, strict=True)
        ]
        self._batches = deque()
        self._totals = [np.zeros(b.size, dtype=np.int64) for b in self._binnings]
        self._adwin = ADWIN()

    def update(
        self, x: np.ndarray, scores: np.ndarray, occurred: tuple[float, float] = (0.0, 0.0)
    ) -> WindowReport | None:
        """Add a scored batch (rows in card order, its event-time bounds); a report when a window is full."""
        columns = [x[:, j] for j in range(x.shape[1])] + [scores]
        counts = [b.counts(c) for b, c in zip(self._binnings, columns, strict=True)]
        for total, c in zip(self._totals, counts, strict=True):
            total += c
        self._batches.append((len(scores), counts, occurred))
        self._events += len(scores)
        while self._batches and self._events - self._batches[0][0] >= self.window:
            n, old, _ = self._batches.popleft()
            self._events -= n
            for total, c in zip(self._totals, old, strict=True):
                total -= c
        update = self._adwin.update
        for s in scores.tolist():
            update(s)
            if self._adwin.drift_detected:
                self._score_change = True
        self._since_report += len(scores)
        if self._events < self.window or self._since_report < self.window:
            return None
        self._since_report = 0
        values = {
            n: round(psi(b.expected, t), 4)
            for n, b, t in zip(self._names, self._binnings, self._totals, strict=True)
        }
        report = WindowReport(
            events=self._events,
            window_start=min(b[2][0] for b in self._batches),
            window_end=max(b[2][1] for b in self._batches),
            psi=values,
            drifted=[n for n, v in values.items() if v > self.threshold],
            score_change=self._score_change,
        )
        self._score_change = False
        return report
