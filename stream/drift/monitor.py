"""Data drift against the model card's reference: sliding windows, two distances, change detectors.

State is kept **per input partition**, so that it moves with the partition on a rebalance and can
be saved and restored (:meth:`DriftMonitor.snapshot`, :meth:`DriftMonitor.restore`). For each
partition:

- a sliding window of bin counts of every feature and of the score, on the card's reference bins
  (quantile edges for numeric features, the categories for categorical ones). A batch costs one
  vectorised ``searchsorted`` per column and one ``bincount`` per partition (no per-event Python);
  the window drops whole old batches once it holds more than its share of ``window`` events, or
  (with ``window_seconds``) once they are older than that in event time;
- River's ADWIN on the score, event by event: a change in the model's output is flagged when it
  happens (ADWIN adapts to any change size with bounded false alarms; about 0.2 µs an update);
- River's Page-Hinkley on each feature, fed with the standardised mean of each run of exactly
  ``DETECTOR_EVERY`` events of the partition (however they were batched),
  z = (mean - reference mean) / (reference std / sqrt(n)), which is N(0, 1) while nothing changes.
  Page-Hinkley is a CUSUM test: the fastest detector of a sustained mean shift for a given
  false-alarm rate, with O(1) state.

A worker's window is the union of the windows of the partitions it owns. Once that union has
taken in ``window`` new events (scaled by the share of partitions it owns), or ``window_seconds``
of event time, it is compared with the reference: the population stability index (PSI) and a
distance, Kolmogorov-Smirnov over the reference quantile edges for numeric features and total
variation for categorical ones. A detector that fires makes an alarm report at once.

Conventional PSI reading: below 0.1 stable, 0.1-0.25 moderate shift, above 0.25 significant.
With a calibrated card, window reports also estimate performance (:mod:`stream.drift.estimation`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from stream.contracts import ModelCard
from stream.drift.distances import Binning, distance, psi
from stream.drift.estimation import Estimate, Estimator
from stream.drift.partition import DETECTOR_EVERY, PartitionState, Slice, empty_state
from stream.drift.snapshot import read_record, record_of, shape_of, state_from
from stream.drift.state import Shape
from stream.errors import StateRejected

PSI_THRESHOLD = 0.25
DISTANCE_THRESHOLD = 0.1


@dataclass
class Report:
    """A comparison of the window with the reference: at a window's end, or when a detector fires."""

    kind: Literal["window", "alarm"]
    partitions: list[int]
    events: int
    window_start: float  # earliest event time in the window, epoch seconds
    window_end: float
    offsets: dict[int, tuple[int, int]]  # partition -> first and last offset in the window
    psi: dict[str, float]  # per feature, and "score"
    distance: dict[str, float]
    drifted: list[str]  # names whose PSI or distance is above its threshold
    alarms: list[str]  # detectors that fired since the last window report ("score" or a feature)
    unseen: dict[str, float] = field(default_factory=dict)  # string features: share of unseen categories
    estimate: Estimate | None = None  # window reports of a calibrated card: estimated performance

    @property
    def verdict(self) -> Literal["ok", "drift"]:
        return "drift" if self.drifted or self.alarms else "ok"


@dataclass
class DriftMonitor:
    """Windows and detectors of every feature and of the score, per input partition."""

    card: ModelCard
    window: int = 5_000
    partitions: int = 1  # partition count of the input topic: each holds window / partitions
    window_seconds: float = 0.0  # also bound windows in event time (0: by events only)
    psi_threshold: float = PSI_THRESHOLD
    distance_threshold: float = DISTANCE_THRESHOLD
    names: list[str] = field(init=False)
    _binnings: list[Binning] = field(init=False)
    _offsets: np.ndarray = field(init=False)
    _states: dict[int, PartitionState] = field(init=False, default_factory=dict)
    _report_time: float = field(init=False, default=math.nan)
    _alarms: set[str] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        features = self.card.features
        self.names = [f.name for f in features] + ["score"]
        kinds = [f.kind == "categorical" for f in features] + [False]
        strings = [f.categories or [] if f.type == "string" else None for f in features] + [None]
        self._binnings = [
            Binning(self.card.reference[n], c, s) for n, c, s in zip(self.names, kinds, strings, strict=True)
        ]
        self._offsets = np.cumsum([0] + [b.size for b in self._binnings])
        self._means = np.array([b.mean for b in self._binnings[:-1]])
        self._stderr = np.array([b.std for b in self._binnings[:-1]]) / math.sqrt(DETECTOR_EVERY)
        self._per_partition = max(1, math.ceil(self.window / self.partitions))
        self._estimator = Estimator.of(self.card)

    # -- updates ---------------------------------------------------------------------------------

    def update(
        self,
        x: np.ndarray,
        scores: np.ndarray,
        partitions: np.ndarray,
        times: np.ndarray,
        offsets: np.ndarray,
    ) -> list[Report]:
        """Add a scored batch: rows in card order, and each row's partition, event time and offset."""
        order = np.argsort(partitions, kind="stable")  # rows of a partition together, in offset order
        columns = np.column_stack([x, scores])[order]
        parts, times, offsets = partitions[order], times[order], offsets[order]
        owned, starts = np.unique(parts, return_index=True)
        ends = np.append(starts[1:], len(parts))
        size = int(self._offsets[-1])
        flat = np.column_stack([b.bins(columns[:, j]) for j, b in enumerate(self._binnings)])
        flat += self._offsets[:-1] + (np.repeat(np.arange(len(owned)), ends - starts) * size)[:, None]
        counts = np.bincount(flat.ravel(), minlength=len(owned) * size).reshape(len(owned), size)
        sums = np.add.reduceat(columns[:, :-1], starts)
        first, last = np.minimum.reduceat(times, starts), np.maximum.reduceat(times, starts)
        chunks = self._estimator.chunks(columns[:, -1], starts, ends) if self._estimator else None
        fired: set[str] = set()
        for i, p in enumerate(owned.tolist()):
            a, b = int(starts[i]), int(ends[i])
            window = Slice(
                b - a, counts[i], float(first[i]), float(last[i]), int(offsets[a]), int(offsets[b - 1])
            )
            window.estimate = [chunks[i]] if chunks else []
            fired |= self._add(p, window, columns[a:b], sums[i])
        if math.isnan(self._report_time):
            self._report_time = float(times.min())
        reports = []
        new = fired - self._alarms
        if new:
            self._alarms |= new
            reports.append(self._report("alarm", sorted(new)))
        if self._window_due(float(times.max())):
            reports.append(self._report("window", sorted(self._alarms)))
            self._alarms.clear()
            for state in self._states.values():
                state.since_report = 0
            self._report_time = float(times.max())
        return reports

    def _add(self, p: int, window: Slice, rows: np.ndarray, sums: np.ndarray) -> set[str]:
        """Add a partition's rows (features and score, in offset order; ``sums``: of its features);
        the detectors that fired."""
        state = self._states.get(p) or self._new_state()
        self._states[p] = state
        state.add_slice(window, self.window_seconds / 100 if self.window_seconds else math.inf)
        state.totals += window.counts
        state.events += window.events
        state.seen += window.events
        state.since_report += window.events
        horizon = window.last_time - self.window_seconds if self.window_seconds else -math.inf
        while state.slices and (
            state.events - state.slices[0].events >= self._per_partition
            or state.slices[0].last_time < horizon
        ):
            old = state.slices.popleft()
            state.events -= old.events
            state.totals -= old.counts

        fired = set()
        adwin = state.score_detector
        for score in rows[:, -1].tolist():
            adwin.update(score)
            if adwin.drift_detected:
                fired.add("score")
        # Each run of exactly DETECTOR_EVERY events makes one update, wherever batches begin and
        # end: a partition's events give the same alarms however they were batched.
        if state.feature_count + len(rows) < DETECTOR_EVERY:  # no run ends in these rows
            state.feature_sums += sums
            state.feature_count += len(rows)
            return fired
        features, at = rows[:, :-1], 0
        while len(features) - at >= DETECTOR_EVERY - state.feature_count:
            end = at + DETECTOR_EVERY - state.feature_count
            state.feature_sums += features[at:end].sum(axis=0)
            at, state.feature_count = end, 0
            z = (state.feature_sums / DETECTOR_EVERY - self._means) / self._stderr
            for name, detector, value in zip(
                self.names[:-1], state.feature_detectors, z.tolist(), strict=True
            ):
                detector.update(value)
                if detector.drift_detected:
                    fired.add(name)
            state.feature_sums[:] = 0.0
        state.feature_sums += features[at:].sum(axis=0)
        state.feature_count += len(features) - at
        return fired

    def _new_state(self) -> PartitionState:
        return empty_state(int(self._offsets[-1]), len(self.names) - 1)

    def _window_due(self, now: float) -> bool:
        owned = len(self._states)
        due = self.window * owned / self.partitions
        states = self._states.values()
        if sum(s.since_report for s in states) >= due and sum(s.events for s in states) >= due:
            return True
        return bool(self.window_seconds) and now - self._report_time >= self.window_seconds

    # -- comparison ------------------------------------------------------------------------------

    def current(self) -> Report:
        """The windows as they are now, compared with the reference (no alarms, nothing reset)."""
        return self._report("window", [])

    def _report(self, kind: Literal["window", "alarm"], alarms: list[str]) -> Report:
        states = self._states
        totals = sum((s.totals for s in states.values()), np.zeros(int(self._offsets[-1]), dtype=np.int64))
        psis, distances, unseen = {}, {}, {}
        for j, (name, b) in enumerate(zip(self.names, self._binnings, strict=True)):
            t = totals[self._offsets[j] : self._offsets[j + 1]]
            psis[name] = round(psi(b.expected, t), 4)
            distances[name] = round(distance(b.expected, t, b.categorical), 4)
            if b.strings:
                unseen[name] = round(float(t[-1] / t.sum()), 4) if t.sum() else 0.0
        slices = [sl for s in states.values() for sl in s.slices]
        drifted = [
            n for n in self.names if psis[n] > self.psi_threshold or distances[n] > self.distance_threshold
        ]
        return Report(
            kind=kind,
            partitions=sorted(states),
            events=sum(s.events for s in states.values()),
            window_start=min((sl.first_time for sl in slices), default=math.nan),
            window_end=max((sl.last_time for sl in slices), default=math.nan),
            offsets={
                p: (s.slices[0].first_offset, s.slices[-1].last_offset)
                for p, s in sorted(states.items())
                if s.slices
            },
            psi=psis,
            distance=distances,
            drifted=drifted,
            alarms=alarms,
            unseen=unseen,
            estimate=self._estimator.estimate([c for sl in slices for c in sl.estimate])
            if self._estimator and kind == "window"
            else None,
        )

    # -- state -----------------------------------------------------------------------------------

    def shape(self) -> Shape:
        """What a saved state must match, besides the model: the window and the detectors."""
        bins = [b.size for b in self._binnings]
        return shape_of(self._per_partition, self.window_seconds, bins, self._estimator)

    def snapshot(self, partition: int) -> bytes | None:
        """The partition's state as versioned JSON (plain numbers); None if it has none."""
        state = self._states.get(partition)
        if state is None:
            return None
        return record_of(state, self._model_id(), self.shape(), self._estimator).model_dump_json().encode()

    def restore(self, partition: int, body: bytes) -> None:
        """Adopt a saved state (the JSON :meth:`snapshot` makes) for ``partition``.

        Raises :class:`StateRejected` (reason ``format``, ``version``, ``model`` or ``shape``) and
        leaves the partition as it was when the record is malformed, of another version, of another
        model, or does not fit this monitor's window and detectors.
        """
        what = f"drift state of partition {partition}"
        record = read_record(body, what)
        if record.model != self._model_id():
            raise StateRejected("model", f"{what} is of model {record.model}, not {self._model_id()}")
        try:
            state = state_from(record, self.shape(), self._offsets, self._per_partition, self._estimator)
        except ValueError as exc:
            raise StateRejected("shape", f"{what} does not fit: {exc}") from None
        self._states[partition] = state

    def _model_id(self) -> str:
        return f"{self.card.sha256}:{self.card.version}"

    def own(self, partitions: Iterable[int]) -> None:
        """Start an empty window for each newly assigned partition (a window's share counts them all)."""
        for p in partitions:
            if p not in self._states:
                self._states[p] = self._new_state()

    def release(self, partition: int) -> None:
        """Forget a partition this worker no longer owns."""
        self._states.pop(partition, None)

    def owned(self) -> list[int]:
        return sorted(self._states)

    def seen(self, partition: int) -> int:
        state = self._states.get(partition)
        return state.seen if state else 0
